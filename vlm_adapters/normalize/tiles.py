"""Images cut into tiles plus one whole-image view (a thumbnail, a global view): the parts of the
resolve step that every such backbone needs.

* **Tiles per image.** Processed tiles come flat (all images' tiles in one stack), or one stack per
  image. How many belong to each image may be said by several sources (the layout, a count field,
  the image sizes, the expanded prompt, the raw images); they must agree and add up.
* **A lost grid.** With only a tile count, several grids may fit (6 tiles: 1x6, 2x3, 3x2, 6x1). The
  whole-image view tells them apart: the right arrangement of the tiles, shrunk to one tile, *is*
  the whole-image view up to resampling (mean difference about 0.005 in normalised units), and
  every other arrangement is far from it (0.5 and more on the images we measured). A grid is taken
  only when exactly one candidate is within :data:`MATCH_TOLERANCE`; otherwise (a flat image, a
  periodic pattern) the candidates are named in an :class:`~vlm_adapters.errors.AmbiguousGridError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch

from ..errors import (
    AmbiguousGridError,
    ImageShapeError,
    ImageSizeError,
    MissingInputError,
    TokenCountError,
    VisionInputError,
)
from ..geometry import ImageGeometry, Size
from .resolve import stack_images
from .sample import PixelForm, PixelValue

T = TypeVar("T")

MATCH_TOLERANCE = 0.05
"""Mean absolute difference (normalised units) between a candidate arrangement of the tiles, shrunk
to one tile, and the whole-image view, below which the candidate is the processor's grid."""


def tile_stack(
    value: PixelValue, key: str, form: PixelForm, per_image_5d: bool
) -> tuple[torch.Tensor, list[int] | None]:
    """``(tiles [N, C, H, W], tiles per image or None)``.

    A list holds one stack of tiles per image. ``per_image_5d``: a 5-D ``[images, tiles, C, H, W]``
    with more than one row is one row per image (for processors that return flat tiles, where a
    5-D array can only be research code's per-image stacking).
    """
    if value.listed:
        stacks = [stack_images(PixelValue([part], listed=False), key, form) for part in value.parts]
        return torch.cat(stacks), [int(s.shape[0]) for s in stacks]
    x = value.parts[0]
    counts = [int(x.shape[1])] * int(x.shape[0]) if per_image_5d and x.ndim == 5 and x.shape[0] > 1 else None
    return stack_images(value, key, form), counts


def agreed_per_image(sources: Mapping[str, Sequence[T]], what: str, total: int | None = None) -> list[T] | None:
    """The per-image values (view counts, grids) that every source gives; ``None`` without sources.

    Sources that disagree are refused with the error of the most specific source involved (image
    sizes: :class:`ImageSizeError`; the prompt: :class:`TokenCountError`; else :class:`ImageShapeError`),
    and so are view counts that do not add up to the ``total`` views at hand.
    """
    if not sources:
        return None
    values = {name: list(per_image) for name, per_image in sources.items()}
    first = next(iter(values.values()))
    error: type[VisionInputError] = ImageShapeError
    if any("size" in name for name in values):
        error = ImageSizeError
    elif any("input_ids" in name for name in values):
        error = TokenCountError
    if any(v != first for v in values.values()):
        raise error(
            f"the sample's sources disagree on the {what} of each image",
            found=values,
            expected=f"one list of {what} per image that every source gives",
            fix="keep pixel_values, image sizes, the prompt and any tile-count field from the same processor call",
        )
    if total is not None and sum(int(v) for v in first) != total:  # type: ignore[call-overload]
        raise error(
            f"the {what} per image do not add up to the {total} views in the pixels",
            found=values,
            expected=f"counts that sum to {total}",
            fix="pass every view of every image, in order (as the processor returned them)",
        )
    return first


