"""Reading a checkpoint's config: a local folder or a hub id, with errors that say which it was.

transformers answers a mistyped local path with a hub error ("Repo id must be ..."), and an
offline machine with a connection error; both hide the real mistake. Here a path that looks
local and does not exist is refused as such, and any other failure to read a config names the
path or id, the offline setting and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import VisionInputError


class CheckpointError(VisionInputError):
    """A checkpoint folder or hub id that cannot be read."""


def _looks_local(text: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a path."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def load_config(path_or_id: str | Path) -> Any:
    """``AutoConfig.from_pretrained`` with typed errors for missing folders and unreachable ids."""
    from transformers import AutoConfig

    text = str(path_or_id)
    path = Path(text).expanduser()
    if not isinstance(path_or_id, (str, Path)) or not text:
        raise CheckpointError(
            "no checkpoint given",
            found=repr(path_or_id),
            expected="a checkpoint folder or a hub id such as 'org/model'",
            fix="pass the folder that holds config.json, or a hub id",
        )
    if path.exists() and not (path / "config.json").is_file():
        raise CheckpointError(
            "the folder is not a checkpoint",
            found=f"{text} without config.json",
            expected="a folder written by save_pretrained (config.json, weights, processor files)",
            fix="point at the checkpoint folder itself",
        )
    if not path.exists() and (isinstance(path_or_id, Path) or _looks_local(text)):
        raise CheckpointError(
            "the checkpoint folder does not exist",
            found=text,
            expected="an existing folder with config.json",
            fix="check the path (hub ids look like 'org/model')",
        )
    try:
        return AutoConfig.from_pretrained(str(path) if path.exists() else text)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise CheckpointError(
            "the checkpoint could not be read",
            found=f"{text!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
            expected="a local checkpoint folder, or a hub id reachable from here"
            + (" (HF_HUB_OFFLINE is set: only the local cache)" if offline else ""),
            fix="download the checkpoint (huggingface-cli download ID --local-dir DIR) and pass DIR",
        ) from None
