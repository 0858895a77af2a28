"""The InternVL spec comes from config + processor and tiles exactly like the stock processor.

Ground truth is transformers: the processor's own count (``_get_num_multimodal_tokens``, which
asks the image processor's ``get_number_of_image_patches``) on 1000+ sizes, and full processor
calls whose tiles are checked pixel by pixel against the views' boxes.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from tile_content import assert_views_show_their_boxes, coordinate_image

from adapters_internvl import InternVLAdapter
from adapters_internvl.tiling import candidate_grids
from vlm_adapters import SpecError, adapter_for, get_adapter, spec_from_json
from vlm_adapters.testing import random_sizes

SETTINGS = {
    "released": {},
    "min2_max6": {"min_patches": 2, "max_patches": 6},
    "max1": {"max_patches": 1},
}


@pytest.fixture(scope="module", params=list(SETTINGS))
def adapter(request: pytest.FixtureRequest) -> InternVLAdapter:
    cls = get_adapter("internvl")
    config = cls.tiny_config()
    return cls(config, cls.tiny_processor(config, **SETTINGS[request.param]))  # type: ignore[return-value]


def boundary_sizes(tile: int, max_tiles: int, seed: int) -> list[tuple[int, int]]:
    """Sizes on the decision boundaries of the tile choice.

    Exact aspect ratios of every arrangement (where ties between 1x1, 2x2, 3x3... are broken by
    the area rule, so sides around that area are included), ratios midway between neighbouring
    arrangements (and one pixel either side), and extreme aspect ratios.
    """
    rng = np.random.default_rng(seed)
    sizes: list[tuple[int, int]] = []
    ratios = sorted({c / r for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1) if c * r <= max_tiles})
    for c in range(1, max_tiles + 1):
        for r in range(1, max_tiles // c + 1):
            sizes += [(r * k, c * k) for k in (1, 37, int(rng.integers(50, 400)))]
            if math.gcd(c, r) != 1:
                continue
            # an image of exactly this ratio ties with the m-times finer grids; the finer one wins
            # while the image area exceeds half of its tiles' area: side k > m * tile / sqrt(2)
            m = 2
            while m * m * c * r <= max_tiles:
                k0 = m * tile / math.sqrt(2)
                sizes += [(r * k, c * k) for k in (math.floor(k0), math.ceil(k0))]
                m += 1
    for a, b in itertools.pairwise(ratios):
        mid = (a + b) / 2
        for h in (int(rng.integers(20, 900)), int(rng.integers(20, 900))):
            w = mid * h
            sizes += [(h, max(1, math.floor(w))), (h, math.ceil(w)), (h, round(w) + 1)]
            sizes += [(max(1, math.floor(w)), h), (math.ceil(w), h)]
    sizes += [(1, 1), (1, 4000), (4000, 1), (2, 3000), (3000, 7), (5, 5), (10, 4000), (4000, 10)]
    return sizes


def test_registered_and_resolved_from_config() -> None:
    cls = get_adapter("internvl")
    assert cls is InternVLAdapter and cls.spec_kind == "internvl_tiles"
    assert adapter_for(cls.tiny_config()) is cls


def test_spec_fields_come_from_config_and_processor(adapter: InternVLAdapter) -> None:
    spec, cfg, proc = adapter.spec, adapter.config, adapter.processor
    ip = proc.image_processor
    merged = proc._merge_kwargs()["images_kwargs"]
    assert spec.kind == "internvl_tiles" and spec.token_order == "raster"
    assert spec.tile_size == tuple(cfg.vision_config.image_size) == (ip.size.height, ip.size.width)
    assert spec.patch_size == tuple(cfg.vision_config.patch_size)
    assert spec.tokens_per_tile == proc.image_seq_length == cfg.image_seq_length
    side = cfg.vision_config.image_size[0] // cfg.vision_config.patch_size[0] * cfg.downsample_ratio
    assert spec.tile_token_grid == (side, side)
    assert spec.tiling is merged["crop_to_patches"] is True
    assert (spec.min_tiles, spec.max_tiles) == (ip.min_patches, ip.max_patches)
    assert spec.image_token_id == cfg.image_token_id == proc.image_token_id
    assert spec.image_token == proc.image_token
    assert spec.vision_start_token_id == proc.start_image_token_id
    assert spec.vision_end_token_id == proc.end_image_token_id
    assert spec.image_mean == tuple(ip.image_mean) and spec.image_std == tuple(ip.image_std)
    assert spec.thumbnail is (spec.max_tiles > 1)  # the stock processor always adds one to a multi-tile image
    assert spec.wrapper_tokens == 2
    assert spec_from_json(spec.model_dump_json()) == spec


def test_spec_follows_the_checkpoint_not_literals() -> None:
    """A 224 px tile with patch 14 and the processor sized to match: 8x8 = 64 tokens per tile."""
    cls = get_adapter("internvl")
    cfg = cls.tiny_config()
    cfg.vision_config.image_size = (224, 224)
    cfg.image_seq_length = 64
    spec = cls(cfg, cls.tiny_processor(cfg, max_patches=4)).spec
    assert spec.tile_size == (224, 224) and spec.tile_token_grid == (8, 8) and spec.max_tiles == 4
    g = spec.geometry((224, 448))
    assert [v.name for v in g.views] == ["tile_0_0", "tile_0_1", "thumbnail"]
    assert g.num_image_tokens == 3 * 64 and g.views[1].offset == 64


@pytest.mark.parametrize("change", ["image_seq_length", "tile_size", "image_token_id", "select_strategy", "do_resize"])
def test_inconsistent_checkpoint_is_a_spec_error(change: str) -> None:
    cls = get_adapter("internvl")
    cfg = cls.tiny_config()
    proc = cls.tiny_processor(cfg)
    if change == "image_seq_length":
        proc.image_seq_length = 255
    elif change == "tile_size":
        cfg.vision_config.image_size = (336, 336)
    elif change == "image_token_id":
        cfg.image_token_id += 1
    elif change == "select_strategy":
        cfg.vision_feature_select_strategy = "full"
    else:
        proc.image_processor.do_resize = False
    with pytest.raises(SpecError):
        cls(cfg, proc).build_spec()


def test_token_counts_equal_stock_on_1000_sizes(adapter: InternVLAdapter) -> None:
    """Tiles, image tokens and prompt tokens (start/end included) == the processor's own count."""
    spec, proc = adapter.spec, adapter.processor
    sizes = boundary_sizes(spec.tile_size[0], max(spec.max_tiles, 2), seed=0)
    sizes += random_sizes(1000 - len(sizes) if len(sizes) < 1000 else 200, seed=1, low=1, high=5000)
    assert len(sizes) >= 1000
    stock = proc._get_num_multimodal_tokens(image_sizes=sizes)
    for (h, w), tokens, patches in zip(sizes, stock.num_image_tokens, stock.num_image_patches, strict=True):
        g = spec.geometry((h, w))
        assert g.num_prompt_tokens == tokens, (h, w)
        assert g.num_views == patches, (h, w)
        assert g.runs == 1 and g.run_lengths == [g.num_image_tokens] == [patches * spec.tokens_per_tile]
        rows, cols = spec.tile_grid((h, w))
        if rows * cols > 1:
            assert [v.name for v in g.views][-1] == "thumbnail" and g.views[-1].box.height == h
            assert (rows, cols) in candidate_grids(rows * cols, spec.min_tiles, spec.max_tiles)


