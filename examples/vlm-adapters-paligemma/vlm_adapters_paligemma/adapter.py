"""``PaliGemmaAdapter``: PaliGemma (``model_type="paligemma"``) as a vlm-adapters backbone.

The stock ``SiglipImageProcessor`` stretches every image to the checkpoint's square (224, 448 or
896 px: no padding, no crop), and SigLIP's 14 px patches become a raster grid of 256, 1024 or
4096 ``<image>`` tokens, all of them features (SigLIP has no CLS). That is the core ``fixed`` spec
with ``resize_mode="stretch"``, read from the config and processor, which must agree, plus one
fact of the prompt format: the processor writes ``<bos>`` right after the image tokens. That makes
PaliGemma's spec its own kind, ``paligemma``, which this plugin registers like its adapter.

PaliGemma is a prefix LM: the prompt (``<image>`` tokens, ``<bos>``, the question and a
newline) attends both ways, an answer passed as the processor's ``suffix`` causally.
``token_type_ids`` say which is which (0 prefix, 1 suffix); without them the stock forward silently
uses a plain causal mask, so ``normalize`` recovers them from ``labels`` when it can and refuses
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from transformers import (
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    SiglipImageProcessor,
    SiglipVisionConfig,
)
from transformers.processing_utils import ProcessorMixin
from vlm_adapters.samples import image_sizes, meta_list, require_mapping, size_pair

from vlm_adapters import (
    BackboneAdapter,
    FixedSpec,
    ImageShapeError,
    MissingInputError,
    PatchMatrixAsImageError,
    SpecError,
    TokenCountError,
    VisionBatch,
    VisionInputError,
)
from vlm_adapters.geometry import ImageGeometry, Size
from vlm_adapters.images import image_size, is_raw_image, to_pil
from vlm_adapters.placeholders import expand_placeholders
from vlm_adapters.tiny import BASIC_WORDS, build_tokenizer

TINY_IMAGE_SIZE = 56
TINY_PATCH_SIZE = 14


class PaliGemmaSpec(FixedSpec):
    """A stretched fixed square whose image tokens the processor follows with ``<bos>``.

    ``extra_tokens`` counts that ``<bos>``: the processor writes it once per prompt, after the last
    image, so the count is exact for the one-image prompts PaliGemma is trained on.
    """

    kind: Literal["paligemma"] = "paligemma"  # type: ignore[assignment]

    def geometry(self, image_size: Size) -> ImageGeometry:
        return super().geometry(image_size).model_copy(update={"extra_tokens": 1})


class PaliGemmaAdapter(BackboneAdapter):
    name: ClassVar[str] = "paligemma"
    model_types: ClassVar[tuple[str, ...]] = ("paligemma",)
    spec_kind: ClassVar[str] = "paligemma"
    description: ClassVar[str] = "PaliGemma: stretch to 224/448/896, SigLIP patches, prefix-LM attention"

    # --- tiny offline backbone -----------------------------------------------------------
    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.variants()):
            raise ValueError(f"unknown variant {variant!r}; expected one of {list(cls.variants())}")
        tokenizer = cls.tiny_processor_for(TINY_IMAGE_SIZE, TINY_PATCH_SIZE).tokenizer
        vision = SiglipVisionConfig(
            image_size=TINY_IMAGE_SIZE,
            patch_size=TINY_PATCH_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
        )
        text = GemmaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return PaliGemmaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            projection_dim=64,
            hidden_size=64,
            vocab_size=len(tokenizer),
        )

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        vision = config.vision_config
        return cls.tiny_processor_for(int(vision.image_size), int(vision.patch_size))

    @staticmethod
    def tiny_processor_for(side: int, patch: int) -> ProcessorMixin:
        """The stock processor at ``side`` px; it adds PaliGemma's 1,152 location/segment tokens."""
        image_processor = SiglipImageProcessor(
            size={"height": side, "width": side}, image_seq_length=(side // patch) ** 2
        )
        return PaliGemmaProcessor(image_processor=image_processor, tokenizer=_tiny_tokenizer())

    # --- spec ----------------------------------------------------------------------------
    def build_spec(self) -> PaliGemmaSpec:
        config, processor = self.config, self.processor
        assert isinstance(processor, PaliGemmaProcessor)
        image_processor: Any = processor.image_processor
        vision = config.vision_config
        side, patch = int(vision.image_size), int(vision.patch_size)
        size = image_processor.size
        if not image_processor.do_resize or (size["height"], size["width"]) != (side, side):
            raise SpecError(
                f"the image processor resizes to {dict(size)} but the vision tower takes {side}x{side}; "
                "use the checkpoint's own processor"
            )
        grid = side // patch
        if processor.image_seq_length != grid * grid:
            raise SpecError(
                f"the processor expands <image> to {processor.image_seq_length} tokens but SigLIP at {side}/{patch} "
                f"gives {grid * grid} features"
            )
        if processor.image_token_id != config.image_token_id:
            raise SpecError(
                f"processor image token id {processor.image_token_id} != config.image_token_id {config.image_token_id}"
            )
        return PaliGemmaSpec(
            image_token_id=config.image_token_id,
            image_token=processor.image_token,
            image_mean=_triple(image_processor.image_mean),
            image_std=_triple(image_processor.image_std),
            image_size=(side, side),
            patch_size=patch,
            token_grid=(grid, grid),
            resize_mode="stretch",
        )

    @property
    def fixed(self) -> PaliGemmaSpec:
        spec = self.spec
        assert isinstance(spec, PaliGemmaSpec)
        return spec

    # --- prompts -------------------------------------------------------------------------
    def format_prompt(self, text: str, num_images: int = 1, answer: str | None = None) -> str:
        """``<image>`` per image and the text (PaliGemma has no chat template: the processor adds
        ``<bos>`` after the images and the newline that ends the prompt).

        An ``answer`` follows on the next line and, like everything in one processor ``text``, is
        part of the bidirectional prefix. For the trained format (answer as a causal suffix) call
        the processor with ``suffix=[answer]`` and pass its output to :meth:`normalize`, which keeps
        the ``token_type_ids`` that mark the suffix.
        """
        prompt = self.image_placeholder * num_images + text
        return prompt if answer is None else prompt + "\n" + answer

    def prepare(self, images: Any, texts: Any) -> VisionBatch:
        """The stock processor path, less the ``labels`` it derives from ``token_type_ids`` (a loss
        has no place in a frozen forward)."""
        batch = super().prepare(images, texts)
        batch.inputs.pop("labels", None)
        return batch

    # --- dataset samples -----------------------------------------------------------------
    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        """A one-sample batch from a research-dataset dict.

        Keys: ``input_ids`` (expanded, or one ``<image>`` per image), ``token_type_ids`` (or
        ``labels`` with -100 on the prefix, which is how the processor derives them),
        ``pixel_values`` (``[3, S, S]``, ``[B, 3, S, S]`` or a list) with ``image_sizes`` or
        ``meta_data``, or raw ``images``; optional ``attention_mask`` and ``mask_ids``.
        """
        sample = require_mapping(sample)
        spec = self.fixed
        if sample.get("input_ids") is None:
            raise MissingInputError(
                "sample has no input_ids", found=sorted(sample)[:12], expected="input_ids", fix="tokenize the prompt"
            )
        ids = _row(sample["input_ids"], "input_ids")
        companions = {k: _row(sample[k], k) for k in ("attention_mask", "mask_ids") if sample.get(k) is not None}
        companions["token_type_ids"] = self._token_types(sample, ids)
        raw = sample.get("images")
        raw_list = None if raw is None else ([raw] if is_raw_image(raw) else list(raw))
        if sample.get("pixel_values") is not None:
            pixels = self._check_pixels(sample["pixel_values"])
        elif raw_list:
            pixels = self.processor.image_processor(images=[to_pil(i) for i in raw_list], return_tensors="pt")[
                "pixel_values"
            ]
        else:
            raise MissingInputError(
                "the sample has no images",
                found=f"{int((ids == spec.image_token_id).sum())} image tokens and no pixel_values or images",
                expected="pixel_values (with image_sizes or meta_data) or raw images under 'images'",
                fix="keep pixel_values in the sample (check the collate), or pass the decoded images",
            )
        sizes = self._sizes(sample, len(pixels), raw_list)
        ids, aligned, _ = expand_placeholders(
            ids,
            companions,
            spec.image_token_id,
            [spec.num_image_tokens] * len(pixels),
            mismatch=lambda runs: TokenCountError(
                "image tokens in input_ids do not match the images",
                found=f"runs of {runs} tokens of id {spec.image_token_id}",
                expected=f"{spec.num_image_tokens} per image for {len(pixels)} image(s), or one placeholder each",
                fix="tokenize with the checkpoint's processor, or keep one <image> per image",
            ),
            shared_runs=True,  # images come back to back at the start of the prompt
        )
        inputs = {
            "input_ids": ids[None],
            "attention_mask": aligned.get("attention_mask", torch.ones_like(ids))[None],
            "token_type_ids": aligned["token_type_ids"][None],
            "pixel_values": pixels,
        }
        mask_ids = aligned["mask_ids"][None] if "mask_ids" in aligned else None
        return self.finish_batch(inputs, [sizes], mask_ids)

    def _token_types(self, sample: Mapping[str, Any], ids: torch.Tensor) -> torch.Tensor:
        if sample.get("token_type_ids") is not None:
            return _row(sample["token_type_ids"], "token_type_ids")
        if sample.get("labels") is not None:
            return (_row(sample["labels"], "labels") != -100).long()
        raise MissingInputError(
            "token_type_ids are missing, so the prefix is unknown",
            found=f"keys {sorted(sample)[:12]}",
            expected="token_type_ids (0 on the prompt, 1 on the answer) or labels (-100 on the prompt)",
            fix="keep the processor's token_type_ids: without them the model uses a causal mask over the prompt too",
        )

    def _check_pixels(self, value: Any) -> torch.Tensor:
        side = self.fixed.image_size[0]
        want = f"float [images, 3, {side}, {side}]"
        if isinstance(value, (list, tuple)):
            value = torch.stack([v if torch.is_tensor(v) else torch.as_tensor(np.asarray(v)) for v in value])
        pixels = torch.as_tensor(value)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        if not pixels.is_floating_point():
            raise ImageShapeError(
                "pixel_values are not normalised floats",
                found=f"dtype {pixels.dtype}",
                expected=want,
                fix="pass raw images under 'images', or run them through the stock processor",
            )
        if pixels.ndim == 4 and tuple(pixels.shape[1:]) == (3, side, side):
            return pixels
        error = ImageShapeError
        if pixels.ndim == 2 or pixels.shape[-1] % (3 * self.fixed.patch_size**2) == 0:
            error = PatchMatrixAsImageError
        raise error(
            "pixel_values do not have the backbone's input shape",
            found=tuple(pixels.shape),
            expected=want,
            fix=f"process the images with the checkpoint's processor ({side} px), or pass them raw under 'images'",
        )

    @staticmethod
    def _sizes(sample: Mapping[str, Any], count: int, raw: list[Any] | None) -> list[tuple[int, int]]:
        """Original sizes: the stretch is exact whatever they are, but maps go back onto them."""
        if raw:
            sizes = [image_size(i) for i in raw]
        elif sample.get("image_sizes") is not None:
            sizes = image_sizes(sample["image_sizes"])
        elif (metas := meta_list(sample)) is not None:
            sizes = [size_pair(m.get("original_shape"), f"meta_data[{i}]") for i, m in enumerate(metas)]
        else:
            raise MissingInputError(
                "original image sizes are missing",
                found=f"{count} image(s) and no image_sizes, meta_data or raw images",
                expected="image_sizes=[(height, width), ...]",
                fix="keep image_sizes in the sample: maps go back onto the original image",
            )
        if len(sizes) != count:
            raise VisionInputError(
                "one original size per image is needed",
                found=f"{len(sizes)} size(s) for {count} image(s)",
                expected=f"{count} (height, width) pairs",
                fix="keep image_sizes aligned with pixel_values",
            )
        return sizes


def _row(value: Any, key: str) -> torch.Tensor:
    row = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value).long()
    row = row[0] if row.ndim == 2 and row.shape[0] == 1 else row
    if row.ndim != 1:
        raise VisionInputError(
            f"{key} is not one sample",
            found=tuple(row.shape),
            expected="[S] or [1, S]",
            fix="normalize() takes one sample; batch several with adapter.collate(samples)",
        )
    return row


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def _tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(
        ["<image>"],
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        words=BASIC_WORDS,
        extra_attributes={"image_token": "<image>"},
    )


__all__ = ["PaliGemmaAdapter", "PaliGemmaSpec"]
