"""The Gemma 3 spec comes from config + processor and its geometry equals the stock processor's.

Ground truth is transformers itself: the processor's own settings merge, its crop function
(``pan_and_scan_batched``) on hundreds of sizes, and full processor calls (token runs, wrapper
tokens, and each view's pixels equal to the processor's output on that view's box alone).
"""

from __future__ import annotations

import tempfile

import pytest
import torch
from gemma3_stock import crop_test_sizes, stock_boxes
from transformers import Gemma3ImageProcessor

from adapters_gemma3 import Gemma3Adapter, tiny
from adapters_gemma3.adapter import PAN_AND_SCAN_VARIANT
from adapters_gemma3.checkpoint import build_gemma3_spec
from adapters_gemma3.spec import PanAndScanSpec
from vlm_adapters import SpecError, get_adapter
from vlm_adapters.adapter import contiguous_runs
from vlm_adapters.testing.images import smooth_image

VARIANTS = ("gemma3", PAN_AND_SCAN_VARIANT)


@pytest.fixture(scope="module", params=VARIANTS)
def adapter(request: pytest.FixtureRequest) -> Gemma3Adapter:
    return Gemma3Adapter.from_tiny(request.param)


def _stock_settings(adapter: Gemma3Adapter) -> dict[str, float]:
    """The pan-and-scan settings the stock processor passes to its image processor on a call."""
    merged = adapter.processor._merge_kwargs(tokenizer_init_kwargs=adapter.processor.tokenizer.init_kwargs)
    kw = merged["images_kwargs"]
    return {
        "enabled": kw["do_pan_and_scan"],
        "min_crop_size": kw["pan_and_scan_min_crop_size"],
        "max_num_crops": kw["pan_and_scan_max_num_crops"],
        "min_ratio_to_activate": kw["pan_and_scan_min_ratio_to_activate"],
    }


def test_registered() -> None:
    assert get_adapter("gemma3") is Gemma3Adapter


def test_spec_fields_come_from_config_and_processor(adapter: Gemma3Adapter) -> None:
    spec, cfg, proc = adapter.gemma_spec, adapter.config, adapter.processor
    assert isinstance(spec, PanAndScanSpec)
    vision = cfg.vision_config
    assert spec.image_size == (vision.image_size, vision.image_size)
    assert spec.image_size == (proc.image_processor.size["height"], proc.image_processor.size["width"])
    assert spec.token_grid[0] * spec.token_grid[1] == cfg.mm_tokens_per_image == proc.image_seq_length
    assert spec.patch_size == vision.patch_size
    assert spec.image_token_id == cfg.image_token_id == proc.tokenizer.image_token_id
    assert spec.image_token == proc.image_token == proc.tokenizer.boi_token  # the placeholder is <start_of_image>
    assert (spec.vision_start_token_id, spec.vision_end_token_id) == (cfg.boi_token_id, cfg.eoi_token_id)
    assert spec.pan_and_scan.model_dump() == _stock_settings(adapter)


def test_pan_and_scan_from_pretrained_keyword_is_read_and_survives_save() -> None:
    """``from_pretrained(path, do_pan_and_scan=True, pan_and_scan_max_num_crops=2)`` is the stock way
    to turn it on; the spec follows it, also after save/load."""
    base = Gemma3Adapter.from_tiny()
    with tempfile.TemporaryDirectory() as folder:
        base.processor.save_pretrained(folder)
        base.config.save_pretrained(folder)
        on = Gemma3Adapter.from_pretrained(folder, do_pan_and_scan=True, pan_and_scan_max_num_crops=2)
        assert on.gemma_spec.pan_and_scan.enabled and on.gemma_spec.pan_and_scan.max_num_crops == 2
        on.processor.save_pretrained(folder)
        again = Gemma3Adapter.from_pretrained(folder)
    assert again.spec == on.spec
    out = again.processor(images=[smooth_image(300, 1200)], text=["<start_of_image>"], return_tensors="pt")
    assert out["pixel_values"].shape[0] == again.spec.geometry((300, 1200)).num_views == 3


