"""Image sizes of NeXT / OneVision samples: the anyres-specific sources and checks.

The core merges ``image_sizes``, ``meta_data['original_shape']`` and raw images. F-LMM's NeXT
processor writes the original size as ``meta_data['ori_shape']`` and records the canvas
(``padded_shape``) and its padding; those are read and checked here, as is what the pixels show:
the tile count and where the canvas padding is (the processor pads with one exact value, so
every pixel the geometry calls padding must hold it). That is where a ``(width, height)`` swap
shows. A size is taken only when some source states it: pixels show the content's shape, not
its resolution, so an image with no size is refused with what its pixels do show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vlm_adapters import ImageShapeError, MissingInputError
from vlm_adapters.errors import ImageSizeError
from vlm_adapters.geometry import Size
from vlm_adapters.normalize.sizes import read_meta, size_pair

from .evidence import fits, layouts_seen
from .layout import best_canvas, content_on_canvas
from .spec import AnyresSpec

SIZE_FIX = "store image_sizes as (height, width) per image, in image order (PIL's image.size is (width, height))"
META_TOLERANCE = 1.0
"""Canvas pixels by which a ``meta_data``'s recorded padding may differ from the stock layout."""
PADDING_KEYS = ("before_height", "after_height", "before_width", "after_width")


class SwappedImageSizeError(ImageSizeError):
    """A size given as ``(width, height)``: the pixels fit the swapped size and not the given one."""


class UnknownImageSizeError(MissingInputError):
    """No source states an image's original size; ``candidates`` says what its pixels do show."""

    def __init__(self, problem: str, *, found: Any, candidates: Sequence[str], fix: str) -> None:
        self.candidates = list(candidates)
        expected = "image_sizes, meta_data or the raw image" + (
            f"; the pixels show {'; or '.join(self.candidates)}" if self.candidates else ""
        )
        super().__init__(problem, found=found, expected=expected, fix=fix)


def _metas(sample: Mapping[str, Any]) -> list[Any]:
    metas = sample.get("meta_datas", sample.get("meta_data"))
    return [] if metas is None else list(metas) if isinstance(metas, (list, tuple)) else [metas]


def with_ori_shape(sample: Mapping[str, Any], sizes: list[Size | None] | None, count: int) -> list[Size | None]:
    """The core's merged sizes, completed (and checked) with F-LMM's ``meta_data['ori_shape']``."""
    merged: list[Size | None] = list(sizes) if sizes is not None else [None] * count
    metas = _metas(sample)
    for i, meta in enumerate(metas):
        if not isinstance(meta, Mapping) or meta.get("ori_shape") is None or i >= len(merged):
            continue
        stated = size_pair(meta["ori_shape"], f"meta_data[{i}]['ori_shape']")
        if merged[i] is not None and merged[i] != stated:
            raise ImageSizeError(
                f"image {i}: meta_data's ori_shape disagrees with the other sizes",
                found={"ori_shape": stated, "image_sizes / original_shape / raw image": merged[i]},
                expected="one (height, width) for the image",
                fix="drop the stale field; sizes are (height, width) of the original image",
            )
        merged[i] = stated
    return merged


def require_sizes(spec: AnyresSpec, sizes: list[Size | None], stacks: list[torch.Tensor] | None) -> list[Size]:
    """Every image's size; an image with none is refused, naming what its pixels show."""
    missing = [i for i, s in enumerate(sizes) if s is None]
    if not missing:
        return [s for s in sizes if s is not None]
    i = missing[0]
    candidates = layouts_seen(spec, stacks[i]) if stacks is not None and i < len(stacks) else []
    raise UnknownImageSizeError(
        f"the original size of image {i} is not in the sample",
        found="no image_sizes, no meta_data with the original shape, no raw image",
        candidates=candidates,
        fix="pass image_sizes=[(height, width), ...] (or F-LMM meta_data, or the raw image under 'image'): the "
        "pixels fix the aspect ratio, not the size, and maps go back onto the original image",
    )


def check_against_pixels(spec: AnyresSpec, sizes: Sequence[Size], stacks: Sequence[torch.Tensor]) -> None:
    """Refuse a size the pixels contradict; name a ``(width, height)`` swap when the swap fits."""
    for i, (size, stack) in enumerate(zip(sizes, stacks, strict=True)):
        if fits(spec, size, stack) is not False:
            continue
        swapped = (size[1], size[0])
        if swapped != size and fits(spec, swapped, stack):
            raise SwappedImageSizeError(
                f"image {i}'s size is (width, height)",
                found=f"size {size}, whose padding and tiles the pixels do not show, while {swapped} fits them",
                expected="(height, width)",
                fix=SIZE_FIX,
            )
        raise ImageSizeError(
            f"the pixels of image {i} are not the processed form of an image of its size",
            found=f"size {size} and {stack.shape[0]} tiles whose canvas padding differs from that size's",
            expected=f"the stock processor's output for a {size[0]}x{size[1]} image",
            fix="keep image_sizes aligned with pixel_values, or pass the raw images under 'image'",
        )


def check_meta_layout(spec: AnyresSpec, sample: Mapping[str, Any], sizes: Sequence[Size]) -> None:
    """Refuse a ``meta_data`` whose canvas or padding is not the processor's for its image (F-LMM's NeXT
    processor records both, in canvas pixels)."""
    metas = read_meta(sample) or []
    for i, (meta, size) in enumerate(zip(metas, sizes, strict=False)):
        canvas = best_canvas(size, [list(p) for p in spec.grid_pinpoints])
        if meta.padded_shape is not None and tuple(meta.padded_shape) != canvas:
            raise ImageShapeError(
                f"meta_data[{i}] records a canvas the processor does not pick for this image",
                found=f"padded_shape {tuple(int(v) for v in meta.padded_shape)} for a {size[0]}x{size[1]} image",
                expected=f"{canvas} (the best grid pinpoint)",
                fix="re-process the image with the checkpoint's own processor (its image_grid_pinpoints)",
            )
        top, left, nh, nw = content_on_canvas(size, canvas)
        want = (top, canvas[0] - nh - top, left, canvas[1] - nw - left)
        if (
            meta.padding is not None
            and max(abs(a - b) for a, b in zip(meta.padding, want, strict=True)) > META_TOLERANCE
        ):
            raise ImageShapeError(
                f"meta_data padding of image {i} is not what the processor does for this image",
                found=f"padding (top, bottom, left, right) {meta.padding}",
                expected=f"{want} on the {canvas[0]}x{canvas[1]} canvas",
                fix="re-process the images with the checkpoint's own processor, or pass them raw under 'image'",
            )
