"""The InternVL adapter (``internvl``, the transformers-format checkpoints such as InternVL3-hf).

The stock processor does all the work: it tiles, adds the thumbnail and expands each
``<IMG_CONTEXT>`` placeholder into ``<img>`` + 256 tokens per tile + ``</img>``. The adapter
declares that layout as views (one per tile, the thumbnail last, all in one run) so attention
comes back per tile and fuses onto the original image.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, VisionBatch

from . import tiny
from .normalize import normalize_sample
from .spec import InternVLTileSpec, build_internvl_spec


class InternVLAdapter(BackboneAdapter):
    name = "internvl"
    model_types = ("internvl",)
    spec_kind = "internvl_tiles"
    description = "InternVL (hf format): 448 px tiles by aspect ratio + thumbnail, 256 tokens per tile, one run"

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.model_types):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config()

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
        """Stock processor + offline tokenizer; ``min_patches`` / ``max_patches`` may be overridden."""
        return tiny.tiny_processor(config, **image_processor_kwargs)

    @cached_property
    def spec(self) -> InternVLTileSpec:
        """The checkpoint's tiling (narrows the base class's type)."""
        return self.build_spec()

    def build_spec(self) -> InternVLTileSpec:
        return build_internvl_spec(self.config, self.processor)

    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        return normalize_sample(self, sample)
