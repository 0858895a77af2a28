"""``LlavaAdapter``: LLaVA-1.5 (``model_type="llava"``) as a vlm-adapters backbone.

The stock ``LlavaImageProcessor`` with ``do_pad=True`` pads the *original* image to a centred
square filled with ``int(255 * image_mean)``, resizes the square to the crop size ``S`` and
centre-crops (a no-op on a square). The CLIP tower turns ``S x S`` into ``(S/p)^2`` patch
features plus CLS; ``vision_feature_select_strategy="default"`` drops CLS, so the LLM sees a
raster ``S/p x S/p`` grid of ``<image>`` tokens per image. That is the core ``FixedSpec`` with
``resize_mode="pad_then_resize"``: this module reads it from config and processor and checks that
the two agree. Dataset samples need no code here: the core ``normalize`` reads them with its one
policy, and its default resolve step (``[N, 3, S, S]`` image stacks, geometry from each original
size) is exactly LLaVA-1.5's.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaImageProcessor,
    LlavaProcessor,
    PretrainedConfig,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, FixedSpec, SpecError
from vlm_adapters.tiny import BASIC_WORDS, build_tokenizer

EXTRA_VISION_TOKENS = {"clip_vision_model": 1, "siglip_vision_model": 0}
"""Non-patch tokens (CLS) each vision tower emits before its patch features."""

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
"""LLaVA-1.5's ``USER: <image>\\n... ASSISTANT: ...`` conversation format."""

TINY_IMAGE_SIZE = 84
TINY_PATCH_SIZE = 14


class LlavaAdapter(BackboneAdapter):
    name: ClassVar[str] = "llava"
    model_types: ClassVar[tuple[str, ...]] = ("llava",)
    spec_kind: ClassVar[Literal["fixed", "dynamic"]] = "fixed"
    description: ClassVar[str] = "LLaVA-1.5: pad to a mean-coloured square, resize, CLIP patches without CLS"

    # --- tiny offline backbone -----------------------------------------------------------
    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.variants()):
            raise ValueError(f"unknown variant {variant!r}; expected one of {list(cls.variants())}")
        tokenizer = _tiny_tokenizer()
        vision = CLIPVisionConfig(
            image_size=TINY_IMAGE_SIZE,
            patch_size=TINY_PATCH_SIZE,
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=2,  # LLaVA reads layer -2, so two layers keep the real structure
            num_attention_heads=2,
        )
        text = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            image_seq_length=(TINY_IMAGE_SIZE // TINY_PATCH_SIZE) ** 2,
        )

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        side = config.vision_config.image_size
        image_processor = LlavaImageProcessor(
            do_pad=True, size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
        return LlavaProcessor(
            image_processor=image_processor,
            tokenizer=_tiny_tokenizer(),
            patch_size=config.vision_config.patch_size,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
            num_additional_image_tokens=EXTRA_VISION_TOKENS[config.vision_config.model_type],
            chat_template=CHAT_TEMPLATE,
        )

    # --- spec ----------------------------------------------------------------------------
    def build_spec(self) -> FixedSpec:
        config, processor = self.config, self.processor
        image_processor = processor.image_processor
        vision = config.vision_config
        side = _processor_output_side(image_processor)
        if side != vision.image_size:
            raise SpecError(
                f"the processor makes {side}x{side} inputs but the vision tower takes "
                f"{vision.image_size}x{vision.image_size}; use the checkpoint's own processor"
            )
        patch = vision.patch_size
        if processor.patch_size != patch:
            raise SpecError(f"processor patch_size {processor.patch_size} != vision_config.patch_size {patch}")
        grid = side // patch
        extra = EXTRA_VISION_TOKENS.get(vision.model_type)
        if extra is None:
            raise SpecError(
                f"unknown vision tower {vision.model_type!r}: how many CLS tokens it emits is not known "
                f"(known: {sorted(EXTRA_VISION_TOKENS)})"
            )
        # What the model scatters into the <image> tokens, and what the processor expands <image> to.
        model_drops_cls = config.vision_feature_select_strategy == "default"
        model_tokens = grid * grid + extra - model_drops_cls
        if model_tokens != grid * grid:
            raise SpecError(
                f"vision_feature_select_strategy {config.vision_feature_select_strategy!r} with "
                f"{vision.model_type} gives {model_tokens} image features, not a {grid}x{grid} grid"
            )
        processor_drops_cls = processor.vision_feature_select_strategy == "default"
        processor_tokens = grid * grid + processor.num_additional_image_tokens - processor_drops_cls
        if processor_tokens != model_tokens:
            raise SpecError(
                f"the processor expands <image> to {processor_tokens} tokens but the model gives {model_tokens} "
                "features; set the processor's num_additional_image_tokens / vision_feature_select_strategy "
                "to match the config"
            )
        if processor.image_token_id != config.image_token_id:
            raise SpecError(
                f"processor image token id {processor.image_token_id} != config.image_token_id {config.image_token_id}"
            )
        mean = tuple(float(m) for m in image_processor.image_mean)
        return FixedSpec(
            image_token_id=config.image_token_id,
            image_token=processor.image_token,
            image_mean=mean,
            image_std=tuple(float(s) for s in image_processor.image_std),
            image_size=(side, side),
            patch_size=patch,
            token_grid=(grid, grid),
            resize_mode="pad_then_resize",
            background_color=tuple(int(m * 255) for m in mean),  # the stock processor truncates
        )


def _processor_output_side(image_processor: Any) -> int:
    """Side of the square the stock image processor hands the vision tower (pad, resize, crop)."""
    if not image_processor.do_pad:
        raise SpecError(
            "the image processor has do_pad=False, so it centre-crops the image instead of padding it, which a "
            "FixedSpec cannot describe; load it with LlavaAdapter.from_pretrained(path, do_pad=True) "
            "(LLaVA-1.5's 'pad' aspect mode)"
        )
    size = {k: v for k, v in dict(image_processor.size).items() if v is not None}
    resized = size.get("shortest_edge") or (size["height"] if size.get("height") == size.get("width") else None)
    if not image_processor.do_resize or not resized:
        raise SpecError(f"the image processor must resize the padded square to a square; its size is {size}")
    crop = image_processor.crop_size
    if image_processor.do_center_crop and (crop["height"], crop["width"]) != (resized, resized):
        raise SpecError(f"crop_size {dict(crop)} must equal the resized side {resized}, or the crop cuts the image")
    return int(resized)


def _tiny_tokenizer() -> Any:
    return build_tokenizer(
        ["<image>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
        words=(*BASIC_WORDS, "USER", "ASSISTANT"),
        extra_attributes={"image_token": "<image>"},
    )


__all__ = ["CHAT_TEMPLATE", "LlavaAdapter"]
