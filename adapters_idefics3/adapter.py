"""The Idefics3 and SmolVLM adapters (``idefics3``, ``smolvlm``): one splitting scheme, two checkpoints.

Both stock processors split an image into sub-images plus a global view and write each as its
own run of ``<image>`` tokens behind a ``<row_i_col_j>`` marker; SmolVLM's processor also
takes videos and wants images grouped per prompt. The adapter declares the layout as views
(one per sub-image, the global view last, one run each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, VisionBatch
from vlm_adapters.adapter import concat_batches
from vlm_adapters.images import RawImage

from . import tiny
from .normalize import normalize_sample
from .spec import Idefics3SplitSpec, build_idefics3_spec


class Idefics3AdapterBase(BackboneAdapter):
    """What Idefics3 and SmolVLM share: the spec, the tiny factories."""

    spec_kind = "idefics3_split"
    image_stack_keys = frozenset({"pixel_values", "pixel_attention_mask"})

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

    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        return normalize_sample(self, sample)


class Idefics3Adapter(Idefics3AdapterBase):
    name = "idefics3"
    model_types = ("idefics3",)
    description = "Idefics3: 364 px sub-images + global view, 169 tokens each, one run per view between markers"


class SmolVLMAdapter(Idefics3AdapterBase):
    name = "smolvlm"
    model_types = ("smolvlm",)
    description = "SmolVLM: 512 px sub-images + global view, 64 tokens each, one run per view between markers"

    def prepare(
        self,
        images: Sequence[RawImage] | Sequence[Sequence[RawImage]] | RawImage,
        texts: Sequence[str] | str,
    ) -> VisionBatch:
        """The stock processor per prompt, padded into one batch as the processor pads.

        SmolVLM's processor reads a flat image list as the images of one prompt, so several
        prompts go through it one at a time; the batch is then what it would have built.
        """
        if isinstance(texts, str) or len(texts) <= 1:
            return super().prepare(images, texts)
        groups = self._group_images(images, len(texts))
        samples = [
            super(SmolVLMAdapter, self).prepare([group], [text]) for group, text in zip(groups, texts, strict=True)
        ]
        return concat_batches(samples, self.pad_token_id, self.padding_side, self.sequence_keys, self.image_stack_keys)
