"""Which image region each LLM image token of a view sees: raster order over the view's token grid.

Both families pixel-shuffle the vision tower's patch grid (transformers' code names the axes
"width, height", which invites a transposition). Ground truth is the stock model: changing the
pixels of one token cell of one view changes that cell's LLM-input feature the most (the tower's
attention spreads a little of the change everywhere; the cell's own feature carries it directly).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vlm_adapters import get_adapter
from vlm_adapters.testing import smooth_image


def image_features(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """What the stock model scatters into the image-token positions, views in order."""
    with torch.no_grad():
        out = model.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output
    return torch.cat(list(out)) if isinstance(out, (list, tuple)) else out


@pytest.mark.parametrize("name", ["internvl", "idefics3", "smolvlm"])
def test_each_token_sees_its_raster_cell(name: str) -> None:
    adapter = get_adapter(name).from_tiny()
    model = adapter.load_model(seed=0)
    batch = adapter.prepare([smooth_image(300, 700, seed=1)], [adapter.format_prompt("the red cat")])
    geometry = batch.geometries[0][0]
    pixels = batch.inputs["pixel_values"]
    base = image_features(model, pixels).reshape(geometry.num_views, -1, model.config.text_config.hidden_size)
    view_index = 1  # a tile, not the first view
    view = geometry.views[view_index]
    rows, cols = view.token_grid
    cell_h, cell_w = view.input_size[0] // rows, view.input_size[1] // cols
    for r, c in [(0, cols - 1), (rows - 1, 0), (rows // 2, cols // 3)]:
        changed = pixels.clone()
        tile = changed[view_index] if name == "internvl" else changed[0, view_index]
        tile[:, r * cell_h : (r + 1) * cell_h, c * cell_w : (c + 1) * cell_w] *= -1
        delta = (image_features(model, changed).reshape(base.shape) - base).norm(dim=-1)
        others = torch.cat([delta[:view_index], delta[view_index + 1 :]])
        assert torch.equal(others, torch.zeros_like(others))  # views go through the tower one by one
        assert int(delta[view_index].argmax()) == r * cols + c, (name, (r, c))
