"""Test-only check that processed tiles show the boxes a geometry says (no model, no adapter code).

A *coordinate image* stores each pixel's own position: red = (x + 0.5) / W, green =
(y + 0.5) / H. Any resize or crop keeps that ramp linear (up to the clamp at the image border),
so every processed pixel says where in the original image it came from; a view whose box is
wrong by a fraction of a tile fails at once.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vlm_adapters.geometry import ImageGeometry


def coordinate_image(height: int, width: int) -> Image.Image:
    y = (np.arange(height)[:, None] + 0.5) / height * np.ones((1, width))
    x = (np.arange(width)[None, :] + 0.5) / width * np.ones((height, 1))
    rgb = np.stack([x, y, np.full_like(x, 0.5)], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def assert_views_show_their_boxes(
    geometry: ImageGeometry,
    pixels: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    stride: int = 7,
) -> None:
    """``pixels[v]`` (``[views, 3, h, w]``, normalised) holds the coordinates of view ``v``'s box.

    The tolerance is two uint8 levels plus a bit over half an original pixel (resampling next to
    the image border, where the ramp is clamped, blurs by up to that much).
    """
    h, w = geometry.original_size
    assert pixels.shape[0] == len(geometry.views), (pixels.shape, [v.name for v in geometry.views])
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    for view, tile in zip(geometry.views, pixels.float(), strict=True):
        raw = tile * s + m  # back to [0, 1]
        ih, iw = view.input_size
        assert tuple(tile.shape[-2:]) == (ih, iw), (view.name, tuple(tile.shape))
        rows = torch.arange(0, ih, stride)
        cols = torch.arange(0, iw, stride)
        box = view.box
        y = box.top + (rows.double() + 0.5) * box.height / ih
        x = box.left + (cols.double() + 0.5) * box.width / iw
        want_g = (y.clamp(0.5, h - 0.5) / h)[:, None].expand(len(rows), len(cols))
        want_r = (x.clamp(0.5, w - 0.5) / w)[None, :].expand(len(rows), len(cols))
        got_r = raw[0][rows][:, cols].double()
        got_g = raw[1][rows][:, cols].double()
        err_g = float((got_g - want_g).abs().max())
        err_r = float((got_r - want_r).abs().max())
        assert err_g <= 2 / 255 + 0.6 / h, f"{view.name} of {(h, w)}: rows off by {err_g * h:.2f} px"
        assert err_r <= 2 / 255 + 0.6 / w, f"{view.name} of {(h, w)}: cols off by {err_r * w:.2f} px"
