"""A plugin's refusal, by name, of a checkpoint format that the stock transformers classes cannot load.

Families often publish two formats: the original repositories with remote code, and converted
ones that transformers loads natively. The original format fails deep inside transformers (or asks
to run its code); a plugin instead names the converted checkpoints, from the config alone, before
anything else loads (the ``check_checkpoint`` hook).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import CheckpointError
from .hookspecs import hookimpl


def refuse_model_type(
    model_type: str, origin: str, expected_types: Sequence[str], checkpoints: Sequence[str]
) -> Callable[[dict[str, Any]], None]:
    """A ``check_checkpoint`` hook refusing configs of ``model_type`` (found in ``origin``, e.g. "the
    org/name-* repositories") with the transformers-format model types and checkpoints to use instead:
    ``check_checkpoint = refuse_model_type(...)`` in the plugin's entry-point module."""
    wanted = " or ".join(repr(t) for t in expected_types)

    @hookimpl
    def check_checkpoint(config: dict[str, Any]) -> None:
        if config.get("model_type") == model_type:
            raise CheckpointError(
                "checkpoint in a remote-code format that transformers does not load",
                found=f"model_type {model_type!r} ({origin})",
                expected=f"a transformers-format checkpoint (model_type {wanted})",
                fix=f"use {' or '.join(checkpoints)} (same weights, transformers format)",
            )

    return check_checkpoint
