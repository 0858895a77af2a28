"""Find phrases in a tokenized prompt and turn them into per-token object ids (``mask_ids``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import VisionInputError


def find_phrase(tokenizer: Any, input_ids: torch.Tensor, text: str) -> torch.Tensor:
    """Positions of ``text``'s tokens in a 1-D ``input_ids``: its last occurrence (the answer turn).

    Tries ``text`` and ``" " + text``, since BPE tokenizers encode a word differently after a space.
    """
    ids = input_ids.tolist()
    best: tuple[int, int] | None = None  # (start, length) of the last match of either form
    for candidate in (text, " " + text):
        needle = tokenizer(candidate, add_special_tokens=False)["input_ids"]
        for start in range(len(ids) - len(needle), -1, -1):
            if needle and ids[start : start + len(needle)] == needle:
                if best is None or start > best[0]:
                    best = (start, len(needle))
                break
    if best is not None:
        return torch.arange(best[0], best[0] + best[1])
    raise VisionInputError(
        "phrase not found in the tokenized prompt",
        found=repr(text),
        expected="a phrase whose tokens appear in the chat-templated sequence",
        fix="pass a phrase copied from the caption (tokenization must match)",
    )


def phrase_mask_ids(tokenizer: Any, input_ids: torch.Tensor, phrases: Sequence[str]) -> torch.Tensor:
    """``mask_ids`` for one sample: object ``k`` on the tokens of ``phrases[k]``, -1 elsewhere."""
    mask_ids = torch.full_like(input_ids, -1)
    for k, phrase in enumerate(phrases):
        mask_ids[find_phrase(tokenizer, input_ids, phrase)] = k
    return mask_ids
