"""Which grid of tiles InternVL cuts an image into: the stock processor's own choice.

The choice (the arrangement of ``min..max`` tiles whose aspect ratio is closest to the image's,
ties going to more tiles while they cover less than twice the image) is made by transformers'
``get_optimal_tiled_canvas``; we call it rather than restate it, so the geometry cannot drift
from the processor.
"""

from __future__ import annotations

from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

from vlm_adapters.geometry import Size


def tile_grid(image_size: Size, tile_size: Size, min_tiles: int, max_tiles: int) -> Size:
    """(rows, cols) of tiles for an image of ``image_size = (height, width)``."""
    cols, rows = get_optimal_tiled_canvas(tuple(image_size), tuple(tile_size), min_tiles, max_tiles)
    return int(rows), int(cols)


def candidate_grids(num_tiles: int, min_tiles: int, max_tiles: int) -> list[Size]:
    """Every (rows, cols) arrangement of exactly ``num_tiles`` tiles the processor can choose."""
    if not min_tiles <= num_tiles <= max_tiles:
        return []
    return [(r, num_tiles // r) for r in range(1, num_tiles + 1) if num_tiles % r == 0]
