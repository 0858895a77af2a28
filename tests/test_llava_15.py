"""LLaVA-1.5: the padding geometry against the stock processor, both processor modes (pad, centre
crop) through the stock model, and the research sample shapes ``normalize`` repairs or refuses."""

from __future__ import annotations

import pytest
import torch
from transformers import LlavaConfig, LlavaImageProcessor, LlavaProcessor

from adapters_llava import CenterCropSpec, LlavaAdapter
from adapters_llava.tiny import tiny_processor
from vlm_adapters import (
    FrozenLMM,
    ImageShapeError,
    MissingInputError,
    SpecError,
    TokenCountError,
    get_adapter,
    list_adapters,
)
from vlm_adapters.errors import ImageSizeError, PixelValueError
from vlm_adapters.testing import random_sizes, sample_from_batch, smooth_image, solid_image


@pytest.fixture(scope="module")
def adapter() -> LlavaAdapter:
    return get_adapter("llava").from_tiny()


@pytest.fixture(scope="module")
def cropping() -> LlavaAdapter:
    """The same tiny checkpoint with a processor that centre-crops (``do_pad=False``)."""
    config = LlavaAdapter.tiny_config()
    return LlavaAdapter(config, tiny_processor(config, do_pad=False))


def test_registered_as_a_built_in() -> None:
    (row,) = [a for a in list_adapters() if a.name == "llava"]
    assert (row.distribution, row.status, row.plugin, row.spec_kind) == ("vlm-adapters", "loaded", "llava", "fixed")


def test_content_box_matches_stock_processor_on_many_sizes(adapter) -> None:
    """Where a white image lands on the stock processor's output, for 300 sizes, within a pixel.

    Padding happens before the resize, so upscaling a small image blurs the content edge over
    several pixels; the edge is where the level crosses halfway between background and white.
    """
    spec = adapter.spec
    mean = torch.tensor(spec.image_mean).view(3, 1, 1)
    std = torch.tensor(spec.image_std).view(3, 1, 1)
    halfway = (1 + sum(spec.background_color) / 3 / 255) / 2
    checked = 0
    for h, w in random_sizes(300, seed=11, low=4, high=1000):
        pixels = adapter.processor.image_processor(images=[solid_image(h, w)], return_tensors="pt")["pixel_values"]
        bright = ((pixels[0] * std + mean).mean(0) > halfway).nonzero()
        geometry = spec.geometry((h, w))
        top, bottom, left, right = geometry.content_box_tokens
        ph, pw = geometry.pixels_per_token
        if geometry.content_height < 2 or geometry.content_width < 2:
            continue  # sub-pixel content: nothing to locate
        found = (bright[:, 0].min(), bright[:, 0].max() + 1, bright[:, 1].min(), bright[:, 1].max() + 1)
        expected = (top * ph, bottom * ph, left * pw, right * pw)
        for f, e in zip(found, expected, strict=True):
            assert abs(float(f) - e) <= 1.0, ((h, w), found, expected)
        checked += 1
    assert checked > 250


def test_background_is_the_stock_padding_colour(adapter) -> None:
    pixels = adapter.processor.image_processor(images=[solid_image(20, 80)], return_tensors="pt")["pixel_values"][0]
    spec = adapter.spec
    raw = pixels[:, 0, 0] * torch.tensor(spec.image_std) + torch.tensor(spec.image_mean)
    assert torch.allclose(raw * 255, torch.tensor(spec.background_color, dtype=torch.float32), atol=1e-3)


def test_spec_of_a_llava15_shaped_checkpoint(adapter) -> None:
    """The 7B checkpoint's shapes (CLIP-L/14 at 336, CLS dropped) give 24x24 = 576 tokens, in both modes."""
    config = LlavaConfig(image_token_index=adapter.spec.image_token_id)
    padding = LlavaImageProcessor(do_pad=True, size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    kwargs = {"patch_size": 14, "vision_feature_select_strategy": "default", "tokenizer": adapter.processor.tokenizer}
    processor = LlavaProcessor(image_processor=padding, num_additional_image_tokens=1, **kwargs)
    spec = LlavaAdapter(config, processor).spec
    assert (spec.image_size, spec.token_grid, spec.background_color) == ((336, 336), (24, 24), (122, 116, 104))
    out = processor(images=[solid_image(480, 640)], text=["<image>"], return_tensors="pt")
    assert int((out["input_ids"] == spec.image_token_id).sum()) == spec.num_image_tokens == 576

    # a processor that forgets CLS expands <image> to 575 tokens: refused, not discovered at forward time
    broken = LlavaProcessor(image_processor=padding, num_additional_image_tokens=0, **kwargs)
    with pytest.raises(SpecError, match="575"):
        _ = LlavaAdapter(config, broken).spec
    # the stock default (no padding) resizes the shortest edge and centre-crops: its own spec kind
    crop = LlavaImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    cropping = LlavaAdapter(config, LlavaProcessor(image_processor=crop, num_additional_image_tokens=1, **kwargs))
    assert isinstance(cropping.spec, CenterCropSpec) and cropping.spec.num_image_tokens == 576
    # a crop smaller than the tower's input cannot be fed to it
    small = LlavaImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    with pytest.raises(SpecError, match="centre-crop to the tower's 336x336"):
        _ = LlavaAdapter(config, LlavaProcessor(image_processor=small, num_additional_image_tokens=1, **kwargs)).spec


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_both_modes_run_the_stock_model_and_capture_exactly(adapter, cropping, mode: str) -> None:
    """prepare == the stock processor path; captured attention == eager on the view; the crop's
    cut-away parts are not covered on the image."""
    chosen = adapter if mode == "pad" else cropping
    image = smooth_image(90, 200, seed=3)
    text = chosen.format_prompt("find the cat", answer="a cat")
    batch = chosen.prepare([image], [text])
    stock = chosen.processor(images=[image], text=[text], return_tensors="pt")
    model = chosen.load_model(seed=0)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch.inputs).logits, model(**stock).logits, rtol=0, atol=1e-6)
    out = FrozenLMM(model, chosen)(batch)[0]
    eager = chosen.load_model(seed=0, attn_implementation="eager")
    with torch.no_grad():
        ref = eager(**batch.inputs, output_attentions=True)
    positions = batch.image_token_positions[0][0]
    for slot, layer in enumerate(out.layers):
        want = ref.attentions[layer][0][:, out.query_positions][:, :, positions]
        torch.testing.assert_close(out.image_attention[0][slot], want, rtol=0, atol=1e-5)
    geometry = batch.geometries[0][0]
    coverage = geometry.coverage()
    if mode == "pad":
        assert bool((coverage > 0).all())
    else:  # 90x200 resized to 84x186, the centre 84x84 kept: columns outside it show nothing
        box = geometry.views[0].box
        assert (box.top, box.bottom) == (0, 90) and 0 < box.left < box.right < 200
        assert bool((coverage[:, : int(box.left)] == 0).all()) and bool((coverage[:, int(box.right) + 1 :] == 0).all())
        fused = geometry.to_image(torch.ones(*geometry.token_grid))
        assert float(fused[:, : int(box.left)].abs().max()) == 0.0


