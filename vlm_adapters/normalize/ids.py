"""``input_ids`` and its per-token companions, read with one policy for every backbone.

Ids come as tensors, numpy arrays or lists, 1-D or ``[1, seq]``. Anything that is not a sequence
of integers is refused, floats included even when they hold whole numbers: a float id has been
through arithmetic it should not have seen, and truncating or rounding it would guess. Values are
checked against the checkpoint, because the stock forward either crashes on them deep inside
(an id beyond the embedding table) or runs on garbage (a mask of 2s, labels of -7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import TokenIdError
from ..placeholders import COMPANION_KEYS

ID_KEYS = ("input_ids", "input_ids_with_vision")
IGNORE_INDEX = -100
"""The label of positions the loss ignores (the transformers convention)."""


@dataclass
class TokenFields:
    """A sample's prompt ids, as given, with its per-token companions."""

    ids: torch.Tensor | None
    """``input_ids``: expanded by the processor, or one placeholder per image."""
    ids_with_vision: torch.Tensor | None
    """``input_ids_with_vision``: the processor's expanded ids, where the dataset kept them."""
    companions: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def primary(self) -> torch.Tensor:
        """The ids the images are read against: the expanded ones when the sample has both."""
        ids = self.ids_with_vision if self.ids_with_vision is not None else self.ids
        assert ids is not None
        return ids


def _refuse(key: str, found: str) -> TokenIdError:
    return TokenIdError(
        f"{key} is not a sequence of integer ids",
        found=found,
        expected="a 1-D (or [1, seq]) integer tensor, numpy array or list",
        fix=f"pass {key} as the tokenizer returned it (integers, torch.long); do not cast ids to float",
    )


def _as_tensor(value: Any, key: str) -> torch.Tensor:
    """An integer tensor from a tensor, array or (nested) list; floats, bools (except in masks) and
    anything else refused."""
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            raise _refuse(key, f"a ragged or mixed {type(value).__name__}") from None
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind == "u" and value.size and int(value.max()) > np.iinfo(np.int64).max:
            raise _refuse(key, f"{value.dtype} values beyond int64")
        if kind not in "iub":
            what = "floats" if kind == "f" else f"{value.dtype}"
            raise _refuse(key, f"numpy array of {what} (dtype {value.dtype})")
        value = torch.from_numpy(value.astype(np.int64 if kind != "b" else np.bool_))
    if not isinstance(value, torch.Tensor):
        raise _refuse(key, type(value).__name__)
    if value.dtype.is_floating_point or value.dtype.is_complex:
        raise _refuse(key, f"tensor of dtype {value.dtype}")
    if value.dtype == torch.bool and key != "attention_mask":
        raise _refuse(key, "a bool tensor")
    return value


def read_sequence(value: Any, key: str) -> torch.Tensor:
    """One sample's sequence as a 1-D ``int64`` tensor (shape and type checked, values not)."""
    t = _as_tensor(value, key)
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 1 or t.numel() == 0:
        raise TokenIdError(
            f"{key} is not one sample's sequence",
            found=f"shape {list(t.shape)}",
            expected="[seq] or [1, seq] with seq > 0",
            fix="normalize() takes one sample; batch several with adapter.collate(samples)",
        )
    return t.long()


def check_values(key: str, seq: torch.Tensor, vocab_size: int) -> None:
    """The value policy of each per-token field."""
    lo, hi = int(seq.min()), int(seq.max())
    if key in ID_KEYS and (lo < 0 or hi >= vocab_size):
        raise TokenIdError(
            f"{key} falls outside the vocabulary",
            found=f"ids in [{lo}, {hi}]",
            expected=f"ids in [0, {vocab_size - 1}]",
            fix="tokenize with this checkpoint's tokenizer; -100 belongs in labels, not input_ids",
        )
    if key == "labels" and bool((((seq < 0) & (seq != IGNORE_INDEX)) | (seq >= vocab_size)).any()):
        raise TokenIdError(
            "labels hold ids outside the vocabulary",
            found=f"labels in [{lo}, {hi}]",
            expected=f"{IGNORE_INDEX} or ids in [0, {vocab_size - 1}]",
            fix=f"mark ignored positions with {IGNORE_INDEX}",
        )
    if key == "mask_ids" and lo < -1:
        raise TokenIdError(
            "mask_ids holds values below -1",
            found=f"mask_ids in [{lo}, {hi}]",
            expected="-1 (no object) or an object index >= 0 per token",
            fix="mark tokens outside every phrase with -1",
        )
    if key == "attention_mask":
        values = sorted(set(seq.unique().tolist()))
        if not set(values) <= {0, 1} or hi == 0:
            raise TokenIdError(
                "attention_mask is not a 0/1 mask with at least one 1",
                found=f"values {values[:8]}",
                expected="1 for tokens to attend to, 0 for padding, at least one 1",
                fix="pass the tokenizer's attention_mask (or leave it out: all ones)",
            )


def read_tokens(sample: Mapping[str, Any], vocab_size: int) -> TokenFields | None:
    """The sample's ids and companions, read and checked; ``None`` when it has no ids at all."""
    ids = sample.get("input_ids")
    ids_v = sample.get("input_ids_with_vision")
    if ids is None and ids_v is None:
        return None
    read: dict[str, torch.Tensor] = {}
    for key in (*ID_KEYS, *COMPANION_KEYS):
        if sample.get(key) is not None:
            read[key] = read_sequence(sample[key], key)
            check_values(key, read[key], vocab_size)
    return TokenFields(
        ids=read.pop("input_ids", None),
        ids_with_vision=read.pop("input_ids_with_vision", None),
        companions=read,
    )
