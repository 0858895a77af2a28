"""The prompt formats of the released LLaVA checkpoints, as chat templates.

``<image>`` is the placeholder the processors expand; each template puts the images of a turn
before its text, as the released templates do.
"""

from __future__ import annotations

from typing import NamedTuple

LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
"""LLaVA-1.5 (Vicuna): ``USER: <image>\\n{question} ASSISTANT: {answer}``."""

LLAVA_NEXT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{{ ' [/INST]' }}"
    "{% else %}{% for item in message['content'] if item['type'] == 'text' %}{{ ' ' + item['text'] }}{% endfor %}"
    "{{ eos_token }}{% endif %}{% endfor %}"
)
"""LLaVA-NeXT (Mistral): ``[INST] <image>\\n{question} [/INST] {answer}</s>``."""

LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ '\n' + item['text'] }}{% endfor %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""LLaVA-OneVision (Qwen2): ``<|im_start|>user\\n<image>\\n{question}<|im_end|>\\n<|im_start|>assistant\\n``."""

CHAT_TEMPLATES = {
    "llava": LLAVA_TEMPLATE,
    "llava_next": LLAVA_NEXT_TEMPLATE,
    "llava_onevision": LLAVA_ONEVISION_TEMPLATE,
}


class TokenSet(NamedTuple):
    """Special tokens of one released tokenizer (spelling only: the tiny tokenizers number them anew)."""

    tokens: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str


SPECIAL_TOKENS = {
    "llava": TokenSet(("<image>",), bos="<s>", eos="</s>", pad="<pad>"),
    "llava_next": TokenSet(("<image>", "[INST]", "[/INST]"), bos="<s>", eos="</s>", pad="<pad>"),
    "llava_onevision": TokenSet(
        ("<image>", "<video>", "<|im_start|>"), bos=None, eos="<|im_end|>", pad="<|endoftext|>"
    ),
}

PROMPT_WORDS = ("USER", "ASSISTANT", "user", "assistant")
