"""``ImageGeometry``: where an original image ends up on the model's input and token grid.

Everything here is a pure function of sizes, so the same object serves preprocessing checks,
dataset repair, attention capture and the CLI. The two tensor helpers map maps between the
token grid and the original pixels; they only resize and crop, they never look at a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import torch

Size = tuple[int, int]
"""(height, width) in pixels, always height first."""


class Padding(BaseModel):
    """Padding around the resized content on the model input, in input pixels (may be fractional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top: float = 0.0
    bottom: float = 0.0
    left: float = 0.0
    right: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.top == self.bottom == self.left == self.right == 0


class ImageGeometry(BaseModel):
    """How one original image maps onto the model input and the LLM image-token grid.

    ``resized_size`` is the content after resizing (before padding); ``input_size`` is the
    tensor the vision tower sees; ``token_grid`` is (rows, cols) of LLM image tokens, in the
    order given by the spec's ``token_order``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    original_size: Size
    resized_size: Size
    input_size: Size
    padding: Padding = Field(default_factory=Padding)
    token_grid: Size
    temporal: int = 1
    patch_grid: Size | None = None
    """(rows, cols) of vision patches before any spatial merge, where the backbone has one."""

    @model_validator(mode="after")
    def _check(self) -> ImageGeometry:
        for name in ("original_size", "resized_size", "input_size", "token_grid"):
            h, w = getattr(self, name)
            if h <= 0 or w <= 0:
                raise ValueError(f"{name} must be positive, got {(h, w)}")
        ih, iw = self.input_size
        p = self.padding
        if abs(p.top + p.bottom + self.content_height - ih) > 1e-6 * ih:
            raise ValueError(f"padding {p} and content do not add up to input height {ih}")
        if abs(p.left + p.right + self.content_width - iw) > 1e-6 * iw:
            raise ValueError(f"padding {p} and content do not add up to input width {iw}")
        return self

    # --- derived sizes -------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        """LLM image tokens this image occupies in the sequence."""
        return self.temporal * self.token_grid[0] * self.token_grid[1]

    @property
    def content_height(self) -> float:
        """Height of the image content on the input, in input pixels."""
        return self.input_size[0] - self.padding.top - self.padding.bottom

    @property
    def content_width(self) -> float:
        return self.input_size[1] - self.padding.left - self.padding.right

    @property
    def pixels_per_token(self) -> tuple[float, float]:
        """Input pixels covered by one LLM image token, (height, width)."""
        return self.input_size[0] / self.token_grid[0], self.input_size[1] / self.token_grid[1]

    @property
    def content_box_tokens(self) -> tuple[float, float, float, float]:
        """(top, bottom, left, right) of the image content in token-grid units (fractional)."""
        ph, pw = self.pixels_per_token
        p = self.padding
        return (
            p.top / ph,
            (self.input_size[0] - p.bottom) / ph,
            p.left / pw,
            (self.input_size[1] - p.right) / pw,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready sizes, padding, token grid and token count (what the CLI prints)."""
        return {
            "original_size": list(self.original_size),
            "resized_size": list(self.resized_size),
            "input_size": list(self.input_size),
            "padding": self.padding.model_dump(),
            "token_grid": list(self.token_grid),
            "num_image_tokens": self.num_image_tokens,
        }

    def to_meta_data(self) -> dict[str, Any]:
        """The per-image ``meta_data`` dict F-LMM style datasets use, for drop-in interop."""
        oh, ow = self.original_size
        p = self.padding
        return {
            "original_shape": {"height": oh, "width": ow},
            "image_shape": {"height": self.content_height, "width": self.content_width},
            "padded_shape": {"height": self.input_size[0], "width": self.input_size[1]},
            "padding": {
                "before_height": p.top,
                "after_height": p.bottom,
                "before_width": p.left,
                "after_width": p.right,
            },
            "scale_factor": (self.content_height / oh, self.content_width / ow),
        }

    # --- tensor mapping ------------------------------------------------------------------
    def to_image(
        self, maps: torch.Tensor, mode: Literal["bilinear", "nearest", "bicubic"] = "bilinear"
    ) -> torch.Tensor:
        """Map ``[..., rows, cols]`` on the token grid onto the original image ``[..., H, W]``.

        The inverse of preprocessing, so a map lines up with the pixels the user handed over:
        ``bilinear`` samples the content box (padding cropped exactly, also where it is
        fractional) straight at the original resolution; other modes upsample to the input,
        crop the padding rounded to whole input pixels, and resize.
        """
        import torch
        import torch.nn.functional as F

        rows, cols = self.token_grid
        if tuple(maps.shape[-2:]) != (rows, cols):
            from .errors import ImageShapeError

            raise ImageShapeError(
                "map is not on this image's token grid",
                found=tuple(maps.shape),
                expected=f"[..., {rows}, {cols}]",
                fix="reshape the image-token axis with the adapter's tokens_to_grid first",
            )
        lead = maps.shape[:-2]
        x = maps.reshape(-1, 1, rows, cols).float()
        if mode == "bilinear":
            # One exact bilinear sampling of the content box (fractional padding included) at the
            # original resolution; same sample points as F.interpolate(align_corners=False).
            from torchvision.ops import roi_align

            top, bottom, left, right = self.content_box_tokens
            box = torch.tensor([left, top, right, bottom], dtype=x.dtype, device=x.device)
            index = torch.arange(x.shape[0], dtype=x.dtype, device=x.device)[:, None]
            boxes = torch.cat([index, box.expand(x.shape[0], 4)], dim=1)
            out = roi_align(x, boxes, output_size=self.original_size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
            return out.reshape(*lead, *self.original_size).to(maps.dtype)
        kw: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
        x = F.interpolate(x, size=self.input_size, mode=mode, **kw)
        p = self.padding
        top_px, left_px = round(p.top), round(p.left)
        bottom_px = self.input_size[0] - round(p.bottom)
        right_px = self.input_size[1] - round(p.right)
        x = x[..., top_px:bottom_px, left_px:right_px]
        x = F.interpolate(x, size=self.original_size, mode=mode, **kw)
        return x.reshape(*lead, *self.original_size).to(maps.dtype)

    def to_token_grid(self, mask: torch.Tensor) -> torch.Tensor:
        """Bring ``[..., H, W]`` on the original image onto the token grid ``[..., rows, cols]``.

        Each output cell is the mean of the mask over the input pixels that token sees (padding
        counts as 0), i.e. the fraction of the token covered for a binary mask.
        """
        import torch.nn.functional as F

        if tuple(mask.shape[-2:]) != self.original_size:
            from .errors import ImageShapeError

            raise ImageShapeError(
                "mask does not have the original image size",
                found=tuple(mask.shape),
                expected=f"[..., {self.original_size[0]}, {self.original_size[1]}]",
                fix="pass a mask of the image as it was handed to prepare()/normalize()",
            )
        lead = mask.shape[:-2]
        x = mask.reshape(-1, 1, *self.original_size).float()
        p = self.padding
        top, left = round(p.top), round(p.left)
        ch = self.input_size[0] - top - round(p.bottom)
        cw = self.input_size[1] - left - round(p.right)
        x = F.interpolate(x, size=(ch, cw), mode="bilinear", align_corners=False)
        x = F.pad(x, (left, self.input_size[1] - left - cw, top, self.input_size[0] - top - ch))
        x = F.adaptive_avg_pool2d(x, self.token_grid)
        return x.reshape(*lead, *self.token_grid)
