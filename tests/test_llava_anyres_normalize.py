"""``normalize`` for LLaVA-NeXT and OneVision on the sample shapes research code produces.

F-LMM's NeXT dataset items (one ``<image>`` in 1-D ids, ``[tiles, 3, 336, 336]`` numpy pixels,
``image_sizes`` as a bare (height, width), ``meta_data`` with ``ori_shape`` / ``padded_shape`` /
``padding``, ``mask_ids``, the PIL image under ``image``), the stock processor's batch padded with
all-zero tiles, flat tile stacks, OneVision's multi-image samples; and each refusal: missing
sizes, ``(width, height)``, tiles that do not fit, token counts, padding that is not the processor's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapters_llava.layout import best_canvas, content_on_canvas
from adapters_llava.sizes import SwappedImageSizeError, UnknownImageSizeError
from vlm_adapters import ImageShapeError, TokenCountError, VisionInputError, get_adapter
from vlm_adapters.testing import sample_from_batch, smooth_image

SIZES = [(50, 170), (170, 60), (120, 130)]
PAIR = [SIZES[0], SIZES[2]]
"""Two sizes with different tile counts on both tiny checkpoints."""


@pytest.fixture(scope="module", params=["llava_next", "llava_onevision"])
def adapter(request: pytest.FixtureRequest):
    return get_adapter(request.param).from_tiny()


@pytest.fixture(scope="module")
def model(adapter):
    return adapter.load_model(seed=0)


def _logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def flmm_item(adapter, size: tuple[int, int], seed: int = 0) -> dict:
    """A dataset item the way F-LMM's NeXT dataset builds one."""
    image = smooth_image(*size, seed=seed)
    prompt = adapter.format_prompt("what is shown in this image ?")
    ids = adapter.processor.tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    caption = adapter.processor.tokenizer(" a cat", add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    input_ids = torch.cat([ids, caption])
    mask_ids = torch.cat([torch.full_like(ids, -1), torch.zeros_like(caption)])
    processed = adapter.processor.image_processor(images=[image], return_tensors="np")
    spec = adapter.anyres
    canvas = best_canvas(size, [list(p) for p in spec.grid_pinpoints])
    top, left, nh, nw = content_on_canvas(size, canvas)
    meta = {
        "padding": {
            "before_height": top,
            "after_height": canvas[0] - nh - top,
            "before_width": left,
            "after_width": canvas[1] - nw - left,
        },
        "image_shape": {"height": nh, "width": nw},
        "padded_shape": {"height": canvas[0], "width": canvas[1]},
        "grid_shape": {"height": canvas[0] // spec.tile_size, "width": canvas[1] // spec.tile_size},
        "ori_shape": {"height": size[0], "width": size[1]},
    }
    tiles = spec.num_tiles(size)
    return {
        "input_ids": input_ids,
        "mask_ids": mask_ids,
        "labels": torch.where(mask_ids >= 0, input_ids, torch.full_like(input_ids, -100)),
        "pixel_values": processed["pixel_values"][0][:tiles],
        "image_sizes": torch.tensor(size),
        "meta_data": meta,
        "image": image,
    }


def test_flmm_item_gives_the_stock_forward(adapter, model) -> None:
    for i, size in enumerate(SIZES):
        item = flmm_item(adapter, size, seed=i)
        batch = adapter.normalize(item)
        prompt = adapter.format_prompt("what is shown in this image ?")
        stock = adapter.processor(images=[item["image"]], text=[prompt + " a cat"], return_tensors="pt")
        assert torch.equal(batch.input_ids, stock["input_ids"])
        torch.testing.assert_close(_logits(model, batch.inputs), _logits(model, stock), rtol=0, atol=1e-5)
        assert batch.geometries[0][0] == adapter.spec.geometry(size)
        assert int((batch.mask_ids[0] == 0).sum()) == int((item["mask_ids"] == 0).sum())
        assert batch.inputs["labels"].shape == batch.input_ids.shape  # expanded with the ids


def test_sizes_recovered_from_meta_data_or_the_raw_image(adapter) -> None:
    item = flmm_item(adapter, SIZES[0])
    want = adapter.normalize(item)
    no_sizes = {k: v for k, v in item.items() if k != "image_sizes"}
    assert adapter.normalize(no_sizes).geometries == want.geometries  # meta_data's ori_shape
    only_image = {k: v for k, v in no_sizes.items() if k != "meta_data"}
    assert adapter.normalize(only_image).geometries == want.geometries  # the PIL image's size


def test_missing_size_is_refused_with_what_the_pixels_show(adapter) -> None:
    item = flmm_item(adapter, SIZES[0])
    bare = {k: v for k, v in item.items() if k not in ("image_sizes", "meta_data", "image")}
    with pytest.raises(UnknownImageSizeError) as refused:
        adapter.normalize(bare)
    spec = adapter.anyres
    canvas = best_canvas(SIZES[0], [list(p) for p in spec.grid_pinpoints])
    _, _, nh, nw = content_on_canvas(SIZES[0], canvas)
    assert any(f"content {nh}x{nw} on a {canvas[0]}x{canvas[1]} canvas" in c for c in refused.value.candidates)
    assert "found" in str(refused.value) and "Fix:" in str(refused.value)


def test_padded_batch_and_flat_tiles(adapter, model) -> None:
    """The processor's [images, max tiles, 3, S, S] (zero tiles after the shorter image), as a
    dataset would store a two-image sample, and the same tiles flattened."""
    images = [smooth_image(*s, seed=i) for i, s in enumerate(PAIR)]
    batch = adapter.prepare([images], [adapter.format_prompt("find the cat", num_images=2, answer="a cat")])
    padded = adapter.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    counts = [adapter.anyres.num_tiles(s) for s in PAIR]
    assert padded.shape[1] == max(counts) and counts[0] != counts[1]
    sample = sample_from_batch(batch)
    for pixels in (padded, batch.inputs["pixel_values"], [padded[0, : counts[0]], padded[1, : counts[1]]]):
        again = adapter.normalize({**sample, "pixel_values": pixels})
        assert torch.equal(again.inputs["pixel_values"], batch.inputs["pixel_values"])
        assert again.geometries == batch.geometries
    torch.testing.assert_close(_logits(model, again.inputs), _logits(model, batch.inputs), rtol=0, atol=0)
    # a padding tile that is not padding: the sizes do not match these pixels
    broken = padded.clone()
    broken[counts.index(min(counts)), -1] = 0.5
    with pytest.raises(TokenCountError, match="does not have the tiles its size gives"):
        adapter.normalize({**sample, "pixel_values": broken})


def test_width_height_swap_is_refused_where_the_pixels_show_it(adapter) -> None:
    # 50x170 is wide: its canvas is a row of tiles; (170, 50) would be a column with other padding
    item = flmm_item(adapter, (50, 170))
    bare = {k: v for k, v in item.items() if k not in ("meta_data", "image")}
    with pytest.raises(SwappedImageSizeError, match=r"\(width, height\)"):
        adapter.normalize({**bare, "image_sizes": torch.tensor([170, 50])})
    # flat tiles of two images: the swap changes the tile count, which the stack length shows
    images = [smooth_image(*s, seed=i) for i, s in enumerate(SIZES[:2])]
    batch = adapter.prepare([images], [adapter.format_prompt("find the cat", num_images=2)])
    sample = sample_from_batch(batch)
    swapped = [(w, h) for h, w in SIZES[:2]]
    with pytest.raises((SwappedImageSizeError, TokenCountError)):
        adapter.normalize({**sample, "image_sizes": swapped})
    spec = adapter.anyres
    pins = [list(p) for p in spec.grid_pinpoints]

    def fills(size: tuple[int, int]) -> bool:
        canvas = best_canvas(size, pins)
        return content_on_canvas(size, canvas)[2:] == canvas

    # no padding either way round and as many tiles: the tiles' arrangement shows the swap (the
    # canvas content shrunk to one tile is the base view only when the tiles are laid out right)
    wide = next(p for p in map(tuple, pins) if p[0] != p[1] and fills(p) and fills((p[1], p[0])))
    item = {k: v for k, v in flmm_item(adapter, wide).items() if k not in ("meta_data", "image")}
    assert spec.num_tiles(wide) == spec.num_tiles((wide[1], wide[0]))
    with pytest.raises(SwappedImageSizeError):
        adapter.normalize({**item, "image_sizes": torch.tensor([wide[1], wide[0]])})
    # a near-square image whose swap changes neither padding nor tiles shows nothing: taken as given
    size = next((h, h + 1) for h in range(60, 400) if fills((h, h + 1)) and fills((h + 1, h)))
    near = {k: v for k, v in flmm_item(adapter, size).items() if k not in ("meta_data", "image")}
    swapped = (size[1], size[0])
    assert adapter.normalize({**near, "image_sizes": torch.tensor(swapped)}).geometries[0][0].original_size == swapped


def test_wrong_token_count_names_each_view(adapter) -> None:
    item = flmm_item(adapter, SIZES[0])
    ids = adapter.normalize(item).input_ids[0]
    token = adapter.spec.image_token_id
    short = torch.cat([ids[: int((ids == token).nonzero()[0])], ids[int((ids == token).nonzero()[1]) :]])
    geometry = adapter.spec.geometry(SIZES[0])
    base, high = geometry.views
    with pytest.raises(TokenCountError) as refused:
        adapter.normalize({**item, "input_ids": short, "mask_ids": None, "labels": None})
    message = str(refused.value)
    rows, cols = high.token_grid
    assert f"base {base.token_grid[0]}x{base.token_grid[1]} = {base.num_tokens}" in message
    assert f"high_res {rows} rows x ({cols} + 1 newline) = {high.num_tokens}" in message
    assert f"{geometry.num_image_tokens} in all" in message


def test_meta_data_of_another_layout_is_refused(adapter) -> None:
    item = flmm_item(adapter, SIZES[0])
    meta = {**item["meta_data"], "padding": {k: 0 for k in item["meta_data"]["padding"]}}
    with pytest.raises(ImageShapeError, match="meta_data padding of image 0 is not what the processor does"):
        adapter.normalize({**item, "meta_data": meta})
    wrong_canvas = {**item["meta_data"], "padded_shape": {"height": 1, "width": 2}}
    with pytest.raises(ImageShapeError, match="canvas the processor does not pick"):
        adapter.normalize({**item, "meta_data": wrong_canvas})


def test_numpy_ids_floats_and_bad_shapes(adapter) -> None:
    item = flmm_item(adapter, SIZES[1])
    as_numpy = {**item, "input_ids": item["input_ids"].numpy().astype(np.int32)}
    assert torch.equal(adapter.normalize(as_numpy).input_ids, adapter.normalize(item).input_ids)
    with pytest.raises(VisionInputError, match="integer ids"):
        adapter.normalize({**item, "input_ids": item["input_ids"].double()})
    with pytest.raises(ImageShapeError):
        adapter.normalize({**item, "pixel_values": item["pixel_values"][..., :20]})


def test_sliver_image_has_newlines_and_no_high_res_cells(adapter, model) -> None:
    """An image so tall and thin that unpadding keeps no column: base view plus newline tokens only."""
    spec = adapter.anyres
    size = next(
        (h, 1)
        for h in range(2, 400)
        if len(spec.geometry((h, 1)).views) == 1 and spec.geometry((h, 1)).num_image_tokens > spec.tile_grid**2
    )
    image = smooth_image(*size, seed=1)
    batch = adapter.prepare([image], [adapter.format_prompt("a cat")])
    stock = adapter.processor(images=[image], text=[adapter.format_prompt("a cat")], return_tensors="pt")
    torch.testing.assert_close(_logits(model, batch.inputs), _logits(model, stock), rtol=0, atol=1e-5)
    again = adapter.normalize(sample_from_batch(batch))
    assert again.geometries == batch.geometries


def test_onevision_multi_image_samples() -> None:
    """OneVision's processor reads the images of a nested multi-image prompt as one padded square
    each, with one newline; the sample keeps ``batch_num_images`` and normalize follows it."""
    adapter = get_adapter("llava_onevision").from_tiny()
    model = adapter.load_model(seed=0)
    images = [smooth_image(*s, seed=i) for i, s in enumerate(SIZES[:2])]
    text = adapter.format_prompt("find the cat", num_images=2, answer="a cat")
    stock = adapter.processor(images=[images], text=[text], return_tensors="pt")
    assert stock["batch_num_images"].tolist() == [2]
    sample = {
        "input_ids": stock["input_ids"][0],
        "pixel_values": stock["pixel_values"],
        "image_sizes": stock["image_sizes"],
        "batch_num_images": stock["batch_num_images"],
    }
    batch = adapter.normalize(sample)
    g = adapter.anyres.tile_grid
    assert [geo.num_image_tokens for geo in batch.geometries[0]] == [g * g + 1, g * g + 1]
    assert all(geo.is_single_view for geo in batch.geometries[0])
    torch.testing.assert_close(_logits(model, batch.inputs), _logits(model, stock), rtol=0, atol=1e-5)
    with pytest.raises(VisionInputError, match="batch_num_images"):
        adapter.normalize({**sample, "batch_num_images": torch.tensor([3])})
