"""Two sources in one sample that must agree: processed pixels and the raw image they claim to
come from, and a declared size and the padding visible in the pixels.

Both refuse rather than pick: the stock model would run on either source and give a plausible,
wrong answer.

* **Processed pixels vs the raw image.** When a sample has both, the pixels are used as given
  (they may come from a research processor that resamples a little differently), after checking
  that they are the processed form of that image: the same shape as the stock processor's output,
  and, pooled to each image's token cells, within 0.1 (normalised units) of it on average.
  Resampler differences stay around 0.005-0.02; another image, a flip or a crop is 0.3-1.0.
* **Declared size vs visible padding.** A padded input (centred on a flat background) shows where
  its content is. When no raw image is at hand, each padding band the geometry declares must be
  one flat colour, and the content next to it must not be that colour all along. A size given as
  (width, height), or one of another aspect ratio, puts the bands on content (or content on the
  bands) and is refused. Within a margin of the content edge (resampling blurs it) nothing is
  checked, so sizes whose padding differs by less than that margin cannot be told apart. Where
  the geometry has no padding on an axis, both edges of that axis must not be the view's padding
  colour (a square size declared for a padded image), unless the declared size is the input's own
  (the opt-out that treats the input as the image). Images of several views are left to their
  backbone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

from ..errors import ImageShapeError, ImageSizeError, PixelValueError
from ..geometry import ImageGeometry
from .sample import PixelView

SAME_IMAGE_TOLERANCE = 0.1
"""Mean absolute difference (normalised units) between given pixels and the stock processor's
output for the sample's raw images, over every value and per image on its token cells. The same
picture through another resampler differs by about 0.002; another picture by 0.8 or more."""
FLAT_TOLERANCE = 4 / 255
"""Pixel units within which a padding band counts as one flat colour."""
FLAT_FRACTION = 0.99
"""Share of a band's pixels that must be within :data:`FLAT_TOLERANCE` of its colour."""

Cells = Callable[[str, torch.Tensor, Sequence[ImageGeometry]], list[torch.Tensor]]


def check_matches_raw(
    given: Mapping[str, torch.Tensor],
    fresh: Mapping[str, torch.Tensor],
    geometries: Sequence[ImageGeometry],
    cells: Cells,
) -> None:
    """Refuse processed pixels that are not the stock processor's output for the raw images."""
    for key in given.keys() & fresh.keys():
        mine, theirs = given[key], fresh[key].to(given[key].dtype)
        if mine.shape != theirs.shape:
            raise ImageShapeError(
                f"{key} is not the processed form of the sample's raw images",
                found=f"{key} of shape {list(mine.shape)}",
                expected=f"{list(theirs.shape)}, what the stock processor makes of the raw images",
                fix="keep the raw images and their processed pixels in the same order and number (or drop one)",
            )
        pairs = zip(cells(key, mine, geometries), cells(key, theirs, geometries), strict=True)
        per_image = [float((a - b).abs().mean()) for a, b in pairs]
        # pooled cells hide a different picture of the same brightness; every value does not
        whole = float((mine.float() - theirs.float()).abs().mean())
        if whole > SAME_IMAGE_TOLERANCE or any(d > SAME_IMAGE_TOLERANCE for d in per_image):
            raise PixelValueError(
                f"{key} is not the processed form of the sample's raw image",
                found=f"mean |difference| {round(whole, 3)} over every value; per image on its token cells "
                f"{[round(d, 3) for d in per_image]}",
                expected=f"<= {SAME_IMAGE_TOLERANCE} (the processor's output for that image)",
                fix="drop the raw image if the pixels were augmented (and give image_sizes of what was processed), "
                "or drop the processed pixels",
            )


