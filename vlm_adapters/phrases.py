"""Words of a caption and the tokens that spell them, for any tokenizer (byte-level BPE included).

A word is a character span of the text; its tokens are the tokens whose characters overlap
that span. This holds whatever the tokenizer does: a leading space glued to the next word
(``Ġred``), a word split into several tokens, punctuation, or a Unicode character spread over
several byte-level tokens.

``--words`` entries (and :func:`choose_words`) select spans three ways:

* ``red`` or ``red circle``: a word or phrase of the text (whole-word matches first; several
  occurrences take the first and warn);
* ``red@2``: its second occurrence (1-based);
* ``13:16``: characters 13 to 16 of the text (Python slice, 0-based, end excluded).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import OptionError, VisionInputError

if TYPE_CHECKING:
    import torch

_SPAN = re.compile(r"^(\d+):(\d+)$")
_NTH = re.compile(r"^(.+)@(\d+)$", re.S)
_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(frozen=True)
class Word:
    """One selected word: its characters ``start:end`` of the text, and the entry that chose it."""

    entry: str
    start: int
    end: int
    text: str


def occurrences(text: str, phrase: str) -> list[int]:
    """Start offsets of ``phrase`` in ``text``: whole-word matches if there are any, else any match."""
    starts = [m.start() for m in re.finditer(f"(?={re.escape(phrase)})", text)]
    whole = [s for s in starts if _bounded(text, s, s + len(phrase))]
    return whole or starts


def _bounded(text: str, start: int, end: int) -> bool:
    before = start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")
    after = end == len(text) or not (text[end].isalnum() or text[end] == "_")
    return before and after


def choose_word(text: str, entry: str) -> tuple[Word, str | None]:
    """Resolve one ``--words`` entry to a span of ``text``; the second item is a warning, if any."""
    if m := _SPAN.match(entry):
        start, end = int(m.group(1)), int(m.group(2))
        if not 0 <= start < end <= len(text):
            raise OptionError(
                f"--words {entry}: character span outside the text",
                found=f"{start}:{end}",
                expected=f"START:END with 0 <= START < END <= {len(text)} (the length of --text)",
                fix="count characters of --text from 0, end excluded, e.g. 4:7 for 'red' in 'the red circle'",
            )
        return Word(entry, start, end, text[start:end]), None
    phrase, nth = entry, None
    if m := _NTH.match(entry):
        phrase, nth = m.group(1), int(m.group(2))
    found = occurrences(text, phrase) if phrase else []
    if not found:
        raise OptionError(
            f"--words {entry!r} is not in the text",
            found=f"--text {text!r}",
            expected=f"{phrase!r} written as in --text (case and spacing count)",
            fix="copy the word from --text, or give a character span START:END",
        )
    if nth is not None:
        if not 1 <= nth <= len(found):
            raise OptionError(
                f"--words {entry!r}: no occurrence {nth}",
                found=f"{len(found)} occurrence(s) of {phrase!r} in --text",
                expected=f"an occurrence number from 1 to {len(found)}",
                fix=f"use {phrase}@1 .. {phrase}@{len(found)}",
            )
        start = found[nth - 1]
        return Word(entry, start, start + len(phrase), phrase), None
    start = found[0]
    warning = None
    if len(found) > 1:
        spans = ", ".join(f"{s}:{s + len(phrase)}" for s in found)
        warning = (
            f"--words {entry!r} occurs {len(found)} times in --text (characters {spans}); using the first. "
            f"Pick one with '{phrase}@2' (2nd occurrence) or a span such as {found[1]}:{found[1] + len(phrase)}"
        )
    return Word(entry, start, start + len(phrase), phrase), warning


def choose_words(text: str, entries: Sequence[str] | None) -> tuple[list[Word], list[str]]:
    """Words to draw and warnings to show: the entries given, or every word of the text."""
    if not entries:
        words = [Word(m.group(), m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
        return words or [Word(text, 0, len(text), text)], []
    chosen = [choose_word(text, entry) for entry in entries]
    return [w for w, _ in chosen], [warning for _, warning in chosen if warning]


@dataclass(frozen=True)
class TextTokens:
    """Where a text's tokens sit in ``input_ids`` and which characters of the text each one covers."""

    text: str
    positions: torch.Tensor
    """``[n]`` positions in ``input_ids``, one per token of the text."""
    spans: tuple[tuple[int, int], ...]
    """Characters ``start:end`` of ``text`` per token (a leading space is not part of the text)."""

    def tokens_for(self, start: int, end: int) -> list[int]:
        """Indices (into ``positions``) of the tokens whose characters overlap ``start:end``."""
        return [i for i, (s, e) in enumerate(self.spans) if s < end and e > start]


def locate_text(tokenizer: Any, input_ids: torch.Tensor, text: str) -> TextTokens:
    """``text``'s tokens in a 1-D ``input_ids``, at its last occurrence (the answer turn).

    Tries ``text`` and ``" " + text``, since BPE tokenizers encode a word differently after a
    space; character spans come from the fast tokenizer's offsets.
    """
    import torch

    ids = input_ids.tolist()
    best: tuple[int, str, list[int]] | None = None  # (start, candidate, needle) of the last match
    for candidate in (text, " " + text):
        needle = tokenizer(candidate, add_special_tokens=False)["input_ids"]
        for start in range(len(ids) - len(needle), -1, -1):
            if needle and ids[start : start + len(needle)] == needle:
                if best is None or start > best[0]:
                    best = (start, candidate, needle)
                break
    if best is None:
        raise VisionInputError(
            "phrase not found in the tokenized prompt",
            found=repr(text),
            expected="a phrase whose tokens appear in the chat-templated sequence",
            fix="pass a phrase copied from the caption (tokenization must match)",
        )
    start, candidate, needle = best
    shift = len(candidate) - len(text)
    offsets = tokenizer(candidate, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    spans = tuple((max(s - shift, 0), max(e - shift, 0)) for s, e in offsets)
    return TextTokens(text, torch.arange(start, start + len(needle)), spans)


def find_phrase(tokenizer: Any, input_ids: torch.Tensor, text: str) -> torch.Tensor:
    """Positions of ``text``'s tokens in a 1-D ``input_ids``: its last occurrence (the answer turn)."""
    return locate_text(tokenizer, input_ids, text).positions


def phrase_mask_ids(tokenizer: Any, input_ids: torch.Tensor, phrases: Sequence[str]) -> torch.Tensor:
    """``mask_ids`` for one sample: object ``k`` on the tokens of ``phrases[k]``, -1 elsewhere."""
    import torch

    mask_ids = torch.full_like(input_ids, -1)
    for k, phrase in enumerate(phrases):
        mask_ids[find_phrase(tokenizer, input_ids, phrase)] = k
    return mask_ids