def test_geometry_equals_full_stock_processor(adapter: InternVLAdapter) -> None:
    """Full processor calls on coordinate images: every tile (and the thumbnail) shows its view's
    box, and the image tokens sit in one run of ``num_image_tokens`` between start and end."""
    spec, proc = adapter.spec, adapter.processor
    sizes = [(427, 640), (640, 427), (16, 900), (900, 16), (448, 448 * 3), *random_sizes(40, seed=5, low=16, high=1600)]
    for h, w in sizes:
        out = proc(images=[coordinate_image(h, w)], text=[proc.image_token], return_tensors="pt")
        g = spec.geometry((h, w))
        assert_views_show_their_boxes(g, out["pixel_values"], spec.image_mean, spec.image_std)
        ids = out["input_ids"][0]
        at = (ids == spec.image_token_id).nonzero().flatten()
        assert at.numel() == g.num_image_tokens and int(at[-1] - at[0]) + 1 == at.numel(), (h, w)
        assert ids[at[0] - 1] == spec.vision_start_token_id and ids[at[-1] + 1] == spec.vision_end_token_id
        assert ids.numel() == g.num_prompt_tokens, (h, w)  # the prompt was the placeholder alone


def test_tiles_cover_the_image_once_and_the_thumbnail_all_of_it() -> None:
    spec = get_adapter("internvl").from_tiny().spec
    g = spec.geometry((300, 1000))  # ratio 3.33 -> 3 columns x 1 row
    assert spec.tile_grid((300, 1000)) == (1, 3)
    coverage = g.coverage()
    assert torch.equal(coverage, torch.full((300, 1000), 2.0))  # one tile + the thumbnail everywhere
    edges = [edge for v in g.views[:-1] for edge in (v.box.left, v.box.right)]
    assert edges == pytest.approx([0, 1000 / 3, 1000 / 3, 2000 / 3, 2000 / 3, 1000])


def test_a_copied_adapter_keeps_its_spec() -> None:
    a = get_adapter("internvl").from_tiny()
    b = copy.deepcopy(a)
    assert b.spec == a.spec
