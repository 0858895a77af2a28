"""Maps between views' token grids and the original image's pixels.

Every view is an axis-aligned affine map between its grid and a rectangle of the original image
(:attr:`View.span`), so resampling is separable: one ``[out, cells]`` weight matrix per axis and
two matrix products. That is exact for bilinear sampling (the same sample points as
``F.interpolate(..., align_corners=False)`` and ``roi_align(aligned=True)``, fractional padding
included) and needs no memory beyond the output, whatever the image size.

Fusing views: each pixel of the original image takes the mean of the views whose box contains
it (a base view and a high-resolution view of the whole image; a tile and the thumbnail
share their pixels); pixels no view shows are 0 and :func:`coverage` marks them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import ImageShapeError
from .geometry import ImageGeometry, Interpolation, Size, View, ViewError

_CUBIC_A = -0.75  # the cubic-convolution constant PyTorch's bicubic uses


def _centres(count: int, extent: float, dtype: torch.dtype) -> torch.Tensor:
    """Centres of ``count`` equal samples over ``[0, extent)``."""
    return (torch.arange(count, dtype=dtype) + 0.5) * (extent / count)


def _weights(coords: torch.Tensor, cells: int, mode: Interpolation) -> torch.Tensor:
    """``[len(coords), cells]`` interpolation weights at continuous cell coordinates (cell i's
    centre is at i), borders replicated."""
    n = coords.numel()
    out = torch.zeros(n, cells, dtype=coords.dtype)
    rows = torch.arange(n)
    if mode == "nearest":
        out[rows, coords.add(0.5).floor().clamp(0, cells - 1).long()] = 1.0
        return out
    if mode == "bilinear":
        x = coords.clamp(0, cells - 1)
        i0 = x.floor().clamp(max=max(cells - 2, 0)).long()
        frac = x - i0
        out[rows, i0] += 1 - frac
        out[rows, (i0 + 1).clamp(max=cells - 1)] += frac
        return out
    base = coords.floor()
    t = coords - base
    a = _CUBIC_A
    ws = (
        ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
        ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
    )
    for k, w in enumerate(ws):
        out.index_put_((rows, (base.long() + k - 1).clamp(0, cells - 1)), w, accumulate=True)
    return out


def _output_size(geometry: ImageGeometry, size: Size | None) -> Size:
    if size is None:
        return geometry.original_size
    h, w = size
    if h <= 0 or w <= 0:
        raise ImageShapeError(
            "output size must be positive", found=size, expected="(height, width) > 0", fix="pass a positive size"
        )
    return int(h), int(w)


def _check_grid(maps: torch.Tensor, view: View, index: int) -> None:
    rows, cols = view.token_grid
    if maps.ndim < 2 or tuple(maps.shape[-2:]) != (rows, cols):
        raise ImageShapeError(
            f"map is not on the token grid of view {index} ({view.name!r})",
            found=tuple(maps.shape),
            expected=f"[..., {rows}, {cols}]",
            fix="reshape the image-token axis with the adapter's tokens_to_views (or tokens_to_grid) first",
        )


def _inside(centres: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return (centres >= lo) & (centres < hi)


def view_to_image(
    geometry: ImageGeometry, maps: torch.Tensor, index: int, mode: Interpolation = "bilinear", size: Size | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """View ``index``'s ``[..., rows, cols]`` on the original image ``[..., H, W]`` (0 outside its
    box), and the ``[H, W]`` boolean mask of the pixels its box shows."""
    view = geometry.views[index]
    _check_grid(maps, view, index)
    oh, ow = _output_size(geometry, size)
    h, w = geometry.original_size
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    rows, cols = view.token_grid
    span = view.span
    cy, cx = _centres(oh, h, dtype), _centres(ow, w, dtype)
    wy = _weights((cy - span.top) / span.height * rows - 0.5, rows, mode).to(maps.device)
    wx = _weights((cx - span.left) / span.width * cols - 0.5, cols, mode).to(maps.device)
    lead = maps.shape[:-2]
    x = maps.reshape(-1, rows, cols).to(dtype)
    out = torch.matmul(torch.matmul(wy, x), wx.T)
    shown = _inside(cy, view.box.top, view.box.bottom)[:, None] & _inside(cx, view.box.left, view.box.right)[None]
    shown = shown.to(maps.device)
    if not bool(shown.all()):
        out = out * shown
    return out.reshape(*lead, oh, ow).to(maps.dtype), shown


def coverage(geometry: ImageGeometry, size: Size | None = None) -> torch.Tensor:
    """``[H, W]`` number of views whose box shows each pixel."""
    oh, ow = _output_size(geometry, size)
    h, w = geometry.original_size
    cy, cx = _centres(oh, h, torch.float64), _centres(ow, w, torch.float64)
    count = torch.zeros(oh, ow, dtype=torch.int32)
    for v in geometry.views:
        count += (_inside(cy, v.box.top, v.box.bottom)[:, None] & _inside(cx, v.box.left, v.box.right)[None]).int()
    return count


def fuse_views(
    geometry: ImageGeometry,
    maps: Sequence[torch.Tensor],
    mode: Interpolation = "bilinear",
    size: Size | None = None,
) -> torch.Tensor:
    """One map on the original image from one map per view: the mean of the views showing each pixel."""
    if len(maps) != len(geometry.views):
        raise ViewError(
            "one map per view is needed to fuse an image's views",
            found=f"{len(maps)} map(s)",
            expected=f"{len(geometry.views)} ({[v.name for v in geometry.views]})",
            fix="pass the per-view maps in view order (e.g. FrozenOutput.view_attention[image])",
        )
    if len(maps) == 1:
        return view_to_image(geometry, maps[0], 0, mode=mode, size=size)[0]
    total: torch.Tensor | None = None
    count: torch.Tensor | None = None
    for i, m in enumerate(maps):
        values, shown = view_to_image(geometry, m, i, mode=mode, size=size)
        total = values if total is None else total + values
        count = shown.int() if count is None else count + shown.int()
    assert total is not None and count is not None
    return (total / count.clamp(min=1).to(total.dtype)).to(maps[0].dtype)


def image_to_view(geometry: ImageGeometry, mask: torch.Tensor, index: int) -> torch.Tensor:
    """A ``[..., H, W]`` map on the original image onto view ``index``'s grid ``[..., rows, cols]``.

    The mask is sampled (bilinear) at the centre of every input pixel of the view, input pixels
    outside the view's content (padding, or beyond its box) count as 0, and each token takes the
    mean over its input pixels: for a binary mask, the fraction of the token it covers.
    """
    h, w = geometry.original_size
    if mask.ndim < 2 or tuple(mask.shape[-2:]) != (h, w):
        raise ImageShapeError(
            "mask does not have the original image size",
            found=tuple(mask.shape),
            expected=f"[..., {h}, {w}]",
            fix="pass a mask of the image as it was handed to prepare()/normalize()",
        )
    view = geometry.views[index]
    ih, iw = view.input_size
    dtype = torch.float64 if mask.dtype == torch.float64 else torch.float32
    span = view.span
    y = span.top + _centres(ih, span.height, dtype)
    x = span.left + _centres(iw, span.width, dtype)
    wy = _weights(y - 0.5, h, "bilinear") * _inside(y, view.box.top, view.box.bottom)[:, None]
    wx = _weights(x - 0.5, w, "bilinear") * _inside(x, view.box.left, view.box.right)[:, None]
    lead = mask.shape[:-2]
    flat = mask.reshape(-1, h, w).to(dtype)
    on_input = torch.matmul(torch.matmul(wy.to(mask.device), flat), wx.T.to(mask.device))
    pooled = torch.nn.functional.adaptive_avg_pool2d(on_input, view.token_grid)
    return pooled.reshape(*lead, *view.token_grid)
