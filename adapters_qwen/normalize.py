"""``normalize(sample)`` for Qwen-VL: dataset dicts in, a batch the stock model reads correctly out.

Order of trust: the processor's own outputs, then image sizes the sample declares, then (only when
nothing else is at hand) the patch content itself. A grid is derived only when it is exact, and a
value that contradicts another is an error, never a silent pick: the stock model runs on a wrong
grid and returns garbage, so everything it would not check is checked here.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from vlm_adapters import (
    DynamicSpec,
    GridError,
    ImageShapeError,
    MissingInputError,
    TokenCountError,
    VisionBatch,
)
from vlm_adapters.geometry import Size
from vlm_adapters.placeholders import image_runs
from vlm_adapters.samples import require_mapping

from .continuity import recover_grid
from .grid import KEEP_GRID_FIX, Grid, check_reachable, describe_mismatch, num_rows, num_tokens, parse_grid
from .order import split_rows
from .pixels import PatchInput, RawInput, read_images
from .sizes import sample_sizes
from .tokens import TokenSequence, check_token_kinds, fit_sequence, read_sequence, require_ids

if TYPE_CHECKING:
    from .adapter import QwenAdapter

logger = logging.getLogger("adapters_qwen")


class GridRecoveredWarning(UserWarning):
    """A grid was recovered from patch content alone: correct beyond reasonable doubt, but a guess
    the dataset should not need. Keep ``image_grid_thw`` (or the image size) in the collate."""


def _check_patch_values(pv: torch.Tensor, spec: DynamicSpec) -> None:
    """Patch rows must be floats in the range the processor's normalisation produces."""
    if pv.shape[-1] != spec.patch_dim:
        raise ImageShapeError(
            "patch rows have the wrong width",
            found=f"shape {list(pv.shape)}",
            expected=f"[N, {spec.patch_dim}]",
            fix="process the images with this checkpoint's own processor",
        )
    if not pv.is_floating_point():
        raise ImageShapeError(
            "patch matrix is not floating point",
            found=str(pv.dtype),
            expected="the processor's normalised float patches",
            fix="pass the processor's pixel_values unchanged",
        )
    if not bool(torch.isfinite(pv).all()):
        raise ImageShapeError(
            "patch matrix has NaN or inf values",
            found="non-finite values",
            expected="finite values",
            fix="check the data pipeline",
        )
    lows = [(0.0 - m) / s for m, s in zip(spec.image_mean, spec.image_std, strict=True)]
    highs = [(1.0 - m) / s for m, s in zip(spec.image_mean, spec.image_std, strict=True)]
    lo, hi = min(lows), max(highs)
    tol = 0.05 * (hi - lo)
    found_lo, found_hi = float(pv.min()), float(pv.max())
    if found_lo < lo - tol or found_hi > hi + tol:
        raise ImageShapeError(
            "patch values are not normalised the way this checkpoint's processor does",
            found=f"values in [{found_lo:.2f}, {found_hi:.2f}]",
            expected=f"values in [{lo:.2f}, {hi:.2f}] ((x/255 - image_mean) / image_std)",
            fix="process raw images with this checkpoint's processor (or pass the raw images)",
        )


