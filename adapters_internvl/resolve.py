"""InternVL's resolve step of ``normalize``: tiles per image and a geometry per image.

The core has read the sample (ids, sizes, raw vs processed, values). What is InternVL's own: the
processed pixels are all images' tiles in one stack (``[N, 3, 448, 448]``, each multi-tile image
followed by its thumbnail), so the tiles per image and each image's tile grid must come from
somewhere. Sources, which must agree: one stack per image (a list, or ``[images, tiles, 3, H, W]``),
a tile-count field (``num_patches``, InternVL's ``num_patches_list``), the image sizes (the grid
follows from the size, exactly), the expanded prompt (one run of 256 tokens per tile per image),
the raw images. With one image, all tiles are its own.

Without a size the grid is recovered from the tile count when only one grid fits, else from the
thumbnail (see :mod:`vlm_adapters.normalize.tiles`), else refused naming the candidates. The
geometry is then exact on the resized canvas (``rows x 448`` by ``cols x 448``), which stands in for
the unknown original size (``original_size_known`` is false).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from vlm_adapters import AmbiguousGridError, ImageGeometry, MissingInputError, TokenCountError
from vlm_adapters.geometry import Size
from vlm_adapters.normalize import ResolvedImages, SampleImages
from vlm_adapters.normalize.sizes import check_count
from vlm_adapters.normalize.tiles import agreed_per_image, check_declared_grid, recover_grid, tile_stack
from vlm_adapters.placeholders import image_runs

from .tiling import candidate_grids

if TYPE_CHECKING:
    from .adapter import InternVLAdapter

COUNT_KEYS = ("num_patches", "num_patches_list")
"""Sample fields that give the tiles per image (the processor's and InternVL's own names)."""
KEEP_SIZES_FIX = (
    "keep image_sizes (or F-LMM meta_data, or the raw image) in the sample: the size gives the tile grid exactly"
)


class TileGridRecoveredWarning(UserWarning):
    """A tile grid was recovered from the tiles and the thumbnail: correct beyond reasonable doubt,
    but a guess the dataset should not need. Keep the image sizes in the sample."""


def declared_counts(sample: Mapping[str, Any]) -> tuple[str, list[int]] | None:
    """A tile-count field of the sample, as ints (a list, a 1-D tensor or array)."""
    for key in COUNT_KEYS:
        value = sample.get(key)
        if value is None:
            continue
        values = value.tolist() if hasattr(value, "tolist") else value
        values = [values] if isinstance(values, int) else values
        if not isinstance(values, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise TokenCountError(
                f"{key} is not a list of tile counts",
                found=repr(value)[:80],
                expected="one positive int per image (tiles, thumbnail included)",
                fix=f"pass {key} as the processor returned it, or drop it",
            )
        return key, list(values)
    return None


def tiles_in_prompt(ids: torch.Tensor, tokens_per_tile: int, image_token_id: int) -> list[int] | None:
    """Tiles per image from an expanded prompt (one run of ``tokens_per_tile`` per tile), or ``None``
    for a prompt with one placeholder per image (or runs that are not whole tiles)."""
    lengths = [n for _, n in image_runs(ids, image_token_id)]
    if all(n < tokens_per_tile for n in lengths):  # placeholders (adjacent ones form one run)
        return None
    if any(n % tokens_per_tile for n in lengths):
        return None  # not whole tiles: the prompt check later says what each image needs
    return [n // tokens_per_tile for n in lengths]


def placeholders_in_prompt(ids: torch.Tensor, image_token_id: int) -> int:
    return int((ids == image_token_id).sum())


def resolve_internvl_images(adapter: InternVLAdapter, images: SampleImages) -> ResolvedImages:
    """All tiles (given, else the raw images') and one geometry per image; see the module docstring."""
    spec = adapter.spec
    form = adapter.pixel_form
    sources: dict[str, list[int]] = {}
    if "pixel_values" in images.processed:
        tiles, listed = tile_stack(images.processed["pixel_values"], "pixel_values", form, per_image_5d=True)
        if listed is not None:
            sources["pixel_values (one stack per image)"] = listed
    elif images.from_raw is not None:
        tiles = images.from_raw["pixel_values"].to(torch.float32)
    else:
        raise MissingInputError(
            "the sample has no pixel_values and no raw image",
            found=f"keys {sorted(map(str, images.sample))[:12]}",
            expected="pixel_values [tiles, 3, H, W] or the raw image under 'image'",
            fix="keep the processor's pixel_values in the sample, or the raw image",
        )
    if images.from_raw is not None and "num_patches" in images.from_raw:
        sources["the raw images"] = [int(n) for n in images.from_raw["num_patches"].reshape(-1).tolist()]
    declared = declared_counts(images.sample)
    if declared is not None:
        sources[declared[0]] = declared[1]
    sizes = images.sizes
    if sizes is not None and all(s is not None for s in sizes):
        sources["the image sizes"] = [spec.geometry(s).num_views for s in sizes if s is not None]
    in_prompt = tiles_in_prompt(images.input_ids, spec.tokens_per_tile, spec.image_token_id)
    if in_prompt is not None:
        sources["input_ids (runs of image tokens)"] = in_prompt
    counts = agreed_per_image(sources, "tiles", int(tiles.shape[0]))
    if counts is None:
        num_images = len(sizes) if sizes is not None else placeholders_in_prompt(images.input_ids, spec.image_token_id)
        if num_images != 1:
            raise MissingInputError(
                f"nothing tells which of the {tiles.shape[0]} tiles belong to which of the {num_images} images",
                found="flat pixel_values, one placeholder per image, no image sizes and no tile counts",
                expected="image_sizes / meta_data, a tile count per image (num_patches), one pixel stack per image, "
                "or the processor's expanded input_ids",
                fix=KEEP_SIZES_FIX,
            )
        counts = [int(tiles.shape[0])]
    check_count(sizes, len(counts))
    geometries: list[ImageGeometry] = []
    notes: list[str] = []
    start = 0
    for i, count in enumerate(counts):
        size = sizes[i] if sizes is not None else None
        if size is not None:
            geometries.append(spec.geometry(size))
            if images.from_raw is None:
                _check_size_against_tiles(adapter, tiles[start : start + count], size, i)
        else:
            grid = _recover(adapter, tiles[start : start + count], i)
            canvas = (grid[0] * spec.tile_size[0], grid[1] * spec.tile_size[1])
            geometries.append(spec.geometry_for_grid(canvas, grid))
            note = f"image {i}: size unknown; tile grid {grid[0]}x{grid[1]} recovered from its {count} tiles"
            notes.append(note)
            adapter.note_repair("tile_grid", note)
        start += count
    return ResolvedImages({"pixel_values": tiles}, geometries, notes)


def _recover(adapter: InternVLAdapter, tiles: torch.Tensor, index: int) -> Size:
    spec = adapter.spec
    count = int(tiles.shape[0])
    if count == 1:
        return 1, 1
    thumbnail = 1 if spec.thumbnail else 0
    candidates = candidate_grids(count - thumbnail, spec.min_tiles, spec.max_tiles) if spec.tiling else []
    if not candidates:
        raise TokenCountError(
            f"image {index} has {count} tiles, which no tiling of this checkpoint gives",
            found=f"{count} tiles",
            expected=f"1, or {spec.min_tiles}..{spec.max_tiles} tiles" + (" plus a thumbnail" if thumbnail else ""),
            fix="pass the processor's pixel_values for this checkpoint",
        )
    if len(candidates) == 1:
        return candidates[0]
    if not thumbnail:
        raise AmbiguousGridError(
            f"image {index}: the tile grid is lost and {count} tiles fit several grids (no thumbnail to tell)",
            found=f"{count} tiles",
            candidates=[f"{r}x{c}" for r, c in candidates],
            fix=KEEP_SIZES_FIX,
        )
    grid = recover_grid(tiles[:-1], tiles[-1], candidates, f"image {index}", KEEP_SIZES_FIX)
    warnings.warn(
        f"image {index}: tile grid {grid[0]}x{grid[1]} recovered from the thumbnail. Fix: {KEEP_SIZES_FIX}",
        TileGridRecoveredWarning,
        stacklevel=6,
    )
    return grid


def _check_size_against_tiles(adapter: InternVLAdapter, tiles: torch.Tensor, size: Size, index: int) -> None:
    """A declared size whose grid the tiles visibly contradict (e.g. a transposed size) is refused."""
    spec = adapter.spec
    rows, cols = spec.tile_grid(size)
    if rows * cols == 1 or not spec.thumbnail:
        return
    candidates = candidate_grids(rows * cols, spec.min_tiles, spec.max_tiles)
    check_declared_grid(tiles[:-1], tiles[-1], (rows, cols), candidates, f"image {index}")
