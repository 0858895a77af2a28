"""Offline tiny DeepSeek-VL checkpoints: the real structure, a few thousand parameters.

The vision side keeps the released geometry (SigLIP at the stock processor's 384 with patch
16, so 24x24 = 576 image tokens; the hybrid's SAM branch at the stock 1024) because the
geometry is what this package is about; only widths and depths shrink. Sizes come from the
stock image-processor classes, not from literals, so the tiny model follows transformers.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    DeepseekVLConfig,
    DeepseekVLHybridConfig,
    DeepseekVLHybridImageProcessor,
    DeepseekVLHybridProcessor,
    DeepseekVLImageProcessor,
    DeepseekVLProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters.tiny import build_tokenizer

IMAGE_TOKEN = "<image_placeholder>"
"""The placeholder the released DeepSeek-VL tokenizers use (one per image in a prompt)."""
BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<pad>"
TINY_PATCH_SIZE = 16
"""SigLIP / SAM patch size of the released checkpoints (and the transformers defaults)."""

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}User: {% elif message['role'] == 'assistant' %}Assistant: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}" + IMAGE_TOKEN + "{% elif item['type'] == 'text' %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %} \n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""DeepSeek-VL's "User: ... \\n\\nAssistant: ...<eos>" conversation format; images inline."""


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE tokenizer with DeepSeek-VL's special tokens; ``image_token`` is a named attribute,
    which is where the stock processor looks for it."""
    return build_tokenizer(
        [IMAGE_TOKEN],
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        words=("User", "Assistant"),
        extra_attributes={"image_token": IMAGE_TOKEN},
    )


def _square_side(size: Any) -> int:
    return int(size["height"])


def tiny_config(hybrid: bool) -> PretrainedConfig:
    """Tiny ``deepseek_vl`` (SigLIP) or ``deepseek_vl_hybrid`` (SigLIP + SAM) config.

    ``image_token_id`` is set from the tokenizer: the config default (100015) does not fit a
    small vocabulary and would make every image token an out-of-range embedding index.
    """
    tok = tiny_tokenizer()
    text: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    processor_cls = DeepseekVLHybridImageProcessor if hybrid else DeepseekVLImageProcessor
    vision: dict[str, Any] = {
        "model_type": "siglip_vision_model",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": _square_side(processor_cls.size),
        "patch_size": TINY_PATCH_SIZE,
        "vision_use_head": False,
    }
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    assert isinstance(image_token_id, int)
    if not hybrid:
        return DeepseekVLConfig(text_config=text, vision_config=vision, image_token_id=image_token_id)
    sam: dict[str, Any] = {
        "model_type": "sam_vision_model",
        "hidden_size": 16,
        "output_channels": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 1,
        "mlp_dim": 32,
        "image_size": _square_side(DeepseekVLHybridImageProcessor.high_res_size),
        "patch_size": TINY_PATCH_SIZE,
        "global_attn_indexes": [0],
    }
    return DeepseekVLHybridConfig(
        text_config=text, vision_config=vision, high_res_vision_config=sam, image_token_id=image_token_id
    )


def tiny_processor(config: PretrainedConfig) -> ProcessorMixin:
    """The stock processor for ``config``: stock image processor sized from the vision config(s),
    the tiny tokenizer, and a token count equal to what the vision tower emits."""
    vision = config.vision_config
    side = int(vision.image_size)
    num_image_tokens = (side // int(vision.patch_size)) ** 2
    tok = tiny_tokenizer()
    size = {"height": side, "width": side}
    if config.model_type == "deepseek_vl_hybrid":
        high = int(config.high_res_vision_config.image_size)
        image_processor = DeepseekVLHybridImageProcessor(size=size, high_res_size={"height": high, "width": high})
        return DeepseekVLHybridProcessor(
            image_processor=image_processor,
            tokenizer=tok,
            chat_template=CHAT_TEMPLATE,
            num_image_tokens=num_image_tokens,
        )
    return DeepseekVLProcessor(
        image_processor=DeepseekVLImageProcessor(size=size),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        num_image_tokens=num_image_tokens,
    )
