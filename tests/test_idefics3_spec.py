"""The Idefics3 / SmolVLM spec comes from config + processor and splits exactly like the stock processor.

Ground truth is transformers: the image processor's ``get_number_of_image_patches`` (rows and
columns of sub-images) and the processor's own prompt expansion of those rows and columns,
tokenized, on 1000+ sizes per model type; and full processor calls whose sub-images are checked
pixel by pixel against the views' boxes, and whose image tokens against the views' runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tile_content import assert_views_show_their_boxes, coordinate_image

from adapters_idefics3 import Idefics3Adapter, Idefics3AdapterBase, SmolVLMAdapter
from vlm_adapters import SpecError, adapter_for, get_adapter, spec_from_json
from vlm_adapters.adapter import contiguous_runs
from vlm_adapters.testing import random_sizes

NAMES = ("idefics3", "smolvlm")


@pytest.fixture(scope="module", params=NAMES)
def adapter(request: pytest.FixtureRequest) -> Idefics3AdapterBase:
    return get_adapter(request.param).from_tiny()  # type: ignore[return-value]


def boundary_sizes(longest_edge: int, tile: int, seed: int) -> list[tuple[int, int]]:
    """Sizes where the number of sub-image rows or columns changes, plus extreme aspect ratios.

    After the first resize the short side is ``longest_edge * short / long`` (truncated, made
    even), so the split changes where that crosses a multiple of the sub-image side; the
    landscape/portrait branch changes at square images.
    """
    rng = np.random.default_rng(seed)
    sizes: list[tuple[int, int]] = []
    for k in range(1, math.ceil(longest_edge / tile)):
        for long in rng.integers(60, 3000, 12):
            short = k * tile * int(long) / longest_edge
            for d in (-2, -1, 0, 1, 2):
                s = max(1, round(short) + d)
                sizes += [(s, int(long)), (int(long), s)]
    for side in rng.integers(1, 2500, 20):
        sizes += [(int(side), int(side)), (int(side), int(side) + 1), (int(side) + 1, int(side))]
    sizes += [(1, 1), (1, 5000), (5000, 1), (2, 4000), (4000, 3), (7, 5), (tile, tile), (tile + 1, tile)]
    return sizes


def stock_prompt(adapter: Idefics3AdapterBase, rows: int, cols: int) -> torch.Tensor:
    """The processor's own expansion of one image placeholder for a rows x cols split, tokenized."""
    text = adapter.processor.replace_image_token({"rows": [[rows]], "cols": [[cols]]}, 0)
    return torch.tensor(adapter.processor.tokenizer(text, add_special_tokens=False)["input_ids"])


def runs_of(ids: torch.Tensor, token: int) -> list[int]:
    return contiguous_runs((ids == token).nonzero().flatten())


def test_registered_and_resolved_from_config() -> None:
    assert get_adapter("idefics3") is Idefics3Adapter and get_adapter("smolvlm") is SmolVLMAdapter
    for name in NAMES:
        cls = get_adapter(name)
        assert cls.spec_kind == "idefics3_split" and adapter_for(cls.tiny_config()) is cls


def test_spec_fields_come_from_config_and_processor(adapter: Idefics3AdapterBase) -> None:
    spec, cfg, proc = adapter.spec, adapter.config, adapter.processor
    ip, tok = proc.image_processor, proc.tokenizer
    assert spec.kind == "idefics3_split" and spec.token_order == "raster"
    assert spec.tile_size == cfg.vision_config.image_size == ip.max_image_size["longest_edge"]
    assert spec.patch_size == cfg.vision_config.patch_size and spec.scale_factor == cfg.scale_factor
    assert spec.tokens_per_view == proc.image_seq_len
    assert spec.longest_edge == ip.size["longest_edge"] and spec.splitting is ip.do_image_splitting is True
    assert spec.image_token_id == cfg.image_token_id == proc.image_token_id
    assert spec.image_token == proc.image_token
    assert spec.fake_image_token_id == tok.convert_tokens_to_ids(proc.fake_image_token)
    assert spec.global_image_token_id == tok.convert_tokens_to_ids("<global-img>")
    assert spec.newline_tokens == 1 and spec.double_newline_tokens == 1  # "\n\n" is one token, as in Llama 3
    assert spec.image_mean == tuple(ip.image_mean) and spec.image_std == tuple(ip.image_std)
    assert spec_from_json(spec.model_dump_json()) == spec


def test_spec_follows_the_checkpoint_not_literals() -> None:
    """A 384 px sub-image of patch 14 shuffled by 3 (SmolVLM-2.2B's geometry), longest edge 3 x 384."""
    cls = get_adapter("smolvlm")
    cfg = cls.tiny_config()
    cfg.vision_config.image_size, cfg.vision_config.patch_size, cfg.scale_factor = 378, 14, 3
    spec = cls(cfg, cls.tiny_processor(cfg, size={"longest_edge": 3 * 378})).spec
    assert spec.tile_size == 378 and spec.tile_token_grid == (9, 9) and spec.longest_edge == 1134
    g = spec.geometry((100, 300))
    assert [v.name for v in g.views] == ["tile_0_0", "tile_0_1", "tile_0_2", "global"]
    assert g.run_lengths == [81] * 4


