"""``TiledLlavaAdapter``: the synthetic global-view-plus-tiles family as a vlm-adapters backbone.

It reads the ``global_tiles`` spec from the config and the processor (and refuses them when
they disagree), builds tiny offline fixtures for both token layouts (variants ``newline`` and
``markers``), and turns dataset samples into model inputs with the core's helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaImageProcessor, PretrainedConfig
from transformers.processing_utils import ProcessorMixin
from vlm_adapters.samples import image_sizes, require_mapping

from vlm_adapters import (
    BackboneAdapter,
    ImageShapeError,
    MissingInputError,
    SpecError,
    TokenCountError,
    VisionBatch,
    VisionInputError,
)
from vlm_adapters.geometry import Size
from vlm_adapters.images import image_size, is_raw_image, to_pil
from vlm_adapters.placeholders import COMPANION_KEYS, expand_placeholders
from vlm_adapters.tiny import build_tokenizer

from .model import MODEL_TYPE, TiledLlavaConfig
from .processor import TiledLlavaProcessor
from .spec import GlobalTilesSpec

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ' : ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ ' ' + item['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant :' }}{% endif %}"
)
LAYOUTS = ("newline", "markers")
"""The processor's token layouts, which are also the tiny variants."""


class TiledLlavaAdapter(BackboneAdapter):
    name: ClassVar[str] = MODEL_TYPE
    model_types: ClassVar[tuple[str, ...]] = (MODEL_TYPE,)
    spec_kind: ClassVar[str] = "global_tiles"
    description: ClassVar[str] = "synthetic test family: a padded global view plus 2x2 stretched tiles"

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return LAYOUTS

    # --- tiny offline backbone -----------------------------------------------------------
    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        variant = variant or "newline"
        if variant not in LAYOUTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {list(LAYOUTS)}")
        tokenizer = _tiny_tokenizer()
        vision = CLIPVisionConfig(
            image_size=56,
            patch_size=14,
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=2,
        )
        text = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return TiledLlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            tile_grid=(2, 2),
            tile_newlines=variant == "newline",
        )

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        side = config.vision_config.image_size
        image_processor = LlavaImageProcessor(
            do_pad=True, size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
        return TiledLlavaProcessor(
            image_processor=image_processor,
            tokenizer=_tiny_tokenizer(),
            tile_grid=config.tile_grid,
            layout="newline" if config.tile_newlines else "markers",
            patch_size=config.vision_config.patch_size,
            chat_template=CHAT_TEMPLATE,
        )

    # --- spec ----------------------------------------------------------------------------
    def build_spec(self) -> GlobalTilesSpec:
        config, processor = self.config, self.processor
        if not isinstance(processor, TiledLlavaProcessor):
            raise SpecError(f"this family needs its TiledLlavaProcessor, got {type(processor).__name__}")
        image_processor = processor.image_processor
        vision = config.vision_config
        side = vision.image_size
        crop = (image_processor.crop_size["height"], image_processor.crop_size["width"])
        if not image_processor.do_pad or crop != (side, side):
            raise SpecError(
                f"the image processor must pad to a square and crop to the tower's {side}x{side} "
                f"(do_pad={image_processor.do_pad}, crop_size={crop})"
            )
        if config.vision_feature_select_strategy != "default":
            raise SpecError("the model must drop CLS (vision_feature_select_strategy='default'): one feature per patch")
        config_layout = "newline" if config.tile_newlines else "markers"
        checks = {
            "layout": (processor.layout, config_layout),
            "tile_grid": (tuple(processor.tile_grid), tuple(config.tile_grid)),
            "patch_size": (processor.patch_size, vision.patch_size),
            "image_token_id": (processor.image_token_id, config.image_token_id),
        }
        for what, (found, expected) in checks.items():
            if found != expected:
                raise SpecError(f"processor {what} {found!r} does not match the config's {expected!r}")
        marker = processor.tokenizer.convert_tokens_to_ids(processor.view_marker)
        markers = processor.layout == "markers"
        return GlobalTilesSpec(
            image_token_id=config.image_token_id,
            image_token=processor.image_token,
            image_mean=_triple(image_processor.image_mean),
            image_std=_triple(image_processor.image_std),
            view_size=side,
            patch_size=vision.patch_size,
            tile_grid=_pair(config.tile_grid),
            row_separators=0 if markers else 1,
            markers=markers,
            marker_token_id=marker if markers else None,
        )

    @property
    def tiles_spec(self) -> GlobalTilesSpec:
        spec = self.spec
        assert isinstance(spec, GlobalTilesSpec)
        return spec

    # --- dataset samples -----------------------------------------------------------------
    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        """A one-sample batch from a dataset dict.

        ``input_ids`` expanded as the processor does (or, for the one-run ``newline`` layout, one
        placeholder per image), ``pixel_values`` ``[images * views, 3, S, S]`` with
        ``image_sizes``, or raw ``images``; optional ``attention_mask``, ``labels``, ``mask_ids``.
        """
        sample = require_mapping(sample)
        if sample.get("input_ids") is None:
            raise MissingInputError(
                "the sample has no input_ids",
                found=sorted(sample)[:12],
                expected="input_ids (the processor's expanded prompt)",
                fix="tokenize with adapter.prepare(images, texts)",
            )
        ids = _sequence(sample["input_ids"], "input_ids")
        pixels, sizes = self._pixels(sample, ids)
        geometries = [self.spec.geometry(s) for s in sizes]
        counts = [n for g in geometries for n in g.run_lengths]
        companions = {k: _sequence(sample[k], k) for k in COMPANION_KEYS if sample.get(k) is not None}

        def mismatch(runs: list[int]) -> TokenCountError:
            return TokenCountError(
                "image tokens in input_ids do not match the images",
                found=f"runs of {runs} tokens of id {self.spec.image_token_id}",
                expected=f"runs of {counts} for {len(sizes)} image(s)"
                + (", or one placeholder per image" if not self.tiles_spec.markers else ""),
                fix="tokenize the prompt with the processor (adapter.prepare); do not cut sequences inside an image",
            )

        ids, extra, _ = expand_placeholders(
            ids, companions, self.spec.image_token_id, counts, mismatch=mismatch, shared_runs=True
        )
        inputs = {"input_ids": ids[None], "attention_mask": extra.get("attention_mask", torch.ones_like(ids))[None]}
        if "labels" in extra:
            inputs["labels"] = extra["labels"][None]
        if pixels is not None:
            inputs["pixel_values"] = pixels
        mask_ids = extra["mask_ids"][None] if "mask_ids" in extra else None
        return self.finish_batch(inputs, [sizes], mask_ids)

    def _pixels(self, sample: Mapping[str, Any], ids: torch.Tensor) -> tuple[torch.Tensor | None, list[Size]]:
        """Every view's pixels and each image's original size, from raw images or processed pixels."""
        spec = self.tiles_spec
        if sample.get("images") is not None:
            images = [sample["images"]] if is_raw_image(sample["images"]) else list(sample["images"])
            pil = [to_pil(img, f"images[{i}]") for i, img in enumerate(images)]
            out = self.processor(images=pil, text=[self.image_placeholder * len(pil)], return_tensors="pt")
            return out["pixel_values"], [image_size(img) for img in images]
        value = sample.get("pixel_values")
        if value is None:
            if (ids == spec.image_token_id).any():
                raise MissingInputError(
                    "input_ids hold image tokens but the sample has no images",
                    found=f"{int((ids == spec.image_token_id).sum())} tokens of id {spec.image_token_id}",
                    expected="pixel_values with image_sizes, or raw images under 'images'",
                    fix="keep pixel_values in the sample (check the collate)",
                )
            return None, []
        views = 1 + spec.tile_grid[0] * spec.tile_grid[1]
        want = f"float [images * {views}, 3, {spec.view_size}, {spec.view_size}] (global view, then tiles)"
        pixels = _tensor(value, "pixel_values", want)
        if not pixels.is_floating_point() or tuple(pixels.shape[1:]) != (3, spec.view_size, spec.view_size):
            raise ImageShapeError(
                "pixel_values are not this backbone's views",
                found=f"{pixels.dtype} {tuple(pixels.shape)}",
                expected=want,
                fix="use the processor's pixel_values as they are, or pass raw images under 'images'",
            )
        if sample.get("image_sizes") is None:
            raise MissingInputError(
                "the original image sizes are missing",
                found=f"pixel_values {tuple(pixels.shape)} and no image_sizes",
                expected="image_sizes=[(height, width), ...], one per image",
                fix="keep image_sizes in the sample: the padding and the tiles' boxes depend on it",
            )
        sizes = image_sizes(sample["image_sizes"])
        if len(sizes) * views != pixels.shape[0]:
            raise ImageShapeError(
                "pixel_values and image_sizes disagree on the number of images",
                found=f"{pixels.shape[0]} views for {len(sizes)} size(s)",
                expected=f"{views} views per image",
                fix="keep every view of every image, in order, and one size per image",
            )
        return pixels.float(), sizes


def _triple(values: Any) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in values)
    return r, g, b