def _rows_per_image(seq: TokenSequence, rows: int, n_images: int | None, spec: DynamicSpec) -> list[int]:
    """Split the patch rows over the images using the token runs of an expanded prompt."""
    m2 = spec.merge_size**2
    lengths = [n for _, n in image_runs(seq.primary, spec.image_token_id)]
    if not lengths:
        raise TokenCountError(
            "input_ids have no image tokens",
            found=f"no token of id {spec.image_token_id}",
            expected="one placeholder (or its expansion) per image",
            fix="tokenize the prompt with this checkpoint's chat template (adapter.format_prompt)",
        )
    if n_images is not None and len(lengths) != n_images:
        raise TokenCountError(
            "input_ids and the image sizes count different numbers of images",
            found=f"{len(lengths)} runs of image tokens",
            expected=f"{n_images} (one per declared size)",
            fix="keep input_ids and image_sizes from the same sample",
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
    if len(sizes) != len(given):
        raise GridError(
            "image_grid_thw and the image sizes count different numbers of images",
            found=f"{len(given)} grids",
            expected=f"{len(sizes)} (one per declared size)",
            fix="keep image_grid_thw and image_sizes from the same sample",
        )
    for i, (grid, size) in enumerate(zip(given, sizes, strict=True)):
        if size is None:
            continue
        expected = spec.grid_thw(size)
        if grid != expected:
            raise GridError(
                f"image {i}: image_grid_thw contradicts the image size ({describe_mismatch(grid, expected)})",
                found=f"grid {list(grid)} for a {size[0]}x{size[1]} (height x width) image",
                expected=f"{list(expected)}, what the stock processor makes of that size",
                fix="pass the processor's image_grid_thw unchanged (a transposed or re-derived grid runs "
                "without error and gives garbage)",
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
            raise GridError(
                f"image {i}: the patch rows do not match the declared image size",
                found=f"{rows} patch rows",
                expected=f"{num_rows(grid)} for a {size[0]}x{size[1]} image (grid {list(grid)}, "
                f"min/max pixels {self.spec.min_pixels}/{self.spec.max_pixels})",
                fix="check that the size is this image's and that the processor settings are the "
                "checkpoint's (min_pixels/max_pixels)",
            )
        note = f"image {i}: image_grid_thw derived from image size {size[0]}x{size[1]} -> {list(grid)}"
        self.notes.append(note)
        self.adapter.log_once("grid_from_size", note)
        return grid

    def resolve(
        self, pv: PatchInput, seq: TokenSequence, sizes: list[Size | None] | None, given: list[Grid] | None
    ) -> list[Grid]:
        grids = self._resolve(pv, seq, sizes, given)
        if self.adapter.verify_grids_with_content:
            for i, (chunk, grid) in enumerate(zip(split_rows(pv.pixel_values, grids), grids, strict=True)):
                if i not in self.recovered:
                    _check_content(chunk, grid, self.spec, i)
        return grids

    def _resolve(
        self, pv: PatchInput, seq: TokenSequence, sizes: list[Size | None] | None, given: list[Grid] | None
    ) -> list[Grid]:
        rows = pv.pixel_values.shape[0]
        if given is not None:
            _check_given(given, pv, sizes, self.spec)
            return given
        if sizes is not None and all(s is not None for s in sizes):
            derived = [self.derived(i, s, None) for i, s in enumerate(sizes) if s is not None]
            if sum(num_rows(g) for g in derived) != rows:
                raise GridError(
                    "the patch rows do not match the declared image sizes",
                    found=f"{rows} patch rows",
                    expected=f"{sum(num_rows(g) for g in derived)} for grids {[list(g) for g in derived]}",
                    fix="check that the sizes are these images' and that the processor settings are the "
                    "checkpoint's (min_pixels/max_pixels)",
                )
            if pv.rows_per_image is not None and [num_rows(g) for g in derived] != pv.rows_per_image:
                raise GridError(
                    "the per-image pixel arrays do not match the declared image sizes",
                    found=pv.rows_per_image,
                    expected=[num_rows(g) for g in derived],
                    fix="keep the sizes in the same order as the images",
                )
            return derived
        n_images = None if sizes is None else len(sizes)
        split = pv.rows_per_image or _rows_per_image(seq, rows, n_images, self.spec)
        if n_images is not None and len(split) != n_images:
            raise GridError(
                "the pixel arrays and the image sizes count different numbers of images",
                found=f"{len(split)} arrays",
                expected=f"{n_images} sizes",
                fix="keep one size per image",
            )
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
            warnings.warn(note + ". Fix: " + KEEP_GRID_FIX, GridRecoveredWarning, stacklevel=5)
            self.recovered.add(i)
            grids.append(found.grid)
        return grids


def _process_raw(
    adapter: QwenAdapter, raw: RawInput, sizes: list[Size | None] | None, given: list[Grid] | None
) -> tuple[torch.Tensor, list[Grid]]:
    if sizes is not None:
        declared = list(sizes)
        if len(declared) != len(raw.sizes) or any(
            d is not None and adapter.spec.grid_thw(d) != adapter.spec.grid_thw(r)
            for d, r in zip(declared, raw.sizes, strict=False)
        ):
            raise ImageShapeError(
                "the declared image sizes are not the sizes of the images passed",
                found=f"declared {declared}, images {raw.sizes}",
                expected="the (height, width) of each image handed over",
                fix="drop image_sizes / meta_data, or pass the images at their declared size",
            )
    out = adapter.processor.image_processor(images=raw.images, return_tensors="pt")
    grids = parse_grid(out["image_grid_thw"])
    assert grids is not None
    if given is not None and given != grids:
        raise GridError(
            "image_grid_thw does not belong to these images",
            found=[list(g) for g in given],
            expected=f"{[list(g) for g in grids]}, what the stock processor makes of them",
            fix="drop image_grid_thw when passing raw images (the processor computes it)",
        )
    return out["pixel_values"], grids


def _text_only(adapter: QwenAdapter, seq: TokenSequence | None, given: list[Grid] | None) -> VisionBatch:
    spec = adapter.spec
    if seq is None:
        raise MissingInputError(
            "the sample has neither input_ids nor images",
            found="no input_ids, input_ids_with_vision, pixel_values or images",
            expected="at least input_ids",
            fix="pass the tokenized prompt and its images",
        )
    if given:
        raise MissingInputError(
            "image_grid_thw is given but no pixel values",
            found=f"grids {[list(g) for g in given]}",
            expected="pixel_values (or raw images) for those grids",
            fix="keep pixel_values in your collate",
        )
    if image_runs(seq.primary, spec.image_token_id):
        raise MissingInputError(
            "input_ids carry image tokens but the sample has no pixel values",
            found=f"{int((seq.primary == spec.image_token_id).sum())} tokens of id {spec.image_token_id}",
            expected="pixel_values (with image_grid_thw) or raw images",
            fix="keep pixel_values in your collate",
        )
    check_token_kinds(seq.primary, spec)
    ids, aligned, _ = fit_sequence(seq, [], spec)
    return _finish(adapter, ids, aligned, None, [], [], [])


def _finish(
    adapter: QwenAdapter,
    ids: torch.Tensor,
    aligned: dict[str, torch.Tensor],
    pixel_values: torch.Tensor | None,
    grids: list[Grid],
    sizes: list[Size | None],
    notes: list[str],
) -> VisionBatch:
    spec = adapter.spec
    mm = adapter.processor.create_mm_token_type_ids([ids.tolist()])
    inputs: dict[str, torch.Tensor] = {
        "input_ids": ids[None],
        "attention_mask": aligned.get("attention_mask", torch.ones_like(ids))[None].long(),
        "mm_token_type_ids": torch.tensor(mm, dtype=torch.long),
    }
    if pixel_values is not None:
        inputs["pixel_values"] = pixel_values
        inputs["image_grid_thw"] = torch.tensor([list(g) for g in grids], dtype=torch.long)
    if "labels" in aligned:
        inputs["labels"] = aligned["labels"][None]
    geometries = [spec.geometry_for_grid(g, original_size=s) for g, s in zip(grids, sizes, strict=True)]
    positions = adapter.image_positions(ids, geometries)
    mask_ids = aligned.get("mask_ids")
    return VisionBatch(
        inputs=inputs,
        geometries=[geometries],
        image_token_positions=[positions],
        mask_ids=None if mask_ids is None else mask_ids[None],
        extras={"repairs": notes, "original_size_known": [[s is not None for s in sizes]]},
    )


def normalize_sample(adapter: QwenAdapter, sample: Mapping[str, Any]) -> VisionBatch:
    """See :meth:`QwenAdapter.normalize`."""
    sample = require_mapping(sample)
    spec = adapter.spec
    seq = read_sequence(sample)
    given = parse_grid(sample.get("image_grid_thw"))
    images = read_images(sample, spec)
    if images is None:
        return _text_only(adapter, seq, given)
    seq = require_ids(seq)
    sizes = sample_sizes(sample, spec)
    notes: list[str] = []
    if isinstance(images, RawInput):
        pixel_values, grids = _process_raw(adapter, images, sizes, given)
        sizes = list(images.sizes)
    else:
        pixel_values = images.pixel_values
        _check_patch_values(pixel_values, spec)
        grids = _Resolver(adapter, notes).resolve(images, seq, sizes, given)
    if sizes is None:
        sizes = [None] * len(grids)
    check_token_kinds(seq.primary, spec)
    ids, aligned, expanded = fit_sequence(seq, [num_tokens(g, spec) for g in grids], spec)
    if expanded:
        note = f"input_ids had one placeholder per image; expanded to {[num_tokens(g, spec) for g in grids]} tokens"
        notes.append(note)
        adapter.log_once("expanded_ids", note)
    return _finish(adapter, ids, aligned, pixel_values, grids, sizes, notes)
