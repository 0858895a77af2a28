"""Tell the forms of ``pixel_values`` apart: patch matrix, raw images, or a patch matrix in disguise.

Qwen-VL processors return flattened patches ``[N, C*T*p*p]``, not images. The classic silent
failure reshapes that matrix into a fake ``[1, 3, N, C*T*p*p]`` "image" and feeds it back through
a resize. A still image's patch rows carry a fingerprint no photo has: every row holds ``T``
identical temporal copies of the same ``p x p`` patch. That fingerprint, or values no raw image
can have (negatives), names the disguise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlm_adapters import DynamicSpec, ImageShapeError, PatchMatrixAsImageError
from vlm_adapters.geometry import Size
from vlm_adapters.images import to_pil

IMAGE_KEYS = ("pixel_values", "images", "image")


@dataclass
class PatchInput:
    """A processor patch matrix; ``rows_per_image`` is known when it came as one array per image."""

    pixel_values: torch.Tensor
    rows_per_image: list[int] | None = None


@dataclass
class RawInput:
    """Decoded images, to go through the stock image processor."""

    images: list[Image.Image]
    sizes: list[Size]


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))


def _has_patch_fingerprint(x: torch.Tensor, spec: DynamicSpec) -> bool:
    """Rows whose ``T`` temporal copies are identical (and not constant): a still image's patches."""
    if x.shape[-1] != spec.patch_dim or x.numel() == 0:
        return False
    if x.is_floating_point() and bool((x < 0).any()):
        return True
    if spec.temporal_patch_size < 2:
        return False
    rows = x.reshape(-1, spec.in_channels, spec.temporal_patch_size, spec.patch_size**2)
    copies_equal = bool((rows == rows[:, :, :1]).all())
    return copies_equal and bool((rows != rows[:, :1, :1, :1]).any())


def _disguise_error(x: torch.Tensor, spec: DynamicSpec) -> PatchMatrixAsImageError:
    rows = int(x.shape[-2]) if x.ndim >= 2 else 1
    return PatchMatrixAsImageError(
        "pixel_values is a flattened patch matrix reshaped into an image",
        found=f"shape {list(x.shape)}: its last axis is {spec.patch_dim} = C*T*p*p "
        f"({spec.in_channels}*{spec.temporal_patch_size}*{spec.patch_size}*{spec.patch_size}) and its rows "
        "are patches, not pixel rows",
        expected=f"the processor's patch matrix [N, {spec.patch_dim}] (here the last two axes, [{rows}, "
        f"{spec.patch_dim}]) together with its image_grid_thw, or a raw image",
        fix="do not reshape or 'recover' pixel_values; pass the processor output (pixel_values, "
        "image_grid_thw) unchanged, or the decoded image itself",
    )


def _from_array(x: torch.Tensor, original: Any, spec: DynamicSpec) -> PatchInput | list[Any]:
    """One tensor/array: a patch matrix, or a list of raw images (still to be validated)."""
    if _has_patch_fingerprint(x, spec) or (x.ndim == 2 and x.shape[-1] == spec.patch_dim and x.is_floating_point()):
        if x.ndim == 2:
            return PatchInput(x)
        if x.ndim == 3 and x.shape[0] == 1:
            return PatchInput(x[0])  # a batch of one patch matrix: the same rows, exactly
        raise _disguise_error(x, spec)
    looks_normalised = x.numel() > 0 and bool((x < 0).any() or (x > 1).any())
    if x.ndim == 2 and x.is_floating_point() and (isinstance(original, torch.Tensor) or looks_normalised):
        raise ImageShapeError(
            "pixel_values looks like a patch matrix of another width (patch size)",
            found=f"shape {list(x.shape)}",
            expected=f"[N, {spec.patch_dim}] (C*T*p*p with p={spec.patch_size}, T={spec.temporal_patch_size})",
            fix="process the images with this checkpoint's own processor",
        )
    while x.ndim > 4 and x.shape[0] == 1:
        x, original = x[0], x[0]
    if x.ndim == 4:
        return [original[i] for i in range(x.shape[0])]
    if x.ndim in (2, 3):
        return [original]
    raise ImageShapeError(
        "pixel_values has an unsupported rank",
        found=f"shape {list(x.shape)}",
        expected=f"a patch matrix [N, {spec.patch_dim}] or raw images ([H, W, C], [C, H, W], [B, C, H, W])",
        fix="pass the processor output unchanged, or the decoded images",
    )


def read_images(sample: Mapping[str, Any], spec: DynamicSpec) -> PatchInput | RawInput | None:
    """What the sample carries as images, classified; ``None`` for a text-only sample."""
    key = next((k for k in IMAGE_KEYS if sample.get(k) is not None), None)
    if key is None:
        return None
    value = sample[key]
    items: list[Any]
    if isinstance(value, Image.Image):
        items = [value]
    elif isinstance(value, (torch.Tensor, np.ndarray)):
        found = _from_array(_tensor(value), value, spec)
        if isinstance(found, PatchInput):
            return found
        items = found
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)
    else:
        raise ImageShapeError(
            f"{key} has an unsupported type",
            found=type(value).__name__,
            expected="a patch matrix, a PIL image, an array/tensor image, or a list of those",
            fix="pass the processor output or the decoded images",
        )
    if not items:
        return None
    arrays = [_tensor(v) for v in items if isinstance(v, (torch.Tensor, np.ndarray))]
    patchy = [a.ndim == 2 and a.shape[-1] == spec.patch_dim and a.is_floating_point() for a in arrays]
    if arrays and len(arrays) == len(items) and all(patchy):
        return PatchInput(torch.cat(arrays, dim=0), rows_per_image=[a.shape[0] for a in arrays])
    images = [raw_image(item, spec, f"{key}[{i}]") for i, item in enumerate(items)]
    return RawInput(images, [(im.height, im.width) for im in images])


def raw_image(item: Any, spec: DynamicSpec, where: str) -> Image.Image:
    """One raw image as PIL, after refusing disguised patch rows and ambiguous pixel scales."""
    if isinstance(item, (torch.Tensor, np.ndarray)):
        t = _tensor(item)
        if _has_patch_fingerprint(t, spec):
            raise _disguise_error(t, spec)
        if t.ndim == 4 and t.shape[0] == 1:
            item = item[0]
    return to_pil(item, where)
