"""DeepSeek-VL through the stock model: same logits as the stock processor path, raster
token order, and maps/masks that line up with the original image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlm_adapters import get_adapter
from vlm_adapters.testing import smooth_image
from vlm_adapters.tiny import save_tiny_checkpoint

NAMES = ("deepseek_vl", "deepseek_vl_hybrid")


@pytest.fixture(scope="module", params=NAMES)
def adapter(request: pytest.FixtureRequest):
    return get_adapter(request.param).from_tiny()


@pytest.fixture(scope="module")
def model(adapter):
    return adapter.load_model(seed=0)


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def test_prepare_several_images_per_batch_equals_stock(adapter, model) -> None:
    images = [smooth_image(480, 640, seed=1), smooth_image(300, 200, seed=2), smooth_image(57, 911, seed=3)]
    texts = [
        adapter.format_prompt("find the cat and the dog", num_images=2, answer="the cat"),
        adapter.format_prompt("find the dog", num_images=1, answer="the dog on the left"),
    ]
    batch = adapter.prepare([images[:2], images[2:]], texts)
    stock = adapter.processor(images=images, text=texts, return_tensors="pt", padding=True)
    assert set(batch.inputs) == {k for k, v in stock.items() if isinstance(v, torch.Tensor)}
    torch.testing.assert_close(logits(model, batch.inputs), logits(model, dict(stock)), rtol=0, atol=0)
    assert batch.num_images == [2, 1]
    sizes = [[(480, 640), (300, 200)], [(57, 911)]]
    assert [[g.original_size for g in gs] for gs in batch.geometries] == sizes
    assert batch.geometries[1][0] == adapter.spec.geometry((57, 911))


def _unexpanded(adapter, text: str) -> torch.Tensor:
    return adapter.processor.tokenizer(text, return_tensors="pt")["input_ids"][0]


@pytest.mark.parametrize("form", ["pil", "numpy_hwc", "tensor_chw", "uint8_pixel_values"])
def test_normalize_raw_image_with_placeholder_ids_equals_stock(adapter, model, form: str) -> None:
    image = smooth_image(427, 640, seed=4)
    text = adapter.format_prompt("segment the red cat", answer="the red cat")
    ids = _unexpanded(adapter, text)
    mask_ids = torch.full_like(ids, -1)
    mask_ids[-3:-1] = 0  # "red cat" in the answer is object 0
    arr = np.array(image)
    raw = {"pil": image, "numpy_hwc": arr, "tensor_chw": torch.from_numpy(arr).permute(2, 0, 1)}
    sample = {"input_ids": ids.tolist(), "mask_ids": mask_ids}
    if form == "uint8_pixel_values":
        sample["pixel_values"] = torch.from_numpy(arr).permute(2, 0, 1)[None]
    else:
        sample["image"] = raw[form]
    batch = adapter.normalize(sample)
    stock = adapter.processor(images=[image], text=[text], return_tensors="pt")
    torch.testing.assert_close(logits(model, batch.inputs), logits(model, dict(stock)), rtol=0, atol=0)
    # mask_ids were expanded alongside the placeholder: still on the same words
    n = adapter.spec.num_image_tokens
    assert batch.mask_ids.shape == stock["input_ids"].shape
    assert torch.equal(stock["input_ids"][0][batch.mask_ids[0] == 0], ids[mask_ids == 0])
    assert int((batch.mask_ids[0] == 0).sum()) == 2 and batch.mask_ids.shape[1] == ids.numel() + n - 1
    assert batch.geometries[0][0] == adapter.spec.geometry((427, 640))


@pytest.mark.parametrize("layout", ["chw", "nchw", "research_b1chw", "list_of_chw", "numpy"])
def test_normalize_processed_layouts_equal_stock(adapter, model, layout: str) -> None:
    """Research-code layouts of the stock pixels, expanded 1-D ids and F-LMM meta_data."""
    images = [smooth_image(300, 200, seed=5), smooth_image(480, 640, seed=6)]
    if layout == "chw":
        images = images[:1]
    text = adapter.format_prompt("find the dog", num_images=len(images), answer="the dog")
    stock = adapter.processor(images=images, text=[text], return_tensors="pt")
    views = {k: stock[k] for k in ("pixel_values", "high_res_pixel_values") if k in stock}
    wrap = {
        "chw": lambda x: x[0],
        "nchw": lambda x: x,
        "research_b1chw": lambda x: x[:, None],
        "list_of_chw": lambda x: list(x),
        "numpy": lambda x: x[None].numpy(),
    }[layout]
    sample = {k: wrap(v) for k, v in views.items()}
    sample["input_ids"] = stock["input_ids"]  # [1, S], already expanded
    sample["labels"] = stock["input_ids"][0].clone()
    sample["meta_datas"] = [
        {
            "original_shape": {"height": img.height, "width": img.width},
            **adapter.spec.geometry((img.height, img.width)).to_meta_data(),
        }
        for img in images
    ]
    batch = adapter.normalize(sample)
    torch.testing.assert_close(
        logits(model, {k: v for k, v in batch.inputs.items() if k != "labels"}),
        logits(model, dict(stock)),
        rtol=0,
        atol=0,
    )
    assert [g.original_size for g in batch.geometries[0]] == [(i.height, i.width) for i in images]
    assert model(**batch.inputs).loss is not None


def test_image_tokens_are_the_vision_tokens_in_raster_order(adapter, model) -> None:
    """An image whose only change sits in one corner changes exactly the SigLIP tokens of the
    token cells that the geometry says hold that corner, and the LLM's image positions receive
    the aligner outputs in vision-token order."""
    h, w = 480, 640
    base = np.full((h, w, 3), 90, dtype=np.uint8)
    marked = base.copy()
    marked[40:120, 13:93] = 255  # lands mid-cell on the 24x24 grid: content starts at row 48 of 384
    mask = torch.zeros(h, w)
    mask[40:120, 13:93] = 1
    text = adapter.format_prompt("the white box", answer="the white box")
    a, b = (adapter.normalize({"image": img, "input_ids": _unexpanded(adapter, text)}) for img in (base, marked))
    geometry = a.geometries[0][0]

    def features(batch):
        views = {k: batch.inputs[k] for k in ("pixel_values", "high_res_pixel_values") if k in batch.inputs}
        with torch.no_grad():
            return model.model.get_image_features(**views, output_hidden_states=True)

    fa, fb = features(a), features(b)
    changed = (fb.hidden_states[0] - fa.hidden_states[0]).abs().amax(-1)[0] > 0  # SigLIP embeddings, per token
    expected = geometry.to_token_grid(mask) > 0
    assert expected.sum() == 16  # rows 4..7, cols 0..3
    assert torch.equal(adapter.tokens_to_grid(changed, geometry), expected)

    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"]

    handle = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**b.inputs)
    finally:
        handle.remove()
    positions = b.image_token_positions[0][0]
    torch.testing.assert_close(captured["embeds"][0, positions], fb.pooler_output[0], rtol=0, atol=0)


def test_hybrid_high_res_tokens_are_raster_over_the_sam_grid() -> None:
    """The SAM branch ends as a [C, 24, 24] map; its token k is cell (k // 24, k % 24), the same
    cell as SigLIP token k, so the aligner's per-token concat pairs the same image region."""
    adapter = get_adapter("deepseek_vl_hybrid").from_tiny()
    model = adapter.load_model(seed=0)
    with torch.no_grad():
        model.model.high_res_vision_alpha.fill_(0.5)
    batch = adapter.prepare([smooth_image(300, 500, seed=9)], [adapter.format_prompt("a", answer="b")])
    maps: list[torch.Tensor] = []
    handle = model.model.high_res_vision_proj.register_forward_hook(lambda m, i, o: maps.append(o))
    try:
        with torch.no_grad():
            out = model.model.get_image_features(batch.inputs["pixel_values"], batch.inputs["high_res_pixel_values"])
    finally:
        handle.remove()
    spatial = maps[0] + maps[1] * 0.5  # last layer + global-attention layer, as the model sums them
    assert tuple(spatial.shape[-2:]) == adapter.spec.token_grid
    tokens = out.high_res_vision_last_hidden_state[0]  # [576, C]
    grid = adapter.tokens_to_grid(tokens.T, batch.geometries[0][0])
    torch.testing.assert_close(grid, spatial[0], rtol=0, atol=0)


def test_masks_and_maps_line_up_with_the_stock_processor(adapter) -> None:
    """A mask drawn on the original image, rendered white-on-black and put through the stock
    processor, covers the token cells ``to_token_grid`` says; ``to_image`` maps it back."""
    spec = adapter.spec
    for (h, w), box in (((480, 640), (100, 300, 50, 400)), ((700, 260), (0, 350, 100, 260))):
        y0, y1, x0, x1 = box
        mask = torch.zeros(h, w)
        mask[y0:y1, x0:x1] = 1
        img = np.zeros((h, w, 3), dtype=np.uint8)
        img[y0:y1, x0:x1] = 255
        out = adapter.processor.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
        std, mean = torch.tensor(spec.image_std).view(3, 1, 1), torch.tensor(spec.image_mean).view(3, 1, 1)
        white = ((out * std + mean).mean(0) > 0.5).float()
        rows, cols = spec.token_grid
        stock_cells = white.reshape(rows, spec.image_size[0] // rows, cols, -1).mean((1, 3))
        g = spec.geometry((h, w))
        torch.testing.assert_close(g.to_token_grid(mask), stock_cells, rtol=0, atol=0.15)
        back = g.to_image(stock_cells) > 0.5
        iou = (back & mask.bool()).sum() / (back | mask.bool()).sum()
        assert iou > 0.9, iou
    # the 640x480 example: content rows 48..335 of 384, i.e. token rows 3..20
    on_grid = spec.geometry((480, 640)).to_token_grid(torch.ones(480, 640))
    assert torch.equal(on_grid.sum(1) > 0, torch.arange(24).ge(3) & torch.arange(24).le(20))


def test_checkpoint_round_trip(adapter, model, tmp_path) -> None:
    folder = save_tiny_checkpoint(adapter, tmp_path)
    loaded = type(adapter).from_pretrained(folder)
    assert loaded.spec == adapter.spec
    assert type(loaded.processor) is type(adapter.processor)
    text = adapter.format_prompt("the cat", answer="a cat")
    image = smooth_image(200, 300, seed=11)
    torch.testing.assert_close(
        logits(loaded.load_model(folder), loaded.prepare([image], [text]).inputs),
        logits(model, adapter.prepare([image], [text]).inputs),
        rtol=0,
        atol=0,
    )
