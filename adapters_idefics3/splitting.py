"""How Idefics3 / SmolVLM split an image: sizes only, step for step as the stock image processor.

1. ``resize``: the longest edge becomes ``longest_edge`` (also when that upscales), the other
   side keeps the aspect ratio, truncated and bumped to even; then both are capped at the
   processor's absolute maximum side. Both steps are transformers' own size functions.
2. ``resize_for_vision_encoder``: each side is rounded *up* to a multiple of the sub-image side,
   the short one from the aspect ratio (this is a stretch, not a pad).
3. ``split_images``: a canvas larger than one sub-image becomes ``rows x cols`` sub-images plus
   the whole canvas resized to one sub-image (the global view); otherwise the image is one view.

Step 2 has no size-only function in transformers (the stock ``get_number_of_image_patches``
rounds differently and disagrees with the real output when ``longest_edge`` is not a multiple
of the sub-image side), so it is restated here and proven against the real processor output.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from transformers.models.idefics3.image_processing_idefics3 import (
    _resize_output_size_rescale_to_max_len,
    _resize_output_size_scale_below_upper_bound,
)

from vlm_adapters.geometry import Size


class Split(NamedTuple):
    """Sizes of one image through the processor; ``rows == cols == 0`` means not split."""

    resized: Size
    """After step 1 (the original size where the processor does not resize)."""
    canvas: Size
    """After step 2: the stretched image the sub-images are cut from."""
    rows: int
    cols: int


def resized_size(image_size: Size, longest_edge: int | None, max_side: int) -> Size:
    """Step 1; ``longest_edge=None`` when the processor's ``do_resize`` is off."""
    h, w = image_size
    if longest_edge is not None:
        h, w = _resize_output_size_rescale_to_max_len(h, w, max_len=longest_edge)
        h, w = _resize_output_size_scale_below_upper_bound(h, w, max_len=max_side)  # type: ignore[arg-type]
    return int(h), int(w)


def canvas_size(resized: Size, tile: int) -> Size:
    """Step 2: stock ``resize_for_vision_encoder`` on sizes."""
    h, w = resized
    aspect_ratio = w / h
    if w >= h:
        w = math.ceil(w / tile) * tile
        h = math.ceil(int(w / aspect_ratio) / tile) * tile
    else:
        h = math.ceil(h / tile) * tile
        w = math.ceil(int(h * aspect_ratio) / tile) * tile
    return h, w


def split(image_size: Size, tile: int, longest_edge: int | None, max_side: int) -> Split:
    """Steps 1-3 for an image of ``image_size = (height, width)``."""
    resized = resized_size(image_size, longest_edge, max_side)
    canvas = canvas_size(resized, tile)
    if canvas[0] > tile or canvas[1] > tile:
        return Split(resized, canvas, canvas[0] // tile, canvas[1] // tile)
    return Split(resized, canvas, 0, 0)