def views_per_image(
    sources: Mapping[str, Sequence[int]], total: int, num_images: int, splitters: str, fix: str
) -> list[int]:
    """The views of each image: what every source gives (:func:`agreed_per_image`); with no source,
    all ``total`` views are the only image's; several images and no source is a
    :class:`MissingInputError` (``splitters`` names what would tell)."""
    counts = agreed_per_image(sources, "views", total)
    if counts is not None:
        return counts
    if num_images != 1:
        raise MissingInputError(
            f"nothing tells which of the {total} views belong to which of the {num_images} images",
            found="processed views of several images, one placeholder per image, and nothing that splits them",
            expected=splitters,
            fix=fix,
        )
    return [total]


def mosaic_error(tiles: torch.Tensor, whole: torch.Tensor, grid: Size) -> float:
    """How far the ``grid`` arrangement of ``tiles`` (raster order), shrunk to one tile, is from ``whole``."""
    rows, cols = grid
    c, h, w = whole.shape
    mosaic = (
        tiles[: rows * cols].float().reshape(rows, cols, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, rows * h, cols * w)
    )
    small = torch.nn.functional.interpolate(
        mosaic[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False
    )
    return float((small[0] - whole.float()).abs().mean())


def recover_grid(tiles: torch.Tensor, whole: torch.Tensor, candidates: Sequence[Size], where: str, fix: str) -> Size:
    """The one candidate grid whose arrangement of ``tiles`` matches ``whole``, or an
    :class:`AmbiguousGridError` naming the candidates (with how far each is)."""
    if len(candidates) == 1:
        return candidates[0]
    errors = {grid: mosaic_error(tiles, whole, grid) for grid in candidates}
    matching = [grid for grid, e in errors.items() if e <= MATCH_TOLERANCE]
    if len(matching) == 1:
        return matching[0]
    raise AmbiguousGridError(
        f"{where}: the tile grid is lost and the tiles fit {'several' if matching else 'none'} of the grids they "
        "could form",
        found=f"{tiles.shape[0]} tiles; mean difference of each arrangement from the whole-image view "
        f"{ {f'{r}x{c}': round(e, 3) for (r, c), e in errors.items()} } (a match is <= {MATCH_TOLERANCE})",
        candidates=[f"{r}x{c}" for r, c in (matching or candidates)],
        fix=fix,
    )


def check_declared_grid(
    tiles: torch.Tensor, whole: torch.Tensor, declared: Size, candidates: Sequence[Size], where: str
) -> None:
    """Refuse a grid that follows from a declared image size when the tiles visibly form another.

    Where the declared arrangement does not match the whole-image view and exactly one other
    candidate does (a ``(width, height)`` size transposes the grid), the size is wrong. Tiles that
    match no arrangement (a flat image matches them all) are left alone: there is no evidence.
    """
    others = [grid for grid in candidates if grid != declared]
    if not others or mosaic_error(tiles, whole, declared) <= MATCH_TOLERANCE:
        return
    matching = [grid for grid in others if mosaic_error(tiles, whole, grid) <= MATCH_TOLERANCE]
    if len(matching) == 1:
        (r, c), (mr, mc) = declared, matching[0]
        raise ImageSizeError(
            f"{where}: the declared image size gives a {r}x{c} tile grid, but the tiles form a {mr}x{mc} grid",
            found=f"tiles that match the whole-image view as {mr}x{mc}, not {r}x{c}",
            expected=f"an image size whose tiling is {mr}x{mc}",
            fix="sizes are (height, width), not PIL's (width, height); check image_sizes / meta_data, or pass the "
            "raw image",
        )


def view_cells(pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
    """Views stacked in order (``[..., views, C, H, W]``, every image's views one after the other)
    averaged over each view's token cells: ``[cells, C]`` per image, for comparing two versions of
    the same images' pixels. A view's cells span its ``input_size``, the top-left corner of its
    pixels; rows and columns beyond it (which the patches never cover) are left out."""
    flat = pixels.reshape(-1, *pixels.shape[-3:]).float()
    out, start = [], 0
    for g in geometries:
        pooled = [
            torch.nn.functional.adaptive_avg_pool2d(x[:, : view.input_size[0], : view.input_size[1]], view.token_grid)
            .flatten(1)
            .T
            for x, view in zip(flat[start : start + g.num_views], g.views, strict=True)
        ]
        out.append(torch.cat(pooled))
        start += g.num_views
    return out
