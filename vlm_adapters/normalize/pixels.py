"""Pixel fields of a sample: raw images or processed pixels, told apart by one rule and checked.

**Raw or processed.** ``image`` / ``images`` hold raw images. A pixel key of the backbone
(``pixel_values``, a second view...) holds processed pixels, except what cannot be processed:
PIL images and integer arrays are raw images wherever they are. A float array there is processed
when it has the backbone's processed layout: any array for backbones whose processor returns
images, a matrix ``[N, D]`` (or ``[1, N, D]``) for backbones whose processor returns a flattened
patch matrix; otherwise it is a raw image (whose scale :func:`~vlm_adapters.images.to_pil`
checks: floats in [0, 1], never normalised values).

**A patch matrix disguised as an image.** A float array that is not the backbone's own form, and
whose last axis is the width of a flattened patch row (``C*T*p*p``: ``T`` 1 or 2 frames, patch
side ``p`` 10..32, or the backbone's own width), is a patch matrix when it cannot be an image:
values outside [0, 1], or rows holding two identical frames (a still image's temporal patches).
A 2-D float array is never an image for a backbone that takes images.

**Values.** Processed pixels must be finite and lie where the processor's normalisation puts
pixels of [0, 1], with 0.05 of slack in pixel units:
``[min_c (-0.05 - mean_c) / std_c, max_c (1.05 - mean_c) / std_c]``. 0-255 values, unnormalised
or twice-normalised pixels fall outside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ImageShapeError, PatchMatrixAsImageError, PixelValueError
from ..images import to_pil
from .sample import PixelForm, PixelValue, PixelView

RAW_KEYS = ("image", "images")
RANGE_SLACK = 0.05
"""Pixel units ([0, 1] scale) by which processed values may overshoot the normalised range
(other resamplers ring a little; 0-255 values are off by hundreds)."""
PATCH_SIDES = range(10, 33)
"""Patch sides of ViT-style towers, for recognising the width of a flattened patch row."""


def _is_integer_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "uib"
    if isinstance(value, torch.Tensor):
        return not value.dtype.is_floating_point and not value.dtype.is_complex
    return False


def certainly_raw(value: Any) -> bool:
    """PIL images and integer arrays (or non-empty lists of them): never a processor's output."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(certainly_raw(v) for v in value)
    return isinstance(value, Image.Image) or _is_integer_array(value)


