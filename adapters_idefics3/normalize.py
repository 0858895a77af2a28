"""``normalize(sample)`` for Idefics3 / SmolVLM (interim: the core procedure replaces the generic parts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from vlm_adapters.samples import image_sizes, meta_list, require_mapping, size_pair

from vlm_adapters import ImageShapeError, MissingInputError, VisionBatch

if TYPE_CHECKING:
    from .adapter import Idefics3AdapterBase


def normalize_sample(adapter: Idefics3AdapterBase, sample: Mapping[str, Any]) -> VisionBatch:
    sample = require_mapping(sample)
    spec = adapter.spec
    ids = torch.as_tensor(sample["input_ids"]).long().flatten()
    pixels = sample.get("pixel_values")
    if pixels is None:
        raise MissingInputError(
            "the sample has no pixel_values",
            found=sorted(sample)[:12],
            expected="pixel_values [1, views, 3, 364, 364]",
            fix="keep the processor's pixel_values in the sample",
        )
    pixels = torch.as_tensor(pixels).float()
    t = spec.tile_size
    if pixels.ndim != 5 or tuple(pixels.shape[-3:]) != (3, t, t):
        raise ImageShapeError(
            "pixel_values are not a stack of sub-images",
            found=tuple(pixels.shape),
            expected=f"[1, views, 3, {t}, {t}]",
            fix="pass the processor's pixel_values",
        )
    if sample.get("image_sizes") is not None:
        sizes = image_sizes(sample["image_sizes"])
    else:
        sizes = [size_pair(m["original_shape"], "meta_data") for m in meta_list(sample) or []]
    inputs = {"input_ids": ids[None], "attention_mask": torch.ones_like(ids)[None], "pixel_values": pixels}
    if sample.get("pixel_attention_mask") is not None:
        inputs["pixel_attention_mask"] = torch.as_tensor(sample["pixel_attention_mask"])
    return adapter.finish_batch(inputs, [sizes])
