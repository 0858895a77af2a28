"""Fit a sample's prompt to its images: image tokens checked (or expanded) per image, every
per-token companion aligned with the final sequence.

A sample may carry both the prompt ids and the processor's expanded ids (``input_ids`` and
``input_ids_with_vision``, as some research forks do); they must be one prompt once expanded,
and each companion follows whichever of the two it has the length of.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from ..errors import TokenCountError
from .ids import TokenFields

Expand = Callable[
    [torch.Tensor, Mapping[str, torch.Tensor], Sequence[int], str],
    tuple[torch.Tensor, dict[str, torch.Tensor], bool],
]
"""The backbone's expansion step: ``(ids, companions, counts, name) -> (ids, companions, expanded)``."""


def fit_tokens(
    fields: TokenFields, counts: Sequence[int], expand: Expand
) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """``(ids, companions, expanded)`` with ``counts[i]`` image tokens for image ``i``."""
    primary = fields.primary
    secondary = fields.ids if fields.ids_with_vision is not None else None
    mine = {k: v for k, v in fields.companions.items() if secondary is None or v.numel() == primary.numel()}
    theirs = {k: v for k, v in fields.companions.items() if k not in mine}
    name = "input_ids_with_vision" if fields.ids_with_vision is not None else "input_ids"
    ids, mine, expanded = expand(primary, mine, counts, name)
    if secondary is not None:
        other, theirs, _ = expand(secondary, theirs, counts, "input_ids")
        if not torch.equal(other, ids):
            raise TokenCountError(
                "input_ids and input_ids_with_vision are different prompts",
                found=f"{secondary.numel()} and {primary.numel()} tokens that differ after expansion",
                expected="input_ids_with_vision = input_ids with each placeholder expanded",
                fix="keep both from the same processor call, or pass only one",
            )
        mine.update(theirs)
    return ids, mine, expanded
