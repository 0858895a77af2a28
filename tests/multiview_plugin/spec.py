"""``global_tiles``: a multi-view spec kind that only this test plugin knows.

An image becomes a **global view** (the whole image padded to a centred square and resized, as
LLaVA-1.5 does) followed by ``tile_grid`` **tiles** (the whole image stretched to ``rows x cols``
views and cut apart), every view a ``view_size`` square of ``token_grid`` tokens. Two token
layouts:

* ``row_separators=1``: one run; every tile row ends with a newline token that carries the
  image token id (a learned feature, like LLaVA-NeXT's ``image_newline``);
* ``markers=True``: every view is a run of its own, preceded by one marker token (text between
  runs, counted in ``extra_tokens``).

Pure geometry: sizes in, views out. The global view is the core ``fixed`` kind's
``pad_then_resize`` view, reused rather than re-derived.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from vlm_adapters.fixed_spec import FixedSpec
from vlm_adapters.geometry import Box, ImageGeometry, Size, View
from vlm_adapters.spec import Color, PositiveInt, SpecBase


class GlobalTilesSpec(SpecBase):
    """A global view plus ``tile_grid`` tiles, each ``view_size`` pixels and ``token_grid`` tokens."""

    kind: Literal["global_tiles"] = "global_tiles"
    view_size: PositiveInt
    """Side of every view's input square (the vision tower's input)."""
    patch_size: PositiveInt
    tile_grid: tuple[PositiveInt, PositiveInt]
    """(rows, cols) of tiles the stretched image is cut into."""
    row_separators: Annotated[int, Field(ge=0)] = 0
    """Newline tokens after each token row of a tile (image-token id, a learned feature)."""
    markers: bool = False
    """Every view is its own run of image tokens, after one marker token."""
    marker_token_id: int | None = None
    background_color: Color = (0, 0, 0)
    """RGB colour the global view is padded with."""

    @model_validator(mode="after")
    def _check(self) -> GlobalTilesSpec:
        if self.view_size % self.patch_size:
            raise ValueError(f"view_size {self.view_size} is not a multiple of patch_size {self.patch_size}")
        if self.markers and self.marker_token_id is None:
            raise ValueError("markers=True needs the marker_token_id")
        return self

    @property
    def views_per_image(self) -> int:
        return 1 + self.tile_grid[0] * self.tile_grid[1]

    @property
    def token_grid(self) -> Size:
        side = self.view_size // self.patch_size
        return side, side

    def geometry(self, image_size: Size) -> ImageGeometry:
        h, w = self.check_size(image_size)
        side = (self.view_size, self.view_size)
        whole = FixedSpec(
            image_token_id=self.image_token_id,
            image_size=side,
            patch_size=self.patch_size,
            token_grid=self.token_grid,
            resize_mode="pad_then_resize",
        ).geometry((h, w))
        views = [whole.view.model_copy(update={"name": "global"})]
        rows, cols = self.tile_grid
        for r in range(rows):
            for c in range(cols):
                tile = View(
                    name=f"tile_{r}_{c}",
                    token_grid=self.token_grid,
                    offset=views[-1].end,
                    row_separators=self.row_separators,
                    input_size=side,
                    box=Box(top=r * h / rows, left=c * w / cols, bottom=(r + 1) * h / rows, right=(c + 1) * w / cols),
                    run=len(views) if self.markers else 0,
                )
                views.append(tile)
        return ImageGeometry(original_size=(h, w), views=tuple(views), extra_tokens=len(views) if self.markers else 0)
