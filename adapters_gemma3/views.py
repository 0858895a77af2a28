"""Gemma 3's processed pixels in the forms research code keeps them, as one stack of views.

The stock processor returns every view of every image in one ``[V, C, S, S]`` stack (each image's
whole view, then its crops). Datasets also keep the views stacked per image (a list of
``[1 + n, C, S, S]``, or ``[images, 1 + n, C, S, S]`` when every image has ``n`` crops), or record
the image processor's per-image ``num_crops``. A per-image form says how many crops each image
has; the flat stack does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vlm_adapters import ImageShapeError, VisionInputError

from .spec import PanAndScanSpec


def _tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise ImageShapeError(
            f"{where} is not processed pixels",
            found=type(value).__name__ + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else ""),
            expected="a float tensor or array of views [V, C, H, W] (or a list of them per image)",
            fix="pass the processor's pixel_values unchanged, or the decoded images under 'image'",
        )
    return value


def view_stack(value: Any, spec: PanAndScanSpec, channels: int) -> tuple[torch.Tensor, list[int] | None]:
    """``([V, C, S, S] float32, views per image or None)`` from any accepted form of pixel_values."""
    h, w = spec.image_size
    expected = (
        f"[V, {channels}, {h}, {w}] (every view of every image), [images, 1 + crops, {channels}, {h}, {w}], "
        f"or a list with one [1 + crops, {channels}, {h}, {w}] per image"
    )
    listed = isinstance(value, (list, tuple))
    parts = (
        [_tensor(v, f"pixel_values[{i}]") for i, v in enumerate(value)] if listed else [_tensor(value, "pixel_values")]
    )
    per_image: list[int] | None = [] if listed else None
    stacks = []
    for part in parts:
        shape = list(part.shape)
        x = part[None] if part.ndim == 3 else part
        if x.ndim == 5 and not listed:
            per_image = [int(x.shape[1])] * int(x.shape[0])
            x = x.reshape(-1, *x.shape[2:])
        if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] != channels or tuple(x.shape[-2:]) != (h, w):
            raise ImageShapeError(
                "pixel_values are not Gemma 3 views",
                found=f"shape {shape}" + (f" in a list of {len(parts)}" if listed else ""),
                expected=expected,
                fix="pass the processor's pixel_values unchanged (or per image, as stacked views); other "
                "resolutions come from another processor: re-process the raw image",
            )
        if per_image is not None and listed:
            per_image.append(int(x.shape[0]))
        stacks.append(x)
    return torch.cat(stacks).to(torch.float32).contiguous(), per_image


def declared_crops(views_per_image: list[int] | None, num_crops: Any) -> list[int] | None:
    """Crops per image as the sample declares them (per-image views, ``num_crops``), which must agree."""
    from_views = None if views_per_image is None else [n - 1 for n in views_per_image]
    from_key = None if num_crops is None else _crop_counts(num_crops)
    if from_views is not None and from_key is not None and from_views != from_key:
        raise VisionInputError(
            "num_crops contradicts the views stacked per image",
            found=f"num_crops {from_key}, views per image {views_per_image}",
            expected=f"num_crops {from_views} (views per image - 1)",
            fix="keep num_crops as the image processor returned it, for the same images",
        )
    return from_views if from_views is not None else from_key


def _crop_counts(value: Any) -> list[int]:
    flat = np.asarray(value.tolist() if isinstance(value, torch.Tensor) else value, dtype=object).reshape(-1)
    counts = []
    for v in flat:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)) or v != int(v):
            raise VisionInputError(
                "num_crops is not a list of crop counts",
                found=repr(value)[:80],
                expected="one non-negative integer per image (e.g. [[3]] or [3, 0])",
                fix="keep num_crops as the image processor returned it",
            )
        counts.append(int(v))
    if any(c < 0 for c in counts):
        raise VisionInputError(
            "num_crops is negative", found=counts, expected="counts >= 0", fix="keep num_crops as returned"
        )
    return counts
