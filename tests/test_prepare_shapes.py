"""``prepare`` refuses an image shape the stock processor cannot take with the spec's typed error,
instead of the processor's bare ValueError from deep inside."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlm_adapters.errors import ImageShapeError
from vlm_adapters.registry import get_adapter


@pytest.mark.parametrize("size", [(2, 600), (900, 3)])
def test_extreme_aspect_ratio_is_an_image_shape_error(size: tuple[int, int]) -> None:
    adapter = get_adapter("qwen2_5_vl").from_tiny()
    image = Image.fromarray(np.full((*size, 3), 128, dtype=np.uint8))
    prompt = adapter.format_prompt("describe", num_images=1)
    with pytest.raises(ValueError, match="aspect ratio") as stock:  # what the stock processor says
        adapter.processor(images=[image], text=[prompt], return_tensors="pt")
    assert not isinstance(stock.value, ImageShapeError)
    with pytest.raises(ImageShapeError) as ours:
        adapter.prepare([image], [prompt])
    assert f"{size[0]}x{size[1]}" in str(ours.value) and "Fix:" in str(ours.value)
