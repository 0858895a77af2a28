"""Idefics3 / SmolVLM's resolve step of ``normalize``: sub-images per image and a geometry per image.

The core has read the sample (ids, sizes, raw vs processed, values). What is this family's own:
the processed pixels are every view of every image of the sample in one stack
(``[1, views, 3, T, T]``, zero-padded with empty views where the processor batched several
samples), each split image's sub-images in raster order followed by its global view. Where each
image's split comes from (sources must agree): the image sizes (exact), the expanded prompt (the
``<row_i_col_j>`` marker before each sub-image's run and ``<global-img>`` before the global view's
give the split exactly), the processor's ``rows`` / ``cols`` fields, one pixel stack per image,
the raw images. With one image, all views are its own.

Without a size the geometry is exact on the stretched canvas (``rows x T`` by ``cols x T``), which
stands in for the unknown original (``original_size_known`` is false). With only a view count,
the split is recovered when one split fits, else from the global view, else refused naming the
candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from vlm_adapters import ImageGeometry, ImageShapeError, MissingInputError, TokenCountError
from vlm_adapters.geometry import Size
from vlm_adapters.normalize import ResolvedImages, SampleImages
from vlm_adapters.normalize.sizes import check_count
from vlm_adapters.normalize.tiles import agreed_per_image, check_declared_grid, recover_grid, tile_stack
from vlm_adapters.placeholders import image_runs

from .spec import ROW_COL_MARKER, Idefics3SplitSpec

if TYPE_CHECKING:
    from .adapter import Idefics3AdapterBase

KEEP_SIZES_FIX = (
    "keep image_sizes (or F-LMM meta_data, or the raw image) in the sample, or the processor's expanded input_ids: "
    "either gives the split exactly"
)


class SplitRecoveredWarning(UserWarning):
    """A split was recovered from the sub-images and the global view: correct beyond reasonable
    doubt, but a guess the dataset should not need. Keep the image sizes in the sample."""


def splits_in_prompt(ids: torch.Tensor, spec: Idefics3SplitSpec, tokenizer: Any) -> list[Size] | None:
    """Each image's (rows, cols) from the markers of an expanded prompt; ``None`` for one
    placeholder per image. Runs without their marker, or markers out of raster order, are refused."""
    runs = image_runs(ids, spec.image_token_id)
    if all(n < spec.tokens_per_view for _, n in runs):  # placeholders (adjacent ones form one run)
        return None
    markers = {
        int(tokenizer.convert_tokens_to_ids(ROW_COL_MARKER.format(row=r, col=c))): (r, c)
        for r in range(1, spec.max_grid + 1)
        for c in range(1, spec.max_grid + 1)
    }
    splits: list[Size] = []
    tiles: list[tuple[int, int]] = []
    for at, _ in runs:
        before = int(ids[at - 1]) if at > 0 else -1
        if before == spec.global_image_token_id:
            rows = max((r for r, _ in tiles), default=0)
            cols = max((c for _, c in tiles), default=0)
            if tiles != [(r, c) for r in range(1, rows + 1) for c in range(1, cols + 1)]:
                raise TokenCountError(
                    f"image {len(splits)}'s sub-image markers are not a raster of rows x columns",
                    found=[ROW_COL_MARKER.format(row=r, col=c) for r, c in tiles],
                    expected="<row_1_col_1>, <row_1_col_2>, ... row by row, then <global-img>",
                    fix="expand the prompt with the stock processor, or pass one <image> placeholder per image",
                )
            splits.append((rows, cols))
            tiles = []
        elif before in markers:
            tiles.append(markers[before])
        else:
            raise TokenCountError(
                "a run of image tokens in input_ids has no marker before it",
                found=f"token {before} before the run at position {at}",
                expected="a <row_i_col_j> marker before each sub-image and <global-img> before each global view",
                fix="expand the prompt with the stock processor, or pass one <image> placeholder per image",
            )
    if tiles:
        raise TokenCountError(
            "input_ids end with sub-images that have no global view",
            found=f"{len(tiles)} sub-image run(s) after the last <global-img>",
            expected="each image's sub-images followed by its global view",
            fix="do not truncate sequences inside an image",
        )
    return splits


def declared_splits(sample: Mapping[str, Any]) -> list[Size] | None:
    """The processor's ``rows`` / ``cols`` fields (``return_row_col_info``), per image."""
    if sample.get("rows") is None and sample.get("cols") is None:
        return None
    try:
        rows, cols = (torch.as_tensor(sample[k]).reshape(-1) for k in ("rows", "cols"))
        ok = rows.numel() == cols.numel() and not rows.is_floating_point() and not cols.is_floating_point()
        ok = ok and bool((rows >= 0).all() and (cols >= 0).all())
    except (KeyError, TypeError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise ImageShapeError(
            "rows / cols are not the processor's sub-image counts",
            found=f"rows={repr(sample.get('rows'))[:40]}, cols={repr(sample.get('cols'))[:40]}",
            expected="one int >= 0 per image in each (0 and 0: not split)",
            fix="keep rows and cols as the processor returned them, or drop both",
        )
    return [(int(r), int(c)) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]


def _without_padding_views(views: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Drop the all-zero views the processor appends when it batches samples (the model drops them too)."""
    real = int(views.shape[0])
    while real > 0 and not bool(views[real - 1].any()):
        real -= 1
    return views[:real], int(views.shape[0]) - real


def resolve_split_images(adapter: Idefics3AdapterBase, images: SampleImages) -> ResolvedImages:
    """Every view (given, else the raw images') and one geometry per image; see the module docstring."""
    spec = adapter.spec
    notes: list[str] = []
    counts_from: dict[str, list[int]] = {}
    if "pixel_values" in images.processed:
        views, listed = tile_stack(images.processed["pixel_values"], "pixel_values", adapter.pixel_form, False)
        if listed is not None:
            counts_from["pixel_values (one stack per image)"] = listed
        else:
            views, padding = _without_padding_views(views)
            if padding:
                notes.append(f"dropped {padding} all-zero batch-padding view(s) from pixel_values")
    elif images.from_raw is not None:
        views = images.from_raw["pixel_values"].reshape(-1, *images.from_raw["pixel_values"].shape[-3:]).float()
    else:
        raise MissingInputError(
            "the sample has no pixel_values and no raw image",
            found=f"keys {sorted(map(str, images.sample))[:12]}",
            expected="pixel_values [1, views, 3, H, W] or the raw image under 'image'",
            fix="keep the processor's pixel_values in the sample, or the raw image",
        )
    splits_from: dict[str, list[Size]] = {}
    if images.from_raw is not None:
        rows, cols = images.from_raw["rows"].tolist(), images.from_raw["cols"].tolist()
        splits_from["the raw images"] = list(zip(rows, cols, strict=True))
    declared = declared_splits(images.sample)
    if declared is not None:
        splits_from["rows / cols"] = declared
    sizes = images.sizes
    if sizes is not None and all(s is not None for s in sizes):
        splits_from["the image sizes"] = [spec.split(s)[2:] for s in sizes if s is not None]
    in_prompt = splits_in_prompt(images.input_ids, spec, adapter.processor.tokenizer)
    if in_prompt is not None:
        splits_from["input_ids (markers)"] = in_prompt
    splits = agreed_per_image(splits_from, "sub-image rows and columns")
    for name, per_image in splits_from.items():
        counts_from[name] = [r * c + 1 for r, c in per_image]
    counts = agreed_per_image(counts_from, "views", int(views.shape[0]))
    if counts is None:
        num_images = len(sizes) if sizes is not None else int((images.input_ids == spec.image_token_id).sum())
        if num_images != 1:
            raise MissingInputError(
                f"nothing tells which of the {views.shape[0]} views belong to which of the {num_images} images",
                found="pixel_values of several images, one placeholder per image, no image sizes, no rows / cols",
                expected="image_sizes / meta_data, rows and cols, one pixel stack per image, or the processor's "
                "expanded input_ids",
                fix=KEEP_SIZES_FIX,
            )
        counts = [int(views.shape[0])]
    check_count(sizes, len(counts))
    geometries: list[ImageGeometry] = []
    start = 0
    for i, count in enumerate(counts):
        mine = views[start : start + count]
        size = sizes[i] if sizes is not None else None
        if size is not None:
            geometries.append(spec.geometry(size))
            grid = spec.split(size)[2:]
            if images.from_raw is None and count > 1:
                check_declared_grid(mine[:-1], mine[-1], grid, spec.candidate_grids(count - 1), f"image {i}")
        else:
            grid = splits[i] if splits is not None else _recover(spec, mine, i)
            canvas = (max(grid[0], 1) * spec.tile_size, max(grid[1], 1) * spec.tile_size)
            geometries.append(spec.geometry_for_grid(canvas, grid))
            note = f"image {i}: size unknown; geometry on its {grid[0]}x{grid[1]} split canvas {canvas}"
            notes.append(note)
            adapter.note_repair("split_canvas", note)
        start += count
    t = spec.tile_size
    pixels = views.reshape(1, -1, views.shape[-3], t, t)
    mask = torch.ones(1, pixels.shape[1], t, t, dtype=torch.long)  # sub-images are never padded
    return ResolvedImages({"pixel_values": pixels, "pixel_attention_mask": mask}, geometries, notes)


def _recover(spec: Idefics3SplitSpec, views: torch.Tensor, index: int) -> Size:
    count = int(views.shape[0])
    candidates = spec.candidate_grids(count - 1)
    if not candidates:
        raise TokenCountError(
            f"image {index} has {count} views, which no split of this checkpoint gives",
            found=f"{count} views",
            expected=f"rows x cols sub-images with max(rows, cols) = {spec.max_grid}, plus the global view",
            fix="pass the processor's pixel_values for this checkpoint",
        )
    grid = recover_grid(views[:-1], views[-1], candidates, f"image {index}", KEEP_SIZES_FIX)
    if len(candidates) > 1:
        warnings.warn(
            f"image {index}: split {grid[0]}x{grid[1]} recovered from the global view. Fix: {KEEP_SIZES_FIX}",
            SplitRecoveredWarning,
            stacklevel=6,
        )
    return grid
