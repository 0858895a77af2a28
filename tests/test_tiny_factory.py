"""Tiny offline fixtures are optional: an adapter for a real checkpoint implements ``build_spec``
and nothing else, loads a checkpoint folder, normalizes samples through the core procedure, and
refuses ``from_tiny`` with a typed error that names the fix."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import pytest
import torch

from adapters_deepseek.spec import build_deepseek_spec
from vlm_adapters import BackboneAdapter, FixedSpec, NoTinyFactoryError, get_adapter
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing import assert_inputs_equal, sample_from_batch, smooth_image
from vlm_adapters.tiny import TinyFactory, save_tiny_checkpoint


class CheckpointOnlyAdapter(BackboneAdapter):
    """What a plugin for a real checkpoint has to write: names and the spec."""

    name: ClassVar[str] = "checkpoint_only"
    model_types: ClassVar[tuple[str, ...]] = ("deepseek_vl",)
    spec_kind: ClassVar[Literal["fixed", "dynamic"]] = "fixed"

    def build_spec(self) -> FixedSpec:
        return build_deepseek_spec(self.config, self.processor)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder (config, processor, weights) as a hub download would give it."""
    return save_tiny_checkpoint(get_adapter("deepseek_vl").from_tiny(), tmp_path_factory.mktemp("ckpt"))


def test_the_protocol_is_separate() -> None:
    assert not isinstance(CheckpointOnlyAdapter, TinyFactory)
    assert isinstance(get_adapter("deepseek_vl"), TinyFactory)
    assert not hasattr(BackboneAdapter, "tiny_config") and not hasattr(BackboneAdapter, "tiny_processor")


def test_from_tiny_without_fixtures_names_the_fix() -> None:
    with pytest.raises(NoTinyFactoryError) as info:
        CheckpointOnlyAdapter.from_tiny()
    message = str(info.value)
    assert "checkpoint_only" in message and "from_pretrained" in message and "TinyFactory" in message


def test_a_checkpoint_adapter_needs_nothing_else(checkpoint: Path) -> None:
    adapter = CheckpointOnlyAdapter.from_pretrained(checkpoint)
    stock = get_adapter("deepseek_vl").from_pretrained(checkpoint)
    assert adapter.spec == stock.spec
    image = smooth_image(240, 320, seed=1)
    text = adapter.format_prompt("the red cat", answer="the red cat")
    batch = adapter.prepare([image], [text])
    again = adapter.normalize(sample_from_batch(batch))  # the core procedure, default resolve step
    assert_inputs_equal(again.inputs, {k: v for k, v in batch.inputs.items() if k != "attention_mask"})
    assert again.geometries == stock.prepare([image], [text]).geometries
    lmm = FrozenLMM(adapter.load_model(checkpoint), adapter)
    out = lmm(again)[0]
    assert tuple(out.attention[0].shape[-2:]) == adapter.spec.token_grid
    assert torch.isfinite(out.attention[0]).all()
