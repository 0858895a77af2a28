"""The two spec kinds this package adds: ``anyres`` (LLaVA-NeXT, LLaVA-OneVision) and
``center_crop`` (resize the shortest edge, then centre-crop: CLIP's default, LLaVA-1.5 without
padding). LLaVA-1.5 with padding is the core ``fixed`` kind.

Both are pure functions of the image size; :mod:`adapters_llava.build` reads them from a
config and processor.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlm_adapters.geometry import Box, ImageGeometry, Padding, Size, View
from vlm_adapters.spec import Color, PositiveInt, SpecBase

from .layout import (
    Shown,
    best_canvas,
    content_on_canvas,
    crop_start,
    downsampled_grid,
    feature_to_tile_pixels,
    shortest_edge_resize,
    shown,
    tile_to_feature_pixels,
    unpadded_window,
)


def _view(name: str, grid: Size, input_size: Size, y: Shown, x: Shown, **fields: object) -> View:
    return View(
        name=name,
        token_grid=grid,
        input_size=input_size,
        padding=Padding(top=y.pad_before, bottom=y.pad_after, left=x.pad_before, right=x.pad_after),
        box=Box(top=y.box_start, left=x.box_start, bottom=y.box_end, right=x.box_end),
        **fields,  # type: ignore[arg-type]
    )


class AnyresSpec(SpecBase):
    """A base view of the whole image, then a high-resolution view tiled from a grid pinpoint.

    The processor stretches the image to one ``tile_size`` square (the base view) and also
    resizes it into the best-fitting pinpoint canvas, centred with padding, cut into
    ``tile_size`` tiles. The model drops the padded feature rows (or columns) again, appends
    a learned newline feature after every remaining row, and (OneVision, ``max_tiles``)
    bilinearly shrinks a grid bigger than ``max_tiles`` tiles. The token sequence is the base
    grid, then the high-resolution rows each followed by its newline.

    A tower with patch ``patch_size`` sees only ``(tile_size // patch_size) * patch_size``
    pixels of each tile (378 of SigLIP's 384): views are laid out in that frame, so the base
    view is exact, and the high-resolution view is exact at its edges and within the uncovered
    strips' width (6 px of 384) inside.
    """

    kind: Literal["anyres"] = "anyres"
    tile_size: PositiveInt
    """Side of the base view and of each tile, in pixels (the vision tower's ``image_size``)."""
    patch_size: PositiveInt
    grid_pinpoints: tuple[tuple[PositiveInt, PositiveInt], ...] = Field(min_length=1)
    """Canvas sizes ``(height, width)`` the high-resolution view picks from, multiples of ``tile_size``."""
    row_separators: int = Field(default=1, ge=0)
    """Newline features after each high-resolution row (the model's ``image_newline``)."""
    max_tiles: PositiveInt | None = None
    """OneVision's ``anyres_max_N``: high-resolution features beyond N tiles are downsampled."""
    downsample_threshold: float = 1.1
    """Downsampling starts when the grid exceeds ``max_tiles`` by this factor per side."""
    background_color: Color | None = None
    """Padding colour of the one-view layout OneVision uses for the images of multi-image samples."""
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    vision_feature_layer: int | tuple[int, ...] = -2

    @model_validator(mode="after")
    def _check(self) -> AnyresSpec:
        if self.tile_size < self.patch_size:
            raise ValueError(f"tile_size {self.tile_size} is smaller than patch_size {self.patch_size}")
        odd = [p for p in self.grid_pinpoints if p[0] % self.tile_size or p[1] % self.tile_size]
        if odd:
            raise ValueError(f"grid pinpoints {odd} are not whole tiles of {self.tile_size} px")
        return self

    @property
    def tile_grid(self) -> int:
        """Features per tile side."""
        return self.tile_size // self.patch_size

    @property
    def covered(self) -> int:
        """Pixels of each tile side the features cover."""
        return self.tile_grid * self.patch_size

    def num_tiles(self, image_size: Size) -> int:
        """Tower inputs of an image: the base view plus one per canvas tile."""
        canvas = best_canvas(image_size, [list(pin) for pin in self.grid_pinpoints])
        return 1 + (canvas[0] // self.tile_size) * (canvas[1] // self.tile_size)

    def tiles_of(self, geometry: ImageGeometry) -> int:
        """Tower inputs of an image laid out by :meth:`geometry` (base + canvas tiles) or by
        :meth:`single_view_geometry` (one)."""
        return self.num_tiles(geometry.original_size) if geometry.views[0].name == "base" else 1

    def base_view(self, image_size: Size) -> View:
        """The whole image stretched to one tile; the features cover its first ``covered`` pixels."""
        h, w = image_size
        g, t, c = self.tile_grid, self.tile_size, self.covered
        return _view(
            "base",
            (g, g),
            (c, c),
            shown((0, t), (0, c), h),
            shown((0, t), (0, c), w),
            resized_size=(t, t),
        )

    def high_res_view(self, image_size: Size, offset: int) -> tuple[View | None, int]:
        """The unpadded (and maybe downsampled) canvas features, and its token count.

        Input pixels are in the covered frame. An image so thin that unpadding keeps no column
        (a tall sliver on a wide canvas, which the pinpoint choice gives tiny images) leaves the
        newline features alone, one per row, with no cell: no view, but tokens. Keeping no row
        leaves nothing at all.
        """
        h, w = image_size
        g, t, c, p = self.tile_grid, self.tile_size, self.covered, self.patch_size
        canvas = best_canvas((h, w), [list(pin) for pin in self.grid_pinpoints])
        top, left, nh, nw = content_on_canvas((h, w), canvas)
        r0, r1, c0, c1 = unpadded_window((h, w), canvas[0] // t * g, canvas[1] // t * g)
        grid = downsampled_grid(r1 - r0, c1 - c0, g, self.max_tiles, self.downsample_threshold)
        if min(grid) == 0:
            return None, grid[0] * self.row_separators

        def axis(start: int, length: int, original: int, w0: int, w1: int) -> Shown:
            # padding in the covered frame (the view's input pixels); box from exact canvas edges
            pads = shown(
                (tile_to_feature_pixels(start, t, c), tile_to_feature_pixels(start + length, t, c)),
                (w0 * p, w1 * p),
                original,
            )
            edges = (feature_to_tile_pixels(w0 * p, t, c), feature_to_tile_pixels(w1 * p, t, c, end=True))
            box = shown((start, start + length), edges, original)
            return pads._replace(box_start=box.box_start, box_end=box.box_end)

        view = _view(
            "high_res",
            grid,
            ((r1 - r0) * p, (c1 - c0) * p),
            axis(top, nh, h, r0, r1),
            axis(left, nw, w, c0, c1),
            offset=offset,
            row_separators=self.row_separators,
            resized_size=(nh, nw),
        )
        return view, view.num_tokens

    def geometry(self, image_size: Size) -> ImageGeometry:
        h, w = self.check_size(image_size)
        base = self.base_view((h, w))
        high, tokens = self.high_res_view((h, w), base.num_tokens)
        views = (base,) if high is None else (base, high)
        return ImageGeometry(original_size=(h, w), views=views, span_length=base.num_tokens + tokens)

    def single_view_geometry(self, image_size: Size) -> ImageGeometry:
        """OneVision's layout for each image of a multi-image sample: the image padded to a centred
        square, resized to one tile, its features, then one newline feature."""
        h, w = self.check_size(image_size)
        g, t, c = self.tile_grid, self.tile_size, self.covered
        side = max(h, w)
        scale = t / side
        top, left = (side - h) // 2, (side - w) // 2
        view = _view(
            "image",
            (g, g),
            (c, c),
            shown((top * scale, (top + h) * scale), (0, c), h),
            shown((left * scale, (left + w) * scale), (0, c), w),
            resized_size=(round(h * scale), round(w * scale)),
        )
        return ImageGeometry(original_size=(h, w), views=(view,), span_length=view.num_tokens + self.row_separators)


class CenterCropSpec(SpecBase):
    """Resize the shortest edge to ``shortest_edge``, then cut a centred ``crop_size``.

    One view; the parts of the image the crop cuts away are shown by no view
    (``geometry.coverage()`` is 0 there and maps are 0 there).
    """

    kind: Literal["center_crop"] = "center_crop"
    shortest_edge: PositiveInt
    crop_size: tuple[PositiveInt, PositiveInt]
    patch_size: PositiveInt

    @property
    def image_size(self) -> Size:
        """The tower input: the crop."""
        return self.crop_size

    @property
    def token_grid(self) -> Size:
        return self.crop_size[0] // self.patch_size, self.crop_size[1] // self.patch_size

    @property
    def num_image_tokens(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def geometry(self, image_size: Size) -> ImageGeometry:
        h, w = self.check_size(image_size)
        rh, rw = shortest_edge_resize((h, w), self.shortest_edge)
        (ch, cw), (rows, cols), p = self.crop_size, self.token_grid, self.patch_size
        y0, x0 = crop_start(rh, ch), crop_start(rw, cw)
        view = _view(
            "image",
            (rows, cols),
            (rows * p, cols * p),
            shown((y0, y0 + rh), (0, rows * p), h),
            shown((x0, x0 + rw), (0, cols * p), w),
            resized_size=(rh, rw),
        )
        return ImageGeometry(original_size=(h, w), views=(view,))
