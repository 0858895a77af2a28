"""Checkpoints as a user names them: a local folder or a hub id, read config first, refused when it
cannot load, the adapter picked from it; all before any weight loads.

transformers answers a mistyped local path with a hub error ("Repo id must be ..."), and an
offline machine with a connection error; both hide the real mistake. Here a path that looks
local and does not exist is refused as such, and any other failure to read a config names the
path or id, the offline setting and the fix. Plugins then see the raw ``config.json`` and may
refuse a format they know the stock classes cannot load (``check_checkpoint`` hook).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, OptionError
from .registry import default_registry, get_adapter

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from .adapter import BackboneAdapter

__all__ = ["CheckpointError", "bind_adapter", "load_config", "model_summary", "read_config_dict"]


def _looks_local(text: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a path."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _unreadable(text: str, exc: Exception) -> CheckpointError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    return CheckpointError(
        "the checkpoint could not be read",
        found=f"{text!r}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}",
        expected="a local checkpoint folder, or a hub id reachable from here"
        + (" (HF_HUB_OFFLINE is set: only the local cache)" if offline else ""),
        fix="download the checkpoint (huggingface-cli download ID --local-dir DIR) and pass DIR",
    )


def read_config_dict(path_or_id: str | Path) -> tuple[str, dict[str, Any]]:
    """The checkpoint's ``config.json`` as a dict, without instantiating a config class; and the
    path or id to load it from."""
    from transformers import PretrainedConfig

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
    where = str(path) if path.exists() else text
    try:
        config, _ = PretrainedConfig.get_config_dict(where)
    except (OSError, ValueError) as exc:
        raise _unreadable(text, exc) from None
    return where, dict(config)


def load_config(path_or_id: str | Path) -> Any:
    """``AutoConfig.from_pretrained`` with typed errors for missing folders, unreachable ids and
    formats a plugin refuses."""
    from transformers import AutoConfig

    where, raw = read_config_dict(path_or_id)
    default_registry().check_checkpoint(raw)
    try:
        return AutoConfig.from_pretrained(where)
    except (OSError, ValueError, KeyError) as exc:
        raise _unreadable(str(path_or_id), exc) from None


def bind_adapter(backbone: str | None, model: str | Path | None) -> BackboneAdapter:
    """The adapter, with config and processor, for ``--backbone`` / ``--model``; no weights load.

    With ``model`` and no ``backbone`` the adapter comes from the checkpoint's ``model_type``;
    with both, the adapter refuses a checkpoint it does not serve. Without ``model`` it is the
    backbone's tiny random-weight default.
    """
    if model is None:
        if backbone is None:
            raise OptionError(
                "no backbone to run",
                found="neither --backbone nor --model",
                expected="--backbone NAME (the tiny offline model), --model PATH_OR_HUB_ID, or both",
                fix="pick a name from `vlm-adapters list`, or point --model at a checkpoint",
            )
        return get_adapter(backbone).from_tiny()
    config = load_config(model)
    cls = get_adapter(backbone) if backbone else default_registry().for_config(config)
    if config.model_type not in cls.model_types:  # the adapter would refuse it too; say which flag to change
        raise OptionError(
            f"--backbone {cls.name} does not serve this checkpoint",
            found=f"model_type {config.model_type!r} in {str(model)!r}",
            expected=f"one of {list(cls.model_types)}",
            fix="leave --backbone out (the adapter then comes from the checkpoint) or name the matching one",
        )
    return cls.from_pretrained(model)


def model_summary(config: PretrainedConfig) -> dict[str, Any]:
    """What a user sizes ``--layers`` and ``--heads`` with: the language model's counts."""
    text = config.get_text_config()
    return {
        "model_type": config.model_type,
        "layers": int(text.num_hidden_layers),
        "heads": int(text.num_attention_heads),
        "kv_heads": int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads),
        "hidden_size": int(text.hidden_size),
        "vocab_size": int(text.vocab_size),
    }
