"""The ``pan_and_scan`` spec kind: Gemma 3's fixed square views of an image and its crops.

Every view is one stretch (no padding) of a box of the original image to the vision tower's
square input, pooled to a fixed token grid: the whole image first, then the pan-and-scan crops
left to right (or top to bottom). Each view is its own run of image tokens, wrapped in
start/end-of-image tokens, with text between the runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from vlm_adapters import ImageShapeError
from vlm_adapters.geometry import Box, ImageGeometry, Size, View
from vlm_adapters.spec import PositiveInt, SpecBase

from .crops import CropBox, PanAndScan

WHOLE_IMAGE_VIEW = "image"
"""Name of the view that shows the whole image (the processor's "original image")."""


def crop_view_name(index: int) -> str:
    """``crop_1``, ``crop_2``, ... in the processor's order."""
    return f"crop_{index + 1}"


class PanAndScanSpec(SpecBase):
    """One square view of the whole image, plus one per pan-and-scan crop when that is on."""

    kind: Literal["pan_and_scan"] = "pan_and_scan"
    image_size: tuple[PositiveInt, PositiveInt]
    """(height, width) every view is stretched to: the vision tower's input."""
    patch_size: PositiveInt
    token_grid: tuple[PositiveInt, PositiveInt]
    """(rows, cols) of LLM image tokens per view, after the projector's average pooling."""
    pan_and_scan: PanAndScan
    """The crop rule and whether the processor applies it."""
    wrapper_tokens: tuple[Annotated[int, Field(ge=0)], ...]
    """Tokens without the image token id that the processor writes for an image with ``n`` crops
    (index ``n``): each view's start/end-of-image tokens, the text that introduces the crops.
    Counted with the processor's own tokenizer, so they depend on it."""

    @model_validator(mode="after")
    def _check(self) -> PanAndScanSpec:
        h, w = self.image_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        rows, cols = self.token_grid
        if (h // self.patch_size) % rows or (w // self.patch_size) % cols:
            raise ValueError(f"the {h // self.patch_size}x{w // self.patch_size} patches do not pool to {rows}x{cols}")
        if len(self.wrapper_tokens) != self.pan_and_scan.max_num_crops + 1:
            raise ValueError(
                f"wrapper_tokens needs one count per crop count 0..{self.pan_and_scan.max_num_crops}, "
                f"got {len(self.wrapper_tokens)}"
            )
        return self

    @property
    def tokens_per_view(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def crop_boxes(self, image_size: Size) -> list[CropBox]:
        """The crops the processor adds for this image (none while pan-and-scan is off)."""
        size = self.check_size(image_size)
        return self.pan_and_scan.crop_boxes(size) if self.pan_and_scan.enabled else []

    def geometry(self, image_size: Size) -> ImageGeometry:
        """The whole image, then each crop, as views in runs of their own."""
        size = self.check_size(image_size)
        return self.geometry_for_crops(size, self.crop_boxes(size))

    def geometry_for_crops(self, original_size: Size, crops: list[CropBox]) -> ImageGeometry:
        """The geometry of an image of ``original_size`` processed into these crops."""
        if len(crops) > self.pan_and_scan.max_num_crops:
            raise ImageShapeError(
                "more pan-and-scan crops than the processor makes",
                found=f"{len(crops)} crops",
                expected=f"at most pan_and_scan_max_num_crops = {self.pan_and_scan.max_num_crops}",
                fix="take the crops from spec.pan_and_scan.crop_boxes(image_size)",
            )
        patches = (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)
        boxes = [Box.whole(original_size)] + [Box(top=t, left=le, bottom=b, right=r) for t, le, b, r in crops]
        names = [WHOLE_IMAGE_VIEW] + [crop_view_name(i) for i in range(len(crops))]
        views = tuple(
            View(
                name=name,
                token_grid=self.token_grid,
                offset=i * self.tokens_per_view,
                input_size=self.image_size,
                box=box,
                run=i,
                patch_grid=patches,
                resized_size=self.image_size,
            )
            for i, (name, box) in enumerate(zip(names, boxes, strict=True))
        )
        return ImageGeometry(original_size=original_size, views=views, extra_tokens=self.wrapper_tokens[len(crops)])
