"""The ``internvl_tiles`` spec kind and how it is read from an InternVL checkpoint.

An image is resized (stretched) to the ``rows x cols`` canvas of tiles whose aspect ratio is
closest to its own, cut into ``tile_size`` tiles in raster order, and, when there is more than
one tile, followed by a thumbnail: the whole image stretched to one tile. Each tile's vision
features are pixel-shuffled into ``tile_token_grid`` tokens. All tiles of an image are one run of
image-context tokens between a start and an end token, tile after tile, the thumbnail last.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError, model_validator
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import SpecError
from vlm_adapters.geometry import Box, ImageGeometry, Size, View
from vlm_adapters.spec import PositiveInt, SpecBase

from .tiling import tile_grid

Pair = tuple[PositiveInt, PositiveInt]


class InternVLTileSpec(SpecBase):
    """Tiles chosen by aspect ratio plus a thumbnail, all in one run of image tokens."""

    kind: Literal["internvl_tiles"] = "internvl_tiles"
    tile_size: Pair
    """(height, width) of one tile: the vision tower's input."""
    patch_size: Pair
    tile_token_grid: Pair
    """(rows, cols) of LLM tokens per tile, after the pixel shuffle."""
    tiling: bool = True
    """The processor's ``crop_to_patches``: without it every image is one tile-sized view."""
    min_tiles: PositiveInt = 1
    max_tiles: PositiveInt = 1
    thumbnail: bool = True
    """Whether a multi-tile image gets the whole-image thumbnail after its tiles."""
    wrapper_tokens: int = 0
    """Tokens around each image's run that carry no feature (the start and end image tokens)."""

    @model_validator(mode="after")
    def _check(self) -> InternVLTileSpec:
        for axis in (0, 1):
            patches, rest = divmod(self.tile_size[axis], self.patch_size[axis])
            if rest or patches % self.tile_token_grid[axis]:
                raise ValueError(
                    f"tile_size {self.tile_size} is not a whole number of patches {self.patch_size} "
                    f"merged into a {self.tile_token_grid} token grid"
                )
        return self

    @property
    def tokens_per_tile(self) -> int:
        return self.tile_token_grid[0] * self.tile_token_grid[1]

    def tile_grid(self, image_size: Size) -> Size:
        """(rows, cols) of tiles the processor cuts an image of ``image_size`` into."""
        h, w = self.check_size(image_size)
        if not self.tiling:
            return 1, 1
        return tile_grid((h, w), self.tile_size, self.min_tiles, self.max_tiles)

    def geometry(self, image_size: Size) -> ImageGeometry:
        h, w = self.check_size(image_size)
        return self.geometry_for_grid((h, w), self.tile_grid((h, w)))

    def geometry_for_grid(self, original_size: Size, grid: Size) -> ImageGeometry:
        """The views of an image of ``original_size`` cut into ``grid = (rows, cols)`` tiles."""
        h, w = original_size
        rows, cols = grid
        patch_grid = (self.tile_size[0] // self.patch_size[0], self.tile_size[1] // self.patch_size[1])

        def view(name: str, index: int, box: Box) -> View:
            return View(
                name=name,
                token_grid=self.tile_token_grid,
                offset=index * self.tokens_per_tile,
                input_size=self.tile_size,
                box=box,
                patch_grid=patch_grid,
            )

        whole = Box.whole((h, w))
        if rows * cols == 1:
            views = [view("image", 0, whole)]
        else:
            views = [
                view(
                    f"tile_{r}_{c}",
                    r * cols + c,
                    Box(top=r * h / rows, left=c * w / cols, bottom=(r + 1) * h / rows, right=(c + 1) * w / cols),
                )
                for r in range(rows)
                for c in range(cols)
            ]
            if self.thumbnail:
                views.append(view("thumbnail", rows * cols, whole))
        return ImageGeometry(original_size=(h, w), views=tuple(views), extra_tokens=self.wrapper_tokens)


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    try:
        return int(value["height"]), int(value["width"])
    except (KeyError, TypeError, ValueError):
        raise SpecError(f"{what} is not a size: {value!r}") from None


def _agree(what: str, from_config: Any, from_processor: Any) -> None:
    if from_config != from_processor:
        raise SpecError(
            f"{what} differs between config ({from_config}) and processor ({from_processor}); the stock model "
            "would reject the processor's output. Fix: load config and processor from the same checkpoint."
        )


def _thumbnail(proc: Any, images_kwargs: dict[str, Any], tile: Size, lo: int, hi: int) -> bool:
    """Whether the processor adds a thumbnail: asked of its own tile count on an image that tiles."""
    for n in range(max(lo, 2), hi + 1):
        probe = (tile[0], n * tile[1])
        rows, cols = tile_grid(probe, tile, lo, hi)
        if rows * cols > 1:
            count = int(proc.image_processor.get_number_of_image_patches(*probe, images_kwargs))
            if count not in (rows * cols, rows * cols + 1):
                raise SpecError(
                    f"the image processor cuts a {probe} image into {count} tiles, neither the {rows}x{cols} grid "
                    "nor the grid plus a thumbnail. Fix: use the stock GotOcr2 image processor of the checkpoint."
                )
            return count == rows * cols + 1
    return False  # no image is ever cut into several tiles, so no thumbnail is ever added


def build_internvl_spec(config: PretrainedConfig, processor: ProcessorMixin) -> InternVLTileSpec:
    """The spec of an ``internvl`` checkpoint: every number from its config and stock processor."""
    proc: Any = processor
    ip = proc.image_processor
    vision = config.vision_config
    images_kwargs = proc._merge_kwargs()["images_kwargs"]  # the processor's call-time defaults
    tile = _pair(images_kwargs.get("size", ip.size), "image_processor.size")
    _agree("tile size", _pair(vision.image_size, "vision_config.image_size"), tile)
    patch = _pair(vision.patch_size, "vision_config.patch_size")
    ratio = float(config.downsample_ratio)
    grid = (round(tile[0] // patch[0] * ratio), round(tile[1] // patch[1] * ratio))
    _agree("image tokens per tile", int(config.image_seq_length), int(proc.image_seq_length))
    _agree("image tokens per tile (from the pixel shuffle)", grid[0] * grid[1], int(proc.image_seq_length))
    _agree("image_token_id", int(config.image_token_id), int(proc.image_token_id))
    if config.vision_feature_select_strategy != "default":
        raise SpecError(
            f"vision_feature_select_strategy is {config.vision_feature_select_strategy!r}: the pixel shuffle needs "
            "the square patch grid without the CLS token. Fix: use 'default', as the released checkpoints do."
        )
    if not ip.do_resize:
        raise SpecError("the image processor has do_resize off, so tiles are not tile-sized. Fix: do_resize=True.")
    tiling = bool(images_kwargs.get("crop_to_patches", ip.crop_to_patches))
    lo = int(images_kwargs.get("min_patches", ip.min_patches))
    hi = int(images_kwargs.get("max_patches", ip.max_patches))
    start, end = str(proc.start_image_token), str(proc.end_image_token)
    wrappers = len(proc.tokenizer(start + end, add_special_tokens=False)["input_ids"])
    try:
        return InternVLTileSpec(
            image_token_id=int(config.image_token_id),
            image_token=str(proc.image_token),
            vision_start_token_id=int(proc.start_image_token_id),
            vision_end_token_id=int(proc.end_image_token_id),
            image_mean=tuple(float(v) for v in ip.image_mean),  # type: ignore[arg-type]
            image_std=tuple(float(v) for v in ip.image_std),  # type: ignore[arg-type]
            tile_size=tile,
            patch_size=patch,
            tile_token_grid=grid,
            tiling=tiling,
            min_tiles=max(lo, 1),
            max_tiles=max(hi, 1),
            thumbnail=_thumbnail(proc, images_kwargs, tile, lo, hi) if tiling else False,
            wrapper_tokens=wrappers,
        )
    except ValidationError as exc:
        raise SpecError(f"this checkpoint does not describe a valid InternVL tiling: {exc}") from exc
