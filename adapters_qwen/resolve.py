"""Qwen-VL's resolve step of ``normalize``: the patch matrix and a grid per image.

The core has read the sample (ids, sizes, raw vs processed, values). What is Qwen's own is the
grid. Order of trust: the processor's outputs (a raw image's grid, a given ``image_grid_thw``),
then declared image sizes, then (only when nothing else is at hand) the patch content itself. A
grid is derived only when it is exact, and a value that contradicts another is an error, never a
silent pick: the stock model runs on a wrong grid and returns garbage.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from vlm_adapters import DynamicSpec, GridError, TokenCountError
from vlm_adapters.geometry import Size
from vlm_adapters.normalize import ResolvedImages, SampleImages
from vlm_adapters.normalize.sizes import check_count
from vlm_adapters.placeholders import image_runs

from .continuity import recover_grid
from .grid import KEEP_GRID_FIX, Grid, GridSizeError, check_reachable, describe_mismatch, num_rows, parse_grid
from .order import split_rows
from .pixels import PatchInput, patch_input

if TYPE_CHECKING:
    from .adapter import QwenAdapter


class GridRecoveredWarning(UserWarning):
    """A grid was recovered from patch content alone: correct beyond reasonable doubt, but a guess
    the dataset should not need. Keep ``image_grid_thw`` (or the image size) in the collate."""


def _rows_per_image(ids: torch.Tensor, rows: int, spec: DynamicSpec) -> list[int]:
    """Split the patch rows over the images using the token runs of an expanded prompt."""
    m2 = spec.merge_size**2
    lengths = [n for _, n in image_runs(ids, spec.image_token_id)]
    if not lengths:
        raise TokenCountError(
            "input_ids have no image tokens",
            found=f"no token of id {spec.image_token_id}",
            expected="one placeholder (or its expansion) per image",
            fix="tokenize the prompt with this checkpoint's chat template (adapter.format_prompt)",
        )
    if sum(lengths) * m2 == rows:
        return [n * m2 for n in lengths]
    if all(n == 1 for n in lengths):
        if len(lengths) == 1:
            return [rows]
        raise GridError(
            f"image_grid_thw is missing for {len(lengths)} images and the prompt has one placeholder "
            "each, so nothing tells how the patch rows split between the images",
            found=f"{rows} patch rows for {len(lengths)} images",
            expected="image_grid_thw, image sizes, or one pixel array per image",
            fix=KEEP_GRID_FIX,
        )
    raise TokenCountError(
        "image tokens in input_ids do not match the patch rows",
        found=f"{sum(lengths)} image tokens ({lengths}) = {sum(lengths) * m2} patches",
        expected=f"{rows} patches / {m2} = {rows / m2:g} tokens",
        fix="pass input_ids and pixel_values from the same processor call",
    )


def _check_given(given: list[Grid], pv: PatchInput, sizes: list[Size | None] | None, spec: DynamicSpec) -> None:
    check_reachable(given, spec)
    rows = pv.pixel_values.shape[0]
    if sum(num_rows(g) for g in given) != rows:
        raise GridError(
            "image_grid_thw does not fit the patch rows",
            found=f"grids {[list(g) for g in given]} = {sum(num_rows(g) for g in given)} patches",
            expected=f"{rows} patches (rows of pixel_values)",
            fix="pass pixel_values and image_grid_thw from the same processor call",
        )
    if pv.rows_per_image is not None and [num_rows(g) for g in given] != pv.rows_per_image:
        raise GridError(
            "image_grid_thw does not fit the per-image pixel arrays",
            found=[num_rows(g) for g in given],
            expected=pv.rows_per_image,
            fix="keep the grids in the same order as the images",
        )
    if sizes is None:
        return
    check_count(sizes, len(given))
    for i, (grid, size) in enumerate(zip(given, sizes, strict=True)):
        if size is None:
            continue
        expected = spec.grid_thw(size)
        if grid != expected:
            raise GridSizeError(
                f"image {i}: image_grid_thw contradicts the image size ({describe_mismatch(grid, expected)})",
                found=f"grid {list(grid)} for a {size[0]}x{size[1]} (height x width) image",
                expected=f"{list(expected)}, what the stock processor makes of that size",
                fix="pass the processor's image_grid_thw unchanged (a transposed or re-derived grid runs "
                "without error and gives garbage); sizes are (height, width), not PIL's (width, height)",
            )


def _check_content(rows: torch.Tensor, grid: Grid, spec: DynamicSpec, image: int) -> None:
    """Refuse a grid the patch content decisively contradicts (e.g. transposed, with the size
    also given as PIL's (width, height)). Undecided content accepts the grid."""
    try:
        found = recover_grid(rows, spec, image=image)
    except GridError:
        return
    if found.grid != grid:
        raise GridError(
            f"image {image}: the patch content contradicts the grid ({describe_mismatch(grid, found.grid)})",
            found=f"grid {list(grid)}, but the patches join up continuously only as {list(found.grid)} (every "
            f"other grid is at least {found.ratio:.1f}x rougher across patch windows)",
            expected=f"{list(found.grid)}",
            fix="pass the processor's image_grid_thw unchanged; if you pass image sizes, check they are "
            "(height, width), not PIL's (width, height)",
        )


class _Resolver:
    """Grids for a patch-matrix sample, from the best evidence at hand."""

    def __init__(self, adapter: QwenAdapter, notes: list[str]) -> None:
        self.adapter = adapter
        self.spec = adapter.spec
        self.notes = notes
        self.recovered: set[int] = set()

    def derived(self, i: int, size: Size, rows: int | None) -> Grid:
        grid = self.spec.grid_thw(size)
        if rows is not None and num_rows(grid) != rows:
            raise GridSizeError(
                f"image {i}: the patch rows do not match the declared image size",
                found=f"{rows} patch rows",
                expected=f"{num_rows(grid)} for a {size[0]}x{size[1]} image (grid {list(grid)}, "
                f"min/max pixels {self.spec.min_pixels}/{self.spec.max_pixels})",
                fix="check that the size is this image's, (height, width), and that the processor settings are "
                "the checkpoint's (min_pixels/max_pixels)",
            )
        note = f"image {i}: image_grid_thw derived from image size {size[0]}x{size[1]} -> {list(grid)}"
        self.notes.append(note)
        self.adapter.note_repair("grid_from_size", note)
        return grid

    def resolve(
        self, pv: PatchInput, ids: torch.Tensor, sizes: list[Size | None] | None, given: list[Grid] | None
    ) -> list[Grid]:
        grids = self._resolve(pv, ids, sizes, given)
        if self.adapter.verify_grids_with_content:
            for i, (chunk, grid) in enumerate(zip(split_rows(pv.pixel_values, grids), grids, strict=True)):
                if i not in self.recovered:
                    _check_content(chunk, grid, self.spec, i)
        return grids

    def _resolve(
        self, pv: PatchInput, ids: torch.Tensor, sizes: list[Size | None] | None, given: list[Grid] | None
    ) -> list[Grid]:
        rows = pv.pixel_values.shape[0]
        if given is not None:
            _check_given(given, pv, sizes, self.spec)
            return given
        if pv.rows_per_image is not None:
            check_count(sizes, len(pv.rows_per_image))
        if sizes is not None and all(s is not None for s in sizes):
            derived = [self.derived(i, s, None) for i, s in enumerate(sizes) if s is not None]
            if sum(num_rows(g) for g in derived) != rows:
                raise GridSizeError(
                    "the patch rows do not match the declared image sizes",
                    found=f"{rows} patch rows",
                    expected=f"{sum(num_rows(g) for g in derived)} for grids {[list(g) for g in derived]}",
                    fix="check that the sizes are these images', (height, width), and that the processor settings "
                    "are the checkpoint's (min_pixels/max_pixels)",
                )
            if pv.rows_per_image is not None and [num_rows(g) for g in derived] != pv.rows_per_image:
                raise GridSizeError(
                    "the per-image pixel arrays do not match the declared image sizes",
                    found=pv.rows_per_image,
                    expected=[num_rows(g) for g in derived],
                    fix="keep the sizes in the same order as the images",
                )
            return derived
        split = pv.rows_per_image or _rows_per_image(ids, rows, self.spec)
        check_count(sizes, len(split))
        grids: list[Grid] = []
        for i, chunk in enumerate(pv.pixel_values.split(split)):
            size = None if sizes is None else sizes[i]
            if size is not None:
                grids.append(self.derived(i, size, chunk.shape[0]))
                continue
            found = recover_grid(chunk, self.spec, image=i)
            note = (
                f"image {i}: image_grid_thw was missing and no image size was given; recovered "
                f"{list(found.grid)} from patch continuity (rival grids at least {found.ratio:.1f}x more "
                f"discontinuous, z >= {found.z:.0f}; candidates {[list(c) for c in found.candidates]})"
            )
            self.notes.append(note)
            warnings.warn(note + ". Fix: " + KEEP_GRID_FIX, GridRecoveredWarning, stacklevel=7)
            self.recovered.add(i)
            grids.append(found.grid)
        return grids


def resolve_qwen_images(adapter: QwenAdapter, images: SampleImages) -> ResolvedImages:
    """``pixel_values`` and ``image_grid_thw`` for the stock forward, and one geometry per image."""
    spec = adapter.spec
    given = parse_grid(images.sample.get("image_grid_thw"))
    notes: list[str] = []
    processed = images.processed.get("pixel_values")
    if images.from_raw is not None:
        grids = parse_grid(images.from_raw["image_grid_thw"]) or []
        if given is not None and given != grids:
            raise GridError(
                "image_grid_thw does not belong to these images",
                found=[list(g) for g in given],
                expected=f"{[list(g) for g in grids]}, what the stock processor makes of them",
                fix="drop image_grid_thw when passing raw images (the processor computes it)",
            )
        # given pixels are kept as they are; the core checks they are these images' processed form
        fresh = images.from_raw["pixel_values"]
        pixel_values = fresh if processed is None else patch_input(processed, spec).pixel_values
    else:
        assert processed is not None
        patches = patch_input(processed, spec)
        grids = _Resolver(adapter, notes).resolve(patches, images.input_ids, images.sizes, given)
        pixel_values = patches.pixel_values
    sizes = images.sizes if images.sizes is not None else [None] * len(grids)
    check_count(sizes, len(grids))
    geometries = [spec.geometry_for_grid(g, original_size=s) for g, s in zip(grids, sizes, strict=True)]
    pixels = {"pixel_values": pixel_values, "image_grid_thw": torch.tensor([list(g) for g in grids], dtype=torch.long)}
    return ResolvedImages(pixels, geometries, notes)
