"""Offline tiny Qwen-VL checkpoints: the real structure (stock processors, real special tokens,
Qwen chat template) at a size that runs on a laptop CPU in milliseconds.

The token ids in the configs are read from the tokenizer built here, so config and processor
agree the way they do on a real checkpoint; the vision sizes of the image processor are read
from the config, so ``build_spec`` can cross-check them.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2VLConfig,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters.tiny import build_tokenizer

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""The Qwen-VL special tokens, with their real spellings."""

CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The public Qwen2-VL chat template: one ``<|vision_start|><|image_pad|><|vision_end|>`` per image."""

# Preprocessor settings of the public checkpoints (preprocessor_config.json), mirrored so the tiny
# processors resize exactly like the real ones. Qwen2-VL and Qwen2.5-VL ship min_pixels 3136 and
# max_pixels 12845056 (4 to 16384 image tokens of 28x28 pixels); transformers' class default,
# 28 * 28 * 1280, is the reduced budget the model cards suggest passing to from_pretrained.
QWEN2_PIXELS = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384}
QWEN3_PIXELS = {"shortest_edge": 65536, "longest_edge": 16777216}
QWEN3_MEAN_STD = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE tokenizer with the Qwen special tokens, named so stock processors find them."""
    return build_tokenizer(
        SPECIAL_TOKENS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )


def _tid(tok: PreTrainedTokenizerFast, token: str) -> int:
    value = tok.convert_tokens_to_ids(token)
    assert isinstance(value, int)
    return value


def _token_ids(tok: PreTrainedTokenizerFast) -> dict[str, Any]:
    def tid(token: str) -> int:
        return _tid(tok, token)

    return {
        "image_token_id": tid("<|image_pad|>"),
        "video_token_id": tid("<|video_pad|>"),
        "vision_start_token_id": tid("<|vision_start|>"),
        "vision_end_token_id": tid("<|vision_end|>"),
    }


def _text_config(tok: PreTrainedTokenizerFast, **extra: Any) -> dict[str, Any]:
    # head_dim 16 -> 8 rotary frequencies, split 2/3/3 over (temporal, height, width) by mrope.
    return {
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "bos_token_id": None,
        "eos_token_id": _tid(tok, "<|im_end|>"),
        "pad_token_id": _tid(tok, "<|endoftext|>"),
        **extra,
    }


def tiny_config(model_type: str) -> PretrainedConfig:
    """A two-layer config of ``model_type`` (``qwen2_vl``, ``qwen2_5_vl`` or ``qwen3_vl``)."""
    tok = tiny_tokenizer()
    ids = _token_ids(tok)
    if model_type == "qwen2_vl":
        rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6}
        return Qwen2VLConfig(
            text_config=_text_config(tok, rope_parameters=rope),
            vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2},
            **ids,
        )
    if model_type == "qwen2_5_vl":
        rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6}
        return Qwen2_5_VLConfig(
            text_config=_text_config(tok, rope_parameters=rope),
            vision_config={
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,
                # block 0 windowed, block 1 full: both attention kinds run, as in the real tower
                "fullatt_block_indexes": [1],
                "window_size": 112,
            },
            **ids,
        )
    if model_type == "qwen3_vl":
        rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True, "rope_theta": 5e6}
        return Qwen3VLConfig(
            text_config=_text_config(tok, head_dim=16, rope_parameters=rope),
            vision_config={
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,
                "num_position_embeddings": 64,
                "deepstack_visual_indexes": [0],
            },
            **ids,
        )
    raise ValueError(f"no tiny Qwen-VL config for model_type {model_type!r}")


def tiny_processor(
    config: PretrainedConfig,
    processor_cls: type[ProcessorMixin],
    video_processor_cls: type[Any],
    **image_processor_kwargs: Any,
) -> ProcessorMixin:
    """The stock processor around the tiny tokenizer; vision sizes follow ``config``.

    ``image_processor_kwargs`` (e.g. ``min_pixels``, ``max_pixels``) override the checkpoint
    defaults the way ``from_pretrained(..., max_pixels=...)`` does on a real checkpoint.
    """
    vision = config.vision_config
    sizes = {
        "patch_size": vision.patch_size,
        "merge_size": vision.spatial_merge_size,
        "temporal_patch_size": vision.temporal_patch_size,
    }
    defaults: dict[str, Any] = {"size": dict(QWEN2_PIXELS)}
    if config.model_type == "qwen3_vl":
        defaults = {"size": dict(QWEN3_PIXELS), **QWEN3_MEAN_STD}
    image_processor = Qwen2VLImageProcessor(**sizes, **{**defaults, **image_processor_kwargs})
    video_processor = video_processor_cls(**sizes)
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tiny_tokenizer(),
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
