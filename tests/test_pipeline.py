"""FrozenLMM: the mask-head input equals the F-LMM computation on eager attention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vlm_adapters import VisionInputError
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing import smooth_image
from vlm_adapters.tiny import save_tiny_checkpoint


@pytest.fixture(scope="module", params=["deepseek_vl", "qwen2_5_vl"])
def lmm(request: pytest.FixtureRequest) -> FrozenLMM:
    return FrozenLMM.from_tiny(request.param)


def flmm_reference(lmm: FrozenLMM, batch, mask_ids: torch.Tensor, reduce: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """What F-LMM does: eager forward, image columns onto the grid, rows of object k reduced, layers concatenated."""
    eager = lmm.adapter.load_model(seed=0, attn_implementation="eager")
    with torch.no_grad():
        attentions = eager(**batch.inputs, output_attentions=True).attentions
    positions, geometry = batch.image_token_positions[0][0], batch.geometries[0][0]
    per_layer = []
    for layer in attentions:
        cols = layer[0][:, :, positions]  # [H, seq, image tokens]
        grid = lmm.adapter.tokens_to_grid(cols, geometry)  # [H, seq, rows, cols]
        objects = []
        for k in range(int(mask_ids.max()) + 1):
            rows = grid[:, mask_ids == k]
            objects.append(rows.mean(1) if reduce == "mean" else rows.amax(1))
        per_layer.append(torch.stack(objects))  # [K, H, rows, cols]
    return torch.cat(per_layer, dim=1)  # [K, L*H, rows, cols]


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_phrase_maps_equal_the_flmm_way(lmm: FrozenLMM, reduce: str) -> None:
    prompt = lmm.adapter.format_prompt("describe the image .", answer="a red cat and a blue dog")
    batch = lmm.prepare([smooth_image(300, 420, seed=2)], [prompt])
    seq = batch.input_ids.shape[1]
    mask_ids = torch.full((seq,), -1)
    mask_ids[seq - 8 : seq - 6] = 0  # two tokens of the first phrase
    mask_ids[seq - 4 : seq - 2] = 1
    batch.mask_ids = mask_ids[None]
    out = lmm(batch)[0]
    got = out.phrase_maps(reduce=reduce)  # type: ignore[arg-type]
    want = flmm_reference(lmm, batch, mask_ids, reduce)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want.float(), rtol=0, atol=1e-5)
    # and to the original pixels
    on_image = out.to_image(got)
    assert on_image.shape == (*got.shape[:2], 300, 420)


def test_hidden_states_per_phrase(lmm: FrozenLMM) -> None:
    prompt = lmm.adapter.format_prompt("describe the image .", answer="a red cat")
    batch = lmm.prepare([smooth_image(200, 200, seed=3)], [prompt])
    out = lmm(batch)[0]
    ids = torch.full((out.num_queries,), -1)
    ids[-3:-1] = 0
    hs = out.phrase_hidden_states(ids)
    assert len(hs) == 1 and hs[0].shape[:2] == (out.hidden_states.shape[0] - 1, 2)  # type: ignore[union-attr]


def test_missing_object_ids_is_a_typed_error(lmm: FrozenLMM) -> None:
    batch = lmm.prepare([smooth_image(64, 64)], [lmm.adapter.format_prompt("describe the image .")])
    out = lmm(batch)[0]
    with pytest.raises(VisionInputError, match="mask_ids"):
        out.phrase_maps()
    with pytest.raises(VisionInputError, match="-1"):
        out.phrase_maps(torch.full((out.num_queries,), -1))


def test_logits_only_when_asked(lmm: FrozenLMM) -> None:
    batch = lmm.prepare([smooth_image(64, 96)], [lmm.adapter.format_prompt("describe the image .")])
    assert lmm(batch)[0].logits is None
    logits = lmm(batch, logits=True)[0].logits
    assert logits is not None and logits.shape[0] == batch.input_ids.shape[1]


def test_several_images_per_sample(lmm: FrozenLMM) -> None:
    images = [smooth_image(120, 300, seed=4), smooth_image(256, 128, seed=5)]
    batch = lmm.prepare([images], [lmm.adapter.format_prompt("compare the two images .", num_images=2)])
    out = lmm(batch, layers=[0, -1])[0]
    assert len(out.attention) == 2 and out.layers == [0, len(lmm.model.get_decoder().layers) - 1]
    for maps, geometry in zip(out.attention, out.geometries, strict=True):
        assert maps.shape[0] == 2 and tuple(maps.shape[-2:]) == geometry.token_grid
    # every query row of every layer and head is a probability distribution restricted to image columns
    total = sum(m.flatten(-2).sum(-1) for m in out.attention)
    assert bool((total <= 1 + 1e-5).all()) and bool((total > 0).all())


def test_from_pretrained_picks_the_adapter_and_freezes(tmp_path: Path) -> None:
    tiny = FrozenLMM.from_tiny("deepseek_vl")
    save_tiny_checkpoint(tiny.adapter, tmp_path)
    lmm = FrozenLMM.from_pretrained(tmp_path)
    assert lmm.adapter.name == "deepseek_vl"
    assert not lmm.model.training
    assert not any(p.requires_grad for p in lmm.model.parameters())
    batch = lmm.prepare([smooth_image(50, 80)], [lmm.adapter.format_prompt("describe the image .")])
    a, b = lmm(batch)[0], tiny(batch)[0]
    torch.testing.assert_close(a.attention[0], b.attention[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_give_fp32_probabilities(dtype: torch.dtype) -> None:
    lmm = FrozenLMM.from_tiny("qwen2_5_vl", dtype=dtype)
    full = FrozenLMM.from_tiny("qwen2_5_vl")
    prompt = lmm.adapter.format_prompt("describe the image .", answer="a red cat")
    batch = lmm.prepare([smooth_image(120, 160, seed=9)], [prompt])
    out, ref = lmm(batch)[0], full(batch)[0]
    assert out.attention[0].dtype == torch.float32
    assert out.hidden_states is not None and out.hidden_states.dtype == dtype
    # same random weights, rounded: the maps agree to half-precision accuracy
    torch.testing.assert_close(out.attention[0], ref.attention[0], rtol=0, atol=2e-2)


def test_labels_in_a_dataset_sample_do_not_reach_the_forward(lmm: FrozenLMM) -> None:
    from vlm_adapters.testing import sample_from_batch

    prompt = lmm.adapter.format_prompt("describe the image .", answer="a red cat")
    batch = lmm.prepare([smooth_image(90, 120, seed=11)], [prompt])
    sample = sample_from_batch(batch)
    sample["labels"] = sample["input_ids"].clone()
    with_labels = lmm.adapter.normalize(sample)
    got, want = lmm(with_labels)[0], lmm(batch)[0]
    torch.testing.assert_close(got.attention[0], want.attention[0], rtol=0, atol=0)


def test_explicit_queries_must_be_text_tokens(lmm: FrozenLMM) -> None:
    batch = lmm.prepare([smooth_image(64, 64)], [lmm.adapter.format_prompt("describe the image .")])
    image_position = int(batch.image_token_positions[0][0][0])
    with pytest.raises(VisionInputError, match="not text tokens"):
        lmm(batch, queries=[torch.tensor([image_position])])
    with pytest.raises(VisionInputError, match="not text tokens"):
        lmm(batch, queries=[torch.tensor([batch.input_ids.shape[1]])])
    last = batch.input_ids.shape[1] - 1
    assert lmm(batch, queries=[torch.tensor([last])])[0].query_positions.tolist() == [last]
