"""Reading the size fields of research-dataset samples (``image_sizes``, ``meta_data(s)``).

Sizes are what make geometry exact (padding for fixed specs, grids for dynamic ones), so they
are parsed strictly: ``(height, width)`` pairs of positive integers, or ``{'height', 'width'}``
dicts as F-LMM's ``meta_data`` writes them. Anything else is an ``ImageShapeError``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .errors import ImageShapeError, VisionInputError
from .geometry import Size

SIZE_FIX = "store image sizes as (height, width) per image, in the order of the images"


def size_pair(value: Any, where: str) -> Size:
    """``(height, width)`` from a pair, a ``{'height', 'width'}`` dict, or a 2-element tensor."""
    if isinstance(value, Mapping):
        value = (value.get("height"), value.get("width"))
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist()
    try:
        h, w = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ImageShapeError(
            f"{where} is not a (height, width) pair",
            found=repr(value)[:80],
            expected="(height, width) or {'height': h, 'width': w}",
            fix=SIZE_FIX,
        ) from None
    if not (np.isfinite(h) and np.isfinite(w)) or h != round(h) or w != round(w) or h <= 0 or w <= 0:
        raise ImageShapeError(
            f"{where} is not a positive integer size",
            found=(h, w),
            expected="positive integer height and width",
            fix=SIZE_FIX,
        )
    return int(h), int(w)


def image_sizes(value: Any) -> list[Size]:
    """The ``image_sizes`` field: a list of pairs, or one bare pair for a one-image sample."""
    raw = value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else value
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(v, numbers.Real) for v in raw):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise ImageShapeError(
            "image_sizes is not a list of sizes",
            found=repr(value)[:80],
            expected="[(height, width), ...] per image",
            fix=SIZE_FIX,
        )
    return [size_pair(v, f"image_sizes[{i}]") for i, v in enumerate(raw)]


def meta_list(sample: Mapping[str, Any]) -> list[Any] | None:
    """``meta_datas`` (or ``meta_data``) as a list, one entry per image; ``None`` if absent."""
    metas = sample.get("meta_datas", sample.get("meta_data"))
    if metas is None:
        return None
    if isinstance(metas, (list, tuple)):
        return list(metas)
    return [metas]


def require_mapping(sample: Any) -> Mapping[str, Any]:
    """A sample is one dict; a list (a batch) or a tensor is refused with the fix."""
    if not isinstance(sample, Mapping):
        raise VisionInputError(
            "a sample must be a dict",
            found=type(sample).__name__,
            expected="a mapping with input_ids and pixel_values (or raw images)",
            fix="pass one dataset item; use adapter.collate(samples) for a list",
        )
    return sample
