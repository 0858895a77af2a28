"""LLaVA-NeXT / OneVision / LLaVA-1.5 geometry, proven against the stock processors and models.

Three independent witnesses, on the released shapes (CLIP-L/14 at 336 with the five NeXT
pinpoints; SigLIP/14 at 384 with OneVision's 36 pinpoints and ``anyres_max_9``) and on the tiny
configs the suite runs:

* token counts: the processor's own ``_get_num_multimodal_tokens`` on 500+ sizes per model type
  (extreme aspect ratios, both sides of every pinpoint switch, OneVision's downsampling edge);
* the model's own ``pack_image_features`` on features that carry their canvas coordinates:
  which features each view keeps, in which order, where the newline features go, and what the
  downsampled grid spans;
* the processor's pixels: where a white image lands on the tiled canvas, against the affine map
  each view declares (its box and padding).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from transformers import (
    CLIPVisionConfig,
    LlavaConfig,
    LlavaImageProcessor,
    LlavaNextConfig,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    LlavaProcessor,
)
from transformers.models.llava_next.modeling_llava_next import LlavaNextModel, image_size_to_num_patches
from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

from adapters_llava.build import anyres_spec, llava_spec
from adapters_llava.layout import best_canvas, downsampled_grid, unpadded_window
from adapters_llava.spec import AnyresSpec
from adapters_llava.tiny import tiny_config, tiny_processor, tiny_tokenizer
from vlm_adapters.geometry import View
from vlm_adapters.testing import random_sizes, solid_image

NEWLINE = 7777.0


def released(model_type: str) -> tuple[Any, Any]:
    """Config and processor with the released checkpoints' vision settings (llava-v1.6-mistral-7b-hf,
    llava-onevision-qwen2-*-ov-hf); the tokenizer is the tiny one, which the geometry never reads."""
    tok = tiny_tokenizer(model_type)
    image_token = tok.convert_tokens_to_ids("<image>")
    if model_type == "llava_next":
        config = LlavaNextConfig(image_token_index=image_token)
        image_processor = LlavaNextImageProcessor(
            size={"shortest_edge": 336},
            crop_size={"height": 336, "width": 336},
            image_grid_pinpoints=config.image_grid_pinpoints,
        )
        processor = LlavaNextProcessor(
            image_processor=image_processor,
            tokenizer=tok,
            patch_size=14,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
        )
        return config, processor
    config = LlavaOnevisionConfig(image_token_index=image_token, video_token_index=tok.convert_tokens_to_ids("<video>"))
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(),
        num_image_tokens=729,
        vision_feature_select_strategy="full",
    )
    return config, processor


SETUPS = ("llava_next", "llava_onevision", "llava_next/tiny", "llava_onevision/tiny")


@pytest.fixture(scope="module", params=SETUPS)
def setup(request: pytest.FixtureRequest) -> tuple[Any, Any, AnyresSpec]:
    model_type, _, tiny = request.param.partition("/")
    if tiny:
        config = tiny_config(model_type)
        processor = tiny_processor(config)
    else:
        config, processor = released(model_type)
    return config, processor, anyres_spec(config, processor)


def anyres_sizes(spec: AnyresSpec, seed: int) -> list[tuple[int, int]]:
    """500+ sizes: log-uniform, extreme aspect ratios, pinpoints and their neighbours, both sides of
    every pinpoint switch along a set of rows and columns, exact canvas aspect ratios (the unpad tie),
    and both sides of OneVision's downsampling threshold."""
    pins = [list(p) for p in spec.grid_pinpoints]
    t = spec.tile_size
    sizes = set(random_sizes(450, seed=seed, low=1, high=6 * t))
    extreme = [1, 2, 3, 7, t // 3, t - 1, t, t + 1, 4 * t, 12 * t, 20 * t]
    sizes |= {(a, b) for a in extreme[:4] for b in extreme} | {(b, a) for a in extreme[:4] for b in extreme}
    for ph, pw in pins:
        for dh in (-1, 0, 1):
            for dw in (-1, 0, 1):
                sizes.add((ph + dh, pw + dw))
        sizes |= {(ph // 2, pw // 2), (3 * ph, 3 * pw), (ph * 7 // 5, pw * 7 // 5)}
    for fixed in (t // 2, t, 2 * t + 3, 5 * t):
        previous = None
        for other in range(1, 8 * t):
            canvas = best_canvas((fixed, other), pins)
            if previous is not None and canvas != previous:
                sizes |= {(fixed, other - 1), (fixed, other), (other - 1, fixed), (other, fixed)}
            previous = canvas
    if spec.max_tiles is not None:
        g = spec.tile_grid
        for aspect in (1.0, 1.5, 0.6, 2.5, 0.3):
            previous = None
            for height in range(t, 8 * t, max(1, t // 16)):
                size = (height, max(1, round(height * aspect)))
                canvas = best_canvas(size, pins)
                r0, r1, c0, c1 = unpadded_window(size, canvas[0] // t * g, canvas[1] // t * g)
                shrunk = downsampled_grid(r1 - r0, c1 - c0, g, spec.max_tiles, spec.downsample_threshold) != (
                    r1 - r0,
                    c1 - c0,
                )
                if previous is not None and shrunk != previous:
                    sizes |= {(height - max(1, t // 16), round((height - max(1, t // 16)) * aspect)), size}
                previous = shrunk
    return sorted(s for s in sizes if min(s) >= 1)


def test_token_counts_equal_the_processors_on_many_sizes(setup) -> None:
    _, processor, spec = setup
    sizes = anyres_sizes(spec, seed=len(spec.grid_pinpoints))
    assert len(sizes) >= 500
    want = processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens
    got = [spec.geometry(s).num_image_tokens for s in sizes]
    wrong = [(s, g, w) for s, g, w in zip(sizes, got, want, strict=True) if g != w]
    assert not wrong, wrong[:10]
    if spec.max_tiles is not None:  # the set really crosses the downsampling edge both ways
        shrunk = [_downsampled(spec.geometry(s).views[-1], spec.patch_size) for s in sizes]
        assert sum(shrunk) > 50 and len(shrunk) - sum(shrunk) > 50


def _downsampled(view: View, patch: int) -> bool:
    return view.token_grid != (view.input_size[0] // patch, view.input_size[1] // patch)


def _coded_features(config: Any, size: tuple[int, int]) -> list[torch.Tensor]:
    """One ``[tiles, g*g, 3]`` tensor whose features hold (canvas row, canvas col, 0 base / 1 tile)."""
    vision = config.vision_config
    g = vision.image_size // vision.patch_size
    tiles = image_size_to_num_patches(size, config.image_grid_pinpoints, vision.image_size) - 1
    canvas = best_canvas(size, config.image_grid_pinpoints)
    per_row = canvas[1] // vision.image_size
    r, c = torch.arange(g).repeat_interleave(g).float(), torch.arange(g).repeat(g).float()
    parts = [torch.stack([r, c, torch.zeros_like(r)], -1)]
    for tile in range(tiles):
        ty, tx = divmod(tile, per_row)
        parts.append(torch.stack([r + ty * g, c + tx * g, torch.ones_like(r)], -1))
    return [torch.stack(parts)]


def packed(config: Any, size: tuple[int, int]) -> torch.Tensor:
    """The stock model's ``pack_image_features`` on coded features: ``[tokens, 3]`` in sequence order."""
    this = SimpleNamespace(config=config)
    features, sizes = _coded_features(config, size), torch.tensor([size])
    newline = torch.full((3,), NEWLINE)
    if config.model_type == "llava_next":
        out, _ = LlavaNextModel.pack_image_features(this, features, sizes, "default", image_newline=newline)
    else:
        out, _ = LlavaOnevisionModel.pack_image_features(
            this, features, sizes, image_newline=newline, vision_aspect_ratio=config.vision_aspect_ratio
        )
    return out[0]


def _window_from_model(tokens: torch.Tensor, view: View) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of canvas features the model put in the high-res view's cells."""
    rows, cols = view.token_grid
    grid = tokens[view.offset : view.end].reshape(rows, cols + view.row_separators, 3)
    assert torch.all(grid[:, cols:, :] == NEWLINE), "a newline feature ends every row, and only there"
    cells = grid[:, :cols]
    assert torch.all(cells[..., 2] == 1)
    assert torch.equal(cells[:, :, 0], cells[:, :1, 0].expand_as(cells[:, :, 0])), "rows are canvas rows"
    assert torch.all(cells[1:, 0, 0] - cells[:-1, 0, 0] == 1) and torch.all(cells[0, 1:, 1] - cells[0, :-1, 1] == 1)
    return (
        int(cells[0, 0, 0]),
        int(cells[-1, 0, 0]) + 1,
        int(cells[0, 0, 1]),
        int(cells[0, -1, 1]) + 1,
    )


def test_views_hold_the_features_the_model_packs(setup) -> None:
    config, _, spec = setup
    g = spec.tile_grid
    crossed = slivers = 0
    for size in anyres_sizes(spec, seed=3)[::2]:
        geometry = spec.geometry(size)
        base, *rest = geometry.views
        tokens = packed(config, size)
        assert tokens.shape[0] == geometry.num_image_tokens
        assert (base.offset, base.token_grid, base.row_separators) == (0, (g, g), 0)
        assert torch.equal(tokens[: g * g, 2], torch.zeros(g * g)), "the base view comes first"
        assert torch.equal(tokens[: g * g, :2].reshape(g, g, 2)[..., 0], torch.arange(g).float()[:, None].expand(g, g))
        if not rest:  # a sliver whose unpadded grid keeps no column: newline features only
            slivers += 1
            assert torch.all(tokens[g * g :] == NEWLINE)
            continue
        (high,) = rest
        rows, cols = high.token_grid
        canvas = best_canvas(size, [list(p) for p in spec.grid_pinpoints])
        window = unpadded_window(size, canvas[0] // spec.tile_size * g, canvas[1] // spec.tile_size * g)
        r0, r1, c0, c1 = window
        assert high.input_size == ((r1 - r0) * spec.patch_size, (c1 - c0) * spec.patch_size)
        if not _downsampled(high, spec.patch_size):
            # kept as they are: the view's cells are exactly the model's window of canvas features
            assert _window_from_model(tokens, high) == window
        else:
            # OneVision's bilinear downsampling: the cells sample the whole window uniformly
            crossed += 1
            cells = tokens[high.offset : high.end].reshape(rows, cols + 1, 3)
            assert torch.all(cells[:, cols] == NEWLINE)
            want_rows = r0 + (torch.arange(rows) + 0.5) * ((r1 - r0) / rows) - 0.5
            want_cols = c0 + (torch.arange(cols) + 0.5) * ((c1 - c0) / cols) - 0.5
            torch.testing.assert_close(cells[:, 0, 0], want_rows.float(), atol=1e-4, rtol=0)
            torch.testing.assert_close(cells[0, :cols, 1], want_cols.float(), atol=1e-4, rtol=0)
    if spec.max_tiles is not None:
        assert crossed > 20
    assert slivers > 0 or spec.max_tiles is not None


def _content_on_canvas(processor: Any, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a white image on the processor's tiled canvas."""
    out = processor.image_processor(images=[solid_image(*size)], return_tensors="pt")
    tiles = out["pixel_values"][0, 1:]
    t = tiles.shape[-1]
    canvas = best_canvas(size, processor.image_processor.image_grid_pinpoints)
    ny, nx = canvas[0] // t, canvas[1] // t
    mean = torch.tensor(processor.image_processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(3, 1, 1)
    pixels = tiles[: ny * nx] * std + mean
    full = pixels.reshape(ny, nx, 3, t, t).permute(2, 0, 3, 1, 4).reshape(3, ny * t, nx * t).mean(0)
    bright = (full > 0.5).nonzero()
    return (
        int(bright[:, 0].min()),
        int(bright[:, 0].max()) + 1,
        int(bright[:, 1].min()),
        int(bright[:, 1].max()) + 1,
    )


def _to_canvas(spec: AnyresSpec, feature_pixels: float) -> float:
    """A position in the covered frame (feature px) on the canvas, tile by tile."""
    whole, rest = divmod(feature_pixels, spec.covered)
    return whole * spec.tile_size + rest


def test_high_res_view_maps_the_image_where_the_processor_puts_it(setup) -> None:
    """The view's affine map (box <-> content inside its padding) against the white image's place on
    the processor's canvas and the model's window: exact where each tile is fully covered by patches
    (NeXT), within the uncovered strip (OneVision: 6 px of 384) otherwise."""
    config, processor, spec = setup
    t, p, g = spec.tile_size, spec.patch_size, spec.tile_grid
    sizes = anyres_sizes(spec, seed=5)
    rng = np.random.default_rng(0)
    chosen = [s for s in sizes if max(s) <= 5 * t]
    chosen = [chosen[i] for i in rng.choice(len(chosen), size=min(len(chosen), 40 if t > 100 else 90), replace=False)]
    strip = t - spec.covered
    for size in chosen:
        views = spec.geometry(size).views
        if len(views) == 1:
            continue
        high = views[1]
        top, bottom, left, right = _content_on_canvas(processor, size)
        if _downsampled(high, p):  # the window is the unpadded one (its sampling is checked above)
            canvas = best_canvas(size, [list(q) for q in spec.grid_pinpoints])
            r0, r1, c0, c1 = unpadded_window(size, canvas[0] // t * g, canvas[1] // t * g)
        else:
            r0, r1, c0, c1 = _window_from_model(packed(config, size), high)
        assert high.input_size == ((r1 - r0) * p, (c1 - c0) * p)
        for axis, (start, end, w0, original) in enumerate(((top, bottom, r0, size[0]), (left, right, c0, size[1]))):
            pad_before = (high.padding.top, high.padding.left)[axis]
            box0 = (high.box.top, high.box.left)[axis]
            box1 = (high.box.bottom, high.box.right)[axis]
            content = (high.content_height, high.content_width)[axis]
            scale = content / (box1 - box0)  # view input px per original px
            for original_pos, truth in ((0.0, start), (float(original), end)):
                feature_px = w0 * p + pad_before + (original_pos - box0) * scale
                assert abs(_to_canvas(spec, feature_px) - truth) <= strip + 1e-6, (size, axis, original_pos)
            # the box is the part of the image inside the window, measured on the exact canvas edges
            lo = _to_canvas(spec, w0 * p)
            hi = _to_canvas(spec, ((r1, c1)[axis] - 1) * p) + p
            per_px = (end - start) / original
            assert box0 == pytest.approx(max(0.0, (lo - start) / per_px), abs=1e-6)
            assert box1 == pytest.approx(min(float(original), (hi - start) / per_px), abs=1e-6)


def test_base_view_is_the_whole_image_stretched(setup) -> None:
    """The base tile is the image stretched to one square (not padded): a left-half-white image
    turns white up to the middle column whatever the aspect ratio."""
    _, processor, spec = setup
    t = spec.tile_size
    for h, w in [(40, 300), (300, 40), (120, 120), (7, 900)]:
        image = np.zeros((h, w, 3), np.uint8)
        image[:, : w // 2] = 255
        from PIL import Image

        out = processor.image_processor(images=[Image.fromarray(image)], return_tensors="pt")["pixel_values"][0, 0]
        std = torch.tensor(processor.image_processor.image_std).view(3, 1, 1)
        mean = torch.tensor(processor.image_processor.image_mean).view(3, 1, 1)
        row = (out * std + mean).mean(0)[t // 2]
        edge = int((row > 0.5).nonzero().max()) + 1
        assert abs(edge - t * (w // 2) / w) <= 1.0
        base = spec.geometry((h, w)).views[0]
        assert (base.box.top, base.box.left) == (0, 0)
        assert base.box.bottom == pytest.approx(h * spec.covered / t) and base.box.right == pytest.approx(
            w * spec.covered / t
        )


def test_the_tower_sees_only_the_covered_pixels() -> None:
    """SigLIP with patch 14 on 384 (tiny: 7 on 30) emits (384 // 14)^2 features and ignores the last
    6 (tiny: 2) pixels of every tile: why views are laid out in the covered frame."""
    config = tiny_config("llava_onevision")
    from transformers import AutoModel

    torch.manual_seed(0)
    tower = AutoModel.from_config(config.vision_config).eval()
    t, cov = config.vision_config.image_size, config.vision_config.image_size // config.vision_config.patch_size
    x = torch.randn(1, 3, t, t)
    y = x.clone()
    y[..., cov * config.vision_config.patch_size :, :] = 5.0
    y[..., :, cov * config.vision_config.patch_size :] = -5.0
    with torch.no_grad():
        a, b = tower(pixel_values=x).last_hidden_state, tower(pixel_values=y).last_hidden_state
    assert a.shape[1] == cov * cov and t % config.vision_config.patch_size
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_onevision_multi_image_layout_matches_the_processor() -> None:
    """OneVision does not tile the images of a multi-image sample: one padded square, one newline."""
    config = tiny_config("llava_onevision")
    processor = tiny_processor(config)
    spec = anyres_spec(config, processor)
    g = spec.tile_grid
    for size in random_sizes(60, seed=9, low=1, high=400):
        geometry = spec.single_view_geometry(size)
        text = "<image><image>"
        out = processor(images=[[solid_image(*size), solid_image(*size)]], text=[text], return_tensors="pt")
        count = int((out["input_ids"] == spec.image_token_id).sum()) // 2
        assert geometry.num_image_tokens == count == g * g + 1
        (view,) = geometry.views
        pixels = out["pixel_values"][0, 0]
        std = torch.tensor(processor.image_processor.image_std).view(3, 1, 1)
        mean = torch.tensor(processor.image_processor.image_mean).view(3, 1, 1)
        bright = ((pixels * std + mean).mean(0) > 0.75).nonzero()
        if view.content_height < 2 or view.content_width < 2:
            continue
        top, left = float(bright[:, 0].min()), float(bright[:, 1].min())
        assert abs(top - view.padding.top) <= 1.0 and abs(left - view.padding.left) <= 1.0, size


# --- LLaVA-1.5 ------------------------------------------------------------------------------------
def _llava(**image_processor_kwargs: Any) -> tuple[Any, Any]:
    tok = tiny_tokenizer("llava")
    config = LlavaConfig(
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_config=CLIPVisionConfig(image_size=336, patch_size=14),
    )
    kwargs = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}, **image_processor_kwargs}
    processor = LlavaProcessor(
        image_processor=LlavaImageProcessor(**kwargs),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return config, processor


@pytest.mark.parametrize("do_pad", [True, False])
def test_llava_counts_equal_the_processors(do_pad: bool) -> None:
    config, processor = _llava(do_pad=do_pad)
    spec = llava_spec(config, processor)
    sizes = random_sizes(500, seed=1, low=1, high=5000)
    want = processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens
    assert [spec.geometry(s).num_image_tokens for s in sizes] == want
    assert spec.kind == ("fixed" if do_pad else "center_crop")


def test_centre_crop_view_shows_what_the_processor_keeps() -> None:
    """Resize the shortest edge, centre-crop: the view's box is the part of the original the crop keeps.

    The image is a horizontal (or vertical) ramp whose value is the original coordinate, so each
    processed column says which original column it shows."""
    from PIL import Image

    config, processor = _llava(do_pad=False)
    spec = llava_spec(config, processor)
    mean, std = processor.image_processor.image_mean[0], processor.image_processor.image_std[0]
    for h, w in [(300, 500), (500, 300), (100, 1000), (336, 337), (1000, 90), (40, 40), (336, 336)]:
        (view,) = spec.geometry((h, w)).views
        wide = w >= h
        n = w if wide else h
        ramp = np.linspace(0, 255, n)
        plane = np.broadcast_to(ramp[None, :], (h, w)) if wide else np.broadcast_to(ramp[:, None], (h, w))
        image = Image.fromarray(np.repeat(plane[..., None], 3, axis=2).round().astype(np.uint8))
        pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0, 0] * std + mean
        line = pixels[pixels.shape[0] // 2] if wide else pixels[:, pixels.shape[1] // 2]
        start, end = (view.box.left, view.box.right) if wide else (view.box.top, view.box.bottom)
        cells = line.shape[0]
        centres = start + (torch.arange(cells) + 0.5) * (end - start) / cells - 0.5
        expected = centres / (n - 1)
        inner = slice(4, cells - 4)
        assert torch.allclose(line[inner], expected[inner].float(), atol=2.5 / 255), (h, w)
        assert view.padding.is_zero
        coverage = spec.geometry((h, w)).coverage()
        assert coverage.shape == (h, w)
        cut = coverage.sum() / (h * w)
        assert math.isclose(float(cut), (view.box.height * view.box.width) / (h * w), rel_tol=0.02)


def _ellipse(size: tuple[int, int]) -> tuple[Any, torch.Tensor]:
    """A red ellipse on blue, and its mask on the original pixels."""
    from PIL import Image, ImageDraw

    h, w = size
    image = Image.new("RGB", (w, h), (40, 70, 200))
    box = (w // 6, h // 5, w * 3 // 5, h * 4 // 5)
    ImageDraw.Draw(image).ellipse(box, fill=(230, 30, 30))
    red = torch.from_numpy(np.asarray(image)[..., 0].copy()).float() / 255
    return image, (red > 0.5).float()


@pytest.mark.parametrize("model_type", ["llava_next", "llava_onevision"])
def test_each_view_maps_the_image_back_onto_itself(model_type: str) -> None:
    """What each view's tokens see, read off the processor's own tiles (the red share of each token's
    pixels), mapped back through that view alone, lands on the ellipse in the original image: the
    base view and the unpadded high-resolution view each map back, and so does their fusion
    (released shapes: 24 and 27 tokens per tile side resolve the ellipse's outline)."""
    config, processor = released(model_type)
    spec = anyres_spec(config, processor)
    t, p, g = spec.tile_size, spec.patch_size, spec.tile_grid
    mean = torch.tensor(processor.image_processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(3, 1, 1)
    for size in [(300, 780), (720, 270), (390, 390), (500, 640)]:
        image, mask = _ellipse(size)
        geometry = spec.geometry(size)
        if any(_downsampled(v, p) for v in geometry.views):
            continue
        tiles = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        red = ((tiles * std + mean)[:, 0] > 0.5).float()  # [tiles, t, t]
        base = torch.nn.functional.avg_pool2d(red[:1, : g * p, : g * p], p)[0]  # the covered part of the base tile
        canvas = best_canvas(size, [list(q) for q in spec.grid_pinpoints])
        ny, nx = canvas[0] // t, canvas[1] // t
        cells = torch.nn.functional.avg_pool2d(red[1 : 1 + ny * nx, : g * p, : g * p], p)  # [tiles, g, g]
        grid = cells.reshape(ny, nx, g, g).permute(0, 2, 1, 3).reshape(ny * g, nx * g)
        r0, r1, c0, c1 = unpadded_window(size, ny * g, nx * g)
        maps = [base, grid[r0:r1, c0:c1]]
        for v, view_map in enumerate(maps):
            back = geometry.view_to_image(view_map, view=v)
            shown = geometry.view_to_image(torch.ones_like(view_map), view=v) > 0.99
            agree = ((back > 0.5).float() == mask)[shown].float().mean()
            assert agree > 0.99, (size, geometry.views[v].name, float(agree))  # one token off: 0.95-0.986
        fused = geometry.to_image(maps)
        assert ((fused > 0.5).float() == mask).float().mean() > 0.99
