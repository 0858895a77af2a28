"""A multi-view backbone needs a plugin and nothing else: the full contract kit on a test-only plugin.

``tests/multiview_plugin`` is a synthetic family (a padded global view plus 2x2 stretched tiles)
with a spec kind of its own, registered through ``register_spec_kinds``, its own processor and
a tiny model (stock LLaVA; in the ``newline`` layout with a learned newline feature after every
tile row). Two token layouts run the whole :class:`AdapterContract`, unmodified: ``newline``
(one run, a newline token with the image token id ending each tile row, ``row_separators=1``)
and ``markers`` (every view its own run, a marker token between runs). The plugin's check of
the processor's pixels against every view's box runs on every size of the kit's layout check.
Dataset samples go through the core's one ``normalize`` (the plugin supplies only its layout's
steps), checked with the kit's bad-input corpus.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from multiview_plugin import GlobalTilesSpec, TiledLlavaAdapter, plugin
from multiview_plugin.model import TiledLlavaConfig
from PIL import Image
from transformers import LlavaConfig, LlavaForConditionalGeneration

from vlm_adapters import FrozenLMM, TokenCountError, adapter_for, get_adapter
from vlm_adapters.adapter import BackboneAdapter
from vlm_adapters.geometry import Box, ImageGeometry, Padding
from vlm_adapters.registry import Registry, reset_registry
from vlm_adapters.spec import spec_from_json
from vlm_adapters.testing import AdapterContract, sample_from_batch, smooth_image

VIEW_TOLERANCE = 0.01
"""Mean |difference| (0..1 pixel units) allowed between a view's processed pixels and the original
seen through the view. Measured on 160 sizes from 2 px to 3000 px: 0.0007 typically, 0.006 at
worst (a 2x2 image); a box shifted by 2 % of the image gives 0.010, padding off by 2 px 0.03."""


@pytest.fixture(scope="module", autouse=True)
def registry() -> Iterator[Registry]:
    """The default registry with the test plugin registered next to the installed ones."""
    registry = reset_registry()
    info = registry.register_plugin(plugin, name="multiview_test", distribution="tests", version="0")
    assert info.status == "loaded", info.error
    yield registry
    reset_registry()


def coordinate_image(height: int, width: int) -> Image.Image:
    """An image whose pixels say where they are: red = y / height, green = x / width (at pixel
    centres), blue = the mean of the two, inverted. Every resampler reproduces a linear ramp, so
    the processor's output says which original coordinate each input pixel shows."""
    y = (np.arange(height)[:, None] + 0.5) / height * np.ones((1, width))
    x = np.ones((height, 1)) * (np.arange(width)[None] + 0.5) / width
    ramps = np.stack([y, x, 1 - (x + y) / 2], axis=-1)
    return Image.fromarray((ramps * 255).round().astype(np.uint8))


def near_padding_edge(count: int, before: float, after: float, blur: float) -> torch.Tensor:
    """Input pixels (along one axis) whose centre is within ``blur`` of an edge between content and padding."""
    centres = torch.arange(count) + 0.5
    near = torch.zeros(count, dtype=torch.bool)
    for edge, padded in ((before, before > 0), (count - after, after > 0)):
        if padded:
            near |= (centres - edge).abs() < blur
    return near


def view_errors(adapter: BackboneAdapter, image: Image.Image, geometry: ImageGeometry) -> list[float]:
    """Per view, the mean |difference| between the processor's pixels and the original image seen
    through the view: its box resized onto the input, padding around it in the background colour.

    Input pixels within the resampling blur of a padding edge are left out (padding happens
    before the resize, so the edge is smeared over about twice the upscale factor).
    """
    pixels = adapter.processor(images=[image], text=[adapter.image_placeholder], return_tensors="pt")["pixel_values"]
    assert pixels.shape[0] == geometry.num_views, "one pixel tensor per view"
    spec = adapter.spec
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (spec.image_mean, spec.image_std))
    background = torch.tensor([int(255 * m) for m in spec.image_mean]).view(3, 1, 1) / 255
    original = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()[None] / 255
    h, w = geometry.original_size
    errors = []
    for view, got in zip(geometry.views, pixels, strict=True):
        (ih, iw), span, box, pad = view.input_size, view.span, view.box, view.padding
        ys = span.top + (torch.arange(ih) + 0.5) * span.height / ih
        xs = span.left + (torch.arange(iw) + 0.5) * span.width / iw
        grid = torch.stack(torch.meshgrid(xs / w * 2 - 1, ys / h * 2 - 1, indexing="xy"), dim=-1)
        seen = torch.nn.functional.grid_sample(
            original, grid[None].float(), mode="bicubic", padding_mode="border", align_corners=False
        )[0]
        shown = ((ys >= box.top) & (ys < box.bottom))[:, None] & ((xs >= box.left) & (xs < box.right))[None]
        want = torch.where(shown, seen, background)
        blur = max(1.0, 2 * max(view.content_height / box.height, view.content_width / box.width))
        keep = (
            ~near_padding_edge(ih, pad.top, pad.bottom, blur)[:, None]
            & ~near_padding_edge(iw, pad.left, pad.right, blur)[None]
        )
        diff = (got * std + mean - want).abs().mean(dim=0)
        errors.append(float(diff[keep].mean()) if keep.any() else 0.0)
    return errors


