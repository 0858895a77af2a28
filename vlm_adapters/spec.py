"""``VisionInputSpec``: the one declared truth about what a backbone's vision input must be.

A spec is pure geometry: sizes, grids, token counts and token ids, no tensors. Adapters build
it from the checkpoint's config and processor (never from literals), and everything else in
the framework (repair of dataset samples, attention reshaping, mapping maps back onto pixels)
asks the spec instead of guessing from tensor shapes.

Two kinds, discriminated by ``kind``:

* ``fixed``: every image becomes one fixed-size input and a fixed token grid
  (DeepSeek-VL, LLaVA-1.5 style): optional centred padding to a square, then a resize.
* ``dynamic``: the input size follows the image, rounded to a multiple of
  ``patch_size * merge_size`` within ``[min_pixels, max_pixels]`` (Qwen2-VL style).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from .errors import ImageShapeError
from .geometry import ImageGeometry, Padding, Size

PositiveInt = Annotated[int, Field(gt=0)]
Color = tuple[int, int, int]
Triple = tuple[float, float, float]


class _SpecBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    image_token_id: Annotated[int, Field(ge=0)]
    """Id of the placeholder token that each image feature replaces in ``input_ids``."""
    image_token: str | None = None
    vision_start_token_id: int | None = None
    vision_end_token_id: int | None = None
    token_order: Literal["raster"] = "raster"
    """Order of an image's tokens in the sequence: ``raster`` = row-major over ``token_grid``."""
    image_mean: Triple = (0.0, 0.0, 0.0)
    image_std: Triple = (1.0, 1.0, 1.0)

    def _check_size(self, image_size: Size) -> tuple[int, int]:
        try:
            h, w = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ImageShapeError(
                "image size is not a (height, width) pair",
                found=image_size,
                expected="(height, width) of positive ints",
                fix="pass image_size=(height, width), e.g. PIL's (img.height, img.width)",
            ) from None
        if h <= 0 or w <= 0:
            raise ImageShapeError(
                "image size must be positive",
                found=(h, w),
                expected="height > 0 and width > 0",
                fix="check that the image was decoded (an empty image has no geometry)",
            )
        return h, w


class FixedSpec(_SpecBase):
    """Every image becomes ``image_size`` and ``token_grid`` tokens, whatever its shape."""

    kind: Literal["fixed"] = "fixed"
    image_size: tuple[PositiveInt, PositiveInt]
    """(height, width) of the tensor the vision tower takes."""
    patch_size: PositiveInt
    token_grid: tuple[PositiveInt, PositiveInt]
    """(rows, cols) of LLM image tokens."""
    resize_mode: Literal["pad_to_square", "pad_then_resize", "stretch"] = "pad_to_square"
    """``pad_to_square``: scale the long side to ``pad_size``, centre-pad to a square with
    ``background_color``, then resize the square to ``image_size`` (DeepSeek-VL).
    ``pad_then_resize``: centre-pad the original image to a square, then resize it to
    ``image_size`` (LLaVA-1.5). ``stretch``: resize the image to ``image_size`` directly."""
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
            return ImageGeometry(
                original_size=(h, w), resized_size=(ih, iw), input_size=(ih, iw), token_grid=self.token_grid
            )
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
        return ImageGeometry(
            original_size=(h, w),
            resized_size=(rh, rw),
            input_size=(ih, iw),
            padding=padding,
            token_grid=self.token_grid,
        )


class DynamicSpec(_SpecBase):
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
        return ImageGeometry(
            original_size=original_size or (rh, rw),
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


VisionInputSpec = Annotated[FixedSpec | DynamicSpec, Field(discriminator="kind")]
"""Either kind of spec; parse JSON with :func:`spec_from_json`."""

_SPEC_ADAPTER: TypeAdapter[FixedSpec | DynamicSpec] = TypeAdapter(VisionInputSpec)


def spec_from_json(data: str | bytes) -> FixedSpec | DynamicSpec:
    """Parse a spec serialised with ``spec.model_dump_json()``."""
    return _SPEC_ADAPTER.validate_json(data)


def spec_from_dict(data: dict[str, object]) -> FixedSpec | DynamicSpec:
    return _SPEC_ADAPTER.validate_python(data)


def spec_json_schema() -> dict[str, object]:
    """JSON schema of both kinds, for docs and for validating specs written by hand."""
    return _SPEC_ADAPTER.json_schema()
