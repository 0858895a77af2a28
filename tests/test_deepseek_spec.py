"""DeepSeek-VL spec and geometry, proven against the stock processor.

The spec must say what the stock processor does: every field is compared with the config /
processor attribute it comes from, the padding geometry with where the stock resize + pad
puts the content (1000+ sizes through the processor's own resize and pad_to_square, and a
subset through the full processor), and checkpoints whose config and processor disagree are
refused at spec time.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers.image_utils import SizeDict

from vlm_adapters import SpecError, adapter_for, get_adapter, list_adapters, spec_from_json
from vlm_adapters.testing import random_sizes, solid_image

NAMES = ("deepseek_vl", "deepseek_vl_hybrid")


@pytest.fixture(scope="module", params=NAMES)
def adapter(request: pytest.FixtureRequest):
    return get_adapter(request.param).from_tiny()


def _sizes(count: int, seed: int) -> list[tuple[int, int]]:
    """Log-uniform sizes plus thin images (min_size clamp) and exact .5 rounding ties."""
    rng = np.random.default_rng(seed)
    ties = [(int(h), 768) for h in rng.integers(1, 384, 40) * 2 + 1]  # h * 384 / 768 = k + 0.5
    ties += [(768, int(w)) for w in rng.integers(1, 384, 20) * 2 + 1]
    thin = [(1, 900), (900, 2), (13, 1000), (1000, 37), (2, 2), (1, 1)]
    return [*random_sizes(count, seed=seed, low=1, high=1200), *ties, *thin]


def test_registered_and_resolved_from_config() -> None:
    rows = {row.name: row for row in list_adapters()}
    for name in NAMES:
        assert rows[name].status == "loaded" and rows[name].spec_kind == "fixed"
        cls = get_adapter(name)
        assert adapter_for(cls.tiny_config()) is cls


def test_spec_fields_come_from_config_and_processor(adapter) -> None:
    spec, cfg, proc = adapter.spec, adapter.config, adapter.processor
    ip = proc.image_processor
    vision = cfg.vision_config
    assert spec.kind == "fixed" and spec.resize_mode == "pad_to_square" and spec.token_order == "raster"
    assert spec.image_size == (vision.image_size, vision.image_size) == (ip.size.height, ip.size.width)
    assert spec.patch_size == vision.patch_size
    side = vision.image_size // vision.patch_size
    assert spec.token_grid == (side, side) and spec.num_image_tokens == proc.num_image_tokens
    assert spec.image_token_id == cfg.image_token_id == proc.image_token_id
    assert spec.image_token == proc.image_token == proc.tokenizer.image_token
    assert spec.min_side == ip.min_size
    assert spec.image_mean == tuple(ip.image_mean) and spec.image_std == tuple(ip.image_std)
    if cfg.model_type == "deepseek_vl_hybrid":
        high = cfg.high_res_vision_config.image_size
        assert spec.high_res_image_size == (high, high) == (ip.high_res_size.height, ip.high_res_size.width)
        assert spec.pad_size == high
        assert spec.background_color == tuple(ip.high_res_background_color)
    else:
        assert spec.high_res_image_size is None and spec.pad_size is None
        assert spec.background_color == tuple(ip.background_color)
    # the tiny model keeps the released geometry (the spec above proves it is read, not assumed)
    assert spec.image_size == (384, 384) and spec.num_image_tokens == 576
    assert spec_from_json(spec.model_dump_json()) == spec


def test_spec_follows_the_checkpoint_not_literals() -> None:
    """A 224/14 SigLIP with a matching processor gives a 16x16 grid: nothing is hard-coded."""
    cls = get_adapter("deepseek_vl")
    cfg = cls.tiny_config()
    cfg.vision_config.image_size, cfg.vision_config.patch_size = 224, 14
    spec = cls(cfg, cls.tiny_processor(cfg)).spec
    assert spec.image_size == (224, 224) and spec.token_grid == (16, 16) and spec.num_image_tokens == 256


@pytest.mark.parametrize(
    "change",
    ["num_image_tokens", "size", "image_token_id", "high_res_size", "do_pad"],
)
def test_inconsistent_checkpoint_is_a_spec_error(adapter, change: str) -> None:
    cfg, proc = copy.deepcopy(adapter.config), copy.deepcopy(adapter.processor)
    if change == "num_image_tokens":
        proc.num_image_tokens = 575
    elif change == "size":
        proc.image_processor.size = SizeDict(height=336, width=336)
    elif change == "image_token_id":
        cfg.image_token_id = cfg.image_token_id + 1
    elif change == "do_pad":
        proc.image_processor.do_pad = False
    elif cfg.model_type == "deepseek_vl_hybrid":
        proc.image_processor.high_res_size = SizeDict(height=768, width=768)
    else:
        return  # no high-res view on the 1.3B
    with pytest.raises(SpecError):
        type(adapter)(cfg, proc).build_spec()


def test_geometry_equals_stock_resize_and_pad_on_1000_sizes(adapter) -> None:
    """The stock ``resize`` and ``pad_to_square`` (the processor's own size computation) on a
    one-channel white image put the content exactly where ``spec.geometry`` says."""
    spec, ip = adapter.spec, adapter.processor.image_processor
    side = spec.pad_size or spec.image_size[0]
    scale = side / spec.image_size[0]  # geometry padding is in input (384) pixels
    sizes = _sizes(1000, seed=0)
    assert len(sizes) >= 1000
    for h, w in sizes:
        x = torch.full((1, 1, h, w), 255, dtype=torch.uint8)
        resized = ip.resize(x, size=SizeDict(height=side, width=side), min_size=ip.min_size, resample=ip.resample)
        padded = ip.pad_to_square(resized, background_color=0)[0, 0]
        rows = (padded == 255).any(1).nonzero().flatten()
        cols = (padded == 255).any(0).nonzero().flatten()
        g = spec.geometry((h, w))
        p = g.padding
        want = (
            p.top * scale,
            p.left * scale,
            (g.input_size[0] - p.bottom) * scale,
            (g.input_size[1] - p.right) * scale,
        )
        got = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
        assert got == pytest.approx(want, abs=1e-9), (h, w)
        assert tuple(resized.shape[-2:]) == g.resized_size, (h, w)
        assert g.num_image_tokens == spec.num_image_tokens and g.input_size == spec.image_size


def _content_rows_cols(pixels: torch.Tensor, color: tuple[int, int, int], spec) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of a processed image that hold anything but the padding colour."""
    mean = torch.tensor(spec.image_mean).view(3, 1, 1)
    std = torch.tensor(spec.image_std).view(3, 1, 1)
    bg = (torch.tensor(color, dtype=torch.float32).view(3, 1, 1) / 255 - mean) / std
    content = (pixels - bg).abs().amax(0) > 1e-3
    return content.any(1).nonzero().flatten(), content.any(0).nonzero().flatten()


def test_geometry_equals_full_stock_processor(adapter) -> None:
    """White images through the whole stock processor: content rows/cols are the spec's.

    The 1.3B pads after resizing, so the match is exact. The hybrid pads at 1024 (exact on
    ``high_res_pixel_values``) and bicubic-resizes that square to 384, which blurs the fractional
    content edge over at most 3 rows."""
    spec, proc = adapter.spec, adapter.processor
    hybrid = spec.high_res_image_size is not None
    count = 80 if hybrid else 150  # the hybrid's exact check is the 1024 view, covered on 1000+ sizes above
    sizes = [(480, 640), *random_sizes(count, seed=3, low=2, high=700)]
    for h, w in sizes:
        out = proc.image_processor(images=[solid_image(h, w)], return_tensors="pt")
        g = spec.geometry((h, w))
        p = g.padding
        want = (p.top, g.input_size[0] - p.bottom - 1, p.left, g.input_size[1] - p.right - 1)
        rows, cols = _content_rows_cols(out["pixel_values"][0], spec.background_color, spec)
        got = (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))
        assert got == pytest.approx(want, abs=3.0 if hybrid else 0), (h, w)
        if hybrid:
            s = spec.high_res_image_size[0] / spec.image_size[0]
            rows, cols = _content_rows_cols(out["high_res_pixel_values"][0], spec.background_color, spec)
            got = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
            want = (p.top * s, (g.input_size[0] - p.bottom) * s, p.left * s, (g.input_size[1] - p.right) * s)
            assert got == pytest.approx(want, abs=1e-9), (h, w)
        if (h, w) == (480, 640):
            assert (int(rows[0]), int(rows[-1])) == ((128, 895) if hybrid else (48, 335))


def test_hybrid_padding_colour_comes_from_the_high_res_attribute() -> None:
    """The hybrid pads at 1024 with ``high_res_background_color``; its 384 view is cut from that
    padded square, so the spec's background (and the padding seen on both views) is the high-res
    one. Distinct colours for the two attributes make a mix-up visible."""
    base = get_adapter("deepseek_vl_hybrid").from_tiny()
    processor = copy.deepcopy(base.processor)
    processor.image_processor.background_color = [10, 200, 30]
    processor.image_processor.high_res_background_color = [220, 40, 90]
    adapter = type(base)(base.config, processor)
    assert adapter.spec.background_color == (220, 40, 90)
    out = processor.image_processor(images=[solid_image(100, 300)], return_tensors="pt")
    geometry = adapter.spec.geometry((100, 300))
    assert geometry.padding.top > 10
    mean = torch.tensor(adapter.spec.image_mean).view(3, 1)
    std = torch.tensor(adapter.spec.image_std).view(3, 1)
    band = out["pixel_values"][0][:, 2, :] * std + mean  # a row inside the top padding, back to [0, 1]
    torch.testing.assert_close(band.mean(-1) * 255, torch.tensor([220.0, 40.0, 90.0]), rtol=0, atol=1.5)
