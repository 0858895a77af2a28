"""The synthetic family's model: stock LLaVA, plus a learned newline feature after each tile row.

``TiledLlavaConfig`` is ``LlavaConfig`` with the tile layout (``tile_grid``, ``tile_newlines``).
The model is the stock ``LlavaForConditionalGeneration`` except for one override: with
``tile_newlines``, ``get_image_features`` appends ``image_newline`` to every token row of every
tile (as LLaVA-NeXT does on its high-resolution grid), so the stock ``masked_scatter`` fills
every image-token position, newlines included, in order. Without it the model is exactly stock
LLaVA, each view's features scattered in order into its own run.

Registered with the transformers auto classes, so the core's ``from_pretrained`` and
``load_model`` work on saved checkpoints unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForImageTextToText, LlavaConfig, LlavaForConditionalGeneration
from transformers.models.llava.modeling_llava import LlavaModel, LlavaPreTrainedModel

MODEL_TYPE = "tiled_llava"


@strict
class TiledLlavaConfig(LlavaConfig):
    model_type = MODEL_TYPE

    tile_grid: list[int] | tuple[int, int] = (2, 2)
    """(rows, cols) of tiles after the global view."""
    tile_newlines: bool = False
    """Append a learned newline feature to every token row of every tile."""

    @property
    def views_per_image(self) -> int:
        rows, cols = self.tile_grid
        return 1 + rows * cols


class TiledLlavaModel(LlavaModel):
    config_class = TiledLlavaConfig
    config: TiledLlavaConfig

    def __init__(self, config: TiledLlavaConfig) -> None:
        super().__init__(config)
        if config.tile_newlines:
            hidden = _text(config).hidden_size
            self.image_newline = nn.Parameter(torch.randn(hidden) / math.sqrt(hidden))

    def get_image_features(self, pixel_values: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Stock features per view; with ``tile_newlines`` every tile row gets the newline feature."""
        out = super().get_image_features(pixel_values, *args, **kwargs)
        if not self.config.tile_newlines:
            return out
        features = list(out.pooler_output)
        for i, view in enumerate(features):
            if i % self.config.views_per_image == 0:  # the global view: no separators
                continue
            side = math.isqrt(view.shape[0])
            grid = view.reshape(side, side, -1)
            newline = self.image_newline.to(view).expand(side, 1, -1)
            features[i] = torch.cat([grid, newline], dim=1).flatten(0, 1)
        out.pooler_output = features
        return out


class TiledLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    config_class = TiledLlavaConfig
    config: TiledLlavaConfig

    def __init__(self, config: TiledLlavaConfig) -> None:
        LlavaPreTrainedModel.__init__(self, config)
        self.model = TiledLlavaModel(config)
        text = _text(config)
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)
        self.post_init()


def _text(config: TiledLlavaConfig) -> Any:
    """The text config (typed loosely by transformers: a dict before ``__post_init__``)."""
    return config.text_config


AutoConfig.register(MODEL_TYPE, TiledLlavaConfig, exist_ok=True)
AutoModelForImageTextToText.register(TiledLlavaConfig, TiledLlavaForConditionalGeneration, exist_ok=True)
