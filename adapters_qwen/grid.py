"""``image_grid_thw`` in every form datasets hand over, checked against what the processor can make.

The stock model trusts the grid completely: a grid with the right product but wrong factors runs
without error and gives garbage. So a grid is accepted only when it is a grid the stock image
processor could have produced, fits the patch rows, and agrees with any image size at hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vlm_adapters import DynamicSpec, GridError
from vlm_adapters.errors import ImageSizeError

Grid = tuple[int, int, int]


class GridSizeError(GridError, ImageSizeError):
    """A grid (given, or implied by the patch rows) contradicts a declared image size. Either may be
    the wrong one, so it is both a grid error and, like every backbone's size contradiction, an
    :class:`~vlm_adapters.errors.ImageSizeError`."""


KEEP_GRID_FIX = (
    "keep image_grid_thw in your collate (it is part of the processor output), or pass the "
    "original image size as image_sizes=[(height, width)]"
)


def _plain(value: Any) -> Any:
    """Nested lists of Python numbers from tensors, arrays, tuples and lists of those."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_grid(value: Any) -> list[Grid] | None:
    """``image_grid_thw`` as a list of ``(t, h, w)``; ``None`` stays ``None``.

    Accepts a ``[n, 3]`` tensor / array / nested list, a 1-D ``[3]`` for one image, and a
    ``[1, n, 3]`` batch of one sample.
    """
    if value is None:
        return None
    raw = _plain(value)
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise GridError(
            "image_grid_thw is not a numeric array",
            found=repr(value)[:80],
            expected="[[t, h, w], ...] per image",
            fix="pass the processor's image_grid_thw unchanged",
        ) from None
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise GridError(
            "image_grid_thw has the wrong shape",
            found=f"shape {list(np.shape(raw))}",
            expected="[num_images, 3] (or [3] for one image)",
            fix="pass the processor's image_grid_thw unchanged",
        )
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr <= 0):
        raise GridError(
            "image_grid_thw entries must be positive integers",
            found=arr.tolist(),
            expected="[[t, h, w], ...] of positive ints",
            fix="pass the processor's image_grid_thw unchanged",
        )
    return [(int(t), int(h), int(w)) for t, h, w in arr]


def area_bounds(spec: DynamicSpec) -> tuple[int, int]:
    """Lowest and highest pixel area the stock resize can produce (a safe superset).

    The round path lands in ``[min_pixels, max_pixels]``; the max path floors both sides, which
    keeps at least a quarter of ``max_pixels``; only the one-factor-wide clamp goes above max.
    """
    return min(spec.min_pixels, spec.max_pixels // 4), spec.max_pixels


def unreachable_reason(grid: Grid, spec: DynamicSpec) -> str | None:
    """Why no image gives this grid under the spec's processor settings (``None``: it may)."""
    t, h, w = grid
    m, p = spec.merge_size, spec.patch_size
    if t != 1:
        return f"t={t}: still images always have t=1 (videos use video_grid_thw)"
    if h % m or w % m:
        return f"h={h}, w={w}: both must be multiples of the merge size {m}"
    lo, hi = area_bounds(spec)
    area = h * p * w * p
    if area < lo:
        return f"{h * p}x{w * p} pixels is below min_pixels {spec.min_pixels}"
    if area > hi and min(h, w) * p != spec.factor:
        return f"{h * p}x{w * p} pixels is above max_pixels {spec.max_pixels}"
    return None


def check_reachable(grids: Sequence[Grid], spec: DynamicSpec) -> None:
    for i, grid in enumerate(grids):
        reason = unreachable_reason(grid, spec)
        if reason is not None:
            raise GridError(
                f"image {i}: the stock image processor never produces this grid",
                found=list(grid),
                expected=f"[1, h, w] with even h, w and area within min/max pixels ({reason})",
                fix="pass the grid the processor returned with these pixel values (" + KEEP_GRID_FIX + ")",
            )


def candidate_grids(rows: int, spec: DynamicSpec) -> list[Grid]:
    """Every grid of ``rows`` patches the stock processor could have produced, widest last."""
    m = spec.merge_size
    out: list[Grid] = []
    for h in range(m, rows + 1, m):
        if rows % h == 0 and unreachable_reason((1, h, rows // h), spec) is None:
            out.append((1, h, rows // h))
    return out


def num_rows(grid: Grid) -> int:
    t, h, w = grid
    return t * h * w


def num_tokens(grid: Grid, spec: DynamicSpec) -> int:
    return num_rows(grid) // spec.merge_size**2


def describe_mismatch(given: Grid, expected: Grid) -> str:
    if given[1:] == expected[:0:-1]:
        return "the grid is transposed (h and w swapped)"
    if num_rows(given) == num_rows(expected):
        return "same number of patches, different factors (the stock model would run and give garbage)"
    return "a different number of patches"
