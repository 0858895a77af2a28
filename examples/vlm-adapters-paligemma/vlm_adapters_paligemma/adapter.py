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

from vlm_adapters import BackboneAdapter, FixedSpec, MissingInputError, SpecError, VisionBatch, VisionInputError
from vlm_adapters.geometry import ImageGeometry, Size
from vlm_adapters.normalize import require_mapping
from vlm_adapters.normalize.ids import read_sequence
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
    image_sees_later_text: ClassVar[bool] = True
    """Prefix-LM: image and prompt attend to each other both ways, so no image prefix is shared."""

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
        """The core ``normalize`` (one policy for ids, sizes, pixels), plus PaliGemma's ``token_type_ids``:
        taken as given, or recovered from ``labels`` (-100 on the prefix, as the processor writes
        them), expanded with the ids, and refused when neither is there."""
        sample = require_mapping(sample)
        types = self._token_types(sample)
        batch = super().normalize({k: v for k, v in sample.items() if k != "token_type_ids"})
        final = batch.input_ids[0]
        if types.numel() != final.numel():  # one placeholder per image: expand alongside the ids
            ids = read_sequence(sample["input_ids"], "input_ids")
            counts = [g.num_image_tokens for g in batch.geometries[0]]
            _, aligned, _ = expand_placeholders(
                ids,
                {"token_type_ids": types},
                self.fixed.image_token_id,
                counts,
                mismatch=lambda runs: self.token_count_error(runs, counts, "input_ids"),
                shared_runs=True,
            )
            types = aligned["token_type_ids"]
        batch.inputs["token_type_ids"] = types[None].to(final.device)
        return batch

    def _token_types(self, sample: Mapping[str, Any]) -> torch.Tensor:
        if sample.get("token_type_ids") is not None:
            types = read_sequence(sample["token_type_ids"], "token_type_ids")
            if bool(((types != 0) & (types != 1)).any()):
                raise VisionInputError(
                    "token_type_ids are not 0/1",
                    found=types.unique().tolist()[:8],
                    expected="0 on the prompt (prefix), 1 on the answer (suffix)",
                    fix="pass the processor's token_type_ids",
                )
            return types
        if sample.get("labels") is not None:
            return (read_sequence(sample["labels"], "labels") != -100).long()
        raise MissingInputError(
            "token_type_ids are missing, so the prefix is unknown",
            found=f"keys {sorted(map(str, sample))[:12]}",
            expected="token_type_ids (0 on the prompt, 1 on the answer) or labels (-100 on the prompt)",
            fix="keep the processor's token_type_ids: without them the model uses a causal mask over the prompt too",
        )


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
