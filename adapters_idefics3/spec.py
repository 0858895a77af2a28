"""The ``idefics3_split`` spec kind and how it is read from an Idefics3 or SmolVLM checkpoint.

An image's longest edge is resized to ``longest_edge``, the result stretched up to whole
sub-images (see :mod:`.splitting`), and cut into ``rows x cols`` square sub-images plus a global
view (the whole image stretched to one sub-image). Each sub-image is its own run of image
tokens: the prompt puts a ``<fake_token_around_image>`` and a ``<row_i_col_j>`` marker before
it, a newline after each row of sub-images, and the global view last, between
``<fake_token_around_image><global-img>`` and ``<fake_token_around_image>``. An image that fits
one sub-image is the global view alone.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import NonNegativeInt, ValidationError, model_validator
from transformers import PretrainedConfig
from transformers.models.idefics3 import image_processing_idefics3
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import SpecError
from vlm_adapters.geometry import Box, ImageGeometry, Size, View
from vlm_adapters.spec import PositiveInt, SpecBase

from .splitting import Split, split

ROW_COL_MARKER = "<row_{row}_col_{col}>"
"""How both stock processors spell the marker before sub-image (row, col), 1-based."""


class Idefics3SplitSpec(SpecBase):
    """Square sub-images plus a global view, each its own run of image tokens between text markers."""

    kind: Literal["idefics3_split"] = "idefics3_split"
    tile_size: PositiveInt
    """Side of one sub-image: the vision tower's input."""
    patch_size: PositiveInt
    scale_factor: PositiveInt
    """Pixel-shuffle factor: ``scale_factor x scale_factor`` patches become one LLM token."""
    longest_edge: PositiveInt
    """The longest edge after the first resize."""
    max_side: PositiveInt
    """The processor's absolute cap on both sides after the first resize."""
    splitting: bool = True
    """The processor's ``do_image_splitting``: without it every image is the global view alone."""
    fake_image_token_id: int
    global_image_token_id: int
    """Id of the global view's marker (its last token, where the tag is several)."""
    global_tag_tokens: PositiveInt = 1
    row_col_tokens: PositiveInt = 1
    """Tokens per ``<row_i_col_j>`` marker (one for every marker a checkpoint can need)."""
    newline_tokens: NonNegativeInt = 1
    """Tokens of the ``\\n`` that ends each row of sub-images."""
    double_newline_tokens: NonNegativeInt = 1
    """Tokens of the ``\\n\\n`` between the last row and the global view (one where the tokenizer merges it)."""

    @model_validator(mode="after")
    def _check(self) -> Idefics3SplitSpec:
        patches, rest = divmod(self.tile_size, self.patch_size)
        if rest or patches % self.scale_factor:
            raise ValueError(
                f"tile_size {self.tile_size} is not a whole number of {self.patch_size} px patches "
                f"shuffled by {self.scale_factor}"
            )
        return self

    @property
    def tile_token_grid(self) -> Size:
        side = self.tile_size // self.patch_size // self.scale_factor
        return side, side

    @property
    def tokens_per_view(self) -> int:
        rows, cols = self.tile_token_grid
        return rows * cols

    @property
    def max_grid(self) -> int:
        """Most sub-images along one side any image can get."""
        return math.ceil(min(self.longest_edge, self.max_side) / self.tile_size)

    def split(self, image_size: Size) -> Split:
        """The processor's sizes for an image of ``image_size``; ``rows == cols == 0`` when unsplit."""
        h, w = self.check_size(image_size)
        if not self.splitting:
            return Split((h, w), (self.tile_size, self.tile_size), 0, 0)
        return split((h, w), self.tile_size, self.longest_edge, self.max_side)

    def grid_of(self, geometry: ImageGeometry) -> Size:
        """(rows, cols) of sub-images of a geometry of this spec (``(0, 0)``: not split)."""
        tiles = geometry.views[:-1]
        if not tiles:
            return 0, 0
        cols = sum(1 for v in tiles if v.box.top == tiles[0].box.top)
        return len(tiles) // cols, cols

    def candidate_grids(self, num_tiles: int) -> list[Size]:
        """Every split into ``num_tiles`` sub-images the processor can make: the longest side of the
        canvas always has :attr:`max_grid` sub-images (``(0, 0)`` for an unsplit image)."""
        if num_tiles == 0:
            return [(0, 0)] if self.max_grid == 1 or not self.splitting else []
        return [
            (r, num_tiles // r)
            for r in range(1, num_tiles + 1)
            if num_tiles % r == 0 and max(r, num_tiles // r) == self.max_grid
        ]

    def geometry(self, image_size: Size) -> ImageGeometry:
        h, w = self.check_size(image_size)
        s = self.split((h, w))
        return self.geometry_for_grid((h, w), (s.rows, s.cols))

    def extra_tokens(self, grid: Size) -> int:
        """Marker and newline tokens the prompt puts around an image cut into ``grid`` sub-images."""
        rows, cols = grid
        around_global = 2 + self.global_tag_tokens  # <fake><global-img> ... <fake>
        if rows * cols == 0:
            return around_global
        per_tile = 1 + self.row_col_tokens  # <fake><row_i_col_j>
        return rows * cols * per_tile + (rows - 1) * self.newline_tokens + self.double_newline_tokens + around_global

    def geometry_for_grid(self, original_size: Size, grid: Size) -> ImageGeometry:
        """The views of an image of ``original_size`` cut into ``grid = (rows, cols)`` sub-images
        (``(0, 0)``: not split)."""
        h, w = original_size
        rows, cols = grid
        t = self.tile_size
        n = self.tokens_per_view
        patch_grid = (t // self.patch_size, t // self.patch_size)

        def view(name: str, index: int, box: Box) -> View:
            return View(
                name=name,
                token_grid=self.tile_token_grid,
                offset=index * n,
                input_size=(t, t),
                box=box,
                run=index,
                patch_grid=patch_grid,
            )

        # the canvas is rows*t x cols*t, a stretch of the whole image, so sub-image (r, c) shows
        # the (r, c) cell of a rows x cols division of the original
        views = [
            view(
                f"tile_{r}_{c}",
                r * cols + c,
                Box(top=r * h / rows, left=c * w / cols, bottom=(r + 1) * h / rows, right=(c + 1) * w / cols),
            )
            for r in range(rows)
            for c in range(cols)
        ]
        views.append(view("global", rows * cols, Box.whole((h, w))))
        return ImageGeometry(original_size=(h, w), views=tuple(views), extra_tokens=self.extra_tokens(grid))


def _agree(what: str, from_config: Any, from_processor: Any) -> None:
    if from_config != from_processor:
        raise SpecError(
            f"{what} differs between config ({from_config}) and processor ({from_processor}); the stock model "
            "would reject the processor's output. Fix: load config and processor from the same checkpoint."
        )


def _side(value: Any, what: str) -> int:
    try:
        return int(value["longest_edge"])
    except (KeyError, TypeError, ValueError):
        raise SpecError(
            f"{what} has no longest_edge: {value!r}. Fix: keep the checkpoint's {{'longest_edge': N}} setting."
        ) from None


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _ids(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def build_idefics3_spec(config: PretrainedConfig, processor: ProcessorMixin) -> Idefics3SplitSpec:
    """The spec of an ``idefics3`` or ``smolvlm`` checkpoint: every number from config and stock processor."""
    proc: Any = processor
    ip = proc.image_processor
    tok = proc.tokenizer
    vision = config.vision_config
    images_kwargs = proc._merge_kwargs()["images_kwargs"]  # the processor's call-time defaults
    tile = _side(images_kwargs.get("max_image_size", ip.max_image_size), "image_processor.max_image_size")
    _agree("sub-image size", int(vision.image_size), tile)
    patch, scale = int(vision.patch_size), int(config.scale_factor)
    side = tile // patch // scale
    _agree("image tokens per sub-image", side * side, int(proc.image_seq_len))
    _agree("image_token_id", int(config.image_token_id), int(proc.image_token_id))
    if not images_kwargs.get("do_resize", ip.do_resize):
        raise SpecError("the image processor has do_resize off; its sizes are then unbounded. Fix: do_resize=True.")
    longest = _side(images_kwargs.get("size", ip.size), "image_processor.size")
    global_tag = str(getattr(proc, "global_image_token", None) or proc.global_image_tag)
    fake = str(proc.fake_image_token)
    fake_ids = _ids(tok, fake)
    if len(fake_ids) != 1:
        raise SpecError(f"{fake!r} is not one token of this tokenizer. Fix: use the checkpoint's own tokenizer.")
    max_side = int(image_processing_idefics3.MAX_IMAGE_SIZE)
    max_grid = math.ceil(min(longest, max_side) / tile)
    markers = {
        _count(tok, ROW_COL_MARKER.format(row=r, col=c)) for r in range(1, max_grid + 1) for c in range(1, max_grid + 1)
    }
    if len(markers) != 1:
        raise SpecError(
            f"the <row_i_col_j> markers up to {max_grid}x{max_grid} are not all the same number of tokens "
            f"({sorted(markers)}). Fix: use the checkpoint's own tokenizer, which has them as special tokens."
        )
    try:
        return Idefics3SplitSpec(
            image_token_id=int(config.image_token_id),
            image_token=str(proc.image_token),
            image_mean=tuple(float(v) for v in ip.image_mean),  # type: ignore[arg-type]
            image_std=tuple(float(v) for v in ip.image_std),  # type: ignore[arg-type]
            tile_size=tile,
            patch_size=patch,
            scale_factor=scale,
            longest_edge=longest,
            max_side=max_side,
            splitting=bool(images_kwargs.get("do_image_splitting", ip.do_image_splitting)),
            fake_image_token_id=fake_ids[0],
            global_image_token_id=_ids(tok, global_tag)[-1],
            global_tag_tokens=_count(tok, global_tag),
            row_col_tokens=markers.pop(),
            newline_tokens=_count(tok, "\n"),
            double_newline_tokens=_count(tok, "\n\n"),
        )
    except ValidationError as exc:
        raise SpecError(f"this checkpoint does not describe a valid Idefics3 splitting: {exc}") from exc
