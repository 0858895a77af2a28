"""The arithmetic of the stock LLaVA processors and models, as pure functions of sizes.

Where transformers exposes a pure helper (``select_best_resolution``, ``get_patch_output_size``,
``get_resize_output_image_size``) it is called, on a shape-only array, so the numbers are the
stock ones by construction. The feature-side steps that live inside the models' forward
(unpadding, OneVision's downsampling) are written out here and checked against the models'
own ``pack_image_features`` in the tests.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np
from transformers.image_processing_utils import get_patch_output_size, select_best_resolution
from transformers.image_transforms import get_resize_output_image_size
from transformers.image_utils import ChannelDimension

Size = tuple[int, int]


def _shape_only(size: Size) -> np.ndarray:
    """A ``[3, H, W]`` array that allocates nothing: the stock helpers only read its shape."""
    return np.broadcast_to(np.uint8(0), (3, *size))


class Shown(NamedTuple):
    """One axis of a view: the padding inside its window and the original pixels it shows."""

    pad_before: float
    pad_after: float
    box_start: float
    box_end: float


def shown(content: tuple[float, float], window: tuple[float, float], original: int) -> Shown:
    """What a window ``[w0, w1)`` shows of content ``[c0, c1)`` that displays original ``[0, original)``.

    All positions are in one pixel frame (input pixels of the view); the content is a plain resize
    of the original, so the part of the window inside it maps linearly onto the original axis.
    """
    (c0, c1), (w0, w1) = content, window
    scale = original / (c1 - c0)
    return Shown(
        pad_before=max(0.0, c0 - w0),
        pad_after=max(0.0, w1 - c1),
        box_start=(max(w0, c0) - c0) * scale,
        box_end=(min(w1, c1) - c0) * scale,
    )


# --- anyres (LLaVA-NeXT, LLaVA-OneVision) ----------------------------------------------------
def best_canvas(size: Size, pinpoints: list[list[int]]) -> Size:
    """The grid pinpoint ``(height, width)`` the processor and the model pick for an image."""
    h, w = select_best_resolution(tuple(size), pinpoints)
    return int(h), int(w)


def content_on_canvas(size: Size, canvas: Size) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the resized image on the canvas, as the processor pastes it."""
    nh, nw = get_patch_output_size(_shape_only(size), canvas, ChannelDimension.FIRST)
    return (canvas[0] - nh) // 2, (canvas[1] - nw) // 2, int(nh), int(nw)


def unpadded_window(size: Size, rows: int, cols: int) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the feature grid kept by the model's ``unpad_image``.

    The model recomputes the padding in feature units from the original size and removes the
    same number of rows (or columns) on both sides, so the kept window need not line up with the
    pixel padding: it may keep a sliver of padding or cut a sliver of the image.
    """
    h, w = size
    if w / h > cols / rows:
        new_rows = int(round(h * (cols / w), 7))
        pad = (rows - new_rows) // 2
        return pad, rows - pad, 0, cols
    new_cols = int(round(w * (rows / h), 7))
    pad = (cols - new_cols) // 2
    return 0, rows, pad, cols - pad


def max_tiles(vision_aspect_ratio: str | None) -> int | None:
    """``anyres_max_9`` -> 9 (OneVision's feature budget in tiles); ``None`` for plain anyres or
    a value of another form (which the model cannot read either)."""
    found = re.fullmatch(r"anyres_max_(\d+)", vision_aspect_ratio or "")
    return int(found.group(1)) if found else None


def downsampled_grid(rows: int, cols: int, tile_side: int, budget: int | None, threshold: float) -> Size:
    """OneVision's bilinear downsampling of an unpadded grid larger than ``budget`` tiles.

    ``tile_side`` is the features per tile side; past ``threshold`` times the budget's side the
    grid shrinks by ``ratio`` on both axes (floored), as ``pack_image_features`` does.
    """
    if budget is None:
        return rows, cols
    ratio = math.sqrt(rows * cols / (budget * tile_side**2))
    if ratio > threshold:
        return int(rows // ratio), int(cols // ratio)
    return rows, cols


def tile_to_feature_pixels(position: float, tile: int, covered: int) -> float:
    """A canvas position in the frame of the pixels the features cover.

    A tower with patch ``p`` covers ``covered = (tile // p) * p`` pixels of each ``tile``: the rest
    of every tile (6 of SigLIP's 384) has no feature. Dropping those strips turns the canvas into
    the frame in which the feature grid is uniform.
    """
    whole, rest = divmod(position, tile)
    return whole * covered + min(rest, covered)


def feature_to_tile_pixels(position: float, tile: int, covered: int, end: bool = False) -> float:
    """Inverse of :func:`tile_to_feature_pixels`; with ``end``, a position on a tile border is the
    end of the covered part of the tile before it rather than the start of the next one."""
    whole, rest = divmod(position, covered)
    if end and rest == 0 and whole > 0:
        return (whole - 1) * tile + covered
    return whole * tile + rest


# --- shortest edge, then centre crop (CLIP, LLaVA-1.5 without padding) --------------------------
def shortest_edge_resize(size: Size, edge: int) -> Size:
    """Size after the processors' "resize the shortest edge to ``edge``" (aspect kept, long side floored)."""
    h, w = get_resize_output_image_size(
        _shape_only(size), size=edge, default_to_square=False, input_data_format=ChannelDimension.FIRST
    )
    return int(h), int(w)


def crop_start(resized: int, crop: int) -> int:
    """Where the resized image starts inside a centred crop of length ``crop`` (negative: cut off).

    A crop longer than the image pads it first (the smaller half before), as the stock
    ``center_crop`` does.
    """
    if crop > resized:
        return (crop - resized) // 2
    return -int((resized - crop) / 2.0)
