"""``prepare`` and checkpoints: adapter path == stock processor path, through the stock model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import photo_like

from adapters_qwen import QwenAdapter
from vlm_adapters import ImageShapeError, PatchMatrixAsImageError, adapter_for, get_adapter, list_adapters
from vlm_adapters.tiny import save_tiny_checkpoint

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> tuple[QwenAdapter, Any]:
    adapter = get_adapter(request.param).from_tiny()
    return adapter, adapter.load_model(seed=0)  # type: ignore[return-value]


def logits(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def photo(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(photo_like(h, w, seed=seed))


def test_entry_point_registration() -> None:
    rows = {a.name: a for a in list_adapters()}
    for name in FAMILIES:
        assert rows[name].status == "loaded" and rows[name].plugin == "qwen" and rows[name].spec_kind == "dynamic"
        cls = get_adapter(name)
        assert adapter_for(cls.tiny_config()) is cls


def test_prepare_several_images_and_samples_matches_stock(pair: tuple[QwenAdapter, Any]) -> None:
    """Two samples, 2 + 1 images of different resolutions, padded: logits == the stock path."""
    adapter, model = pair
    images = [[photo(427, 640, 0), photo(90, 300, 1)], [photo(200, 130, 2)]]
    texts = [
        adapter.format_prompt("where is the cat", num_images=2, answer="on the left"),
        adapter.format_prompt("describe the image", num_images=1, answer="a red car"),
    ]
    batch = adapter.prepare(images, texts)
    stock = adapter.processor(
        images=[im for ims in images for im in ims], text=texts, return_tensors="pt", padding=True
    )
    stock_inputs = {k: v for k, v in stock.items() if isinstance(v, torch.Tensor)}
    assert set(batch.inputs) == set(stock_inputs) and "mm_token_type_ids" in batch.inputs
    for key, value in stock_inputs.items():
        assert torch.equal(batch.inputs[key], value), key
    torch.testing.assert_close(logits(model, batch.inputs), logits(model, stock_inputs), rtol=0, atol=0)
    # geometry and positions per image, from the processor's own grids
    grids = stock["image_grid_thw"].tolist()
    flat = [g for geos in batch.geometries for g in geos]
    assert [[g.temporal, *g.patch_grid] for g in flat] == grids
    assert [g.original_size for g in flat] == [(427, 640), (90, 300), (200, 130)]
    for b, positions in enumerate(batch.image_token_positions):
        for pos in positions:
            assert (batch.input_ids[b, pos] == adapter.spec.image_token_id).all()


def test_mm_token_type_ids_is_what_makes_positions_right(pair: tuple[QwenAdapter, Any]) -> None:
    """The v5 trap: without mm_token_type_ids the stock model cannot build mrope positions. In
    transformers 5.24 Qwen2-VL and Qwen3-VL raise; Qwen2.5-VL silently falls back to 1-D positions."""
    adapter, model = pair
    batch = adapter.prepare([photo(300, 420, 3)], [adapter.format_prompt("find the dog", answer="here")])
    without = {k: v for k, v in batch.inputs.items() if k != "mm_token_type_ids"}
    try:
        silent = logits(model, without)
    except ValueError as exc:
        assert "mm_token_type_ids" in str(exc)
    else:
        assert (logits(model, batch.inputs) - silent).abs().max() > 1e-4
    position_ids, _ = model.model.get_rope_index(
        batch.input_ids, batch.inputs["mm_token_type_ids"], image_grid_thw=batch.inputs["image_grid_thw"]
    )
    pos = batch.image_token_positions[0][0]
    assert len(set(position_ids[1, 0, pos].tolist())) > 1  # height positions vary: real mrope


def test_prepare_refuses_non_images(pair: tuple[QwenAdapter, Any]) -> None:
    adapter, _ = pair
    text = adapter.format_prompt("x")
    pv = adapter.processor.image_processor(images=[photo(427, 640, 4)], return_tensors="pt")["pixel_values"]
    with pytest.raises(PatchMatrixAsImageError):
        adapter.prepare([pv[None, None].expand(1, 3, *pv.shape)], [text])
    with pytest.raises(ImageShapeError, match="normalised"):
        adapter.prepare([torch.randn(3, 64, 64)], [text])
    with pytest.raises(ImageShapeError, match="scale is ambiguous"):
        adapter.prepare([np.full((64, 64, 3), 200.0)], [text])


def test_raw_image_forms_give_the_same_batch(pair: tuple[QwenAdapter, Any]) -> None:
    adapter, _ = pair
    arr = photo_like(120, 170, seed=5)
    text = adapter.format_prompt("x")
    ref = adapter.prepare([Image.fromarray(arr)], [text])
    forms = [arr, arr.astype(np.float32) / 255, torch.from_numpy(arr).permute(2, 0, 1)]
    for form in forms:
        got = adapter.prepare([form], [text])
        for key in ("input_ids", "pixel_values", "image_grid_thw"):
            assert torch.equal(got.inputs[key], ref.inputs[key]), key


def test_checkpoint_round_trip(pair: tuple[QwenAdapter, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    """save_pretrained of the tiny processor + model, then from_pretrained + load_model."""
    adapter, model = pair
    folder = save_tiny_checkpoint(adapter, tmp_path_factory.mktemp("qwen"))
    loaded = type(adapter).from_pretrained(folder)
    assert type(loaded.processor) is type(adapter.processor) and loaded.spec == adapter.spec
    assert adapter_for(str(folder)) is type(adapter)
    text = adapter.format_prompt("where", answer="there")
    image = photo(150, 260, 6)
    a = logits(model, adapter.prepare([image], [text]).inputs)
    b = logits(loaded.load_model(folder), loaded.prepare([image], [text]).inputs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
