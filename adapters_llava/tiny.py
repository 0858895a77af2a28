"""Offline tiny LLaVA checkpoints: the real structure (stock processors, stock image processors,
real placeholder tokens and prompt formats) at a size that runs on a laptop CPU.

Sizes that matter for geometry keep the released shape of the problem: LLaVA-NeXT's CLIP tile is a
whole number of patches (336 = 24 x 14) and OneVision's SigLIP tile is not (384 = 27 x 14 + 6), so
the tiny NeXT tile is 56 = 4 x 14 and the tiny OneVision tile 30 = 4 x 7 + 2. Grid pinpoints are the
stock processors' own pinpoints, rescaled from their tile size to the tiny one; the token ids in
the configs come from the tokenizer built here, so config and processor agree as on a checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaImageProcessor,
    LlavaNextConfig,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    LlavaProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters.tiny import BASIC_WORDS, build_tokenizer

from .build import CLS_TOKENS
from .prompts import CHAT_TEMPLATES, PROMPT_WORDS, SPECIAL_TOKENS

TINY_TOWERS: dict[str, dict[str, int]] = {
    "llava": {"image_size": 84, "patch_size": 14},
    "llava_next": {"image_size": 56, "patch_size": 14},
    "llava_onevision": {"image_size": 30, "patch_size": 7},
}


def tiny_tokenizer(model_type: str) -> PreTrainedTokenizerFast:
    """Word-level tokenizer with the family's placeholder and chat tokens, named where stock processors look."""
    special = SPECIAL_TOKENS[model_type]
    named = {"image_token": "<image>"}
    if "<video>" in special.tokens:
        named["video_token"] = "<video>"
    return build_tokenizer(
        special.tokens,
        bos_token=special.bos,
        eos_token=special.eos,
        pad_token=special.pad,
        chat_template=CHAT_TEMPLATES[model_type],
        words=(*BASIC_WORDS, *PROMPT_WORDS),
        extra_attributes=named,
    )


def _tid(tok: PreTrainedTokenizerFast, token: str) -> int:
    value = tok.convert_tokens_to_ids(token)
    assert isinstance(value, int)
    return value


def _text(tok: PreTrainedTokenizerFast) -> dict[str, Any]:
    return {
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }


def _tower(model_type: str) -> dict[str, Any]:
    return {
        **TINY_TOWERS[model_type],
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,  # NeXT reads layer -2: two layers keep the real structure
        "num_attention_heads": 2,
    }


def rescaled_pinpoints(stock: list[list[int]], tile: int) -> list[list[int]]:
    """The stock pinpoints in units of their tile (the gcd of all sides), times ``tile``."""
    unit = math.gcd(*(side for pin in stock for side in pin))
    return [[h // unit * tile, w // unit * tile] for h, w in stock]


def tiny_config(model_type: str) -> PretrainedConfig:
    """A two-layer config of ``model_type`` (``llava``, ``llava_next`` or ``llava_onevision``)."""
    tok = tiny_tokenizer(model_type)
    image_token_index = _tid(tok, "<image>")
    tower = _tower(model_type)
    side = tower["image_size"]
    if model_type == "llava":
        grid = side // tower["patch_size"]
        return LlavaConfig(
            vision_config=CLIPVisionConfig(projection_dim=32, **tower),
            text_config=LlamaConfig(**_text(tok)),
            image_token_index=image_token_index,
            image_seq_length=grid * grid,
        )
    if model_type == "llava_next":
        return LlavaNextConfig(
            vision_config=CLIPVisionConfig(projection_dim=32, **tower),
            text_config=LlamaConfig(**_text(tok)),
            image_token_index=image_token_index,
            image_grid_pinpoints=rescaled_pinpoints(LlavaNextImageProcessor.image_grid_pinpoints, side),
            image_seq_length=(side // tower["patch_size"]) ** 2,
        )
    if model_type == "llava_onevision":
        return LlavaOnevisionConfig(
            vision_config=SiglipVisionConfig(vision_use_head=False, **tower),
            text_config=Qwen2Config(**_text(tok)),
            image_token_index=image_token_index,
            video_token_index=_tid(tok, "<video>"),
            image_grid_pinpoints=rescaled_pinpoints(LlavaOnevisionImageProcessor.image_grid_pinpoints, side),
        )
    raise ValueError(f"no tiny LLaVA config for model_type {model_type!r}")


def tiny_processor(config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
    """The stock processor for ``config``, sized from its vision tower like a checkpoint's own.

    ``image_processor_kwargs`` override the checkpoint defaults the way
    ``from_pretrained(..., do_pad=False)`` does on a real checkpoint.
    """
    model_type = config.model_type
    vision = config.vision_config
    side, patch = int(vision.image_size), int(vision.patch_size)
    tok = tiny_tokenizer(model_type)
    template = CHAT_TEMPLATES[model_type]
    common = {"vision_feature_select_strategy": config.vision_feature_select_strategy, "chat_template": template}
    if model_type == "llava":
        kwargs: dict[str, Any] = {
            "do_pad": True,
            "size": {"shortest_edge": side},
            "crop_size": {"height": side, "width": side},
        }
        return LlavaProcessor(
            image_processor=LlavaImageProcessor(**{**kwargs, **image_processor_kwargs}),
            tokenizer=tok,
            patch_size=patch,
            num_additional_image_tokens=CLS_TOKENS[vision.model_type],
            **common,
        )
    pinpoints = [list(p) for p in config.image_grid_pinpoints]
    if model_type == "llava_next":
        kwargs = {
            "size": {"shortest_edge": side},
            "crop_size": {"height": side, "width": side},
            "image_grid_pinpoints": pinpoints,
        }
        return LlavaNextProcessor(
            image_processor=LlavaNextImageProcessor(**{**kwargs, **image_processor_kwargs}),
            tokenizer=tok,
            patch_size=patch,
            num_additional_image_tokens=CLS_TOKENS[vision.model_type],
            **common,
        )
    if model_type == "llava_onevision":
        kwargs = {"size": {"height": side, "width": side}, "image_grid_pinpoints": pinpoints}
        return LlavaOnevisionProcessor(
            image_processor=LlavaOnevisionImageProcessor(**{**kwargs, **image_processor_kwargs}),
            tokenizer=tok,
            video_processor=LlavaOnevisionVideoProcessor(size={"height": side, "width": side}),
            num_image_tokens=(side // patch) ** 2,
            vision_aspect_ratio=config.vision_aspect_ratio,
            **common,
        )
    raise ValueError(f"no tiny LLaVA processor for model_type {model_type!r}")
