"""Original image sizes of a sample: every source read, merged, and checked against the pixels.

Sources: ``image_sizes`` ((height, width) per image), F-LMM ``meta_data`` (``ori_shape`` as the
NeXT processor writes it, ``original_shape`` as LLaVA-1.5's and this library's do, or
``image_shape`` / ``scale_factor`` when they give whole numbers) and raw images. All present must
agree. A size is taken only when some source states it: pixels show the content's shape, not its
resolution, so an image with no size is refused with what its pixels do show. Stated sizes are
checked against the pixels, which is where a ``(width, height)`` swap shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from vlm_adapters.samples import image_sizes, meta_list, size_pair

from vlm_adapters import FixedSpec, ImageShapeError, MissingInputError
from vlm_adapters.geometry import Size
from vlm_adapters.spec import SpecBase

from .evidence import fits, layouts_seen
from .layout import best_canvas, content_on_canvas
from .spec import AnyresSpec

META_TOLERANCE = 2.0
"""Pixels by which a ``meta_data``'s recorded padding may differ from the stock layout (research
processors truncate where transformers rounds)."""

SIZE_FIX = "store image_sizes as (height, width) per image, in image order (PIL's image.size is (width, height))"


class SwappedImageSizeError(ImageShapeError):
    """A size given as ``(width, height)``: the pixels fit the swapped size and not the given one."""


class UnknownImageSizeError(MissingInputError):
    """No source states an image's original size; ``candidates`` says what its pixels do show."""

    def __init__(self, problem: str, *, found: Any, candidates: Sequence[str], fix: str) -> None:
        self.candidates = list(candidates)
        expected = "image_sizes, meta_data or the raw image" + (
            f"; the pixels show {'; or '.join(self.candidates)}" if self.candidates else ""
        )
        super().__init__(problem, found=found, expected=expected, fix=fix)


def _meta_size(meta: Any, where: str) -> Size | None:
    """The original size a ``meta_data`` entry states, if it states one."""
    if not isinstance(meta, Mapping):
        raise ImageShapeError(
            f"{where} is not a dict", found=type(meta).__name__, expected="an F-LMM meta_data dict", fix=SIZE_FIX
        )
    for key in ("original_shape", "ori_shape"):
        if meta.get(key) is not None:
            return size_pair(meta[key], f"{where}['{key}']")
    shape, scale = meta.get("image_shape"), meta.get("scale_factor")
    if shape is not None and scale is not None:
        h, w = (float(v) for v in (shape["height"], shape["width"]))
        sh, sw = (float(v) for v in (scale if not isinstance(scale, (int, float)) else (scale, scale)))
        oh, ow = h / sh, w / sw
        if abs(oh - round(oh)) < 1e-6 and abs(ow - round(ow)) < 1e-6:
            return round(oh), round(ow)
    return None


def stated_sizes(sample: Mapping[str, Any], count: int, raw_sizes: list[Size] | None) -> list[Size | None]:
    """Each image's size from every source in the sample; sources must agree and cover every image."""
    sources: dict[str, list[Size | None]] = {}
    if sample.get("image_sizes") is not None:
        sources["image_sizes"] = list(image_sizes(sample["image_sizes"]))
    metas = meta_list(sample)
    if metas is not None:
        sources["meta_data"] = [_meta_size(m, f"meta_data[{i}]") for i, m in enumerate(metas)]
    if raw_sizes is not None:
        sources["the raw images"] = list(raw_sizes)
    for name, sizes in sources.items():
        if len(sizes) != count:
            raise ImageShapeError(
                f"{name} does not give one size per image",
                found=f"{len(sizes)} size(s) for {count} image(s)",
                expected=f"{count}",
                fix="keep the size fields aligned with the images (a collate may have dropped or merged them)",
            )
    merged: list[Size | None] = []
    for i in range(count):
        given = {name: sizes[i] for name, sizes in sources.items() if sizes[i] is not None}
        if len(set(given.values())) > 1:
            raise ImageShapeError(
                f"the sources disagree on the size of image {i}",
                found=given,
                expected="one (height, width) from every source",
                fix=SIZE_FIX,
            )
        merged.append(next(iter(given.values()), None))
    return merged


