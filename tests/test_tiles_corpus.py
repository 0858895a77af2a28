"""The kit's bad-input corpus on InternVL, Idefics3 and SmolVLM: every mutation of a valid sample (in
the processor's format and the research formats) is refused with a typed error or gives a batch the
stock model runs on consistently; nothing crashes and nothing wrong is accepted."""

from __future__ import annotations

import pytest

from vlm_adapters import get_adapter
from vlm_adapters.testing.corpus import run_corpus


@pytest.mark.parametrize("name", ["internvl", "idefics3", "smolvlm"])
def test_bad_input_corpus(name: str) -> None:
    adapter = get_adapter(name).from_tiny()
    report = run_corpus(adapter, adapter.load_model(seed=0), chains=12, seed=1)
    assert not report.failures, report.describe()
    assert report.counts["refused"] > 200 and report.counts["accepted"] > 20
