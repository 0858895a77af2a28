"""The Qwen-VL spec comes from config + processor and agrees exactly with the stock image processor.

Ground truth is transformers itself: its ``smart_resize`` with the processor's own settings, its
``get_number_of_image_patches`` / ``_get_num_multimodal_tokens``, and full stock processor calls.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from adapters_qwen import Qwen2_5_VLAdapter, Qwen2VLAdapter, Qwen3VLAdapter, QwenAdapter
from vlm_adapters import ImageShapeError, SpecError, get_adapter

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request: pytest.FixtureRequest) -> QwenAdapter:
    return get_adapter(request.param).from_tiny()  # type: ignore[return-value]


def stock_settings(adapter: QwenAdapter) -> dict[str, int]:
    ip = adapter.processor.image_processor
    return {
        "factor": ip.patch_size * ip.merge_size,
        "min_pixels": ip.size["shortest_edge"],
        "max_pixels": ip.size["longest_edge"],
    }


def random_sizes(rng: np.random.Generator, count: int, max_side: int, max_pixels: int = 0) -> list[tuple[int, int]]:
    """Log-uniform sizes, plus the corners the resize rule branches on (tiny, thin, over max_pixels)."""
    sides = np.exp(rng.uniform(0, np.log(max_side), size=(count, 2))).round().astype(int)
    sizes = [(max(int(h), 1), max(int(w), 1)) for h, w in sides]
    for _ in range(40 if max_pixels else 0):  # area 1x..6x max_pixels, moderate aspect
        area, ratio = max_pixels * rng.uniform(1.0, 6.0), np.exp(rng.uniform(-2, 2))
        sizes.append((round(np.sqrt(area * ratio)), round(np.sqrt(area / ratio))))
    tiny = [(int(h), int(w)) for h, w in rng.integers(1, 40, size=(60, 2))]
    extreme = []
    for _ in range(60):  # aspect ratios near and beyond the 200 limit
        short = int(rng.integers(1, 60))
        ratio = float(rng.uniform(150, 210))
        pair = (short, round(short * ratio))
        extreme.append(pair if rng.random() < 0.5 else pair[::-1])
    exact = [(1, 200), (200, 1), (5, 1000), (1000, 5), (1, 201), (7, 1401)]
    return sizes + tiny + extreme + exact


def test_registered_classes() -> None:
    assert get_adapter("qwen2_vl") is Qwen2VLAdapter
    assert get_adapter("qwen2_5_vl") is Qwen2_5_VLAdapter
    assert get_adapter("qwen3_vl") is Qwen3VLAdapter


def test_spec_fields_come_from_config_and_processor(adapter: QwenAdapter) -> None:
    spec, cfg, proc = adapter.spec, adapter.config, adapter.processor
    ip = proc.image_processor
    assert spec.patch_size == cfg.vision_config.patch_size == ip.patch_size
    assert spec.merge_size == cfg.vision_config.spatial_merge_size == ip.merge_size
    assert spec.temporal_patch_size == cfg.vision_config.temporal_patch_size == ip.temporal_patch_size
    assert (spec.min_pixels, spec.max_pixels) == (ip.size["shortest_edge"], ip.size["longest_edge"])
    assert spec.image_token_id == cfg.image_token_id == proc.image_token_id
    assert spec.video_token_id == cfg.video_token_id == proc.video_token_id
    assert spec.vision_start_token_id == cfg.vision_start_token_id
    assert spec.vision_end_token_id == cfg.vision_end_token_id
    tok = proc.tokenizer
    assert tok.convert_ids_to_tokens(spec.image_token_id) == "<|image_pad|>" == spec.image_token
    assert tok.convert_ids_to_tokens(spec.vision_start_token_id) == "<|vision_start|>"
    assert tok.convert_ids_to_tokens(spec.vision_end_token_id) == "<|vision_end|>"
    assert list(spec.image_mean) == pytest.approx(list(ip.image_mean))
    assert spec.patch_dim == cfg.vision_config.in_channels * spec.temporal_patch_size * spec.patch_size**2


def test_family_sizes() -> None:
    """Facts of the public checkpoints, mirrored by the tiny processors (14/28 vs 16/32)."""
    assert Qwen2_5_VLAdapter.from_tiny().spec.factor == 28
    assert Qwen3VLAdapter.from_tiny().spec.factor == 32


def test_spec_follows_processor_overrides(adapter: QwenAdapter, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``from_pretrained(..., min_pixels=, max_pixels=)``, the usual Qwen knob, changes the spec."""
    folder = tmp_path_factory.mktemp("ckpt")
    adapter.processor.save_pretrained(folder)
    adapter.config.save_pretrained(folder)
    loaded = type(adapter).from_pretrained(folder, min_pixels=12_345, max_pixels=234_567)
    assert (loaded.spec.min_pixels, loaded.spec.max_pixels) == (12_345, 234_567)
    assert type(adapter).from_pretrained(folder).spec == adapter.spec


def test_spec_refuses_a_processor_of_another_checkpoint() -> None:
    config = Qwen2VLAdapter.tiny_config()
    other = Qwen3VLAdapter.tiny_processor(Qwen3VLAdapter.tiny_config())  # patch 16 vs 14
    with pytest.raises(SpecError, match="patch_size"):
        _ = Qwen2VLAdapter(config, other).spec
    config.image_token_id = config.video_token_id
    with pytest.raises(SpecError, match="image_token_id"):
        _ = Qwen2VLAdapter(config, Qwen2VLAdapter.tiny_processor(Qwen2VLAdapter.tiny_config())).spec


