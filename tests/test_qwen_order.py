"""Token, patch and vision-tower orders, each proven against what transformers itself computes.

* LLM image tokens: raster over ``[h/m, w/m]``, checked against the mrope positions of
  ``model.model.get_rope_index``.
* Processor patch rows: merge-window order, checked against the vision tower's own rotary
  positions (``transformers.vision_utils.get_vision_position_ids``) and against the pixels.
* Vision-tower outputs: processor order (Qwen2-VL, Qwen3-VL) or attention-window order
  (Qwen2.5-VL), checked by re-running the tower's own merger to get its ``pooler_output``.
* Geometry: token-grid maps land on the original pixels, masks land on the token grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from einops import rearrange
from PIL import Image
from synthetic import photo_like
from transformers.vision_utils import get_vision_position_ids

from adapters_qwen import QwenAdapter
from vlm_adapters import get_adapter

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> tuple[QwenAdapter, Any]:
    adapter = get_adapter(request.param).from_tiny()
    return adapter, adapter.load_model(seed=0)  # type: ignore[return-value]


def photo(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(photo_like(h, w, seed=seed))


def test_llm_image_tokens_are_raster_per_mrope(pair: tuple[QwenAdapter, Any]) -> None:
    adapter, model = pair
    images = [[photo(427, 640, 0), photo(120, 500, 1)], [photo(700, 260, 2)]]
    texts = [adapter.format_prompt("a b", num_images=2, answer="c"), adapter.format_prompt("d", answer="e f g h")]
    batch = adapter.prepare(images, texts)
    inputs = batch.inputs
    position_ids, _ = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    for b, (geometries, positions) in enumerate(batch.samples()):
        for geometry, pos in zip(geometries, positions, strict=True):
            rows, cols = geometry.token_grid
            t, h, w = (position_ids[axis, b, pos] for axis in range(3))
            assert len(set(t.tolist())) == 1
            h_grid = adapter.tokens_to_grid(h - h.min(), geometry)
            w_grid = adapter.tokens_to_grid(w - w.min(), geometry)
            assert torch.equal(h_grid, torch.arange(rows)[:, None].expand(rows, cols))
            assert torch.equal(w_grid, torch.arange(cols)[None, :].expand(rows, cols))
            assert torch.equal(adapter.grid_to_tokens(h_grid, geometry), h - h.min())


def test_patch_rows_follow_the_towers_rotary_positions(pair: tuple[QwenAdapter, Any]) -> None:
    """The vision tower's rotary (h, w) per patch row, put on the grid by our helper, is a meshgrid."""
    adapter, _ = pair
    grids = [(1, 30, 46), (1, 8, 2), (1, 14, 22)]
    pos = get_vision_position_ids(torch.tensor(grids), adapter.spec.merge_size)  # [N, 2]
    for chunk, (t, h, w) in zip(pos.split([t * h * w for t, h, w in grids]), grids, strict=True):
        on_grid = adapter.patch_rows_to_grid(chunk, (t, h, w), dim=0)  # [2, h, w]
        assert torch.equal(on_grid[0], torch.arange(h)[:, None].expand(h, w))
        assert torch.equal(on_grid[1], torch.arange(w)[None, :].expand(h, w))
        assert torch.equal(adapter.grid_to_patch_rows(on_grid), chunk.T)


