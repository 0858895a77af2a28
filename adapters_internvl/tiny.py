"""Offline tiny InternVL checkpoints (the transformers-format ``internvl`` ones): the released
geometry, a few thousand parameters.

The vision side keeps what the released checkpoints use (448 px tiles, patch 14, pixel-shuffle
ratio 0.5, so 16x16 = 256 tokens per tile, 1 to 12 tiles plus a thumbnail) because the tiling
is what this package is about; only widths and depths shrink. The tokenizer carries InternVL's
special tokens with their real spellings as named attributes, where the stock processor looks.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    GotOcr2ImageProcessor,
    InternVLConfig,
    InternVLProcessor,
    InternVLVideoProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters.tiny import build_tokenizer

START_IMAGE, END_IMAGE, CONTEXT_IMAGE, VIDEO = "<img>", "</img>", "<IMG_CONTEXT>", "<video>"
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    START_IMAGE,
    END_IMAGE,
    CONTEXT_IMAGE,
    VIDEO,
)

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""The InternVL-hf chat format: ``<|im_start|>user\\n<IMG_CONTEXT>\\n{text}<|im_end|>\\n``; the
processor expands each ``<IMG_CONTEXT>`` to ``<img>`` + 256 per tile ``<IMG_CONTEXT>`` + ``</img>``."""

# preprocessor_config.json of the released InternVL3-hf checkpoints, mirrored so the tiny
# processor tiles exactly like the real one.
RELEASED_IMAGE_PROCESSOR: dict[str, Any] = {
    "size": {"height": 448, "width": 448},
    "min_patches": 1,
    "max_patches": 12,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}
RELEASED_PATCH_SIZE = 14
RELEASED_DOWNSAMPLE_RATIO = 0.5


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer with InternVL's special tokens, named where the stock processor reads them."""
    return build_tokenizer(
        SPECIAL_TOKENS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={
            "start_image_token": START_IMAGE,
            "end_image_token": END_IMAGE,
            "context_image_token": CONTEXT_IMAGE,
            "video_token": VIDEO,
        },
        padding_side="left",
    )


def tiny_config() -> PretrainedConfig:
    """A two-layer ``internvl`` config (Qwen2 text model) whose vision tower takes the released tiles."""
    tok = tiny_tokenizer()
    side = int(RELEASED_IMAGE_PROCESSOR["size"]["height"])
    grid = side // RELEASED_PATCH_SIZE * RELEASED_DOWNSAMPLE_RATIO
    image_token_id = tok.convert_tokens_to_ids(CONTEXT_IMAGE)
    assert isinstance(image_token_id, int)
    return InternVLConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "bos_token_id": None,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": side,
            "patch_size": RELEASED_PATCH_SIZE,
        },
        downsample_ratio=RELEASED_DOWNSAMPLE_RATIO,
        image_seq_length=int(grid * grid),
        image_token_id=image_token_id,
    )


def tiny_processor(config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
    """The stock processor around the tiny tokenizer; tile size and tokens per tile follow ``config``.

    ``image_processor_kwargs`` (``min_patches``, ``max_patches``, ...) override the released
    settings the way ``from_pretrained(..., max_patches=6)`` does on a real checkpoint.
    """
    vision = config.vision_config
    height, width = vision.image_size
    settings = {**RELEASED_IMAGE_PROCESSOR, "size": {"height": height, "width": width}, **image_processor_kwargs}
    return InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(**settings),
        tokenizer=tiny_tokenizer(),
        video_processor=InternVLVideoProcessor(),
        image_seq_length=int(config.image_seq_length),
        chat_template=CHAT_TEMPLATE,
    )
