"""Offline tiny Idefics3 and SmolVLM checkpoints: the released splitting geometry, tiny widths.

Idefics3-8B splits into 364 px sub-images (patch 14, pixel shuffle 2: 13x13 = 169 tokens each)
after resizing the longest edge to 4 x 364; SmolVLM-256M/500M into 512 px sub-images (patch 16,
pixel shuffle 4: 8x8 = 64 tokens) after resizing to 4 x 512; SmolVLM 2.2B into 384 px
sub-images of patch 14, of which the patches see the first 378 px (27 patches, pixel shuffle 3:
9x9 = 81 tokens), after resizing to 4 x 384. The tokenizer knows the marker
tokens (``<fake_token_around_image>``, ``<global-img>``, ``<row_i_col_j>``) and, like the
released Llama-3 style tokenizers, has ``"\\n"`` and ``"\\n\\n"`` as tokens, so the newlines the
processor writes between rows count exactly as on a real checkpoint.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    Idefics3Config,
    Idefics3ImageProcessor,
    Idefics3Processor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    SmolVLMConfig,
    SmolVLMImageProcessor,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters.tiny import BASIC_WORDS, build_tokenizer

IMAGE, FAKE, GLOBAL, END_OF_UTTERANCE = "<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"
BOS, EOS_TEXT = "<|begin_of_text|>", "<|end_of_text|>"
MAX_MARKER = 6
"""The released tokenizers carry ``<row_i_col_j>`` for i, j in 1..6."""
ROW_COL_TOKENS: tuple[str, ...] = tuple(
    f"<row_{i + 1}_col_{j + 1}>" for i in range(MAX_MARKER) for j in range(MAX_MARKER)
)

CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
"""The Idefics3 / SmolVLM chat format: ``User:<image>{text}<end_of_utterance>\\nAssistant:``."""

SMOLVLM_2B = "smolvlm_2.2b"
"""Tiny variant with SmolVLM 2.2B's sub-image geometry: a 384 px side that 14 px patches do not divide."""

# (sub-image side, patch size, pixel-shuffle factor, longest edge after the first resize)
RELEASED: dict[str, tuple[int, int, int, int]] = {
    "idefics3": (364, 14, 2, 4 * 364),  # HuggingFaceM4/Idefics3-8B-Llama3
    "smolvlm": (512, 16, 4, 4 * 512),  # HuggingFaceTB/SmolVLM-256M-Instruct
    SMOLVLM_2B: (384, 14, 3, 4 * 384),  # HuggingFaceTB/SmolVLM-Instruct, SmolVLM2-2.2B-Instruct
}
MODEL_TYPE = {"idefics3": "idefics3", "smolvlm": "smolvlm", SMOLVLM_2B: "smolvlm"}
"""The ``model_type`` of each tiny variant."""


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer with the Idefics3 marker tokens; ``\\n\\n`` is one token, as in Llama 3."""
    return build_tokenizer(
        (FAKE, IMAGE, GLOBAL, END_OF_UTTERANCE, "\n\n", "\n", *ROW_COL_TOKENS),
        bos_token=BOS,
        eos_token=END_OF_UTTERANCE,
        pad_token=EOS_TEXT,
        chat_template=CHAT_TEMPLATE,
        words=(*BASIC_WORDS, "User", "Assistant"),
        extra_attributes={
            "image_token": IMAGE,
            "fake_image_token": FAKE,
            "global_image_token": GLOBAL,
            "end_of_utterance_token": END_OF_UTTERANCE,
        },
    )


def tiny_config(variant: str) -> PretrainedConfig:
    """A two-layer ``idefics3`` or ``smolvlm`` config (Llama text model) with a released vision geometry."""
    if variant not in RELEASED:
        raise ValueError(f"no tiny config for {variant!r}; known: {sorted(RELEASED)}")
    side, patch, shuffle, _ = RELEASED[variant]
    tok = tiny_tokenizer()
    image_token_id = tok.convert_tokens_to_ids(IMAGE)
    assert isinstance(image_token_id, int)
    text: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 8192,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": side,
        "patch_size": patch,
    }
    config_cls = Idefics3Config if MODEL_TYPE[variant] == "idefics3" else SmolVLMConfig
    return config_cls(text_config=text, vision_config=vision, scale_factor=shuffle, image_token_id=image_token_id)


def tiny_processor(config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
    """The stock processor around the tiny tokenizer; sub-image size and tokens follow ``config``.

    ``image_processor_kwargs`` (``size``, ``max_image_size``, ``do_image_splitting``) override
    the released settings like ``from_pretrained(...)`` keyword arguments do.
    """
    vision = config.vision_config
    side, patch, shuffle = int(vision.image_size), int(vision.patch_size), int(config.scale_factor)
    longest_edge = RELEASED[config.model_type][3] // RELEASED[config.model_type][0] * side
    settings: dict[str, Any] = {
        "size": {"longest_edge": longest_edge},
        "max_image_size": {"longest_edge": side},
        **image_processor_kwargs,
    }
    image_seq_len = (side // patch) ** 2 // shuffle**2
    if config.model_type == "idefics3":
        return Idefics3Processor(
            image_processor=Idefics3ImageProcessor(**settings),
            tokenizer=tiny_tokenizer(),
            image_seq_len=image_seq_len,
            chat_template=CHAT_TEMPLATE,
        )
    return SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(**settings),
        tokenizer=tiny_tokenizer(),
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )
