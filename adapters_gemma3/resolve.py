"""Gemma 3's steps of the core ``normalize``: a sample's images as views, and its image tokens
checked per view.

The core has read and checked the sample (ids, sizes, value ranges, raw vs processed). Here the
views are counted (from the pixels, else from the ids, else from the raw images), the crop
layout is fixed from the sizes (:mod:`.layout`), and the pixels are the given views or the raw
images processed under the setting that layout needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from vlm_adapters import MissingInputError, TokenCountError, VisionInputError
from vlm_adapters.geometry import ImageGeometry
from vlm_adapters.normalize import ResolvedImages, SampleImages

from .crosscheck import check_crops_show_their_boxes
from .layout import crops_per_image
from .views import declared_crops, view_stack

if TYPE_CHECKING:
    from .adapter import Gemma3Adapter


def _views_in_ids(ids: torch.Tensor, image_token_id: int, per_view: int) -> int | None:
    """Views the expanded ids hold (``None`` when they hold no whole number of views)."""
    count = int((ids == image_token_id).sum())
    return count // per_view if count and count % per_view == 0 else None


def resolve_views(adapter: Gemma3Adapter, images: SampleImages) -> ResolvedImages:
    """Every view's pixels, in the processor's order, and each image's geometry."""
    spec = adapter.gemma_spec
    value = images.processed.get("pixel_values")
    per_image = None
    raw, fresh = images.raw or [], images.from_raw or {}  # the core gives processed pixels, raw images, or both
    if value is not None:
        pixels, per_image = view_stack(
            value.parts if value.listed else value.parts[0], spec, adapter.pixel_form.channels
        )
        total = int(pixels.shape[0])
    else:
        from_ids = _views_in_ids(images.input_ids, spec.image_token_id, spec.tokens_per_view)
        total = from_ids if from_ids is not None else int(fresh["pixel_values"].shape[0])
    declared = declared_crops(per_image, images.sample.get("num_crops"))
    layout = crops_per_image(spec.pan_and_scan, images.sizes, total, declared)
    sizes = [s for s in images.sizes or [] if s is not None]
    geometries = [spec.geometry_for_crops(s, boxes) for s, boxes in zip(sizes, layout.boxes, strict=True)]
    if value is not None:
        check_crops_show_their_boxes(pixels, geometries)
    elif layout.pan_and_scan == spec.pan_and_scan.enabled:
        pixels = fresh["pixel_values"].to(torch.float32)
    else:
        pixels = adapter.process_views(raw, pan_and_scan=layout.pan_and_scan)
    return ResolvedImages({"pixel_values": pixels}, geometries, [layout.note] if layout.note else [])


def view_cells(pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
    """Each image's views average-pooled to their token grids, ``[views, C, rows, cols]`` per image."""
    counts = [g.num_views for g in geometries]
    if pixels.ndim != 4 or pixels.shape[0] != sum(counts):
        raise VisionInputError(
            "pixel_values do not hold the images' views",
            found=f"shape {list(pixels.shape)}",
            expected=f"{sum(counts)} views ({counts} per image)",
            fix="keep every view the processor made, in order",
        )
    grid = geometries[0].views[0].token_grid if geometries else (1, 1)
    pooled = torch.nn.functional.adaptive_avg_pool2d(pixels.float(), grid)
    return list(pooled.split(counts))


def check_no_orphan_placeholders(ids: torch.Tensor, placeholder_id: int, name: str) -> None:
    """A sample without images must not carry ``<start_of_image>``: it would mean its pixels were lost."""
    found = int((ids == placeholder_id).sum())
    if found:
        raise MissingInputError(
            f"{name} carries image placeholders but the sample has no pixel values or images",
            found=f"{found} <start_of_image> token(s) (id {placeholder_id})",
            expected="pixel_values (or the raw images under 'image') for them",
            fix="keep pixel_values in your collate (or the raw images in the sample)",
        )


def view_runs_error(lengths: list[int], per_view: int, views: int, name: str) -> TokenCountError:
    """A count mismatch, said per view: Gemma 3 gives every view its own run of ``per_view`` tokens."""
    problem = f"image tokens in {name} are not one run of {per_view} per view"
    if not lengths:
        problem = f"{name} holds no image tokens (one <start_of_image> placeholder per image is not expandable)"
    return TokenCountError(
        problem,
        found=f"runs of {lengths} ({sum(lengths)} tokens)",
        expected=f"runs of {[per_view] * views}: {per_view} tokens for each of the {views} views (each image, then "
        "its crops)",
        fix="keep the processor's input_ids (it writes text and start/end tokens around every view, which cannot be "
        "re-derived from one <start_of_image> per image), with the same pan-and-scan setting as the pixels; do "
        "not truncate inside an image; or build the batch with adapter.prepare(images, texts)",
    )