def float_tensor(value: Any, where: str) -> torch.Tensor:
    """A float tensor from a float tensor or numpy array; anything else is not pixel values."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
        return value
    found = type(value).__name__ + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else "")
    raise ImageShapeError(
        f"{where} is not pixel values",
        found=found,
        expected="processed pixels (a float tensor or numpy array, or a list of them per image) or raw images",
        fix="pass the processor's pixel_values unchanged, or the decoded images under 'image'",
    )


def is_patch_matrix_layout(x: torch.Tensor, form: PixelForm) -> bool:
    """A matrix ``[N, D]`` or ``[1, N, D]``, for backbones whose processed pixels are patch matrices."""
    return form.patch_width is not None and (x.ndim == 2 or (x.ndim == 3 and x.shape[0] == 1))


def _patch_row_width(width: int, form: PixelForm) -> bool:
    if width == form.patch_width:
        return True
    return any(width == form.channels * t * p * p for t in (1, 2) for p in PATCH_SIDES)


def _two_identical_frames(x: torch.Tensor, channels: int) -> bool:
    """Rows ``[C, 2, p*p]`` whose two frames are equal (and not constant): a still image's patches."""
    width = x.shape[-1]
    if width % (2 * channels):
        return False
    rows = x.reshape(-1, channels, 2, width // (2 * channels))
    return bool((rows[:, :, 0] == rows[:, :, 1]).all()) and bool((rows != rows.reshape(-1)[0]).any())


def check_not_patch_matrix(x: torch.Tensor, form: PixelForm, where: str) -> None:
    """Refuse a flattened patch matrix handed over as (or reshaped into) an image."""
    if not x.is_floating_point() or x.ndim < 2 or x.numel() == 0 or is_patch_matrix_layout(x, form):
        return
    if x.ndim >= 3:
        if tuple(x.shape[-2:]) in form.input_sizes or not _patch_row_width(int(x.shape[-1]), form):
            return
        image_like = bool((x >= 0).all() and (x <= 1).all()) and not _two_identical_frames(x, form.channels)
        if image_like:
            return
    rows, width = int(x.shape[-2]), int(x.shape[-1])
    if form.patch_width is not None:
        expected = (
            f"the processor's patch matrix [N, {form.patch_width}] as it returned it (here the last two axes, "
            f"[{rows}, {width}]) with its grid, or a raw image"
        )
    else:
        expected = (
            f"processed images [N, {form.channels}, H, W] from this checkpoint's processor, or a raw image "
            f"(this is a patch matrix [{rows}, {width}])"
        )
    raise PatchMatrixAsImageError(
        f"{where} is a flattened patch matrix, not an image" + (" (reshaped into one)" if x.ndim >= 3 else ""),
        found=f"shape {list(x.shape)}: its last axis is the width of a flattened patch row (C*T*p*p) and its "
        "rows are patches, not pixel rows",
        expected=expected,
        fix="do not reshape or 'recover' pixel_values; pass the processor output unchanged, or the decoded "
        "image itself",
    )


def check_value_range(x: torch.Tensor, view: PixelView, where: str) -> None:
    """Processed pixels are finite and within the normalised range of pixels in [0, 1]."""
    if x.numel() == 0:
        raise ImageShapeError(
            f"{where} is empty", found=f"shape {list(x.shape)}", expected="pixels", fix="check the data pipeline"
        )
    if not bool(torch.isfinite(x).all()):
        raise PixelValueError(
            f"{where} has NaN or infinite values",
            found="non-finite pixels",
            expected="finite values",
            fix="check the decoding and augmentation of this image",
        )
    pairs = list(zip(view.mean, view.std, strict=True))
    lo = min((-RANGE_SLACK - m) / s for m, s in pairs)
    hi = max((1 + RANGE_SLACK - m) / s for m, s in pairs)
    found_lo, found_hi = float(x.min()), float(x.max())
    if found_lo < lo or found_hi > hi:
        raise PixelValueError(
            f"{where} is not normalised the way this checkpoint's processor normalises",
            found=f"values in [{found_lo:.3g}, {found_hi:.3g}]",
            expected=f"values in [{lo:.3g}, {hi:.3g}] ((x - image_mean) / image_std for pixels x in [0, 1])",
            fix="pass the processor's pixel_values unchanged, or the raw image under 'image' (not 0-255 values)",
        )


def split_images(value: Any) -> list[Any]:
    """One raw image, a list of them, or a stack ``[N, ...]`` (leading axes of 1 dropped) as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        while value.ndim > 4 and value.shape[0] == 1:
            value = value[0]
        if value.ndim == 4:
            return list(value)
    return [value]


def raw_image(item: Any, form: PixelForm, where: str) -> Image.Image:
    """One raw image as RGB PIL, after refusing a disguised patch matrix (and, through ``to_pil``,
    normalised values and ambiguous scales)."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if item.ndim == 4 and item.shape[0] == 1:
            item = item[0]
        if not _is_integer_array(item):
            check_not_patch_matrix(float_tensor(item, where), form, where)
    return to_pil(item, where)


def _processed(value: Any, key: str, form: PixelForm) -> PixelValue | None:
    """The field as processed pixels, checked; ``None`` when it holds raw images by the rule."""
    listed = isinstance(value, (list, tuple))
    items = list(value) if listed else [value]
    if not items:
        return None
    parts = [float_tensor(item, f"{key}[{i}]" if listed else key) for i, item in enumerate(items)]
    for i, part in enumerate(parts):
        check_not_patch_matrix(part, form, f"{key}[{i}]" if listed else key)
    if form.patch_width is not None and not all(is_patch_matrix_layout(p, form) for p in parts):
        return None  # float images in [0, 1], for a backbone whose processed form is a matrix
    for i, part in enumerate(parts):
        check_value_range(part, form.views[key], f"{key}[{i}]" if listed else key)
    return PixelValue(parts, listed)


def read_pixels(sample: Mapping[str, Any], form: PixelForm) -> tuple[list[Image.Image] | None, dict[str, PixelValue]]:
    """``(raw images or None, processed pixel fields)`` of a sample."""
    raw_sources = {k: sample[k] for k in RAW_KEYS if sample.get(k) is not None}
    processed: dict[str, PixelValue] = {}
    for key in form.views:
        value = sample.get(key)
        if value is None:
            continue
        found = None if certainly_raw(value) else _processed(value, key, form)
        if found is None:
            raw_sources[key] = value
        else:
            processed[key] = found
    if len(raw_sources) > 1:
        raise ImageShapeError(
            "the sample has raw images under several keys",
            found=sorted(raw_sources),
            expected="raw images under one key",
            fix="keep the raw images under 'image' (or 'images') only",
        )
    if not raw_sources:
        return None, processed
    ((key, value),) = raw_sources.items()
    if isinstance(value, (str, bytes)) or not isinstance(value, (Image.Image, np.ndarray, torch.Tensor, Sequence)):
        raise ImageShapeError(
            f"{key} is not an image",
            found=type(value).__name__,
            expected="a PIL image, a numpy HxWxC array, a torch CxHxW tensor, or a list of them",
            fix="decode the image (e.g. PIL.Image.open(path)) before putting it in the sample",
        )
    images = [raw_image(item, form, f"{key}[{i}]") for i, item in enumerate(split_images(value))]
    return (images or None), processed
