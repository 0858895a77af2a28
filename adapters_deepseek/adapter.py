"""The DeepSeek-VL adapters: ``deepseek_vl`` (SigLIP, 1.3B) and ``deepseek_vl_hybrid`` (SigLIP +
SAM, 7B). One fixed spec each; everything else is shared because the two differ only in the
hybrid's second, high-resolution view and where the padding is decided.

``normalize`` is the core procedure with its default resolve step (image stacks of one size per
view, geometry from the original size); this adapter only declares its views.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, Literal

from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, FixedSpec
from vlm_adapters.normalize import PixelForm, PixelView

from . import tiny
from .spec import build_deepseek_spec


class DeepseekAdapterBase(BackboneAdapter):
    """Shared behaviour; the stock processor's ``prepare`` needs no override (it already returns
    ``high_res_pixel_values`` for the hybrid, and the geometry is the spec's)."""

    spec_kind: ClassVar[Literal["fixed", "dynamic"]] = "fixed"
    hybrid: ClassVar[bool] = False

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.model_types):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config(hybrid=cls.hybrid)

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        return tiny.tiny_processor(config)

    def build_spec(self) -> FixedSpec:
        return build_deepseek_spec(self.config, self.processor)

    @property
    def spec_fixed(self) -> FixedSpec:
        """``spec`` typed as the fixed kind it always is here."""
        spec = self.spec
        assert isinstance(spec, FixedSpec)
        return spec

    @cached_property
    def pixel_form(self) -> PixelForm:
        """``pixel_values`` at ``spec.image_size``; the hybrid's ``high_res_pixel_values`` at its own
        size with the processor's high-res mean/std (the 1.3B model takes no such input)."""
        spec = self.spec_fixed
        background = spec.background_color  # both views pad with it (the hybrid pads once, at high res)
        views = {"pixel_values": PixelView(tuple(spec.image_mean), tuple(spec.image_std), spec.image_size, background)}
        if spec.high_res_image_size is not None:
            ip: Any = self.processor.image_processor
            views["high_res_pixel_values"] = PixelView(
                tuple(ip.high_res_image_mean), tuple(ip.high_res_image_std), spec.high_res_image_size, background
            )
        return PixelForm(views=views, channels=int(self.config.vision_config.num_channels))


class DeepseekVLAdapter(DeepseekAdapterBase):
    name = "deepseek_vl"
    model_types = ("deepseek_vl",)
    description = "DeepSeek-VL 1.3B (SigLIP): pad to square, 384x384, 24x24 = 576 image tokens"


class DeepseekVLHybridAdapter(DeepseekAdapterBase):
    name = "deepseek_vl_hybrid"
    model_types = ("deepseek_vl_hybrid",)
    description = "DeepSeek-VL 7B hybrid (SigLIP 384 + SAM 1024): padded at 1024, 24x24 = 576 image tokens"
    hybrid = True
