"""Each crop view must show its box of the whole-image view: declared sizes checked against pixels.

Views are stretched, never padded, so processed pixels do not show an image's aspect ratio the
way a padded input does. Crops do: the whole-image view holds every crop's box at a lower
resolution, and pooled to the token grid the two agree to about 0.002 (normalised units) when
the layout is right. Sizes given as (width, height), views out of order or from another image
put the boxes elsewhere and differ by 0.6 or more, so such a sample is refused instead of
mapping every crop onto the wrong part of the image. An image without crops has nothing to
check (a stretch fits any size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlm_adapters.errors import ImageSizeError
from vlm_adapters.geometry import ImageGeometry
from vlm_adapters.normalize.crosscheck import SAME_IMAGE_TOLERANCE


def _pool(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return torch.nn.functional.adaptive_avg_pool2d(x[None].float(), grid)[0]


def crop_mismatch(views: torch.Tensor, geometry: ImageGeometry) -> list[float]:
    """Mean |difference| between each crop view and its box cut from the whole-image view, pooled
    to the crop's token grid (``views``: this image's ``[1 + crops, C, S, S]``)."""
    whole = geometry.views[0]
    (sh, sw), (h, w) = whole.input_size, geometry.original_size
    out = []
    for view, pixels in zip(geometry.views[1:], views[1:], strict=True):
        box = view.box
        rows = slice(round(box.top * sh / h), max(round(box.bottom * sh / h), round(box.top * sh / h) + 1))
        cols = slice(round(box.left * sw / w), max(round(box.right * sw / w), round(box.left * sw / w) + 1))
        region = _pool(views[0][:, rows, cols], view.token_grid)
        out.append(float((region - _pool(pixels, view.token_grid)).abs().mean()))
    return out


def check_crops_show_their_boxes(pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> None:
    """Refuse a layout whose crops are not where the whole-image views show them."""
    for i, (views, geometry) in enumerate(
        zip(pixels.split([g.num_views for g in geometries]), geometries, strict=True)
    ):
        if geometry.num_views == 1:
            continue
        mismatch = crop_mismatch(views, geometry)
        if max(mismatch) > SAME_IMAGE_TOLERANCE:
            raise ImageSizeError(
                f"image {i}: its crop views do not show the boxes its size puts them at",
                found=f"original size {geometry.original_size} (height, width), crop boxes (top, left, bottom, "
                f"right) {[[v.box.top, v.box.left, v.box.bottom, v.box.right] for v in geometry.views[1:]]}, "
                f"mean |difference| to the whole-image view {[round(d, 3) for d in mismatch]}",
                expected=f"<= {SAME_IMAGE_TOLERANCE} per crop (what the processor's crops of that size give)",
                fix="sizes are (height, width), not PIL's (width, height); check image_sizes / meta_data, and keep "
                "each image's views in the processor's order (the whole image first, then its crops)",
            )
