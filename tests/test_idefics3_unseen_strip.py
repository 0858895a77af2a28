"""Sub-images the patches do not divide (SmolVLM 2.2B: 384 px views, 14 px patches, shuffle 3).

The stock model's patch convolution (stride = patch, no padding) sees ``image_size // patch``
patches per side, so the last ``image_size % patch`` pixel rows and columns of every view never
reach it (384 px: 27 patches, 378 px seen, 6 px dropped). The views' token grids span the seen
part only: maps placed back on the image cover what each token saw, and the dropped strips get
nothing. Every expected number here comes from the config (image size, patch size, shuffle) and
the stock processor's split; the model is the stock one.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_idefics3_spec import check_against_processor, runs_of

from adapters_idefics3 import Idefics3Adapter, Idefics3AdapterBase, SmolVLMAdapter
from adapters_idefics3.tiny import SMOLVLM_2B
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing.images import smooth_image

SIZES = [(427, 640), (640, 427), (100, 300), (20, 20), (900, 200)]


def idefics3_like_2b() -> Idefics3Adapter:
    """SmolVLM-Instruct (2.2B) is an ``idefics3`` checkpoint: the tiny one with the 2.2B vision geometry."""
    cfg = Idefics3Adapter.tiny_config()
    two_b = SmolVLMAdapter.tiny_config(SMOLVLM_2B)
    cfg.vision_config.image_size = two_b.vision_config.image_size
    cfg.vision_config.patch_size = two_b.vision_config.patch_size
    cfg.scale_factor = two_b.scale_factor
    return Idefics3Adapter(cfg, Idefics3Adapter.tiny_processor(cfg))


@pytest.fixture(scope="module", params=["smolvlm", "idefics3"])
def adapter(request: pytest.FixtureRequest) -> Idefics3AdapterBase:
    return SmolVLMAdapter.from_tiny(SMOLVLM_2B) if request.param == "smolvlm" else idefics3_like_2b()


@pytest.fixture(scope="module")
def model(adapter: Idefics3AdapterBase) -> Any:
    return adapter.load_model(seed=0).eval()


def seen_pixels(adapter: Idefics3AdapterBase) -> tuple[int, int, int]:
    """(view side, seen side, tokens per side) from the config alone."""
    vision = adapter.config.vision_config
    side, patch, shuffle = int(vision.image_size), int(vision.patch_size), int(adapter.config.scale_factor)
    return side, side // patch * patch, side // patch // shuffle


def test_the_geometry_does_not_divide_and_the_spec_takes_it(adapter: Idefics3AdapterBase, model: Any) -> None:
    side, seen, grid = seen_pixels(adapter)
    assert seen < side  # the point of this file: the view has pixels no patch covers
    assert adapter.spec.tokens_per_view == grid * grid == adapter.processor.image_seq_len == model.model.image_seq_len
    g = adapter.spec.geometry((427, 640))
    assert all(v.input_size == (seen, seen) and v.token_grid == (grid, grid) for v in g.views)


def test_token_layout_and_view_pixels_equal_the_stock_processor(adapter: Idefics3AdapterBase) -> None:
    """Token count, runs and markers against the processor's input_ids; the seen part of every view
    shows the view's box, pixel for pixel, on coordinate images."""
    check_against_processor(adapter, SIZES)


