"""The tiny tokenizers are byte-level BPE like the real Qwen and DeepSeek ones: no unknown token, words
after a space are other tokens, deterministic training, special tokens intact for the processors."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters_deepseek.tiny import tiny_tokenizer as deepseek_tokenizer
from adapters_qwen.tiny import SPECIAL_TOKENS
from adapters_qwen.tiny import tiny_tokenizer as qwen_tokenizer
from vlm_adapters.registry import get_adapter
from vlm_adapters.tiny import TINY_VOCAB_SIZE

TOKENIZERS = {"qwen": qwen_tokenizer, "deepseek": deepseek_tokenizer}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tok(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return TOKENIZERS[request.param]()


def test_byte_level_bpe_with_a_small_vocabulary(tok) -> None:  # type: ignore[no-untyped-def]
    model = tok.backend_tokenizer.model
    assert type(model).__name__ == "BPE"
    assert type(tok.backend_tokenizer.pre_tokenizer).__name__ == "ByteLevel"
    assert type(tok.backend_tokenizer.decoder).__name__ == "ByteLevel"
    assert tok.unk_token is None
    assert 256 < len(tok) <= TINY_VOCAB_SIZE


def test_a_word_after_a_space_is_another_token(tok) -> None:  # type: ignore[no-untyped-def]
    alone = tok("red", add_special_tokens=False)["input_ids"]
    spaced = tok(" red", add_special_tokens=False)["input_ids"]
    assert len(alone) == len(spaced) == 1 and alone != spaced
    assert tok.convert_ids_to_tokens(spaced) == ["Ġred"]


def test_a_word_outside_the_corpus_is_several_tokens(tok) -> None:  # type: ignore[no-untyped-def]
    ids = tok(" xylophone", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1 and tok.decode(ids) == " xylophone"


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=40).filter(lambda t: "<" not in t))
def test_any_text_round_trips_without_unknown_tokens(text: str) -> None:
    for make in TOKENIZERS.values():
        tok = make()
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text


def test_special_tokens_stay_single_tokens_and_keep_their_ids() -> None:
    tok = qwen_tokenizer()
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(len(SPECIAL_TOKENS)))
    ids = tok("a <|vision_start|><|image_pad|><|vision_end|> b", add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<|image_pad|>") in ids
    adapter = get_adapter("qwen2_5_vl").from_tiny()
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert adapter.processor.image_token_id == adapter.config.image_token_id == image_pad
    deepseek = get_adapter("deepseek_vl").from_tiny()
    assert deepseek.processor.image_token_id == deepseek.config.image_token_id


def _fingerprint() -> str:
    return hashlib.sha256(qwen_tokenizer().backend_tokenizer.to_str().encode()).hexdigest()


def test_training_is_deterministic_across_processes() -> None:
    code = (
        "import hashlib; from adapters_qwen.tiny import tiny_tokenizer;"
        "print(hashlib.sha256(tiny_tokenizer().backend_tokenizer.to_str().encode()).hexdigest())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == _fingerprint()