def image_cells(pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
    """Image stacks ``[N, C, H, W]`` average-pooled to each image's (first view's) token grid."""
    pool = torch.nn.functional.adaptive_avg_pool2d
    return [pool(x[None].float(), g.views[0].token_grid)[0] for x, g in zip(pixels, geometries, strict=True)]


def _bands(g: ImageGeometry, margin: int) -> tuple[list[tuple[slice, slice]], list[tuple[slice, slice]]]:
    """(padding bands beyond ``margin`` of the content edge, content strips just inside it), as
    (rows, cols) slices, on the sides where the geometry has padding."""
    h, w = g.input_size
    p = g.padding
    top, bottom = math.floor(p.top) - margin, math.ceil(h - p.bottom) + margin
    left, right = math.floor(p.left) - margin, math.ceil(w - p.right) + margin
    inner_top, inner_bottom = math.ceil(p.top) + margin, math.floor(h - p.bottom) - margin
    inner_left, inner_right = math.ceil(p.left) + margin, math.floor(w - p.right) - margin
    depth = max(2, margin)
    everything = slice(None)
    bands, strips = [], []
    if p.top >= 1 and top > 0:
        bands.append((slice(0, top), everything))
        strips.append((slice(inner_top, inner_top + depth), slice(inner_left, inner_right)))
    if p.bottom >= 1 and bottom < h:
        bands.append((slice(bottom, h), everything))
        strips.append((slice(inner_bottom - depth, inner_bottom), slice(inner_left, inner_right)))
    if p.left >= 1 and left > 0:
        bands.append((everything, slice(0, left)))
        strips.append((slice(inner_top, inner_bottom), slice(inner_left, inner_left + depth)))
    if p.right >= 1 and right < w:
        bands.append((everything, slice(right, w)))
        strips.append((slice(inner_top, inner_bottom), slice(inner_right - depth, inner_right)))
    enough = inner_bottom - inner_top >= 2 * depth and inner_right - inner_left >= 2 * depth
    return bands, (strips if enough else [])


def _flat_share(region: torch.Tensor, colour: torch.Tensor) -> float:
    """Share of a ``[C, h, w]`` region's pixels within the tolerance of ``colour`` in every channel."""
    if region.numel() == 0:
        return 0.0
    close = ((region - colour[:, None, None]).abs() <= FLAT_TOLERANCE).all(dim=0)
    return float(close.float().mean())


def _check_undeclared_padding(image: torch.Tensor, g: ImageGeometry, view: PixelView, margin: int, where: str) -> None:
    """Refuse a geometry without padding on an axis whose two edges show the view's padding colour
    (a square size declared for a padded image). The input size itself is the declared opt-out."""
    if view.background is None or tuple(g.original_size) == tuple(g.input_size):
        return
    colour = torch.tensor(view.background, dtype=torch.float32) / 255
    p = g.padding
    sides = []
    if p.top == p.bottom == 0:
        sides.append(("top and bottom", image[:, :margin], image[:, -margin:]))
    if p.left == p.right == 0:
        sides.append(("left and right", image[:, :, :margin], image[:, :, -margin:]))
    for name, first, last in sides:
        if min(_flat_share(first, colour), _flat_share(last, colour)) >= FLAT_FRACTION:
            raise ImageSizeError(
                f"{where}: the pixels show padding the declared size does not have",
                found=f"declared original size {g.original_size} (height, width), no padding at the {name}, where "
                "the pixels hold the padding colour",
                expected="the size of the image these pixels were processed from (another aspect ratio)",
                fix="check image_sizes / meta_data (height, width of the original image), or pass the raw image; to "
                f"treat the input itself as the image, declare its size {tuple(g.input_size)}",
            )


def check_padding_visible(pixels: torch.Tensor, geometries: Sequence[ImageGeometry], view: PixelView, key: str) -> None:
    """Refuse declared sizes whose padding is not where the processed pixels show it."""
    if pixels.ndim != 4 or pixels.shape[0] != len(geometries):
        return
    mean = torch.tensor(view.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(view.std, dtype=torch.float32)[:, None, None]
    for i, g in enumerate(geometries):
        if not g.is_single_view or tuple(pixels.shape[-2:]) != tuple(g.input_size):
            continue
        up = g.input_size[0] / max(g.resized_size)  # input pixels per pixel where the padding was decided
        margin = 2 + 2 * math.ceil(up)
        image = pixels[i].float() * std + mean
        _check_undeclared_padding(image, g, view, margin, f"image {i} ({key})")
        bands, strips = _bands(g, margin)
        if not bands:
            continue
        band = torch.cat([image[:, r, c].flatten(1) for r, c in bands], dim=1)
        colour = band.median(dim=1).values
        where = f"image {i} ({key})"
        p = g.padding
        declared = [round(v, 1) for v in (p.top, p.bottom, p.left, p.right)]
        if _flat_share(band[:, :, None], colour) < FLAT_FRACTION:
            raise ImageSizeError(
                f"{where}: the declared size puts padding where the pixels show content",
                found=f"declared original size {g.original_size} (height, width), whose padding (top/bottom/left/"
                f"right {declared} input pixels) is not one flat colour in the pixels",
                expected="the size of the image these pixels were processed from",
                fix="sizes are (height, width), not PIL's (width, height); check image_sizes / meta_data, or pass "
                "the raw image",
            )
        if any(_flat_share(image[:, r, c], colour) >= FLAT_FRACTION for r, c in strips):
            raise ImageSizeError(
                f"{where}: the pixels show padding where the declared size puts content",
                found=f"declared original size {g.original_size} (height, width); the content edge it declares is "
                "the flat padding colour all along",
                expected="the size of the image these pixels were processed from (more padding: another aspect ratio)",
                fix="check image_sizes / meta_data (height, width of the original image), or pass the raw image",
            )