class TestGlobalTilesNewline(AdapterContract):
    """Global view + 2x2 tiles in one run, a newline token after every tile row."""

    adapter_name = "tiled_llava"
    variant = "newline"

    def check_stock_geometry(self, adapter: BackboneAdapter, size: tuple[int, int], geometry: ImageGeometry) -> None:
        image = coordinate_image(*size)
        errors = view_errors(adapter, image, geometry)
        assert max(errors) < VIEW_TOLERANCE, (size, dict(zip([v.name for v in geometry.views], errors, strict=True)))


class TestGlobalTilesMarkers(TestGlobalTilesNewline):
    """The same views, each a run of its own after a marker token."""

    variant = "markers"


@pytest.fixture(scope="module", params=TiledLlavaAdapter.variants())
def tiled(request: pytest.FixtureRequest) -> TiledLlavaAdapter:
    return TiledLlavaAdapter.from_tiny(request.param)


def test_registered_through_the_hooks(registry: Registry, tiled: TiledLlavaAdapter) -> None:
    (info,) = [p for p in registry.plugins() if p.name == "multiview_test"]
    assert (info.status, info.spec_kinds, info.adapters) == ("loaded", ("global_tiles",), ("tiled_llava",))
    assert registry.spec_kinds()["global_tiles"] is GlobalTilesSpec
    assert adapter_for(tiled.config) is get_adapter("tiled_llava") is TiledLlavaAdapter
    assert spec_from_json(tiled.spec.model_dump_json()) == tiled.spec


def test_layouts_as_declared(tiled: TiledLlavaAdapter) -> None:
    """Five 4x4 views; the newline layout adds 4 separators per tile in one run, the marker layout
    puts each view in its own run after one marker token."""
    geometry = tiled.spec.geometry((427, 640))
    assert [v.name for v in geometry.views] == ["global", "tile_0_0", "tile_0_1", "tile_1_0", "tile_1_1"]
    assert all(v.token_grid == (4, 4) for v in geometry.views)
    if tiled.tiles_spec.row_separators:
        assert (geometry.num_image_tokens, geometry.run_lengths, geometry.extra_tokens) == (96, [96], 0)
    else:
        assert (geometry.num_image_tokens, geometry.run_lengths, geometry.extra_tokens) == (80, [16] * 5, 5)


def test_check_of_the_views_catches_a_wrong_layout(tiled: TiledLlavaAdapter) -> None:
    """The pixel check the contract runs on every size is not vacuous: swapped tiles, a global view
    without its padding, or a tile whose box is off by 5 % of the image fail it."""
    image = coordinate_image(427, 640)
    geometry = tiled.spec.geometry((427, 640))
    assert max(view_errors(tiled, image, geometry)) < VIEW_TOLERANCE
    v = list(geometry.views)
    swapped = [v[0], v[2].model_copy(update={"offset": v[1].offset}), v[1].model_copy(update={"offset": v[2].offset})]
    unpadded = v[0].model_copy(update={"padding": Padding()})
    b = v[1].box
    shifted = v[1].model_copy(update={"box": Box(top=b.top, left=b.left + 32, bottom=b.bottom, right=b.right + 32)})
    for views in ([*swapped, *v[3:]], [unpadded, *v[1:]], [v[0], shifted, *v[2:]]):
        wrong = geometry.model_copy(update={"views": tuple(views)})
        assert max(view_errors(tiled, image, wrong)) > 2 * VIEW_TOLERANCE