# --- research samples -------------------------------------------------------------------------
def test_flmm_style_sample_gives_the_same_forward(adapter) -> None:
    """1-D ids, [1, 1, 3, H, W] pixels, meta_data and mask_ids, as F-LMM datasets hand them over."""
    image = smooth_image(300, 500, seed=2)
    batch = adapter.prepare([image], [adapter.format_prompt("find the cat", answer="a cat")])
    geometry = batch.geometries[0][0]
    ids = batch.input_ids[0]
    mask_ids = torch.full_like(ids, -1)
    mask_ids[-2:] = 0
    sample = {
        "input_ids": ids,
        "mask_ids": mask_ids,
        "labels": ids.clone(),
        "pixel_values": batch.inputs["pixel_values"][:, None],
        "meta_data": geometry.to_meta_data(),
    }
    again = adapter.normalize(sample)
    assert sorted(again.inputs) == ["attention_mask", "input_ids", "labels", "pixel_values"]
    for key, value in batch.inputs.items():
        assert torch.equal(again.inputs[key], value), key
    assert again.geometries == batch.geometries
    assert torch.equal(again.mask_ids[0], mask_ids)
    model = adapter.load_model(seed=0)
    with torch.no_grad():
        torch.testing.assert_close(model(**again.inputs).logits, model(**batch.inputs).logits, rtol=0, atol=0)

    raw = adapter.normalize({"input_ids": ids, "images": [image]})
    assert torch.equal(raw.inputs["pixel_values"], batch.inputs["pixel_values"])
    assert raw.geometries == batch.geometries


def test_one_placeholder_per_image_is_expanded(adapter) -> None:
    image = smooth_image(200, 120, seed=4)
    text = adapter.format_prompt("find the cat")
    batch = adapter.prepare([image], [text])
    short = adapter.processor.tokenizer(text, return_tensors="pt")["input_ids"][0]
    again = adapter.normalize(
        {"input_ids": short, "pixel_values": batch.inputs["pixel_values"], "image_sizes": [(200, 120)]}
    )
    assert torch.equal(again.input_ids, batch.input_ids)


def test_refuses_what_it_cannot_know(adapter) -> None:
    """The core's one policy, on LLaVA-1.5's samples: each refusal names what it found."""
    image = smooth_image(300, 500, seed=4)
    good = sample_from_batch(adapter.prepare([image], [adapter.format_prompt("a cat")]))
    with pytest.raises(MissingInputError, match="image_sizes"):
        adapter.normalize({k: v for k, v in good.items() if k != "image_sizes"})
    with pytest.raises(PixelValueError, match="not normalised"):
        adapter.normalize({**good, "pixel_values": good["pixel_values"] * 255})
    small = torch.nn.functional.interpolate(good["pixel_values"], size=(56, 56))
    with pytest.raises(ImageShapeError, match="wrong resolution"):
        adapter.normalize({**good, "pixel_values": small})
    with pytest.raises(ImageSizeError, match="disagree"):
        adapter.normalize({**good, "meta_data": {"original_shape": {"height": 301, "width": 500}}})
    ids = good["input_ids"]
    one_short = torch.cat([ids[ids != adapter.spec.image_token_id], ids[ids == adapter.spec.image_token_id][1:]])
    with pytest.raises(TokenCountError, match="36 tokens per image"):
        adapter.normalize({**good, "input_ids": one_short})


def test_swapped_size_is_refused_where_the_padding_shows_it(adapter) -> None:
    """A 300x500 image padded top and bottom; (500, 300) would pad left and right."""
    good = sample_from_batch(adapter.prepare([smooth_image(300, 500, seed=5)], [adapter.format_prompt("a cat")]))
    with pytest.raises(ImageSizeError, match=r"\(height, width\)"):
        adapter.normalize({**good, "image_sizes": [(500, 300)]})
    assert adapter.normalize(good).geometries[0][0].original_size == (300, 500)
