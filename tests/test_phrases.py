"""Words of a caption and the byte-level BPE tokens that spell them, in the real chat-templated sequence."""

from __future__ import annotations

import pytest

from vlm_adapters.errors import OptionError
from vlm_adapters.phrases import choose_word, choose_words, find_phrase, locate_text, phrase_mask_ids
from vlm_adapters.registry import get_adapter
from vlm_adapters.testing.images import smooth_image


@pytest.fixture(scope="module", params=["qwen2_5_vl", "deepseek_vl"])
def adapter(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return get_adapter(request.param).from_tiny()


def sequence(adapter, caption: str):  # type: ignore[no-untyped-def]
    """input_ids of a real prepared sample (image tokens expanded) whose answer is ``caption``."""
    prompt = adapter.format_prompt("describe the red circle .", num_images=1, answer=caption)
    return adapter.prepare([smooth_image(64, 96, seed=0)], [prompt]).input_ids[0]


def spelled(adapter, caption: str, word_entry: str) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """The text the chosen tokens decode to, and the tokens themselves."""
    tok = adapter.processor.tokenizer
    ids = sequence(adapter, caption)
    located = locate_text(tok, ids, caption)
    word, _ = choose_word(caption, word_entry)
    rows = located.tokens_for(word.start, word.end)
    chosen = ids[located.positions[rows]].tolist()
    return tok.decode(chosen), tok.convert_ids_to_tokens(chosen)


def test_the_answer_is_found_after_the_prompt_not_in_it(adapter) -> None:  # type: ignore[no-untyped-def]
    tok = adapter.processor.tokenizer
    ids = sequence(adapter, "the red circle")
    positions = find_phrase(tok, ids, "the red circle")
    assert tok.decode(ids[positions]).strip() == "the red circle"
    image_positions = (ids == adapter.spec.image_token_id).nonzero().flatten()
    assert int(positions[0]) > int(image_positions[-1])  # the answer turn, not "describe the red circle ."


def test_leading_space_token(adapter) -> None:  # type: ignore[no-untyped-def]
    text, tokens = spelled(adapter, "the red circle", "red")
    assert text == " red" and tokens == ["Ġred"]


def test_word_split_into_several_tokens(adapter) -> None:  # type: ignore[no-untyped-def]
    text, tokens = spelled(adapter, "a xylophone on the table", "xylophone")
    assert text.strip() == "xylophone" and len(tokens) > 1
    assert "Ġ" not in tokens  # a space token of its own belongs to no word


def test_punctuation_is_not_part_of_the_word(adapter) -> None:  # type: ignore[no-untyped-def]
    text, _ = spelled(adapter, "a circle, a square.", "circle")
    assert text == " circle"
    comma, _ = spelled(adapter, "a circle, a square.", ",")
    assert comma == ","


def test_unicode_word_spread_over_byte_tokens(adapter) -> None:  # type: ignore[no-untyped-def]
    text, tokens = spelled(adapter, "the café next to 日本 tower", "日本")
    assert text.strip() == "日本" and len(tokens) > 2  # each CJK character is three bytes
    cafe, _ = spelled(adapter, "the café next to 日本 tower", "café")
    assert cafe == " café"


def test_phrase_of_several_words(adapter) -> None:  # type: ignore[no-untyped-def]
    text, _ = spelled(adapter, "the red circle", "red circle")
    assert text == " red circle"


def test_mask_ids_mark_each_phrase(adapter) -> None:  # type: ignore[no-untyped-def]
    tok = adapter.processor.tokenizer
    ids = sequence(adapter, "the red circle and the blue square")
    mask = phrase_mask_ids(tok, ids, ["red circle", "blue square"])
    assert tok.decode(ids[mask == 0]).strip() == "red circle"
    assert tok.decode(ids[mask == 1]).strip() == "blue square"


def test_occurrence_and_span_syntax() -> None:
    text = "the red circle left of the red square"
    first, warning = choose_word(text, "red")
    assert (first.start, first.end) == (4, 7) and warning is not None
    assert "red@2" in warning and "27:30" in warning
    second, warning = choose_word(text, "red@2")
    assert (second.start, second.end, second.text) == (27, 30, "red") and warning is None
    span, _ = choose_word(text, "8:14")
    assert span.text == "circle"
    only, warning = choose_word(text, "circle")
    assert only.start == 8 and warning is None


def test_whole_words_first() -> None:
    he, _ = choose_word("the man, he runs", "he")
    assert he.start == 9  # the word "he", not the end of "the"
    part, _ = choose_word("the man", "an")
    assert part.start == 5  # no whole word "an": the substring


def test_default_words_are_the_words_of_the_text() -> None:
    words, warnings = choose_words("the red circle, it's big.", None)
    assert [w.text for w in words] == ["the", "red", "circle", "it's", "big"] and warnings == []


@pytest.mark.parametrize("entry", ["giraffe", "Red", "red@3", "red@0", "5:99", "9:3"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(OptionError) as info:
        choose_word("the red circle left of the red square", entry)
    assert info.value.fix and info.value.expected
