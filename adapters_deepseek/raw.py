"""Raw images in a dataset sample: the only source from which every DeepSeek-VL input is exact.

A raw image gives the processor's pixels (both views for the hybrid) and the original size
that the padding geometry needs. Raw images come under ``image`` / ``images``, or under
``pixel_values`` when they are certainly not processed: PIL images and integer (uint8)
arrays. Float arrays count as raw only under ``image(s)``, and only in ``[0, 1]``: a float
image with negative values is processed pixels in the wrong key, not a picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlm_adapters import VisionInputError
from vlm_adapters.geometry import Size
from vlm_adapters.images import to_pil

RAW_KEYS = ("image", "images")


def _is_certainly_raw(value: Any) -> bool:
    """PIL images and integer arrays/tensors (or lists of them): never processor output."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_certainly_raw(v) for v in value)
    if isinstance(value, Image.Image):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "ub"
    if isinstance(value, torch.Tensor):
        return value.dtype in (torch.uint8, torch.bool) or (
            not value.dtype.is_floating_point and not value.dtype.is_complex
        )
    return False


def _split(value: Any) -> list[Any]:
    """One image, a list of images, or a 4-D stack of images, as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 4:
        return list(value)
    return [value]


def _check_one(image: Any, where: str) -> Image.Image:
    """Validate one raw image and convert it to RGB PIL (torch tensors are CHW, numpy HWC or HW)."""
    return to_pil(image, where)


def raw_images(sample: Mapping[str, Any]) -> tuple[list[Image.Image], list[Size]] | None:
    """The sample's raw images as RGB PIL images with their original sizes, or ``None``."""
    found = {k: sample[k] for k in RAW_KEYS if sample.get(k) is not None}
    if _is_certainly_raw(sample.get("pixel_values")):
        found["pixel_values"] = sample["pixel_values"]
    if not found:
        return None
    if len(found) > 1:
        raise VisionInputError(
            "the sample has raw images under several keys",
            found=sorted(found),
            expected="raw images under one key",
            fix="keep the raw images under 'image' (or 'images') only",
        )
    ((key, value),) = found.items()
    images = [_check_one(img, f"{key}[{i}]") for i, img in enumerate(_split(value))]
    if not images:
        return None
    return images, [(img.height, img.width) for img in images]


def is_raw_pixel_values(sample: Mapping[str, Any]) -> bool:
    """True when ``pixel_values`` holds raw images rather than processor output."""
    return _is_certainly_raw(sample.get("pixel_values"))