def require_sizes(spec: SpecBase, sizes: list[Size | None], stacks: list[torch.Tensor] | None) -> list[Size]:
    """Every image's size; an image with none is refused, naming what its pixels show."""
    missing = [i for i, s in enumerate(sizes) if s is None]
    if not missing:
        return [s for s in sizes if s is not None]
    i = missing[0]
    candidates = layouts_seen(spec, stacks[i]) if stacks is not None else []
    raise UnknownImageSizeError(
        f"the original size of image {i} is not in the sample",
        found="no image_sizes, no meta_data with the original shape, no raw image",
        candidates=candidates,
        fix="pass image_sizes=[(height, width), ...] (or F-LMM meta_data, or the raw image under 'image'): the "
        "pixels fix the aspect ratio, not the size, and maps go back onto the original image",
    )


def check_against_pixels(spec: SpecBase, sizes: Sequence[Size], stacks: Sequence[torch.Tensor]) -> None:
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
        raise ImageShapeError(
            f"the pixels of image {i} are not the processed form of an image of its size",
            found=f"size {size} and pixels {tuple(stack.shape)} whose padding (or tile count) differs",
            expected=f"the stock processor's output for a {size[0]}x{size[1]} image",
            fix="keep image_sizes aligned with pixel_values, or pass the raw images under 'images'",
        )


def swap_explains_counts(spec: SpecBase, sizes: Sequence[Size], count: int, tiles: Any) -> Size | None:
    """For a flat tile stack whose length the sizes do not explain: a size whose swap would."""
    for size in sizes:
        swapped = [(s[1], s[0]) if s == size else s for s in sizes]
        if sum(tiles(swapped)) == count and size != (size[1], size[0]):
            return size
    return None


def _recorded(meta: Mapping[str, Any]) -> tuple[Size | None, tuple[float, ...] | None]:
    """``padded_shape`` and ``padding`` (top, bottom, left, right) as a ``meta_data`` records them."""
    padded, pad = meta.get("padded_shape"), meta.get("padding")
    shape = None if not padded else (int(padded["height"]), int(padded["width"]))
    keys = ("before_height", "after_height", "before_width", "after_width")
    return shape, None if not pad else tuple(float(pad[k]) for k in keys)


def check_meta_layout(spec: SpecBase, metas: Sequence[Any] | None, sizes: Sequence[Size]) -> None:
    """Refuse a ``meta_data`` whose padding is not the stock layout for its image (e.g. stretched
    pixels, or pixels padded for another canvas); sizes are checked in :func:`stated_sizes`."""
    for i, (meta, size) in enumerate(zip(metas or [], sizes, strict=False)):
        shape, pad = _recorded(meta)
        want: tuple[float, ...]
        if isinstance(spec, AnyresSpec):
            canvas = best_canvas(size, [list(p) for p in spec.grid_pinpoints])
            top, left, nh, nw = content_on_canvas(size, canvas)
            expected, want = canvas, (top, canvas[0] - nh - top, left, canvas[1] - nw - left)
        elif isinstance(spec, FixedSpec):
            (view,) = spec.geometry(size).views
            p = view.padding
            expected, want = view.input_size, (p.top, p.bottom, p.left, p.right)
        else:
            continue
        if shape is not None and isinstance(spec, AnyresSpec) and shape != expected:
            raise ImageShapeError(
                f"meta_data[{i}] records a canvas the processor does not pick for this image",
                found=f"padded_shape {shape} for a {size[0]}x{size[1]} image",
                expected=f"{expected} (the best grid pinpoint)",
                fix="re-process the image with the checkpoint's own processor (its image_grid_pinpoints)",
            )
        if (
            pad is not None
            and shape == expected
            and max(abs(a - b) for a, b in zip(pad, want, strict=True)) > META_TOLERANCE
        ):
            raise ImageShapeError(
                f"meta_data[{i}] padding is not what the processor does for this image",
                found=f"padding (top, bottom, left, right) {pad}",
                expected=f"about {tuple(round(v, 1) for v in want)}",
                fix="re-process the images with the checkpoint's own processor, or pass them raw under 'images'",
            )