def test_image_processor_setting_alone_is_ignored_by_the_processor() -> None:
    """The trap: ``do_pan_and_scan`` on the image processor never reaches it through the processor
    (whose own call defaults override it). The spec says what the processor really does."""
    config = tiny.tiny_config()
    processor = tiny.tiny_processor(config)
    processor.image_processor = Gemma3ImageProcessor(**{**processor.image_processor.to_dict(), "do_pan_and_scan": True})
    spec = build_gemma3_spec(config, processor)
    out = processor(images=[smooth_image(300, 1200)], text=["<start_of_image>"], return_tensors="pt")
    assert not spec.pan_and_scan.enabled
    assert out["pixel_values"].shape[0] == spec.geometry((300, 1200)).num_views == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_seq_length": 64}, "image tokens per view"),
        ({"size": 448}, "view size"),
    ],
)
def test_disagreeing_processor_is_a_spec_error(change: dict[str, int], message: str) -> None:
    config = tiny.tiny_config()
    processor = tiny.tiny_processor(config)
    if "image_seq_length" in change:
        processor = type(processor)(
            image_processor=processor.image_processor,
            tokenizer=processor.tokenizer,
            chat_template=processor.chat_template,
            image_seq_length=change["image_seq_length"],
        )
    else:
        side = change["size"]
        processor.image_processor.size = processor.image_processor.size.__class__(height=side, width=side)
    with pytest.raises(SpecError, match=message):
        build_gemma3_spec(config, processor)


def test_geometry_equals_stock_on_many_sizes(adapter: Gemma3Adapter) -> None:
    """On 840 sizes (strips up to 1:200, every branch of the crop rule): views and their boxes
    are the stock crop function's, token counts the processor's."""
    spec = adapter.gemma_spec
    settings = _stock_settings(adapter)
    per_view = adapter.processor.image_seq_length
    sizes = crop_test_sizes(seed=3)
    assert len(sizes) >= 500
    multi = 0
    for h, w in sizes:
        geometry = spec.geometry((h, w))
        crops = stock_boxes((h, w), settings) if settings["enabled"] else []
        assert [v.box.model_dump() for v in geometry.views[1:]] == [
            {"top": t, "left": le, "bottom": b, "right": r} for t, le, b, r in crops
        ], (h, w)
        assert geometry.views[0].box.model_dump() == {"top": 0, "left": 0, "bottom": h, "right": w}
        if not settings["enabled"]:  # the stock count function knows no crops
            stock = adapter.processor._get_num_multimodal_tokens(image_sizes=[(h, w)]).num_image_tokens[0]
            assert geometry.num_image_tokens == stock
        assert geometry.num_image_tokens == (1 + len(crops)) * per_view
        assert geometry.run_lengths == [per_view] * (1 + len(crops))
        assert all(v.input_size == spec.image_size and v.padding.is_zero for v in geometry.views)
        multi += geometry.num_views > 1
    assert (multi > 200) == settings["enabled"]


def _processor_layout_sizes() -> list[tuple[int, int]]:
    return [
        (300, 1000), (1000, 300), (427, 640), (640, 427), (256, 1024), (1024, 256), (255, 1024), (200, 1200),
        (600, 600), (500, 599), (500, 601), (512, 2600), (2600, 512), (1, 900), (900, 1), (3, 3), (40, 4000),
        (4000, 40), (257, 770), (770, 257), (333, 1499), (333, 1500), (800, 3300), (901, 1802), (120, 620),
    ]  # fmt: skip


def test_full_processor_layout_and_view_pixels(adapter: Gemma3Adapter) -> None:
    """Full stock processor calls: image tokens in the geometry's runs, wrapper tokens counted, and
    every view's pixels equal to the processor's output for that view's box of the image alone."""
    spec = adapter.gemma_spec
    processor = adapter.processor
    placeholder_len = len(processor.tokenizer(adapter.image_placeholder)["input_ids"])
    for i, (h, w) in enumerate(_processor_layout_sizes()):
        image = smooth_image(h, w, seed=i)
        geometry = spec.geometry((h, w))
        out = processor(images=[image], text=[adapter.image_placeholder], return_tensors="pt")
        ids = out["input_ids"][0]
        positions = (ids == spec.image_token_id).nonzero().flatten()
        assert contiguous_runs(positions) == geometry.run_lengths, (h, w)
        assert ids.numel() - placeholder_len + 1 == geometry.num_prompt_tokens, (h, w)
        pixels = out["pixel_values"]
        assert pixels.shape[0] == geometry.num_views, (h, w)
        for view, got in zip(geometry.views, pixels, strict=True):
            box = view.box
            crop = image.crop((int(box.left), int(box.top), int(box.right), int(box.bottom)))
            alone = processor.image_processor(images=[crop], do_pan_and_scan=False, return_tensors="pt")
            torch.testing.assert_close(got, alone["pixel_values"][0], rtol=0, atol=0, msg=f"{(h, w)} {view.name}")