@pytest.mark.parametrize("change", ["image_seq_len", "tile_size", "image_token_id", "do_resize"])
def test_inconsistent_checkpoint_is_a_spec_error(change: str) -> None:
    cls = get_adapter("idefics3")
    cfg = cls.tiny_config()
    proc = cls.tiny_processor(cfg)
    if change == "image_seq_len":
        proc.image_seq_len = 168
    elif change == "tile_size":
        cfg.vision_config.image_size = 378
    elif change == "image_token_id":
        cfg.image_token_id += 1
    else:
        proc.image_processor.do_resize = False
    with pytest.raises(SpecError):
        cls(cfg, proc).build_spec()


def test_token_counts_equal_stock_on_1000_sizes(adapter: Idefics3AdapterBase) -> None:
    """Sub-image rows/cols == the image processor's count; image tokens, prompt tokens and runs ==
    the processor's prompt expansion of them (and, on Idefics3, its ``_get_num_multimodal_tokens``)."""
    spec, ip = adapter.spec, adapter.processor.image_processor
    sizes = boundary_sizes(spec.longest_edge, spec.tile_size, seed=0)
    sizes += random_sizes(max(200, 1000 - len(sizes)), seed=2, low=1, high=5000)
    assert len(sizes) >= 1000
    stock_total = None
    if hasattr(type(adapter.processor), "_get_num_multimodal_tokens") and adapter.name == "idefics3":
        stock_total = adapter.processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens
    prompts: dict[tuple[int, int], torch.Tensor] = {}
    for i, (h, w) in enumerate(sizes):
        _, rows, cols = ip.get_number_of_image_patches(h, w)
        split = spec.split((h, w))
        assert (split.rows, split.cols) == (rows, cols), (h, w)
        g = spec.geometry((h, w))
        ids = prompts.setdefault((rows, cols), stock_prompt(adapter, rows, cols))
        assert g.num_prompt_tokens == ids.numel(), (h, w)
        assert g.num_image_tokens == int((ids == spec.image_token_id).sum())
        assert g.run_lengths == runs_of(ids, spec.image_token_id), (h, w)
        assert g.num_views == max(rows * cols, 0) + 1
        if stock_total is not None:
            assert g.num_prompt_tokens == stock_total[i], (h, w)


def check_against_processor(adapter: Idefics3AdapterBase, sizes: list[tuple[int, int]]) -> None:
    spec, proc = adapter.spec, adapter.processor
    tok = proc.tokenizer
    for h, w in sizes:
        out = proc(images=[[coordinate_image(h, w)]], text=[proc.image_token], return_tensors="pt")
        g = spec.geometry((h, w))
        assert_views_show_their_boxes(g, out["pixel_values"][0], spec.image_mean, spec.image_std)
        assert bool(out["pixel_attention_mask"].all())  # sub-images are never padded
        ids = out["input_ids"][0]
        assert ids.numel() == g.num_prompt_tokens, (h, w)
        at = (ids == spec.image_token_id).nonzero().flatten()
        assert runs_of(ids, spec.image_token_id) == g.run_lengths, (h, w)
        starts = [int(at[v.offset]) for v in g.views]
        for view, start in zip(g.views, starts, strict=True):
            marker = (
                "<global-img>"
                if view.name == "global"
                else "<row_{}_col_{}>".format(*(int(p) + 1 for p in view.name.split("_")[1:]))
            )
            assert ids[start - 1] == tok.convert_tokens_to_ids(marker), (h, w, view.name)
            assert ids[start - 2] == spec.fake_image_token_id


def test_geometry_equals_full_stock_processor(adapter: Idefics3AdapterBase) -> None:
    """Full processor calls on coordinate images: each sub-image and the global view show their
    boxes, and each view's tokens follow its own marker."""
    sizes = [(427, 640), (640, 427), (12, 1500), (1500, 12), (300, 300), (5, 7)]
    check_against_processor(adapter, sizes + random_sizes(40, seed=5, low=8, high=2000)[6:])


def test_longest_edge_not_a_multiple_of_the_sub_image() -> None:
    """With ``size`` not a multiple of ``max_image_size`` the processor's real split is followed
    (transformers' ``get_number_of_image_patches`` rounds differently there and undercounts)."""
    cls = get_adapter("idefics3")
    cfg = cls.tiny_config()
    adapter = cls(cfg, cls.tiny_processor(cfg, size={"longest_edge": 700}))
    sizes = [(15, 29), (29, 15), (22, 43), (26, 50), *random_sizes(14, seed=9, low=8, high=900)]
    check_against_processor(adapter, sizes)
    assert adapter.spec.split((15, 29))[2:] == (2, 2)


def test_splitting_off_is_one_global_view() -> None:
    cls = get_adapter("smolvlm")
    cfg = cls.tiny_config()
    adapter = cls(cfg, cls.tiny_processor(cfg, do_image_splitting=False))
    assert adapter.spec.splitting is False
    check_against_processor(adapter, [(427, 640), (30, 900), (2000, 100)])
    g = adapter.spec.geometry((427, 640))
    assert [v.name for v in g.views] == ["global"] and g.extra_tokens == 3
