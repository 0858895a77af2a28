"""The kit's bad-input corpus on the LLaVA family: every mutation of every research format is
either refused with a ``VisionInputError`` or accepted as a batch the stock forward runs on."""

from __future__ import annotations

import pytest

from vlm_adapters import get_adapter
from vlm_adapters.testing.corpus import run_corpus


@pytest.mark.parametrize("name", ["llava", "llava_next", "llava_onevision"])
def test_bad_input_corpus(name: str) -> None:
    adapter = get_adapter(name).from_tiny()
    report = run_corpus(adapter, adapter.load_model(seed=0), chains=100)
    assert not report.failures, report.describe()
    assert report.counts["refused"] > 200 and report.counts["accepted"] > 20
