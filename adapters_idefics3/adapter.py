"""The Idefics3 and SmolVLM adapters (``idefics3``, ``smolvlm``): one splitting scheme, two checkpoints.

Both stock processors split an image into sub-images plus a global view and write each as its
own run of ``<image>`` tokens behind a ``<row_i_col_j>`` marker; SmolVLM's processor also
takes videos and wants images grouped per prompt. The adapter declares the layout as views
(one per sub-image, the global view last, one run each).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter

from . import tiny
from .spec import Idefics3SplitSpec, build_idefics3_spec


class Idefics3AdapterBase(BackboneAdapter):
    """What Idefics3 and SmolVLM share: the spec, the tiny factories."""

    spec_kind = "idefics3_split"

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.model_types):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config(cls.model_types[0])

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
        """Stock processor + offline tokenizer; ``size`` / ``max_image_size`` / ``do_image_splitting``
        may be overridden."""
        return tiny.tiny_processor(config, **image_processor_kwargs)

    @cached_property
    def spec(self) -> Idefics3SplitSpec:
        """The checkpoint's splitting (narrows the base class's type)."""
        return self.build_spec()

    def build_spec(self) -> Idefics3SplitSpec:
        return build_idefics3_spec(self.config, self.processor)

    def normalize(self, sample: Any) -> Any:  # replaced by the core procedure's hooks
        raise NotImplementedError


class Idefics3Adapter(Idefics3AdapterBase):
    name = "idefics3"
    model_types = ("idefics3",)
    description = "Idefics3: 364 px sub-images + global view, 169 tokens each, one run per view between markers"


class SmolVLMAdapter(Idefics3AdapterBase):
    name = "smolvlm"
    model_types = ("smolvlm",)
    description = "SmolVLM: 512 px sub-images + global view, 64 tokens each, one run per view between markers"
