"""A sample's ``phrases`` as object ids on the tokens of its text (the ``mask_ids`` of the sequence).

Phrases come as strings of the text, character spans ``[start, end]`` of the text, or one object
id per token of the text. Strings become spans (each searched from where the previous one
started, so repeated words are taken in order); spans become the tokens whose characters overlap
them, read from the fast tokenizer's offsets on the whole chat-templated prompt, so that the
tokens are those of the text in context (a leading space glued to a word, a word split in pieces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import SampleError

Span = tuple[int, int]


def text_tokens(tokenizer: Any, prompt: str, input_ids: torch.Tensor, text: str) -> tuple[torch.Tensor, list[Span]]:
    """Positions in ``input_ids`` of the tokens of ``text`` (its last occurrence in ``prompt``, the
    answer turn), and the characters of ``text`` each one covers."""
    start = prompt.rfind(text)
    if start < 0 or not text:
        raise SampleError(
            "the text is not in the chat-templated prompt",
            found=repr(text[:80]),
            expected="a non-empty text the chat template keeps as it is",
            fix="check the text for characters the chat template changes",
        )
    end = start + len(text)
    encoded = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    inside = [j for j, (s, e) in enumerate(encoded["offset_mapping"]) if s < end and e > start]
    needle = [int(t) for t in encoded["input_ids"][inside[0] : inside[-1] + 1]] if inside else []
    ids = input_ids.tolist()
    at = next((i for i in range(len(ids) - len(needle), -1, -1) if ids[i : i + len(needle)] == needle), -1)
    if not needle or at < 0:
        raise SampleError(
            "the text's tokens are not in the processed sequence",
            found=f"{len(needle)} tokens for {text[:80]!r}",
            expected="the tokens of the text, as the tokenizer splits the prompt, at the end of the sequence",
            fix="report this with the backbone and the text: the processor tokenizes the prompt differently",
        )
    spans = [
        (max(s - start, 0), min(e - start, len(text)))
        for s, e in (encoded["offset_mapping"][j] for j in range(inside[0], inside[-1] + 1))
    ]
    return torch.arange(at, at + len(needle)), spans


def phrase_spans(text: str, phrases: Sequence[Any]) -> list[Span]:
    """Character spans of ``phrases`` given as strings or as ``[start, end]`` pairs."""
    spans: list[Span] = []
    cursor = 0
    for k, phrase in enumerate(phrases):
        if isinstance(phrase, str):
            start = text.find(phrase, cursor) if phrase else -1
            start = text.find(phrase) if start < 0 and phrase else start
            if start < 0:
                raise SampleError(
                    f"phrase {k} is not in the text",
                    found=f"{phrase!r} in {text[:80]!r}",
                    expected="a phrase written as in the text (case and spacing count)",
                    fix="copy the phrase from the text, or give a character span [start, end]",
                )
            spans.append((start, start + len(phrase)))
            cursor = start
        elif _is_span(phrase) and 0 <= phrase[0] < phrase[1] <= len(text):
            spans.append((int(phrase[0]), int(phrase[1])))
        else:
            raise SampleError(
                f"phrase {k} is neither a string of the text nor a character span",
                found=repr(phrase)[:80],
                expected=f"a string, or [start, end] with 0 <= start < end <= {len(text)}",
                fix="give phrases as strings, as [start, end] spans, or as one object id per token of the text",
            )
    return spans


def object_ids(phrases: Any, text: str, spans: Sequence[Span]) -> list[int]:
    """One object id per token of the text (-1 = none), from phrases in any of the three forms.

    ``spans`` are the characters of each token of the text (see :func:`text_tokens`).
    """
    if phrases is None or (isinstance(phrases, (list, tuple)) and not phrases):
        phrases = [text]
    if isinstance(phrases, str):
        phrases = [phrases]
    if not isinstance(phrases, (list, tuple)):
        raise SampleError(
            "phrases are not a list",
            found=type(phrases).__name__,
            expected="a list of strings, of [start, end] spans, or of per-token object ids",
            fix="give phrases as a list",
        )
    if all(isinstance(p, int) and not isinstance(p, bool) for p in phrases):
        if len(phrases) != len(spans) or any(p < -1 for p in phrases) or max(phrases) < 0:
            raise SampleError(
                "per-token object ids do not fit the text's tokens",
                found=f"{len(phrases)} ids {list(phrases)[:12]}",
                expected=f"{len(spans)} ids (one per token of the text), -1 or 0..K-1, at least one object",
                fix="give one id per token as the tokenizer splits the text, or give the phrases as strings",
            )
        return [int(p) for p in phrases]
    ids = [-1] * len(spans)
    for k, (start, end) in enumerate(phrase_spans(text, phrases)):
        hit = [j for j, (s, e) in enumerate(spans) if s < end and e > start]
        taken = [j for j in hit if ids[j] >= 0]
        if not hit or taken:
            raise SampleError(
                f"phrase {k} has no token of its own",
                found=f"characters {start}:{end} ({text[start:end]!r})"
                + (f", tokens shared with phrase {ids[taken[0]]}" if taken else ", no token"),
                expected="phrases that cover tokens of the text, each token in one phrase",
                fix="give phrases that do not overlap and are not only spaces",
            )
        for j in hit:
            ids[j] = k
    return ids


def _is_span(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
