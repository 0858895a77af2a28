"""Offline tiny Gemma 3 checkpoints: the real structure (SigLIP at 896 px, average pooling to a
16x16 = 256-token grid, sliding and global decoder layers, bidirectional attention over each
image's tokens) with widths and depths that run on a laptop CPU.

Two deliberate differences from the released checkpoints, both to keep tests fast and sharp:

* the vision patch is 28 px (32x32 patches pooled 2x2) instead of 14 px (64x64 pooled 4x4): the
  LLM still sees 256 tokens per view of an 896 px input, at a sixteenth of the vision cost;
* ``query_pre_attn_scalar`` differs from ``head_dim`` (as on the 27B checkpoint) so the attention
  scale is never the default ``head_dim ** -0.5``, and the sliding window is shorter than one
  image, so the sliding layers' mask (window AND (causal OR same-image)) is exercised.

Token ids in the config are read from the tokenizer built here, so config and processor agree
the way they do on a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import Gemma3Config, Gemma3ImageProcessor, Gemma3Processor, PretrainedConfig, PreTrainedTokenizerFast

from vlm_adapters.tiny import BASIC_WORDS, build_tokenizer

BOI, EOI, IMAGE_SOFT = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
"""Gemma 3's image tokens: the prompt placeholder (begin of image), its end, and the feature slot."""
BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
TURN_START, TURN_END = "<start_of_turn>", "<end_of_turn>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    "{%- else -%}{{ raise_exception('Invalid content type') }}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
"""The public Gemma 3 chat template: ``<start_of_turn>user\\n...<end_of_turn>``, the assistant
turn named ``model``, one ``<start_of_image>`` per image, a system prompt folded into the first
user turn."""

PAN_AND_SCAN_WORDS = ("Here", "original", "crops", "help", "see", "better", "model")
"""Words of the text the processor writes between pan-and-scan crops (and the assistant role),
so the tiny tokenizer gives them real ids instead of ``<unk>``."""

RELEASED_IMAGE_SIZE = 896
"""Input side of the released checkpoints (``preprocessor_config.json``; the stock class default is 224)."""
TINY_PATCH_SIZE = 28
"""Vision patch of the tiny tower (released: 14); with the 896 px input, 32x32 patches."""

PAN_AND_SCAN_ON: Mapping[str, Any] = {"do_pan_and_scan": True}
"""Processor setting that turns pan-and-scan on, as ``from_pretrained(..., do_pan_and_scan=True)``
does on a real checkpoint (the crop settings keep the processor's defaults)."""


def tiny_tokenizer(processor_defaults: Mapping[str, Any] | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer with Gemma 3's special tokens, named where the stock processor looks.

    ``processor_defaults`` land in the tokenizer's init kwargs, which is where
    ``AutoProcessor.from_pretrained(path, do_pan_and_scan=True)`` puts processor call defaults
    (and where ``save_pretrained`` keeps them).
    """
    tok = build_tokenizer(
        [TURN_START, TURN_END, BOI, EOI, IMAGE_SOFT],
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        words=(*BASIC_WORDS, *PAN_AND_SCAN_WORDS),
        extra_attributes={"image_token": IMAGE_SOFT, "boi_token": BOI, "eoi_token": EOI},
    )
    tok.init_kwargs.update(processor_defaults or {})
    return tok


def _tid(tok: PreTrainedTokenizerFast, token: str) -> int:
    value = tok.convert_tokens_to_ids(token)
    assert isinstance(value, int)
    return value


def tiny_config() -> Gemma3Config:
    """A two-layer Gemma 3 (one sliding, one global layer) with a one-layer SigLIP at 896 px."""
    tok = tiny_tokenizer()
    text: dict[str, Any] = {
        "model_type": "gemma3_text",
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "query_pre_attn_scalar": 12,
        "sliding_window": 96,
        "layer_types": ["sliding_attention", "full_attention"],
        "max_position_embeddings": 4096,
        "bos_token_id": _tid(tok, BOS),
        "eos_token_id": _tid(tok, EOS),
        "pad_token_id": _tid(tok, PAD),
    }
    vision: dict[str, Any] = {
        "model_type": "siglip_vision_model",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": RELEASED_IMAGE_SIZE,
        "patch_size": TINY_PATCH_SIZE,
        "vision_use_head": False,
    }
    return Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=256,
        boi_token_index=_tid(tok, BOI),
        eoi_token_index=_tid(tok, EOI),
        image_token_index=_tid(tok, IMAGE_SOFT),
    )


def tiny_processor(config: PretrainedConfig, processor_defaults: Mapping[str, Any] | None = None) -> Gemma3Processor:
    """The stock processor for ``config``: the stock image processor at the vision tower's size
    with the released checkpoints' normalisation (mean = std = 0.5), and one image expanded to
    ``mm_tokens_per_image`` soft tokens, as the model's pooling emits."""
    settings: Any = config
    side = int(settings.vision_config.image_size)
    image_processor = Gemma3ImageProcessor(
        size={"height": side, "width": side}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    )
    return Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tiny_tokenizer(processor_defaults),
        chat_template=CHAT_TEMPLATE,
        image_seq_length=int(settings.mm_tokens_per_image),
    )


def randomise_image_projection(model: Any, seed: int) -> None:
    """Give a random-weight model a random image projection, in place.

    transformers initialises Gemma 3's ``mm_input_projection_weight`` to zeros (right for training
    from scratch), so a random-weight model embeds every image as zeros: logits and attention maps
    would not depend on the pixels, and no test could tell a right image input from a wrong one.
    The scale matches the text embeddings (``initializer_range * sqrt(hidden_size)``).
    """
    weight = model.model.multi_modal_projector.mm_input_projection_weight
    text = model.config.get_text_config()
    std = float(model.config.initializer_range) * float(text.hidden_size) ** 0.5
    values = torch.randn(tuple(weight.shape), generator=torch.Generator().manual_seed(seed)) * std
    with torch.no_grad():
        weight.copy_(values.to(weight.dtype))
