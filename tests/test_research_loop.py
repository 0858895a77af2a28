"""The documented research loop runs unchanged on every built-in family, single- and multi-view."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from vlm_adapters.phrases import find_phrase, phrase_mask_ids
from vlm_adapters.pipeline import FrozenLMM

LOOP = runpy.run_path(str(Path(__file__).resolve().parents[1] / "docs" / "research_loop.py"))


@pytest.mark.parametrize(
    "backbone", ["qwen2_5_vl", "deepseek_vl", "llava_next", "gemma3", "internvl", "idefics3", "smolvlm"]
)
def test_same_loop_any_backbone(backbone: str) -> None:
    report = LOOP["research_loop"](backbone)
    for sample in report["samples"]:
        assert len(sample["head_inputs"]) == len(sample["token_grids"]) == len(sample["views"]) >= 1
        for (k, channels, rows, cols), grid in zip(sample["head_inputs"], sample["token_grids"], strict=True):
            assert channels > 0
            assert k == 2 and (rows, cols) == tuple(grid)
        assert sample["prediction"] == (2, *sample["image_size"])
        assert torch.isfinite(torch.tensor(sample["loss"]))
    if backbone in ("llava_next", "internvl", "idefics3", "smolvlm"):
        assert any(len(sample["views"]) > 1 for sample in report["samples"])


@pytest.mark.parametrize("backbone", ["qwen2_5_vl", "deepseek_vl", "internvl"])
def test_same_loop_from_extracted_shards(backbone: str, tmp_path: Path) -> None:
    """The variant that trains from shards feeds the head what the live loop feeds it, sample by sample."""
    live = {tuple(s["image_size"]): s for s in LOOP["research_loop"](backbone)["samples"]}
    report = LOOP["research_loop_from_shards"](backbone, tmp_path)
    assert sorted(s["id"] for s in report["samples"]) == ["toy0", "toy1"]
    for sample in report["samples"]:
        want = live[tuple(sample["image_size"])]
        for key in ("views", "token_grids", "head_inputs", "prediction"):
            assert sample[key] == want[key], key
        assert torch.isfinite(torch.tensor(sample["loss"]))


def test_phrase_mask_ids_mark_the_answer_tokens() -> None:
    lmm = FrozenLMM.from_tiny("deepseek_vl")
    tok = lmm.adapter.processor.tokenizer
    prompt = lmm.adapter.format_prompt("the red circle ?", answer="a red circle")
    ids = tok(prompt, return_tensors="pt")["input_ids"][0]
    mask = phrase_mask_ids(tok, ids, ["red circle"])
    marked = ids[mask == 0].tolist()
    assert marked == tok(" red circle", add_special_tokens=False)["input_ids"]  # BPE: the words after a space
    assert int((mask == 0).nonzero()[0]) > int(find_phrase(tok, ids, "?")[0])  # the answer, not the question
