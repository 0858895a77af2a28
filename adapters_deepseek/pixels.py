"""Processed pixel tensors: bring the layouts datasets use to ``[N, 3, H, W]`` and refuse the rest.

Accepted, because they are the same numbers in another wrapping: ``[3, H, W]`` (one image),
``[N, 3, H, W]`` (the processor's output), ``[B, n, 3, H, W]`` (DeepSeek-VL's research code
and F-LMM collates), lists of those, numpy arrays, and any float dtype (cast to float32,
the processor's dtype). Refused, with the fix: a flattened patch matrix (Qwen-style
``[N, D]``, or one reshaped into a fake ``[.., 3, N, D]`` image), channels-last, the wrong
resolution (SigLIP and SAM have fixed position embeddings), non-finite values, and values the
processor's normalisation cannot produce (raw 0-255 pixels passed as processed ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vlm_adapters import ImageShapeError, PatchMatrixAsImageError, VisionInputError
from vlm_adapters.geometry import Size

RANGE_SLACK = 0.05
"""Normalised units of tolerance on the value range (the processor clamps to uint8 first, so its
own output never leaves the range; slack admits other resamplers, not raw 0-255 pixels)."""


def _looks_like_patch_row(width: int, channels: int) -> bool:
    """True if ``width`` is ``channels * t * p * p`` for a plausible ViT patch (the width of one
    row of a flattened patch matrix, e.g. 1176 = 3 * 2 * 14 * 14)."""
    for t in (1, 2):
        side2, rest = divmod(width, channels * t)
        if rest == 0 and side2 > 0 and 10 <= round(side2**0.5) <= 32 and round(side2**0.5) ** 2 == side2:
            return True
    return False


def _to_tensor(value: Any, key: str) -> torch.Tensor:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)) and value:
        parts = [_to_tensor(v, key) for v in value]
        if any(p.ndim == 2 for p in parts):
            raise PatchMatrixAsImageError(
                f"{key} is a list of flattened patch matrices, not images",
                found=[tuple(p.shape) for p in parts],
                expected="one [3, H, W] tensor per image",
                fix="DeepSeek-VL takes whole images; pass the raw images or this backbone's processor output",
            )
        parts = [p.unsqueeze(0) if p.ndim == 3 else p for p in parts]
        if len({tuple(p.shape[1:]) for p in parts}) != 1 or any(p.ndim != 4 for p in parts):
            raise ImageShapeError(
                f"{key} is a list of differently shaped tensors",
                found=[tuple(p.shape) for p in parts],
                expected="one [3, H, W] (or [1, 3, H, W]) tensor per image, all the same size",
                fix="process every image with this backbone's processor",
            )
        return torch.cat(parts)
    if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
        return value
    found = type(value).__name__ + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else "")
    raise VisionInputError(
        f"{key} is not a float pixel tensor",
        found=found,
        expected="processed pixel values: a float tensor [3, H, W], [N, 3, H, W] or [B, n, 3, H, W]",
        fix="pass the image processor's output, or the raw image under 'image'",
    )


def processed_pixels(
    value: Any,
    key: str,
    *,
    size: Size,
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    other_views: dict[Size, str] | None = None,
) -> torch.Tensor:
    """``value`` as ``[N, channels, *size]`` float32, or a :class:`VisionInputError` saying why not.

    ``other_views`` names the keys where tensors of other known sizes belong (the hybrid's
    1024 view passed as the 384 one, and the reverse) so the error can say where to put them.
    """
    x = _to_tensor(value, key)
    shape = tuple(x.shape)
    h, w = size
    expected = f"[N, {channels}, {h}, {w}] (also [{channels}, {h}, {w}] or [B, n, {channels}, {h}, {w}])"
    if x.ndim == 2 or (
        x.ndim >= 3 and shape[-3] == channels and _looks_like_patch_row(shape[-1], channels) and shape[-2:] != size
    ):
        raise PatchMatrixAsImageError(
            f"{key} is a flattened patch matrix, not an image",
            found=shape,
            expected=expected,
            fix="DeepSeek-VL takes whole images; pass the raw image (or this backbone's processor output), "
            "never a patch matrix reshaped into a fake image",
        )
    if x.ndim == 3:
        x = x.unsqueeze(0)
    elif x.ndim == 5:
        x = x.reshape(-1, *shape[2:])
    if x.ndim != 4 or x.shape[0] == 0:
        raise ImageShapeError(
            f"{key} has an unsupported rank",
            found=shape,
            expected=expected,
            fix="pass one tensor per sample holding its images",
        )
    if x.shape[1] != channels:
        channels_last = x.shape[-1] == channels
        raise ImageShapeError(
            f"{key} does not have {channels} channels first",
            found=shape,
            expected=expected,
            fix="permute channels-last pixels with .permute(0, 3, 1, 2)"
            if channels_last
            else "pass the image processor's output unchanged",
        )
    if tuple(x.shape[-2:]) != size:
        found_size = (int(x.shape[-2]), int(x.shape[-1]))
        elsewhere = (other_views or {}).get(found_size)
        fix = (
            f"this is the {found_size[0]}x{found_size[1]} view; pass it as {elsewhere!r}"
            if elsewhere
            else "these pixels were processed for another resolution or backbone; re-process the raw image "
            "with this checkpoint's processor (adapter.normalize({'image': img, ...}) does it)"
        )
        raise ImageShapeError(f"{key} has the wrong resolution", found=shape, expected=expected, fix=fix)
    x = x.to(torch.float32)
    if not torch.isfinite(x).all():
        raise VisionInputError(
            f"{key} has NaN or infinite values",
            found="non-finite pixels",
            expected="finite values",
            fix="check the decoding and augmentation of this image",
        )
    lo = (0.0 - torch.tensor(mean)) / torch.tensor(std)
    hi = (1.0 - torch.tensor(mean)) / torch.tensor(std)
    found_lo, found_hi = x.amin(dim=(0, 2, 3)), x.amax(dim=(0, 2, 3))
    if (found_lo < lo - RANGE_SLACK).any() or (found_hi > hi + RANGE_SLACK).any():
        raise VisionInputError(
            f"{key} is not normalised the way this processor normalises",
            found=f"per-channel range {found_lo.tolist()} .. {found_hi.tolist()}",
            expected=f"within {lo.tolist()} .. {hi.tolist()} (pixels in [0, 1] after mean/std)",
            fix="pass the processor's pixel_values, or the raw image under 'image' (not 0-255 values)",
        )
    return x.contiguous()
