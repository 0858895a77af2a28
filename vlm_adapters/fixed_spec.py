"""The ``fixed`` spec kind: every image becomes one fixed-size input and a fixed token grid.

Optional centred padding to a square (the long side scaled to ``pad_size`` first, or the
original padded as it is), then a resize; or a plain stretch. A built-in kind, registered
through the ``register_spec_kinds`` hook like any plugin's kind.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from .geometry import ImageGeometry, Padding, Size
from .spec import Color, PositiveInt, SpecBase


class FixedSpec(SpecBase):
    """Every image becomes ``image_size`` and ``token_grid`` tokens, whatever its shape."""

    kind: Literal["fixed"] = "fixed"
    image_size: tuple[PositiveInt, PositiveInt]
    """(height, width) of the tensor the vision tower takes."""
    patch_size: PositiveInt
    token_grid: tuple[PositiveInt, PositiveInt]
    """(rows, cols) of LLM image tokens."""
    resize_mode: Literal["pad_to_square", "pad_then_resize", "stretch"] = "pad_to_square"
    """``pad_to_square``: scale the long side to ``pad_size``, centre-pad to a square with
    ``background_color``, then resize the square to ``image_size``.
    ``pad_then_resize``: centre-pad the original image to a square, then resize it to
    ``image_size``. ``stretch``: resize the image to ``image_size`` directly."""
    pad_size: PositiveInt | None = None
    """Side of the square padding happens at; ``None`` means ``image_size`` itself."""
    min_side: PositiveInt = 1
    """Shortest side after the long-side resize (stock processors clamp thin images)."""
    background_color: Color | None = None
    high_res_image_size: tuple[PositiveInt, PositiveInt] | None = None
    """Size of a second, high-resolution view (e.g. a SAM branch), where the backbone has one."""

    @model_validator(mode="after")
    def _check(self) -> FixedSpec:
        h, w = self.image_size
        if self.resize_mode != "stretch" and h != w:
            raise ValueError(f"{self.resize_mode} needs a square image_size, got {self.image_size}")
        rows, cols = self.token_grid
        if h % rows or w % cols:
            raise ValueError(
                f"image_size {self.image_size} is not a whole number of token cells of grid {self.token_grid}"
            )
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        return self

    @property
    def num_image_tokens(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def geometry(self, image_size: Size) -> ImageGeometry:
        """Geometry of an image of ``image_size = (height, width)`` under this spec."""
        h, w = self._check_size(image_size)
        ih, iw = self.image_size
        if self.resize_mode == "stretch":
            return ImageGeometry.single((h, w), resized_size=(ih, iw), input_size=(ih, iw), token_grid=self.token_grid)
        if self.resize_mode == "pad_then_resize":
            rh, rw = h, w
        else:
            delta = (self.pad_size or ih) / max(h, w)
            rh = max(round(h * delta), self.min_side)
            rw = max(round(w * delta), self.min_side)
        square = max(rh, rw)
        top = (square - rh) // 2 if rw > rh else 0
        left = (square - rw) // 2 if rh > rw else 0
        scale = ih / square
        padding = Padding(
            top=top * scale,
            bottom=(square - rh - top) * scale,
            left=left * scale,
            right=(square - rw - left) * scale,
        )
        return ImageGeometry.single(
            (h, w),
            resized_size=(rh, rw),
            input_size=(ih, iw),
            padding=padding,
            token_grid=self.token_grid,
        )
