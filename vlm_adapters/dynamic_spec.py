"""The ``dynamic`` spec kind: the input follows the image, as native-resolution grids do.

Sides are rounded to a multiple of ``patch_size * merge_size`` with the area kept within
``[min_pixels, max_pixels]``; ``merge_size x merge_size`` patches become one LLM token. A built-in
kind, registered through the ``register_spec_kinds`` hook like any plugin's kind.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from .errors import ImageShapeError
from .geometry import ImageGeometry, Size
from .spec import PositiveInt, SpecBase


class DynamicSpec(SpecBase):
    """The input follows the image: sides rounded to ``patch_size * merge_size``, area bounded."""

    kind: Literal["dynamic"] = "dynamic"
    patch_size: PositiveInt
    merge_size: PositiveInt = 1
    """Side of the window of patches merged into one LLM token."""
    temporal_patch_size: PositiveInt = 1
    """Frames per temporal patch; a still image is repeated to fill it."""
    min_pixels: PositiveInt
    max_pixels: PositiveInt
    max_aspect_ratio: float = Field(default=200.0, gt=1.0)
    in_channels: PositiveInt = 3
    video_token_id: int | None = None

    @model_validator(mode="after")
    def _check(self) -> DynamicSpec:
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} exceeds max_pixels {self.max_pixels}")
        if self.max_pixels < self.factor**2:
            raise ValueError(f"max_pixels {self.max_pixels} is below one merge window ({self.factor}x{self.factor})")
        return self

    @property
    def factor(self) -> int:
        """Both resized sides are multiples of this: one merged token's side in pixels."""
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        """Width of one row of the flattened patch matrix (``C * T * p * p``)."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    def resized_size(self, image_size: Size) -> Size:
        """The stock "smart resize": nearest multiples of ``factor``, area within bounds."""
        h, w = self._check_size(image_size)
        ratio = max(h, w) / min(h, w)
        if ratio > self.max_aspect_ratio:
            raise ImageShapeError(
                "image aspect ratio is beyond what the backbone accepts",
                found=f"{h}x{w} (ratio {ratio:.1f})",
                expected=f"ratio <= {self.max_aspect_ratio:g}",
                fix="crop or pad the image to a less extreme aspect ratio",
            )
        f = self.factor
        rh, rw = round(h / f) * f, round(w / f) * f
        if rh * rw > self.max_pixels:
            beta = math.sqrt(h * w / self.max_pixels)
            rh = max(f, math.floor(h / beta / f) * f)
            rw = max(f, math.floor(w / beta / f) * f)
        elif rh * rw < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (h * w))
            rh = math.ceil(h * beta / f) * f
            rw = math.ceil(w * beta / f) * f
        return rh, rw

    def geometry(self, image_size: Size) -> ImageGeometry:
        """Geometry of an image of ``image_size = (height, width)`` under this spec."""
        h, w = self._check_size(image_size)
        rh, rw = self.resized_size((h, w))
        return self.geometry_for_grid((1, rh // self.patch_size, rw // self.patch_size), original_size=(h, w))

    def geometry_for_grid(self, grid_thw: tuple[int, int, int], original_size: Size | None = None) -> ImageGeometry:
        """Geometry from a processor's ``(t, h, w)`` patch grid (original size = resized if unknown)."""
        t, gh, gw = grid_thw
        m = self.merge_size
        rh, rw = gh * self.patch_size, gw * self.patch_size
        return ImageGeometry.single(
            original_size or (rh, rw),
            resized_size=(rh, rw),
            input_size=(rh, rw),
            token_grid=(gh // m, gw // m),
            temporal=t,
            patch_grid=(gh, gw),
        )

    def grid_thw(self, image_size: Size) -> tuple[int, int, int]:
        """The ``image_grid_thw`` row the stock processor produces for this image size."""
        rh, rw = self.resized_size(image_size)
        return 1, rh // self.patch_size, rw // self.patch_size
