"""What an image's anyres tiles say about the image they came from.

Three things no declared size can fake: the tile count (the base view plus the canvas tiles), the
canvas padding (the processor pads with exact zeros, so every pixel the geometry calls padding
must hold the normalised zero), and the arrangement of the tiles (the canvas content shrunk to one
tile is the base view, the whole image stretched to a tile, only when the tiles are laid out as
the image was cut). That is how a ``(width, height)`` swap shows.
"""

from __future__ import annotations

import torch

from vlm_adapters.geometry import Size

from .layout import best_canvas, content_on_canvas
from .spec import AnyresSpec

TOLERANCE = 1e-3
"""Normalised units a padding pixel may differ from the padding value by (float error only)."""
MOSAIC_TOLERANCE = 0.1
"""Mean absolute difference (normalised units) between the canvas content shrunk to one tile and the
base view above which the tiles are not laid out as the size says: the right arrangement measures
0.004-0.03 (tiny and released tiles), a transposed one 0.18-1.6."""

Band = tuple[slice, slice]


def _zero(spec: AnyresSpec) -> torch.Tensor:
    """The canvas padding (pixel value 0) after the processor's normalisation, ``[3, 1, 1]``."""
    return torch.tensor([-m / s for m, s in zip(spec.image_mean, spec.image_std, strict=True)]).view(-1, 1, 1)


def canvas_of(spec: AnyresSpec, stack: torch.Tensor, canvas: Size) -> torch.Tensor:
    """The high-resolution canvas ``[3, H, W]`` reassembled from an image's tiles (base view first)."""
    t = spec.tile_size
    rows, cols = canvas[0] // t, canvas[1] // t
    tiles = stack[1 : 1 + rows * cols]
    return tiles.reshape(rows, cols, 3, t, t).permute(2, 0, 3, 1, 4).reshape(3, rows * t, cols * t)


def _bands(canvas: Size, top: int, left: int, height: int, width: int) -> list[Band]:
    """The padding bands around the content on the canvas (empty ones left out)."""
    h, w = canvas
    bands = [
        (slice(0, top), slice(0, w)),
        (slice(top + height, h), slice(0, w)),
        (slice(0, h), slice(0, left)),
        (slice(0, h), slice(left + width, w)),
    ]
    return [(r, c) for r, c in bands if r.stop > r.start and c.stop > c.start]


def mosaic_error(content: torch.Tensor, base: torch.Tensor) -> float:
    """How far the canvas content, shrunk to the base view's size, is from the base view."""
    small = torch.nn.functional.interpolate(
        content[None].float(), size=tuple(base.shape[-2:]), mode="bilinear", antialias=True, align_corners=False
    )
    return float((small[0] - base.float()).abs().mean())


def fits(spec: AnyresSpec, size: Size, stack: torch.Tensor) -> bool:
    """Whether ``stack`` (an image's tiles, base view first) can be the processed form of an image of
    ``size``: its tile count, its canvas padding and the arrangement of its tiles."""
    if stack.shape[0] != spec.num_tiles(size):
        return False
    canvas = best_canvas(size, [list(p) for p in spec.grid_pinpoints])
    top, left, nh, nw = content_on_canvas(size, canvas)
    full = canvas_of(spec, stack, canvas)
    zero = _zero(spec)
    for rows, cols in _bands(canvas, top, left, nh, nw):
        if float((full[:, rows, cols].float() - zero).abs().amax()) > TOLERANCE:
            return False
    return mosaic_error(full[:, top : top + nh, left : left + nw], stack[0]) <= MOSAIC_TOLERANCE


def content_extent(image: torch.Tensor, value: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of what is not padding: whole rows / columns of padding are trimmed."""
    padding = ((image.float() - value).abs() <= TOLERANCE).all(dim=0)
    rows = (~padding.all(dim=1)).nonzero().flatten()
    cols = (~padding.all(dim=0)).nonzero().flatten()
    if rows.numel() == 0:
        return 0, 0, 0, 0
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def layouts_seen(spec: AnyresSpec, stack: torch.Tensor) -> list[str]:
    """What the tiles show of an image whose size is unknown: for each canvas with their tile count,
    the content's size and aspect ratio (the original is any size the processor maps there)."""
    out = []
    t = spec.tile_size
    for canvas in dict.fromkeys((int(h), int(w)) for h, w in spec.grid_pinpoints):
        if (canvas[0] // t) * (canvas[1] // t) != stack.shape[0] - 1:
            continue
        top, bottom, left, right = content_extent(canvas_of(spec, stack, canvas), _zero(spec))
        if bottom > top and right > left:
            out.append(
                f"content {bottom - top}x{right - left} on a {canvas[0]}x{canvas[1]} canvas "
                f"(height/width about {(bottom - top) / (right - left):.3f})"
            )
    return out