def test_patch_rows_rebuild_the_processed_image(pair: tuple[QwenAdapter, Any]) -> None:
    """At a size the resize keeps, the patch rows put back on the grid are the normalised pixels."""
    adapter, _ = pair
    spec = adapter.spec
    f = spec.factor
    h, w = 8 * f, 10 * f  # within min/max pixels for every family, a multiple of the resize factor
    arr = photo_like(h, w, seed=3)
    out = adapter.processor.image_processor(images=[Image.fromarray(arr)], return_tensors="pt")
    grid = tuple(out["image_grid_thw"][0].tolist())
    assert grid == (1, h // spec.patch_size, w // spec.patch_size)
    p = spec.patch_size
    patches = out["pixel_values"].reshape(-1, spec.in_channels, spec.temporal_patch_size, p, p)
    assert torch.equal(patches[:, :, 0], patches[:, :, 1])  # a still image: temporal copies
    on_grid = adapter.patch_rows_to_grid(patches[:, :, 0], grid, dim=0)  # [C, p, p, gh, gw]
    image = rearrange(on_grid, "c py px gh gw -> c (gh py) (gw px)")
    mean = torch.tensor(spec.image_mean).view(3, 1, 1)
    std = torch.tensor(spec.image_std).view(3, 1, 1)
    want = (torch.from_numpy(arr).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(image, want, rtol=0, atol=1e-5)


def test_vision_outputs_to_grid_and_tokens(pair: tuple[QwenAdapter, Any]) -> None:
    """Per-patch tower outputs -> [D, h, w] per image; the tower's own merger over each 2x2 block,
    read in raster order, reproduces the tower's pooled tokens (what the LLM receives)."""
    adapter, model = pair
    images = [photo(427, 640, 4), photo(250, 90, 5)]
    out = adapter.processor.image_processor(images=images, return_tensors="pt")
    grid_thw = out["image_grid_thw"]
    visual = model.model.visual
    with torch.no_grad():
        vis = visual(out["pixel_values"], grid_thw=grid_thw)
        per_patch = vis.last_hidden_state  # [N, D], in the tower's order
        pooled = vis.pooler_output
        maps = adapter.vision_patches_to_grids(per_patch, grid_thw, dim=0)  # [D, h, w] each
        m = adapter.spec.merge_size
        blocks = [rearrange(g, "d (r mh) (c mw) -> (r c mh mw) d", mh=m, mw=m) for g in maps]
        merged = visual.merger(torch.cat(blocks))
        naive = visual.merger(per_patch)
    torch.testing.assert_close(merged, pooled, rtol=0, atol=1e-6)
    if adapter.vision_window_attention:
        assert not torch.allclose(naive, pooled, atol=1e-3)  # the window order is real
    else:
        torch.testing.assert_close(naive, pooled, rtol=0, atol=1e-6)
    geos = [adapter.spec.geometry((im.height, im.width)) for im in images]
    for g, geo, tokens in zip(maps, geos, pooled.split([geo.num_image_tokens for geo in geos]), strict=True):
        assert tuple(g.shape[-2:]) == geo.patch_grid
        assert tuple(adapter.tokens_to_grid(tokens, geo, dim=0).shape) == (tokens.shape[1], *geo.token_grid)


def test_geometry_maps_token_grid_to_original_pixels(pair: tuple[QwenAdapter, Any]) -> None:
    """A bright box seen through the stock processor, read off the token grid, maps back onto the
    box in the original image; the box mask brought to the token grid matches what tokens saw."""
    adapter, _ = pair
    h, w = 427, 640
    arr = np.full((h, w, 3), 20, np.uint8)
    box = np.zeros((h, w), bool)
    box[100:260, 300:520] = True
    arr[box] = 235
    out = adapter.processor.image_processor(images=[Image.fromarray(arr)], return_tensors="pt")
    geo = adapter.spec.geometry((h, w))
    assert geo.padding.is_zero and geo.input_size == geo.resized_size
    rows = out["pixel_values"].mean(-1)  # brightness per patch row
    patch_map = adapter.patch_rows_to_grid(rows, geo)  # [gh, gw]
    token_map = torch.nn.functional.avg_pool2d(patch_map[None], adapter.spec.merge_size)[0]
    token_map = (token_map - token_map.min()) / (token_map.max() - token_map.min())  # 0..1 coverage
    assert tuple(token_map.shape) == geo.token_grid
    back = geo.to_image(token_map) > 0.5
    want = torch.from_numpy(box)
    iou = (back & want).sum() / (back | want).sum()
    assert iou > 0.9, float(iou)
    on_grid = geo.to_token_grid(want.float())
    assert (on_grid - token_map).abs().max() < 0.25
    assert (on_grid - token_map).abs().mean() < 0.02