def test_the_stock_model_never_sees_the_strip(adapter: Idefics3AdapterBase, model: Any) -> None:
    """Noise in the last ``side - seen`` rows and columns of every view leaves the image features
    as they were; a change in the last seen row does not."""
    side, seen, _ = seen_pixels(adapter)
    out = adapter.processor(
        images=[[smooth_image(427, 640, seed=1)]], text=[adapter.processor.image_token], return_tensors="pt"
    )
    pixels, mask = out["pixel_values"], out["pixel_attention_mask"]
    assert tuple(pixels.shape[-2:]) == (side, side)

    def features(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.model.get_image_features(pixel_values=x, pixel_attention_mask=mask).pooler_output[0]

    base = features(pixels)
    noisy = pixels.clone()
    generator = torch.Generator().manual_seed(0)
    noisy[..., seen:, :] = torch.randn(noisy[..., seen:, :].shape, generator=generator)
    noisy[..., :, seen:] = torch.randn(noisy[..., :, seen:].shape, generator=generator)
    torch.testing.assert_close(features(noisy), base, rtol=0, atol=0)
    seen_row = pixels.clone()
    seen_row[..., seen - 1, :] += 1.0
    assert not torch.allclose(features(seen_row), base)


def expected_coverage(adapter: Idefics3AdapterBase, size: tuple[int, int]) -> torch.Tensor:
    """How many views see each pixel (by its centre), from the config and the stock split alone.

    Sub-image ``(r, c)`` is cell ``(r, c)`` of a ``rows x cols`` division of the image stretched
    onto the view, the global view is the whole image: each sees the first ``seen / side`` of its
    cell along each axis.
    """
    side, seen, _ = seen_pixels(adapter)
    h, w = size
    _, rows, cols = adapter.processor.image_processor.get_number_of_image_patches(h, w)
    assert rows * cols > 1
    y = torch.arange(h, dtype=torch.float64) + 0.5
    x = torch.arange(w, dtype=torch.float64) + 0.5

    def seen_in_cell(at: torch.Tensor, extent: float, cells: int) -> torch.Tensor:
        cell = extent / cells
        return (at - (at // cell) * cell) < cell * seen / side

    in_tile = seen_in_cell(y, h, rows)[:, None] & seen_in_cell(x, w, cols)[None, :]
    in_global = seen_in_cell(y, h, 1)[:, None] & seen_in_cell(x, w, 1)[None, :]
    return in_tile.double() + in_global.double()


@pytest.mark.parametrize("size", [(427, 640), (640, 427), (300, 1200)])
def test_maps_on_the_image_leave_the_strips_out(adapter: Idefics3AdapterBase, size: tuple[int, int]) -> None:
    """Each pixel counts once for each view that sees it; the strips are seen by the global view only
    (between sub-images) or by no view (the image's last rows and columns); maps put back on the
    image are 0 exactly there."""
    expected = expected_coverage(adapter, size)
    assert bool((expected[-1] == 0).all()) and bool((expected[:, -1] == 0).all())  # the outer strip is real
    assert bool((expected == 1).any())  # so are the strips between sub-images
    geometry = adapter.spec.geometry(size)
    assert torch.equal(geometry.coverage().double(), expected)
    fused = geometry.to_image([torch.ones(v.token_grid) for v in geometry.views])
    assert bool((fused[expected == 0] == 0).all())
    torch.testing.assert_close(fused[expected > 0], torch.ones(int((expected > 0).sum()), dtype=fused.dtype))


def test_frozen_lmm_runs_and_its_maps_leave_the_strips_out(adapter: Idefics3AdapterBase, model: Any) -> None:
    """The pipeline on the stock model: one 9x9 map per view (grid from the config), the runs of the
    batch are the processor's, and the fused word-to-image maps are 0 where no view looked."""
    _, _, grid = seen_pixels(adapter)
    lmm = FrozenLMM(model, adapter)
    size = (427, 640)
    batch = lmm.prepare([smooth_image(*size, seed=2)], [adapter.format_prompt("the red cat", num_images=1)])
    ids = batch.inputs["input_ids"][0]
    stock = adapter.processor(
        images=[[smooth_image(*size, seed=2)]], text=[adapter.format_prompt("the red cat", num_images=1)]
    )
    assert ids.tolist() == list(stock["input_ids"][0])
    (out,) = lmm(batch)
    views = out.view_attention[0]
    _, rows, cols = adapter.processor.image_processor.get_number_of_image_patches(*size)
    assert len(views) == rows * cols + 1
    assert all(tuple(v.shape[-2:]) == (grid, grid) for v in views)
    assert runs_of(ids, adapter.spec.image_token_id) == [grid * grid] * len(views)
    maps = out.fused_phrase_maps(torch.zeros(out.num_queries, dtype=torch.long))[0]  # [L*H, h, w]
    seen_by = expected_coverage(adapter, size)
    assert float(maps[:, seen_by == 0].abs().max()) == 0.0
    assert float(maps[:, seen_by > 0].min()) > 0.0


def test_normalize_compares_pixels_on_the_seen_part(adapter: Idefics3AdapterBase) -> None:
    """The token cells normalize compares two versions of the pixels on are the seen pixels: the
    strip does not move them, the last seen row does."""
    _, seen, _ = seen_pixels(adapter)
    size = (300, 1200)
    pixels = adapter.process_images([smooth_image(*size, seed=3)])["pixel_values"]
    geometries = [adapter.spec.geometry(size)]
    base = adapter.pixel_cells("pixel_values", pixels, geometries)
    strip = pixels.clone()
    strip[..., seen:, :] += 5.0
    strip[..., :, seen:] += 5.0
    moved = adapter.pixel_cells("pixel_values", strip, geometries)
    assert all(torch.equal(a, b) for a, b in zip(moved, base, strict=True))
    last_seen = pixels.clone()
    last_seen[..., seen - 1, :] += 5.0
    assert not torch.allclose(adapter.pixel_cells("pixel_values", last_seen, geometries)[0], base[0])