def _pair(values: Any) -> tuple[int, int]:
    rows, cols = (int(v) for v in values)
    return rows, cols


def _tensor(value: Any, key: str, expected: str) -> torch.Tensor:
    """``value`` as a tensor; anything numpy cannot make a numeric array of is refused."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"dtype {array.dtype}")
        return torch.as_tensor(array)
    except (TypeError, ValueError, OverflowError) as exc:
        raise VisionInputError(
            f"{key} is not numeric",
            found=f"{type(value).__name__} ({exc})",
            expected=expected,
            fix=f"pass {key} as a tensor",
        ) from None


def _sequence(value: Any, key: str) -> torch.Tensor:
    """A 1-D long tensor from a 1-D or ``[1, S]`` integer sequence."""
    seq = _tensor(value, key, "integers, [S] or [1, S]")
    seq = seq[0] if seq.ndim == 2 and seq.shape[0] == 1 else seq
    if seq.ndim != 1 or seq.is_floating_point() or seq.dtype == torch.bool:
        raise VisionInputError(
            f"{key} is not one sample's integer sequence",
            found=f"{seq.dtype} {tuple(seq.shape)}",
            expected="integers, [S] or [1, S]",
            fix="normalize() takes one sample; batch several with adapter.collate(samples)",
        )
    return seq.long()


def _tiny_tokenizer() -> Any:
    return build_tokenizer(
        ["<image>", "<view>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={"image_token": "<image>"},
    )


__all__ = ["TiledLlavaAdapter"]
