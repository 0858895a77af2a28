"""``ImageGeometry``: where an original image ends up on the model's input and in the token sequence.

An image is a layout of one or more **views**: a plain resize is one view; anyres
tiling is a base view plus a high-resolution view; tiling schemes are tiles plus a thumbnail;
pan-and-scan crops are views in runs of their own. Each view is a token grid that shows one box
of the original image, so every downstream step (image-token positions, tokens <-> grid, maps
back onto pixels) works per view, and nothing needs to know the backbone.

Everything here is a pure function of sizes. The tensor work (maps <-> pixels) is in
:mod:`vlm_adapters.mapping`; the methods here delegate to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import ImageShapeError, VisionInputError

if TYPE_CHECKING:
    import torch

Size = tuple[int, int]
"""(height, width) in pixels, always height first."""

Interpolation = Literal["bilinear", "nearest", "bicubic"]


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


class Box(BaseModel):
    """A rectangle of the original image, in original pixels (edges may be fractional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top: float
    left: float
    bottom: float
    right: float

    @model_validator(mode="after")
    def _check(self) -> Box:
        if not (self.bottom > self.top and self.right > self.left):
            raise ValueError(f"box {self} is empty")
        return self

    @classmethod
    def whole(cls, size: Size) -> Box:
        return cls(top=0.0, left=0.0, bottom=float(size[0]), right=float(size[1]))

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def width(self) -> float:
        return self.right - self.left


class View(BaseModel):
    """One token grid of an image: which tokens it owns and which part of the image it shows.

    The grid's ``rows x cols`` cells span ``input_size`` input pixels; inside them, ``padding``
    is background and the rest (the content) shows ``box`` of the original image. Its tokens
    start at ``offset`` within the image's span (the image's tokens that carry the image token
    id, in sequence order), ``row_separators`` extra tokens end each row (a newline feature, part
    of the span but of no cell), and ``run`` says which contiguous run of the image's tokens holds
    it. Tokens are in raster order over ``(temporal,) rows, cols``.

    ``input_size`` is what the grid spans, which may be less than the pixels the processor makes
    for the view: when the patches do not divide a view's side, the patch convolution drops the
    last rows and columns, so ``input_size`` is the covered top-left part and ``box`` is the part
    of the image it shows. The strip beyond is in no box, so maps leave it out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "image"
    token_grid: Size
    offset: int = Field(default=0, ge=0)
    row_separators: int = Field(default=0, ge=0)
    input_size: Size
    padding: Padding = Field(default_factory=Padding)
    box: Box
    run: int = Field(default=0, ge=0)
    temporal: int = Field(default=1, ge=1)
    patch_grid: Size | None = None
    """(rows, cols) of vision patches before any spatial merge, where the backbone has one."""
    resized_size: Size | None = None
    """The content after the resize and before padding, at the resolution the processor padded at."""

    @model_validator(mode="after")
    def _check(self) -> View:
        for name in ("input_size", "token_grid"):
            h, w = getattr(self, name)
            if h <= 0 or w <= 0:
                raise ValueError(f"view {self.name!r}: {name} must be positive, got {(h, w)}")
        if self.content_height <= 0 or self.content_width <= 0:
            raise ValueError(f"view {self.name!r}: padding {self.padding} leaves no content in {self.input_size}")
        p = self.padding
        if min(p.top, p.bottom, p.left, p.right) < 0:
            raise ValueError(f"view {self.name!r}: padding must not be negative, got {p}")
        return self

    # --- tokens ----------------------------------------------------------------------------
    @property
    def num_cells(self) -> int:
        """Grid cells (tokens that carry a place in the image)."""
        return self.temporal * self.token_grid[0] * self.token_grid[1]

    @property
    def num_tokens(self) -> int:
        """Tokens of the view in the sequence: cells plus row separators."""
        return self.temporal * self.token_grid[0] * (self.token_grid[1] + self.row_separators)

    @property
    def end(self) -> int:
        return self.offset + self.num_tokens

    # --- pixels ----------------------------------------------------------------------------
    @property
    def content_height(self) -> float:
        return self.input_size[0] - self.padding.top - self.padding.bottom

    @property
    def content_width(self) -> float:
        return self.input_size[1] - self.padding.left - self.padding.right

    @property
    def pixels_per_token(self) -> tuple[float, float]:
        """Input pixels covered by one token, (height, width)."""
        return self.input_size[0] / self.token_grid[0], self.input_size[1] / self.token_grid[1]

    @property
    def content_box_tokens(self) -> tuple[float, float, float, float]:
        """(top, bottom, left, right) of the content in token-grid units (fractional)."""
        ph, pw = self.pixels_per_token
        p = self.padding
        return p.top / ph, (self.input_size[0] - p.bottom) / ph, p.left / pw, (self.input_size[1] - p.right) / pw

    @property
    def span(self) -> Box:
        """The rectangle of original-image coordinates that the whole grid spans (padding included,
        so it may reach beyond the image): the one affine map between the grid and the image."""
        sy = self.box.height / self.content_height
        sx = self.box.width / self.content_width
        p = self.padding
        return Box(
            top=self.box.top - p.top * sy,
            left=self.box.left - p.left * sx,
            bottom=self.box.bottom + p.bottom * sy,
            right=self.box.right + p.right * sx,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "token_grid": list(self.token_grid),
            "offset": self.offset,
            "num_tokens": self.num_tokens,
            "row_separators": self.row_separators,
            "run": self.run,
            "input_size": list(self.input_size),
            "padding": self.padding.model_dump(),
            "box": self.box.model_dump(),
        }


_LEGACY_KEYS = ("resized_size", "input_size", "padding", "token_grid", "temporal", "patch_grid")


class ImageGeometry(BaseModel):
    """How one original image maps onto the model input and its image tokens, view by view.

    ``views`` are in the order their tokens appear. ``span_length`` is the number of tokens with
    the image token id the image occupies (its views plus any separators between or after them;
    by default the end of the last view). ``extra_tokens`` counts the tokens a processor inserts
    around the image that carry no feature and another id (start/end tokens, row/column markers).

    A single-view geometry can be built the short way, ``ImageGeometry(original_size=...,
    input_size=..., padding=..., token_grid=...)``, and keeps the single-grid attributes
    (``token_grid``, ``padding``, ``input_size``, ...). On a multi-view geometry those raise a
    :class:`ViewError` that points at ``views``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    original_size: Size
    views: tuple[View, ...]
    span_length: int | None = None
    extra_tokens: int = Field(default=0, ge=0)

    @classmethod
    def single(
        cls,
        original_size: Size,
        *,
        input_size: Size,
        token_grid: Size,
        padding: Padding | None = None,
        resized_size: Size | None = None,
        temporal: int = 1,
        patch_grid: Size | None = None,
    ) -> ImageGeometry:
        """The one-view geometry of a plain resize (and padding) of the whole image."""
        view = View(
            token_grid=token_grid,
            input_size=input_size,
            padding=padding or Padding(),
            box=Box.whole(original_size),
            temporal=temporal,
            patch_grid=patch_grid,
            resized_size=resized_size,
        )
        return cls(original_size=original_size, views=(view,))

    @model_validator(mode="before")
    @classmethod
    def _single_view_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "views" in data or "token_grid" not in data:
            return data
        data = dict(data)
        legacy = {k: data.pop(k) for k in _LEGACY_KEYS if k in data}
        original = data["original_size"]
        legacy.setdefault("input_size", legacy.get("resized_size", original))
        legacy["box"] = Box.whole(tuple(original))  # type: ignore[arg-type]
        data["views"] = (View(**legacy),)
        return data

    @model_validator(mode="after")
    def _check(self) -> ImageGeometry:
        h, w = self.original_size
        if h <= 0 or w <= 0:
            raise ValueError(f"original_size must be positive, got {(h, w)}")
        if not self.views:
            raise ValueError("an image has at least one view")
        previous_end = 0
        for view in self.views:
            if view.offset < previous_end:
                raise ValueError(f"view {view.name!r} starts at {view.offset}, inside the view before it")
            previous_end = view.end
        if self.span_length is not None and self.span_length < previous_end:
            raise ValueError(f"span_length {self.span_length} is shorter than the views ({previous_end} tokens)")
        runs = [v.run for v in self.views]
        if runs != sorted(runs) or sorted(set(runs)) != list(range(len(set(runs)))):
            raise ValueError(f"view runs must be 0, 1, ... in view order, got {runs}")
        return self

    # --- tokens ----------------------------------------------------------------------------
    @property
    def num_views(self) -> int:
        return len(self.views)

    @property
    def is_single_view(self) -> bool:
        return len(self.views) == 1

    @property
    def num_image_tokens(self) -> int:
        """Tokens with the image token id this image occupies (views and separators)."""
        return self.span_length if self.span_length is not None else self.views[-1].end

    @property
    def num_prompt_tokens(self) -> int:
        """Every token the processor puts in the prompt for this image (image tokens + wrappers)."""
        return self.num_image_tokens + self.extra_tokens

    @property
    def runs(self) -> int:
        """Contiguous runs of image tokens the image occupies (text may sit between runs)."""
        return self.views[-1].run + 1

    @property
    def run_lengths(self) -> list[int]:
        """Image tokens per run: a run starts at its first view and ends where the next run starts."""
        starts = [0] + [min(v.offset for v in self.views if v.run == r) for r in range(1, self.runs)]
        ends = [*starts[1:], self.num_image_tokens]
        return [e - s for s, e in zip(starts, ends, strict=True)]

    # --- the single-view attributes --------------------------------------------------------
    @property
    def view(self) -> View:
        """The only view; a :class:`ViewError` when there are several."""
        if len(self.views) != 1:
            raise ViewError(
                "this image has several views, so it has no single token grid",
                found=f"{len(self.views)} views {[v.name for v in self.views]}",
                expected="one view",
                fix="work per view (geometry.views, adapter.tokens_to_views, FrozenOutput.view_attention) or "
                "on the fused map (geometry.to_image(list of per-view maps))",
            )
        return self.views[0]

    @property
    def token_grid(self) -> Size:
        return self.view.token_grid

    @property
    def input_size(self) -> Size:
        return self.view.input_size

    @property
    def padding(self) -> Padding:
        return self.view.padding

    @property
    def resized_size(self) -> Size:
        view = self.view
        if view.resized_size is not None:
            return view.resized_size
        return round(view.content_height), round(view.content_width)

    @property
    def temporal(self) -> int:
        return self.view.temporal

    @property
    def patch_grid(self) -> Size | None:
        return self.view.patch_grid

    @property
    def content_height(self) -> float:
        return self.view.content_height

    @property
    def content_width(self) -> float:
        return self.view.content_width

    @property
    def pixels_per_token(self) -> tuple[float, float]:
        return self.view.pixels_per_token

    @property
    def content_box_tokens(self) -> tuple[float, float, float, float]:
        return self.view.content_box_tokens

    # --- reports ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """JSON-ready sizes, views, token grid(s) and token count (what the CLI prints)."""
        out: dict[str, Any] = {"original_size": list(self.original_size)}
        if self.is_single_view:
            out.update(
                resized_size=list(self.resized_size),
                input_size=list(self.input_size),
                padding=self.padding.model_dump(),
                token_grid=list(self.token_grid),
            )
        out.update(
            num_image_tokens=self.num_image_tokens,
            num_views=self.num_views,
            runs=self.runs,
            extra_tokens=self.extra_tokens,
            views=[v.summary() for v in self.views],
        )
        return out

    def to_meta_data(self) -> dict[str, Any] | list[dict[str, Any]]:
        """F-LMM style ``meta_data`` for drop-in interop: one dict for a single view, one per view
        otherwise (each describing how its view's input maps onto the original image)."""
        metas = [_view_meta(self.original_size, v) for v in self.views]
        return metas[0] if self.is_single_view else metas

    # --- tensor mapping --------------------------------------------------------------------
    def to_image(
        self,
        maps: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...],
        mode: Interpolation = "bilinear",
        size: Size | None = None,
    ) -> torch.Tensor:
        """Maps on the token grid(s) onto the original image ``[..., H, W]``.

        One view: ``maps`` is ``[..., rows, cols]``. Several: a list with one map per view, fused
        by :func:`vlm_adapters.mapping.fuse_views` (each view placed through its box; where views
        overlap their values are averaged; pixels no view shows are 0). ``size`` samples the
        original image at another resolution (same field of view), to bound memory.
        """
        from .mapping import fuse_views

        per_view = [maps] if not isinstance(maps, (list, tuple)) else list(maps)
        return fuse_views(self, per_view, mode=mode, size=size)

    def view_to_image(
        self, maps: torch.Tensor, view: int = 0, mode: Interpolation = "bilinear", size: Size | None = None
    ) -> torch.Tensor:
        """One view's ``[..., rows, cols]`` on the original image; 0 outside the view's box."""
        from .mapping import view_to_image

        return view_to_image(self, maps, view, mode=mode, size=size)[0]

    def coverage(self, size: Size | None = None) -> torch.Tensor:
        """``[H, W]`` count of views that show each pixel of the original image."""
        from .mapping import coverage

        return coverage(self, size)

    def to_view_grids(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """A mask ``[..., H, W]`` on the original image onto each view's grid ``[..., rows, cols]``:
        each cell is the mean of the mask over the input pixels the token sees (padding counts 0)."""
        from .mapping import image_to_view

        return [image_to_view(self, mask, i) for i in range(len(self.views))]

    def to_token_grid(self, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`to_view_grids` for a single-view image."""
        from .mapping import image_to_view

        self.view  # noqa: B018  (the typed error for multi-view images)
        return image_to_view(self, mask, 0)


class ViewError(VisionInputError):
    """A single-grid question asked of a multi-view image, or maps that do not fit the views."""


def _view_meta(original: Size, view: View) -> dict[str, Any]:
    p = view.padding
    oh, ow = original
    return {
        "original_shape": {"height": oh, "width": ow},
        "image_shape": {"height": view.content_height, "width": view.content_width},
        "padded_shape": {"height": view.input_size[0], "width": view.input_size[1]},
        "padding": {"before_height": p.top, "after_height": p.bottom, "before_width": p.left, "after_width": p.right},
        "scale_factor": (view.content_height / view.box.height, view.content_width / view.box.width),
        "box": view.box.model_dump(),
    }


__all__ = ["Box", "ImageGeometry", "ImageShapeError", "Padding", "Size", "View", "ViewError"]
