"""``LlavaAdapter``: LLaVA-1.5 (``model_type="llava"``) as a vlm-adapters backbone.

The stock ``LlavaImageProcessor`` with ``do_pad=True`` pads the *original* image to a centred
square filled with ``int(255 * image_mean)``, resizes the square to the crop size ``S`` and
centre-crops (a no-op on a square). The CLIP tower turns ``S x S`` into ``(S/p)^2`` patch
features plus CLS; ``vision_feature_select_strategy="default"`` drops CLS, so the LLM sees a
raster ``S/p x S/p`` grid of ``<image>`` tokens per image. That is the core ``FixedSpec`` with
``resize_mode="pad_then_resize"``: this module reads it from config and processor, checks that
the two agree, and turns dataset samples into exactly what the stock forward takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaImageProcessor,
    LlavaProcessor,
    PretrainedConfig,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import (
    BackboneAdapter,
    FixedSpec,
    ImageGeometry,
    ImageShapeError,
    MissingInputError,
    PatchMatrixAsImageError,
    SpecError,
    TokenCountError,
    VisionBatch,
    VisionInputError,
)
from vlm_adapters.images import image_size, is_raw_image, to_pil
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

    # --- dataset samples -----------------------------------------------------------------
    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        """A one-sample batch from an F-LMM style dict.

        Keys: ``input_ids`` (expanded, 1-D or ``[1, S]``), ``pixel_values`` (``[3, H, W]``,
        ``[B, 3, H, W]`` or ``[B, 1, 3, H, W]`` from the stock processor) with ``image_sizes``
        or ``meta_data(s)`` giving each original size, or raw ``images`` instead of both;
        optional ``attention_mask`` and ``mask_ids``. Nothing else reaches the model.
        """
        if "input_ids" not in sample:
            raise MissingInputError(
                "sample has no input_ids", found=sorted(sample), expected="an input_ids key", fix="tokenize the prompt"
            )
        input_ids = _as_row(sample["input_ids"], "input_ids")
        num_image_tokens = int((input_ids == self.spec.image_token_id).sum())
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if sample.get("attention_mask") is not None:
            inputs["attention_mask"] = _as_row(sample["attention_mask"], "attention_mask", like=input_ids)
        mask_ids = None if sample.get("mask_ids") is None else _as_row(sample["mask_ids"], "mask_ids", like=input_ids)

        sizes: list[tuple[int, int]] = []
        if sample.get("pixel_values") is not None:
            inputs["pixel_values"] = self._check_pixels(sample["pixel_values"])
            sizes = self._original_sizes(sample, len(inputs["pixel_values"]))
        elif sample.get("images") is not None:
            images = [sample["images"]] if is_raw_image(sample["images"]) else list(sample["images"])
            out = self.processor.image_processor(images=[to_pil(i) for i in images], return_tensors="pt")
            inputs["pixel_values"] = out["pixel_values"]
            sizes = [image_size(i) for i in images]
        elif num_image_tokens:
            raise MissingInputError(
                "input_ids hold image tokens but the sample has no images",
                found=f"{num_image_tokens} tokens of id {self.spec.image_token_id} and no pixel_values",
                expected="pixel_values (with image_sizes or meta_data) or raw images",
                fix="keep pixel_values in the sample (check the collate), or pass the decoded images under 'images'",
            )
        # finish_batch checks that the <image> tokens are exactly grid*grid per image
        return self.finish_batch(inputs, [sizes], mask_ids)

    def _check_pixels(self, value: Any) -> torch.Tensor:
        spec = self.spec
        want = f"float [B, 3, {spec.image_size[0]}, {spec.image_size[1]}] (or [3, H, W], [B, 1, 3, H, W])"
        if isinstance(value, (list, tuple)):  # one array per image, as some collates leave them
            parts = [v if torch.is_tensor(v) else torch.as_tensor(np.asarray(v)) for v in value]
            if len({tuple(p.shape) for p in parts}) > 1:
                raise ImageShapeError(
                    "pixel_values images differ in shape",
                    found=[tuple(p.shape) for p in parts],
                    expected=want,
                    fix="process every image with the stock LLaVA processor",
                )
            value = torch.stack(parts)
        pixels = torch.as_tensor(value)
        if not pixels.is_floating_point():
            raise ImageShapeError(
                "pixel_values are not normalised floats",
                found=f"dtype {pixels.dtype}, shape {tuple(pixels.shape)}",
                expected=want,
                fix="pass raw images under 'images', or run them through the stock processor",
            )
        if pixels.ndim == 2:
            raise PatchMatrixAsImageError(
                "pixel_values is a 2-D patch matrix; LLaVA takes whole images",
                found=tuple(pixels.shape),
                expected=want,
                fix="use the LLaVA processor's pixel_values, not a patch-based backbone's",
            )
        if pixels.ndim == 5 and pixels.shape[1] == 1:
            pixels = pixels[:, 0]  # F-LMM wraps each image as [1, 3, H, W]
        elif pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.ndim == 4 and tuple(pixels.shape[1:]) == (3, *spec.image_size):
            return pixels
        problem, error = "pixel_values do not have the backbone's input shape", ImageShapeError
        if pixels.ndim == 4 and pixels.shape[-1] % (3 * spec.patch_size**2) == 0:
            problem, error = "pixel_values look like flattened patches reshaped into an image", PatchMatrixAsImageError
        raise error(
            problem,
            found=tuple(pixels.shape),
            expected=want,
            fix=f"process the images with the stock LLaVA processor (crop size {spec.image_size[0]}), "
            "or pass them raw under 'images'",
        )

    def _original_sizes(self, sample: Mapping[str, Any], count: int) -> list[tuple[int, int]]:
        """Each image's original (height, width): the padding cannot be known without it."""
        metas = sample.get("meta_datas", sample.get("meta_data"))
        metas = [metas] if isinstance(metas, Mapping) else metas
        if sample.get("image_sizes") is not None:
            raw = sample["image_sizes"]
            raw = raw.tolist() if hasattr(raw, "tolist") else raw
            sizes = [raw] if len(raw) == 2 and all(isinstance(v, (int, np.integer)) for v in raw) else raw
            sizes = [(int(h), int(w)) for h, w in sizes]
        elif metas is not None:
            sizes = [(int(m["original_shape"]["height"]), int(m["original_shape"]["width"])) for m in metas]
        else:
            raise MissingInputError(
                "original image sizes are missing",
                found=f"{count} image(s) and no image_sizes / meta_data",
                expected="image_sizes=[(height, width), ...] or meta_data with original_shape",
                fix="keep image_sizes (or meta_data) in the sample: the centred padding, and so where the "
                "content sits on the token grid, depends on the original aspect ratio",
            )
        if len(sizes) != count:
            raise MissingInputError(
                "one original size per image is needed",
                found=f"{len(sizes)} size(s) for {count} image(s)",
                expected=f"{count} (height, width) pairs",
                fix="check that the collate kept image_sizes / meta_data aligned with pixel_values",
            )
        for meta, size in zip(metas or [], sizes, strict=False):
            self._check_meta_padding(meta, self.spec.geometry(size))
        return sizes

    def _check_meta_padding(self, meta: Mapping[str, Any], geometry: ImageGeometry) -> None:
        """Refuse pixels whose recorded padding is not the stock LLaVA padding (e.g. stretched)."""
        padded, pad = meta.get("padded_shape"), meta.get("padding")
        if not padded or not pad or (padded["height"], padded["width"]) != geometry.input_size:
            return
        p = geometry.padding
        found = (pad["before_height"], pad["after_height"], pad["before_width"], pad["after_width"])
        expected = (p.top, p.bottom, p.left, p.right)
        if max(abs(float(a) - b) for a, b in zip(found, expected, strict=True)) > 2.0:
            raise ImageShapeError(
                "meta_data padding is not what the LLaVA processor does for this image",
                found=f"padding (top, bottom, left, right) {found}",
                expected=f"about {tuple(round(v, 1) for v in expected)}",
                fix="re-process the images with the stock LLaVA processor (do_pad=True), or pass them under 'images'",
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


def _as_row(value: Any, key: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """A ``[1, S]`` long tensor from 1-D or ``[1, S]`` ids (lists, numpy or torch)."""
    row = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value).long()
    row = row[None] if row.ndim == 1 else row
    if row.ndim != 2 or row.shape[0] != 1:
        raise VisionInputError(
            f"{key} is not one sample",
            found=tuple(row.shape),
            expected="[S] or [1, S]",
            fix="normalize() takes one sample; batch several with adapter.collate(samples)",
        )
    if like is not None and row.shape != like.shape:
        raise TokenCountError(
            f"{key} is not aligned with input_ids",
            found=f"{key} of length {row.shape[1]}",
            expected=f"length {like.shape[1]} (the expanded input_ids)",
            fix=f"build {key} on the processor's expanded input_ids, one entry per token",
        )
    return row


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