def test_placeholder_prompts_expand_only_where_the_layout_is_one_run(tiled: TiledLlavaAdapter) -> None:
    image = smooth_image(300, 200, seed=2)
    batch = tiled.prepare([image], [tiled.format_prompt("a cat", answer="a cat")])
    sample = sample_from_batch(batch)
    prompt = tiled.processor.tokenizer(tiled.format_prompt("a cat", answer="a cat"), return_tensors="pt")
    short = {**sample, "input_ids": prompt["input_ids"][0]}
    if tiled.tiles_spec.markers:  # markers cannot be invented from a placeholder
        with pytest.raises(TokenCountError, match=r"found runs of \[1\].*expected runs of \[16, 16, 16, 16, 16\]"):
            tiled.normalize(short)
        return
    again = tiled.normalize(short)
    assert torch.equal(again.input_ids, batch.input_ids)
    assert again.geometries == batch.geometries


def test_marker_layout_runs_the_stock_llava_model() -> None:
    """The markers layout needs no model code: stock ``LlavaForConditionalGeneration`` with the
    same weights gives the same logits."""
    adapter = TiledLlavaAdapter.from_tiny("markers")
    model = adapter.load_model(seed=0)
    config = adapter.config
    assert isinstance(config, TiledLlavaConfig)
    stock_config = LlavaConfig(
        vision_config=config.vision_config, text_config=config.text_config, image_token_index=config.image_token_index
    )
    stock = LlavaForConditionalGeneration(stock_config).eval()
    stock.load_state_dict(model.state_dict())
    batch = adapter.prepare([smooth_image(300, 200, seed=3)], [adapter.format_prompt("a cat", answer="a cat")])
    with torch.no_grad():
        torch.testing.assert_close(model(**batch.inputs).logits, stock(**batch.inputs).logits, rtol=0, atol=0)


def test_default_queries_leave_the_markers_to_the_image() -> None:
    """The markers between an image's runs belong to the image: the default queries (every text
    token after the image) skip them, so texts about one image share the whole image prefix."""
    adapter = TiledLlavaAdapter.from_tiny("markers")
    images = [smooth_image(300, 200, seed=5), smooth_image(200, 300, seed=6)]
    batch = adapter.prepare([images], [adapter.format_prompt("find the cat", num_images=2, answer="a cat")])
    queries = FrozenLMM(adapter.load_model(seed=0), adapter).default_queries(batch, 0)
    first, second = batch.image_token_positions[0]
    marker = adapter.tiles_spec.marker_token_id
    assert marker is not None
    markers = (batch.input_ids[0] == marker).nonzero().flatten()
    assert markers.numel() == 10 and int(queries.min()) > int(first[-1])
    inside = [int(m) for m in markers if int(first[0]) < m < int(first[-1]) or int(second[0]) < m < int(second[-1])]
    assert len(inside) == 8 and not set(inside) & set(queries.tolist())


def test_maps_per_view_and_fused(tiled: TiledLlavaAdapter) -> None:
    """The pipeline gives one map per view and a fused map on the original pixels, where every
    pixel is the mean of the two views that show it (the global view and its tile)."""
    image = smooth_image(300, 200, seed=4)
    batch = tiled.prepare([image], [tiled.format_prompt("find the cat", answer="a cat")])
    out = FrozenLMM(tiled.load_model(seed=0), tiled)(batch)[0]
    ids = torch.zeros(out.num_queries, dtype=torch.long)
    per_view = out.phrase_maps_per_view(ids)
    assert [tuple(m.shape[-2:]) for m in per_view] == [(4, 4)] * 5
    fused = out.fused_phrase_maps(ids)
    assert tuple(fused.shape[-2:]) == (300, 200) and bool((fused > 0).all())
    tile_values = [torch.full((4, 4), float(k)) for k in (1, 2, 3, 4)]
    quadrants = out.to_image([torch.zeros(4, 4), *tile_values])
    expected = torch.tensor([[0.5, 1.0], [1.5, 2.0]]).repeat_interleave(150, 0).repeat_interleave(100, 1)
    torch.testing.assert_close(quadrants, expected)
