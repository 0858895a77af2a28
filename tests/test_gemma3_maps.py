"""Gemma 3 views on the original image: each crop covers its crop box, the whole-image view covers
everything, and a view's token ``k`` is the cell the model put there.

Token order is proven on the stock model: the features of view ``v`` (pixel view ``v``) land in
the ``v``-th run of image tokens, and within a view the projector pools patches into a raster
grid (a change in one patch moves exactly the token of its cell).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adapters_gemma3 import Gemma3Adapter
from adapters_gemma3.adapter import PAN_AND_SCAN_VARIANT
from vlm_adapters.testing.images import smooth_image

WIDE, TALL = (300, 1000), (900, 420)


@pytest.fixture(scope="module")
def adapter() -> Gemma3Adapter:
    return Gemma3Adapter.from_tiny(PAN_AND_SCAN_VARIANT)


@pytest.mark.parametrize("size", [WIDE, TALL])
def test_each_view_covers_its_box_and_the_first_view_the_whole_image(adapter: Gemma3Adapter, size: Any) -> None:
    geometry = adapter.gemma_spec.geometry(size)
    h, w = size
    assert geometry.num_views > 2
    for index, view in enumerate(geometry.views):
        on_image = geometry.view_to_image(torch.ones(view.token_grid), view=index)
        box = view.box
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[int(box.top) : int(box.bottom), int(box.left) : int(box.right)] = True
        assert bool((on_image[inside] > 0.99).all()), view.name
        assert bool((on_image[~inside] == 0).all()), view.name
    assert bool(geometry.views[0].box == geometry.views[0].box.whole(size))
    coverage = geometry.coverage()
    assert bool((coverage == 2).all())  # the whole-image view plus exactly one crop everywhere
    fused = geometry.to_image([torch.ones(v.token_grid) for v in geometry.views])
    torch.testing.assert_close(fused, torch.ones(h, w))


def test_a_cell_of_a_crop_lands_inside_that_crop(adapter: Gemma3Adapter) -> None:
    geometry = adapter.gemma_spec.geometry(WIDE)
    rows, cols = geometry.views[2].token_grid
    maps = [torch.zeros(v.token_grid) for v in geometry.views]
    maps[2][rows // 4, cols - 1] = 1.0  # crop_2 (the middle third), right edge, upper quarter
    fused = geometry.to_image(maps)
    y, x = divmod(int(fused.argmax()), WIDE[1])
    box = geometry.views[2].box
    assert box.left + box.width * (cols - 1) / cols <= x < box.right
    assert box.top + box.height * (rows // 4) / rows <= y < box.top + box.height * (rows // 4 + 1) / rows


def test_view_features_fill_the_runs_in_view_order(adapter: Gemma3Adapter) -> None:
    image = smooth_image(*WIDE, seed=4)
    batch = adapter.prepare([image], [adapter.format_prompt("describe the red cat", answer="a cat")])
    model = adapter.load_model(seed=0)
    seen: dict[str, torch.Tensor] = {}

    def grab(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        seen["embeds"] = kwargs["inputs_embeds"]

    handle = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        model(**batch.inputs)
        features = model.model.get_image_features(batch.inputs["pixel_values"]).pooler_output
    handle.remove()
    geometry, positions = batch.geometries[0][0], batch.image_token_positions[0][0]
    for v, view in enumerate(geometry.views):
        placed = seen["embeds"][0, positions[view.offset : view.end]]
        torch.testing.assert_close(placed, features[v], rtol=0, atol=0, msg=view.name)


def test_the_projector_pools_patches_into_a_raster_grid(adapter: Gemma3Adapter) -> None:
    model = adapter.load_model(seed=0)
    projector = model.model.multi_modal_projector
    spec = adapter.gemma_spec
    patches = spec.image_size[0] // spec.patch_size
    rows, cols = spec.token_grid
    kernel = patches // rows
    hidden = model.config.vision_config.hidden_size
    base = torch.randn(1, patches * patches, hidden, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = projector(base)[0]
        for pr, pc in [(0, 0), (5, 30), (31, 2), (17, 17)]:
            changed = base.clone()
            changed[0, pr * patches + pc] += 5.0  # patches are row-major, as SigLIP flattens them
            after = projector(changed)[0]
            moved = ((after - before).abs().amax(-1) > 0).nonzero().flatten().tolist()
            assert moved == [(pr // kernel) * cols + pc // kernel], (pr, pc)
