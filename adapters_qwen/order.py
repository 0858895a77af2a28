"""The three orders Qwen-VL tensors come in, and how to put each on its spatial grid.

* LLM image tokens: raster order of the merged grid ``[h/m, w/m]`` (the core's ``tokens_to_grid``).
* Processor patch rows (``pixel_values``) and the vision tower's per-patch tensors in Qwen2-VL /
  Qwen3-VL: *merge-window* order: windows of ``m x m`` patches in raster order, raster inside
  each window. A plain reshape to ``[h, w]`` scrambles them.
* Qwen2.5-VL's vision blocks: merge windows regrouped into attention windows. The permutation is
  transformers' own ``get_vision_window_index``; it is undone here, never re-derived.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from transformers.vision_utils import get_vision_window_index

from .grid import Grid


def patch_rows_to_grid(x: torch.Tensor, grid: Grid, merge_size: int, dim: int = 0) -> torch.Tensor:
    """Move the patch-row axis ``dim`` (merge-window order) to the end as ``[..., h, w]``.

    ``t > 1`` gives ``[..., t, h, w]``, like the core's ``tokens_to_grid``.
    """
    t, h, w = grid
    m = merge_size
    x = x.movedim(dim, -1)
    out = rearrange(x, "... (t hb wb mh mw) -> ... t (hb mh) (wb mw)", t=t, hb=h // m, wb=w // m, mh=m, mw=m)
    return out[..., 0, :, :] if t == 1 else out


def grid_to_patch_rows(maps: torch.Tensor, merge_size: int) -> torch.Tensor:
    """Inverse of :func:`patch_rows_to_grid` for ``t == 1``: ``[..., h, w]`` -> ``[..., h*w]``."""
    m = merge_size
    return rearrange(maps, "... (hb mh) (wb mw) -> ... (hb wb mh mw)", mh=m, mw=m)


def undo_window_order(
    x: torch.Tensor,
    grids: Sequence[Grid],
    *,
    merge_size: int,
    window_size: int,
    patch_size: int,
    dim: int = 0,
) -> torch.Tensor:
    """Qwen2.5-VL vision-block order -> processor (merge-window) order along axis ``dim``.

    The tower gathers whole merge units with ``window_index`` (``x_window = x[window_index]``
    per unit), so the inverse gathers with ``argsort(window_index)``.
    """
    grid_thw = torch.tensor([list(g) for g in grids], dtype=torch.long)
    window_index, _ = get_vision_window_index(
        grid_thw, spatial_merge_size=merge_size, window_size=window_size, patch_size=patch_size
    )
    unit = merge_size**2
    x = x.movedim(dim, 0)
    n = x.shape[0]
    units = x.reshape(n // unit, unit, *x.shape[1:])
    units = units[torch.argsort(window_index.to(x.device))]
    return units.reshape(n, *x.shape[1:]).movedim(0, dim)


def split_rows(x: torch.Tensor, grids: Sequence[Grid], dim: int = 0) -> list[torch.Tensor]:
    """Split a concatenated patch axis into one chunk per image."""
    return list(x.split([t * h * w for t, h, w in grids], dim=dim))
