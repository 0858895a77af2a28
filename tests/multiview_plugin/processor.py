"""The synthetic family's processor: every image becomes a global view plus tiles.

Pixels come from the stock image processor (LLaVA's): once as it is configured (pad to a
centred square, resize, normalise) for the global view, once stretching the whole image to
``rows x cols`` views for the tiles, which are then cut apart. The prompt expansion is counted
from the pixels it produced (one ``<image>`` per patch of each view, as LLaVA's processor
counts), with the layout's extras: a newline ``<image>`` per tile row, or a marker before
each view. Nothing here asks the spec; the contract kit compares the two.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from einops import rearrange
from transformers import AutoProcessor
from transformers.image_utils import make_flat_list_of_images
from transformers.processing_utils import ProcessorMixin

from .model import TiledLlavaConfig

Layout = Literal["newline", "markers"]


class TiledLlavaProcessor(ProcessorMixin):
    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        tile_grid: tuple[int, int] | list[int] = (2, 2),
        layout: Layout = "newline",
        patch_size: int = 14,
        chat_template: str | None = None,
        image_token: str = "<image>",
        view_marker: str = "<view>",
        **kwargs: Any,
    ) -> None:
        self.tile_grid = tuple(tile_grid)
        self.layout = layout
        self.patch_size = patch_size
        self.image_token = image_token
        self.view_marker = view_marker
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def views(self, images: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """``pixel_values`` ``[images * views, 3, S, S]``: each image's global view, then its tiles
        in raster order."""
        images = make_flat_list_of_images(images)
        kwargs = {**kwargs, "return_tensors": "pt"}
        whole = self.image_processor(images, **kwargs)["pixel_values"]
        rows, cols = self.tile_grid
        side_h, side_w = whole.shape[-2:]
        stretch = {"do_pad": False, "do_center_crop": False, "size": {"height": rows * side_h, "width": cols * side_w}}
        canvas = self.image_processor(images, **{**kwargs, **stretch})["pixel_values"]
        tiles = rearrange(canvas, "n ch (r h) (c w) -> n (r c) ch h w", r=rows, c=cols)
        return {"pixel_values": torch.cat([whole[:, None], tiles], dim=1).flatten(0, 1)}

    def _process_images(self, images: Any, **kwargs: Any) -> tuple[dict[str, torch.Tensor], list[str]]:
        """The views, and each image's expansion of the placeholder (counted from the views' pixels)."""
        out = self.views(images, **kwargs)
        pixels = out["pixel_values"]
        side_h, side_w = pixels.shape[-2:]
        expansion = self._expansion(side_h // self.patch_size, side_w // self.patch_size)
        return out, [expansion] * (pixels.shape[0] // (1 + self.tile_grid[0] * self.tile_grid[1]))

    def _expansion(self, grid_h: int, grid_w: int) -> str:
        cells = self.image_token * (grid_h * grid_w)
        tiles = self.tile_grid[0] * self.tile_grid[1]
        if self.layout == "newline":
            return cells + self.image_token * (grid_h * (grid_w + 1)) * tiles
        return (self.view_marker + cells) * (1 + tiles)


AutoProcessor.register(TiledLlavaConfig, TiledLlavaProcessor, exist_ok=True)
