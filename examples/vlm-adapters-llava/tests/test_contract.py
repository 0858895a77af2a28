"""The vlm-adapters contract for LLaVA, plus what is specific to LLaVA-1.5's padding.

Run against the *installed* distribution: the adapter is found through its entry point.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlavaConfig, LlavaImageProcessor, LlavaProcessor

from vlm_adapters import (
    ImageShapeError,
    MissingInputError,
    SpecError,
    get_adapter,
    list_adapters,
)
from vlm_adapters.testing import AdapterContract, random_sizes, sample_from_batch, smooth_image, solid_image


class TestLlavaContract(AdapterContract):
    adapter_name = "llava"


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("llava").from_tiny()


def test_found_through_its_entry_point() -> None:
    (row,) = [a for a in list_adapters() if a.name == "llava"]
    assert (row.distribution, row.version, row.status) == ("vlm-adapters-llava", "0.1.0", "loaded")
    assert (row.plugin, row.model_types, row.spec_kind) == ("llava", ("llava",), "fixed")


def test_content_box_matches_stock_processor_on_many_sizes(adapter) -> None:
    """Where a white image lands on the stock processor's output, for 300 sizes, within a pixel.

    Padding happens before the resize, so upscaling a small image blurs the content edge over
    several pixels; the edge is where the level crosses halfway between background and white.
    """
    spec = adapter.spec
    mean = torch.tensor(spec.image_mean).view(3, 1, 1)
    std = torch.tensor(spec.image_std).view(3, 1, 1)
    halfway = (1 + sum(spec.background_color) / 3 / 255) / 2
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


def test_background_is_the_stock_padding_colour(adapter) -> None:
    pixels = adapter.processor.image_processor(images=[solid_image(20, 80)], return_tensors="pt")["pixel_values"][0]
    spec = adapter.spec
    raw = pixels[:, 0, 0] * torch.tensor(spec.image_std) + torch.tensor(spec.image_mean)
    assert torch.allclose(raw * 255, torch.tensor(spec.background_color, dtype=torch.float32), atol=1e-3)


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


def test_refuses_what_it_cannot_know(adapter) -> None:
    image = smooth_image(300, 500, seed=4)
    good = sample_from_batch(adapter.prepare([image], [adapter.format_prompt("a cat")]))
    with pytest.raises(MissingInputError, match="image_sizes"):
        adapter.normalize({k: v for k, v in good.items() if k != "image_sizes"})
    with pytest.raises(ImageShapeError, match="not normalised"):
        adapter.normalize({**good, "pixel_values": good["pixel_values"] * 50})
    # integer pixels are a raw image (the core's one rule), here one whose size contradicts image_sizes
    with pytest.raises(ImageShapeError, match="declared image sizes"):
        adapter.normalize({**good, "pixel_values": (good["pixel_values"] * 50).to(torch.uint8)})
    small = torch.nn.functional.interpolate(good["pixel_values"], size=(56, 56))
    with pytest.raises(ImageShapeError, match="input shape"):
        adapter.normalize({**good, "pixel_values": small})
    stretched = adapter.spec.geometry((300, 500)).to_meta_data() | {
        "padding": {"before_height": 0, "after_height": 0, "before_width": 0, "after_width": 0}
    }
    with pytest.raises(ImageShapeError, match="meta_data padding"):
        adapter.normalize({**good, "meta_data": stretched})


def test_spec_of_a_llava15_shaped_checkpoint(adapter) -> None:
    """The 7B checkpoint's shapes (CLIP-L/14 at 336, CLS dropped) give 24x24 = 576 tokens."""
    config = LlavaConfig(image_token_index=adapter.spec.image_token_id)
    image_processor = LlavaImageProcessor(
        do_pad=True, size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
    )
    kwargs = {"patch_size": 14, "vision_feature_select_strategy": "default", "tokenizer": adapter.processor.tokenizer}
    processor = LlavaProcessor(image_processor=image_processor, num_additional_image_tokens=1, **kwargs)
    spec = type(adapter)(config, processor).spec
    assert (spec.image_size, spec.token_grid, spec.background_color) == ((336, 336), (24, 24), (122, 116, 104))
    out = processor(images=[solid_image(480, 640)], text=["<image>"], return_tensors="pt")
    assert int((out["input_ids"] == spec.image_token_id).sum()) == spec.num_image_tokens == 576

    # a processor that forgets CLS expands <image> to 575 tokens: refused, not discovered at forward time
    broken = LlavaProcessor(image_processor=image_processor, num_additional_image_tokens=0, **kwargs)
    with pytest.raises(SpecError, match="575"):
        _ = type(adapter)(config, broken).spec
    # without do_pad the processor centre-crops: not a padding geometry, so refused with the fix
    cropping = LlavaProcessor(image_processor=LlavaImageProcessor(), num_additional_image_tokens=1, **kwargs)
    with pytest.raises(SpecError, match="do_pad=True"):
        _ = type(adapter)(config, cropping).spec
