"""Checkpoints as a user names them: read the config first, refuse what cannot load, pick the adapter.

Everything here runs before any weights load, so a wrong path, a remote-code checkpoint or a
backbone mismatch costs a config read, not a model load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, OptionError
from .registry import default_registry, get_adapter

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from .adapter import BackboneAdapter


def read_config_dict(path_or_id: str | Path) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as a dict, without instantiating a config class."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(str(path_or_id))
    except OSError as exc:
        raise CheckpointError(
            "cannot read the checkpoint's config",
            found=f"{str(path_or_id)!r} ({_first_line(exc)})",
            expected="a folder with config.json, or a hub id that is downloaded or reachable",
            fix="check the path; for a hub id, download it first or unset HF_HUB_OFFLINE",
        ) from None
    return dict(config)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_config(path_or_id: str | Path) -> PretrainedConfig:
    """``AutoConfig`` for a checkpoint, after plugins had the chance to refuse its format."""
    from transformers import AutoConfig

    raw = read_config_dict(path_or_id)
    default_registry().check_checkpoint(raw)
    try:
        return AutoConfig.from_pretrained(str(path_or_id))
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            "transformers cannot build this checkpoint's config",
            found=f"model_type {raw.get('model_type')!r} ({_first_line(exc)})",
            expected="a checkpoint in the transformers format, of a model_type `vlm-adapters list` shows",
            fix="use the transformers-format release of this model, or upgrade transformers",
        ) from None


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
