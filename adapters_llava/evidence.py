"""What processed pixels say about the image they came from: tile counts and where the padding is.

Padding is written by the processor with one known value (0 on NeXT / OneVision canvases, the
mean colour on LLaVA-1.5 squares), so "every pixel the geometry calls padding holds the padding
value" is a check no real image content can fake. It is how a ``(width, height)`` swap shows:
the swapped size puts the padding bands (and on anyres the tiles) elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vlm_adapters import FixedSpec
from vlm_adapters.geometry import Size
from vlm_adapters.spec import SpecBase

from .layout import best_canvas, content_on_canvas
from .spec import AnyresSpec

TOLERANCE = 1e-3
"""Normalised units a padding pixel may differ from the padding value by (float error only)."""
MOSAIC_TOLERANCE = 0.1
"""Mean absolute difference (normalised units) between the canvas content shrunk to one tile and the
base view above which the tiles are not laid out as the size says (resampling differences stay near
0.01; a transposed arrangement of a real image is far above)."""


@dataclass(frozen=True)
class Region:
    """A padding band on an image of the stack: ``tile`` (or a canvas when ``tile`` is None)."""

    rows: tuple[int, int]
    cols: tuple[int, int]


def _normalised(value: tuple[float, ...], mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor([(v - m) / s for v, m, s in zip(value, mean, std, strict=True)]).view(-1, 1, 1)


def canvas_of(spec: AnyresSpec, stack: torch.Tensor, canvas: Size) -> torch.Tensor:
    """The high-resolution canvas ``[3, H, W]`` reassembled from an image's tiles (base view first)."""
    t = spec.tile_size
    rows, cols = canvas[0] // t, canvas[1] // t
    tiles = stack[1 : 1 + rows * cols]
    return tiles.reshape(rows, cols, 3, t, t).permute(2, 0, 3, 1, 4).reshape(3, rows * t, cols * t)


def _bands(height: int, width: int, top: int, left: int, bottom: int, right: int, margin: int) -> list[Region]:
    """The padding bands around a content box, shrunk by ``margin`` pixels next to the content."""
    bands = []
    if top - margin > 0:
        bands.append(Region((0, top - margin), (0, width)))
    if bottom + margin < height:
        bands.append(Region((bottom + margin, height), (0, width)))
    if left - margin > 0:
        bands.append(Region((0, height), (0, left - margin)))
    if right + margin < width:
        bands.append(Region((0, height), (right + margin, width)))
    return bands


def _all_padding(image: torch.Tensor, bands: list[Region], value: torch.Tensor, tolerance: float) -> bool:
    for band in bands:
        part = image[:, band.rows[0] : band.rows[1], band.cols[0] : band.cols[1]].float()
        if (part - value).abs().amax() > tolerance:
            return False
    return True


def fits(spec: SpecBase, size: Size, stack: torch.Tensor) -> bool | None:
    """Whether ``stack`` can be the processed form of an image of ``size``; ``None`` when the pixels
    cannot tell (no padding to check)."""
    if isinstance(spec, AnyresSpec):
        if stack.shape[0] != spec.num_tiles(size):
            return False
        canvas = best_canvas(size, [list(p) for p in spec.grid_pinpoints])
        top, left, nh, nw = content_on_canvas(size, canvas)
        full = canvas_of(spec, stack, canvas)
        bands = _bands(*canvas, top, left, top + nh, left + nw, margin=0)
        zero = _normalised((0.0, 0.0, 0.0), spec.image_mean, spec.image_std)
        if bands and not _all_padding(full, bands, zero, TOLERANCE):
            return False
        return mosaic_error(full[:, top : top + nh, left : left + nw], stack[0]) <= MOSAIC_TOLERANCE
    if isinstance(spec, FixedSpec) and spec.background_color is not None and spec.resize_mode != "stretch":
        (view,) = spec.geometry(size).views
        p, (ih, iw) = view.padding, view.input_size
        scale = max(view.content_height / size[0], view.content_width / size[1])
        margin = math.ceil(2 * scale) + 1  # padding before an upscale blurs the content edge
        box = (math.ceil(p.top), math.ceil(p.left), ih - math.ceil(p.bottom), iw - math.ceil(p.right))
        bands = _bands(ih, iw, *box, margin=margin)
        if not bands:
            return None
        colour = tuple(c / 255 for c in spec.background_color)
        value = _normalised(colour, spec.image_mean, spec.image_std)
        tolerance = 2.5 / 255 / min(spec.image_std)  # the padding colour after a bicubic resize
        return _all_padding(stack[0], bands, value, tolerance)
    return None


def mosaic_error(content: torch.Tensor, base: torch.Tensor) -> float:
    """How far the canvas content, shrunk to the base view's size, is from the base view (the whole
    image stretched to one tile): small only when the tiles are arranged as the image was cut."""
    small = torch.nn.functional.interpolate(
        content[None].float(), size=tuple(base.shape[-2:]), mode="bilinear", antialias=True, align_corners=False
    )
    return float((small[0] - base.float()).abs().mean())


def content_extent(image: torch.Tensor, value: torch.Tensor, tolerance: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of what is not padding: whole rows / columns of padding are trimmed."""
    padding = ((image.float() - value).abs() <= tolerance).all(dim=0)
    rows = (~padding.all(dim=1)).nonzero().flatten()
    cols = (~padding.all(dim=0)).nonzero().flatten()
    if rows.numel() == 0:
        return 0, 0, 0, 0
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def layouts_seen(spec: SpecBase, stack: torch.Tensor) -> list[str]:
    """Human-readable candidates for the original size of ``stack``: the content size and canvas each
    possible layout shows (the original is any size of that aspect ratio the processor maps there)."""
    out = []
    if isinstance(spec, AnyresSpec):
        t = spec.tile_size
        zero = _normalised((0.0, 0.0, 0.0), spec.image_mean, spec.image_std)
        for canvas in dict.fromkeys((int(h), int(w)) for h, w in spec.grid_pinpoints):
            if (canvas[0] // t) * (canvas[1] // t) != stack.shape[0] - 1:
                continue
            top, bottom, left, right = content_extent(canvas_of(spec, stack, canvas), zero, TOLERANCE)
            if bottom > top and right > left:
                out.append(
                    f"content {bottom - top}x{right - left} on a {canvas[0]}x{canvas[1]} canvas "
                    f"(height/width about {(bottom - top) / (right - left):.3f})"
                )
    elif isinstance(spec, FixedSpec) and spec.background_color is not None:
        value = _normalised(tuple(c / 255 for c in spec.background_color), spec.image_mean, spec.image_std)
        top, bottom, left, right = content_extent(stack[0], value, 2.5 / 255 / min(spec.image_std))
        if bottom > top and right > left:
            out.append(
                f"content {bottom - top}x{right - left} of {spec.image_size[0]}x{spec.image_size[1]} "
                f"(height/width about {(bottom - top) / (right - left):.3f})"
            )
    return out
