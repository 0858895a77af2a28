"""The public API checks its arguments: typed errors that say what was wrong, never a crash deep
inside a model or a silently different computation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from vlm_adapters import VisionInputError
from vlm_adapters.checkpoints import CheckpointError
from vlm_adapters.pipeline import FrozenLMM, FrozenOutput
from vlm_adapters.registry import adapter_for, get_adapter
from vlm_adapters.testing import smooth_image


@pytest.fixture(scope="module")
def lmm() -> FrozenLMM:
    return FrozenLMM.from_tiny("deepseek_vl")


@pytest.fixture(scope="module")
def batch_and_output(lmm: FrozenLMM) -> tuple[Any, FrozenOutput]:
    prompt = lmm.adapter.format_prompt("where is the cat", answer="the cat on the left")
    batch = lmm.prepare([smooth_image(60, 80)], [prompt])
    return batch, lmm(batch, layers=[0])[0]


@pytest.mark.parametrize("layers", [[99], [], ["a"], [0, 0], [True], "0", [0.5]])
def test_layers_that_do_not_fit_are_refused(lmm: FrozenLMM, batch_and_output: Any, layers: Any) -> None:
    batch, _ = batch_and_output
    with pytest.raises(VisionInputError, match="layers do not fit"):
        lmm(batch, layers=layers)


@pytest.mark.parametrize("queries", ["abc", [[1.5]], [[]], [[3], [4]], torch.tensor([3])])
def test_bad_queries_are_refused(lmm: FrozenLMM, batch_and_output: Any, queries: Any) -> None:
    batch, _ = batch_and_output
    with pytest.raises(VisionInputError, match="quer"):
        lmm(batch, queries=queries)


def test_a_batch_must_be_a_vision_batch(lmm: FrozenLMM) -> None:
    with pytest.raises(VisionInputError, match="VisionBatch"):
        lmm({"input_ids": torch.tensor([[1, 2]])})  # type: ignore[arg-type]


def test_output_helpers_check_image_view_and_reduce(batch_and_output: Any) -> None:
    _, out = batch_and_output
    ids = torch.zeros(out.num_queries, dtype=torch.long)
    with pytest.raises(VisionInputError, match="no such image"):
        out.phrase_maps(ids, image=5)
    with pytest.raises(VisionInputError, match="no such image"):
        out.to_image(out.attention[0], image=5)
    with pytest.raises(VisionInputError, match="no such view"):
        out.phrase_maps(ids, view=3)
    with pytest.raises(VisionInputError, match="unknown reduce mode"):
        out.phrase_maps(ids, reduce="median")  # type: ignore[arg-type]
    with pytest.raises(VisionInputError, match="hidden-state layers"):
        out.phrase_hidden_states(ids, layers=[7])
    # the valid calls agree with each other
    assert torch.equal(out.phrase_maps(ids, view=0), out.phrase_maps(ids))
    assert torch.equal(out.phrase_maps_per_view(ids)[0], out.phrase_maps(ids))


def test_missing_checkpoint_folders_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "checkpoint"
    with pytest.raises(CheckpointError, match="does not exist"):
        FrozenLMM.from_pretrained(missing)
    with pytest.raises(CheckpointError, match="does not exist"):
        get_adapter("qwen2_5_vl").from_pretrained(str(missing))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        adapter_for(tmp_path)


def test_unreachable_hub_ids_are_typed_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"could not be read.*HF_HUB_OFFLINE"):
        adapter_for("no-such-org/no-such-model-xyz")


def test_prepare_collate_and_format_prompt_check_their_arguments(lmm: FrozenLMM) -> None:
    adapter = lmm.adapter
    with pytest.raises(VisionInputError, match="texts are not prompts"):
        adapter.prepare([smooth_image(20, 20)], None)  # type: ignore[arg-type]
    with pytest.raises(VisionInputError, match="non-empty list of samples"):
        adapter.collate([])
    with pytest.raises(VisionInputError, match="text is not a string"):
        adapter.format_prompt(None)  # type: ignore[arg-type]
    with pytest.raises(VisionInputError, match="num_images"):
        adapter.format_prompt("x", num_images=-1)