def test_geometry_agrees_with_stock_resize_on_1000_sizes(adapter: QwenAdapter) -> None:
    """The spec's grid, resized size and token count == transformers' own computation."""
    spec, ip = adapter.spec, adapter.processor.image_processor
    settings = stock_settings(adapter)
    rng = np.random.default_rng(0)
    sizes = random_sizes(rng, 1200, 3000, max_pixels=spec.max_pixels)
    over_max = refused = 0
    for h, w in sizes:
        try:
            want = smart_resize(h, w, **settings)
        except ValueError:  # aspect ratio over the limit
            with pytest.raises(ImageShapeError):
                spec.geometry((h, w))
            refused += 1
            continue
        geo = spec.geometry((h, w))
        assert geo.resized_size == want, (h, w)
        assert spec.grid_thw((h, w)) == (1, want[0] // spec.patch_size, want[1] // spec.patch_size)
        patches = ip.get_number_of_image_patches(h, w)
        assert geo.temporal * geo.patch_grid[0] * geo.patch_grid[1] == patches, (h, w)
        tokens = adapter.processor._get_num_multimodal_tokens(image_sizes=[(h, w)]).num_image_tokens[0]
        assert geo.num_image_tokens == tokens, (h, w)
        assert geo.padding.is_zero and geo.input_size == geo.resized_size
        over_max += round(h / spec.factor) * round(w / spec.factor) * spec.factor**2 > spec.max_pixels
    assert len(sizes) - refused >= 1000
    assert over_max >= 40 and refused >= 10


def _stock_images(adapter: QwenAdapter, sizes: list[tuple[int, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec = adapter.spec
    for h, w in sizes:
        img = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        out = adapter.processor.image_processor(images=[img], return_tensors="pt")
        geo = spec.geometry((h, w))
        assert out["image_grid_thw"].tolist() == [list(spec.grid_thw((h, w)))], (h, w)
        assert out["pixel_values"].shape == (geo.temporal * geo.patch_grid[0] * geo.patch_grid[1], spec.patch_dim)


def test_geometry_agrees_with_full_stock_processor(adapter: QwenAdapter) -> None:
    """150 sizes through the real image processor: 100 at checkpoint settings (photo-sized, tiny
    and thin images), 50 with min/max pixels moved so the up- and down-scaling branches run on
    small, fast images."""
    rng = np.random.default_rng(1)
    photo = [(int(h), int(w)) for h, w in np.exp(rng.uniform(np.log(16), np.log(1100), size=(70, 2))).round()]
    tiny = [(int(h), int(w)) for h, w in rng.integers(1, 40, size=(20, 2))]
    thin = [(int(s), int(s * r)) for s, r in zip(rng.integers(1, 12, 10), rng.uniform(50, 200, 10), strict=True)]
    sizes = photo + tiny + [t if i % 2 else t[::-1] for i, t in enumerate(thin)]
    _stock_images(adapter, sizes, seed=2)
    squeezed = type(adapter)(
        adapter.config, type(adapter).tiny_processor(adapter.config, min_pixels=40_000, max_pixels=90_000)
    )
    assert (squeezed.spec.min_pixels, squeezed.spec.max_pixels) == (40_000, 90_000)
    small = [(int(h), int(w)) for h, w in rng.integers(5, 700, size=(50, 2))]
    _stock_images(squeezed, small, seed=3)
    # text side: the processor expands one placeholder into exactly the spec's token count
    for h, w in small[:10]:
        img = Image.new("RGB", (w, h), (120, 30, 200))
        out = squeezed.processor(images=[img], text=[squeezed.image_placeholder], return_tensors="pt")
        assert (
            int((out["input_ids"] == squeezed.spec.image_token_id).sum())
            == squeezed.spec.geometry((h, w)).num_image_tokens
        )


def test_aspect_ratio_limit_matches_stock(adapter: QwenAdapter) -> None:
    ip = adapter.processor.image_processor
    for h, w in ((2, 400), (400, 2)):  # exactly 200: accepted by both
        out = ip(images=[Image.new("RGB", (w, h))], return_tensors="pt")
        assert out["image_grid_thw"][0].tolist() == list(adapter.spec.grid_thw((h, w)))
    for h, w in ((2, 403), (403, 2)):
        with pytest.raises(ValueError, match="aspect ratio"):
            ip(images=[Image.new("RGB", (w, h))], return_tensors="pt")
        with pytest.raises(ImageShapeError, match="aspect ratio"):
            adapter.spec.geometry((h, w))


def test_seed_photo_size() -> None:
    """640x427 (427 high): the stock Qwen2/2.5 processor makes 420x644, grid [1, 30, 46], 1380 rows."""
    spec = Qwen2_5_VLAdapter.from_tiny().spec
    geo = spec.geometry((427, 640))
    assert geo.resized_size == (420, 644) and spec.grid_thw((427, 640)) == (1, 30, 46)
    assert geo.token_grid == (15, 23) and geo.num_image_tokens == 345
    ip = Qwen2_5_VLAdapter.from_tiny().processor.image_processor
    out = ip(images=[Image.new("RGB", (640, 427))], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 30, 46]] and tuple(out["pixel_values"].shape) == (1380, 1176)
    assert torch.equal(out["image_grid_thw"][0], torch.tensor(spec.grid_thw((427, 640))))
