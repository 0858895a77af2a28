"""Image sizes in a sample: ``image_sizes``, F-LMM ``meta_data(s)`` and the raw images, merged.

Sizes are what make geometry exact (padding for padded inputs, grids for dynamic ones), so they
are parsed strictly: ``(height, width)`` pairs of positive integers, or ``{'height', 'width'}``
dicts as ``meta_data`` writes them. Every source present must give the same size for the same
image, exactly; anything else is an :class:`~vlm_adapters.errors.ImageSizeError`.

``meta_data`` also records what the preprocessing did (``image_shape``: the content size after the
resize, ``padded_shape``, ``padding``). Those must describe the geometry the batch ends up with,
to within one input pixel (research processors truncate where transformers rounds), after scaling
from ``padded_shape`` to the model input (for images of one view; of several views, only the
original size is compared). A ``meta_data`` with only ``image_shape`` stands in for
the original size when the backbone's resize maps that size onto itself (the geometry is then
exact on the input, and maps come back at that size).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ImageSizeError, VisionInputError
from ..geometry import ImageGeometry, Size

SIZE_FIX = "store image sizes as (height, width) per image, in the order of the images"
META_TOLERANCE = 1.0
"""Input pixels by which ``meta_data``'s ``image_shape`` and ``padding`` may differ from the geometry."""
PADDING_KEYS = ("before_height", "after_height", "before_width", "after_width")
BOX_KEYS = ("top", "left", "bottom", "right")


def _pair(value: Any, where: str) -> tuple[float, float]:
    """``(height, width)`` as finite floats from a pair, a ``{'height', 'width'}`` dict or a 2-vector."""
    if isinstance(value, Mapping):
        value = (value.get("height"), value.get("width"))
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        value = repr(value)  # True/False are not sizes
    try:
        h, w = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        raise ImageSizeError(
            f"{where} is not a (height, width) pair",
            found=repr(value)[:80],
            expected="(height, width) or {'height': h, 'width': w}",
            fix=SIZE_FIX,
        ) from None
    if not (np.isfinite(h) and np.isfinite(w)) or h <= 0 or w <= 0:
        raise ImageSizeError(
            f"{where} is not a positive size", found=(h, w), expected="positive height and width", fix=SIZE_FIX
        )
    return h, w


def size_pair(value: Any, where: str) -> Size:
    """``(height, width)`` of positive integers (whole floats accepted: sizes are often stored as floats),
    no larger than an image that can be decoded (PIL's decompression-bomb limit)."""
    h, w = _pair(value, where)
    if h != round(h) or w != round(w):
        raise ImageSizeError(
            f"{where} is not an integer size", found=(h, w), expected="whole numbers of pixels", fix=SIZE_FIX
        )
    limit = Image.MAX_IMAGE_PIXELS
    if limit and h * w > limit:
        raise ImageSizeError(
            f"{where} is larger than any image that can be decoded",
            found=f"{int(h)}x{int(w)} = {h * w:.3g} pixels",
            expected=f"at most {limit} pixels (PIL's decompression-bomb limit)",
            fix=SIZE_FIX,
        )
    return int(h), int(w)


def image_sizes(value: Any) -> list[Size]:
    """The ``image_sizes`` field: a list of pairs, or one bare pair for a one-image sample."""
    raw = value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else value
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(v, numbers.Real) for v in raw):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise ImageSizeError(
            "image_sizes is not a list of sizes",
            found=repr(value)[:80],
            expected="[(height, width), ...] per image",
            fix=SIZE_FIX,
        )
    return [size_pair(v, f"image_sizes[{i}]") for i, v in enumerate(raw)]


@dataclass(frozen=True)
class Meta:
    """One ``meta_data`` entry, parsed; every field optional."""

    original: Size | None
    image_shape: tuple[float, float] | None
    padded_shape: tuple[float, float] | None
    padding: tuple[float, float, float, float] | None
    """(before_height, after_height, before_width, after_width), in ``padded_shape`` pixels."""
    box: tuple[float, float, float, float] | None = None
    """(top, left, bottom, right) of the original image a view shows, where the record has one."""
    views: tuple[Meta, ...] = ()
    """For an image of several views: one entry per view (as ``ImageGeometry.to_meta_data`` writes
    them), ``original`` being the size they all record."""


def _meta(meta: Any, i: int) -> Meta:
    where = f"meta_data[{i}]"
    if not isinstance(meta, Mapping):
        raise ImageSizeError(
            f"{where} is not a dict",
            found=repr(meta)[:80],
            expected="{'original_shape': {'height': h, 'width': w}, 'image_shape': ..., 'padding': ...}",
            fix="pass one meta_data dict per image, as the dataset built it, or image_sizes",
        )
    padding = None
    if meta.get("padding") is not None:
        pad = meta["padding"]
        try:
            values = tuple(float(pad[k]) for k in PADDING_KEYS)
        except (KeyError, TypeError, ValueError):
            raise ImageSizeError(
                f"{where}['padding'] is malformed",
                found=repr(pad)[:120],
                expected=f"a dict with {list(PADDING_KEYS)}",
                fix="keep meta_data as the dataset built it, or drop 'padding'",
            ) from None
        if not all(np.isfinite(v) and v >= 0 for v in values):
            raise ImageSizeError(
                f"{where}['padding'] is not a padding", found=values, expected="finite values >= 0", fix=SIZE_FIX
            )
        padding = (values[0], values[1], values[2], values[3])

    def pair(name: str) -> tuple[float, float] | None:
        return None if meta.get(name) is None else _pair(meta[name], f"{where}[{name!r}]")

    box = None
    if meta.get("box") is not None:
        try:
            values = tuple(float(meta["box"][k]) for k in BOX_KEYS)
        except (KeyError, TypeError, ValueError):
            raise ImageSizeError(
                f"{where}['box'] is malformed",
                found=repr(meta["box"])[:120],
                expected=f"a dict with {list(BOX_KEYS)}",
                fix="keep meta_data as ImageGeometry.to_meta_data() wrote it, or drop 'box'",
            ) from None
        box = (values[0], values[1], values[2], values[3])
    original = meta.get("original_shape")
    return Meta(
        original=None if original is None else size_pair(original, f"{where}['original_shape']"),
        image_shape=pair("image_shape"),
        padded_shape=pair("padded_shape"),
        padding=padding,
        box=box,
    )


def _image_meta(meta: Any, i: int) -> Meta:
    """One image's entry: a dict, or a list of per-view dicts (an image of several views)."""
    if not isinstance(meta, (list, tuple)) or not meta:
        return _meta(meta, i)
    views = tuple(_meta(m, i) for m in meta)
    originals = {v.original for v in views}
    if len(originals) > 1:
        raise ImageSizeError(
            f"meta_data[{i}]'s views record different original sizes",
            found=sorted(map(str, originals)),
            expected="one original_shape for all views of an image",
            fix="keep the per-view meta_data as ImageGeometry.to_meta_data() wrote it, or image_sizes",
        )
    return Meta(original=views[0].original, image_shape=None, padded_shape=None, padding=None, views=views)


def read_meta(sample: Mapping[str, Any]) -> list[Meta] | None:
    """``meta_datas`` / ``meta_data`` as one parsed entry per image; ``None`` if absent. An image's
    entry is a dict, or for an image of several views the list of per-view dicts that
    ``ImageGeometry.to_meta_data`` writes (a bare dict stands for a one-image sample)."""
    metas = sample.get("meta_datas", sample.get("meta_data"))
    if metas is None:
        return None
    entries = list(metas) if isinstance(metas, (list, tuple)) else [metas]
    return [_image_meta(m, i) for i, m in enumerate(entries)]


def check_count(sizes: Sequence[Any] | None, num_images: int, where: str = "the sizes") -> None:
    """One size (or ``meta_data`` entry) per image."""
    if sizes is not None and len(sizes) != num_images:
        raise ImageSizeError(
            f"{where} do not have one entry per image",
            found=f"{len(sizes)} for {num_images} image(s)",
            expected=f"{num_images}",
            fix=SIZE_FIX,
        )


def one_count(counts: Mapping[str, int], problem: str, fix: str, error: type[VisionInputError] = ImageSizeError) -> int:
    """The number of images all the sources in ``counts`` (name -> count) agree on, or ``error``."""
    if len(set(counts.values())) > 1:
        raise error(problem, found=dict(counts), expected="the same number of images in each", fix=fix)
    return next(iter(counts.values()))


def _stand_in(meta: Meta, spec: Any) -> Size | None:
    """``image_shape`` as the size, where the backbone's resize maps it onto itself (same input)."""
    if meta.image_shape is None or any(v != round(v) for v in meta.image_shape):
        return None
    size = (int(meta.image_shape[0]), int(meta.image_shape[1]))
    ours = spec.geometry(size).to_meta_data()
    if not isinstance(ours, Mapping):
        return None  # several views: no single image_shape to stand in
    same_input = meta.padded_shape is None or _pair(ours["padded_shape"], "padded_shape") == meta.padded_shape
    return size if same_input and _pair(ours["image_shape"], "image_shape") == meta.image_shape else None


def sample_sizes(
    sample: Mapping[str, Any], raw_sizes: Sequence[Size] | None, spec: Any
) -> tuple[list[Size | None] | None, list[bool]]:
    """``(sizes, known)``: the original size per image from every source present (``None`` entries:
    unknown; ``None`` overall: no source at all), and whether each is the true original size."""
    sources: dict[str, list[Size | None]] = {}
    if raw_sizes is not None:
        sources["the images passed"] = list(raw_sizes)
    if sample.get("image_sizes") is not None:
        sources["image_sizes"] = list(image_sizes(sample["image_sizes"]))
    metas = read_meta(sample)
    if metas is not None:
        sources["meta_data"] = [m.original for m in metas]
    if not sources:
        return None, []
    count = one_count(
        {name: len(sizes) for name, sizes in sources.items()},
        "the size sources list different numbers of images",
        fix="keep image_sizes / meta_data aligned with the images",
    )
    merged: list[Size | None] = []
    for i in range(count):
        given = {name: sizes[i] for name, sizes in sources.items() if sizes[i] is not None}
        values = set(given.values())
        if len(values) > 1:
            if "the images passed" in given:
                problem = f"image {i}: the declared image sizes are not the sizes of the images passed"
                fix = "drop image_sizes / meta_data, or pass the images at their declared size"
            else:
                problem = f"image {i}: image_sizes and meta_data disagree"
                fix = "drop the stale field; sizes are (height, width) of the original image"
            raise ImageSizeError(problem, found=given, expected="one (height, width) for the image", fix=fix)
        merged.append(next(iter(values), None))
    known = [s is not None for s in merged]
    if metas is not None:
        merged = [s if s is not None else _stand_in(m, spec) for s, m in zip(merged, metas, strict=True)]
    return merged, known


def check_meta(sample: Mapping[str, Any], geometries: Sequence[ImageGeometry]) -> None:
    """``meta_data``'s record of the preprocessing describes the batch's geometry (to a pixel)."""
    metas = read_meta(sample)
    if metas is None:
        return
    check_count(metas, len(geometries), "meta_data entries")
    for i, (meta, geometry) in enumerate(zip(metas, geometries, strict=True)):
        ours = geometry.to_meta_data()
        if not meta.views:
            if isinstance(ours, Mapping):
                _check_view_meta(meta, ours, f"image {i}", geometry)
            continue  # one record for an image of several views: only its original_shape is compared
        per_view = [ours] if isinstance(ours, Mapping) else ours
        if len(meta.views) != len(per_view):
            raise ImageSizeError(
                f"meta_data[{i}] records {len(meta.views)} views, the image has {len(per_view)}",
                found=f"{len(meta.views)} per-view entries",
                expected=f"{len(per_view)} ({[v.name for v in geometry.views]}) for a {geometry.original_size} image",
                fix="re-process the raw image with this checkpoint's processor, or pass image_sizes instead",
            )
        for v, (view_meta, view_ours) in enumerate(zip(meta.views, per_view, strict=True)):
            _check_view_meta(view_meta, view_ours, f"image {i}, view {v}", geometry)


def _check_view_meta(meta: Meta, ours: Mapping[str, Any], where: str, geometry: ImageGeometry) -> None:
    """One record's image_shape, padding and box against the geometry's (to a pixel)."""
    ih, iw = _pair(ours["padded_shape"], "padded_shape")
    sh, sw = (1.0, 1.0) if meta.padded_shape is None else (ih / meta.padded_shape[0], iw / meta.padded_shape[1])
    checks: list[tuple[str, str, list[float], list[float], str]] = []
    if meta.image_shape is not None:
        checks.append(
            (
                f"meta_data of {where} contradicts itself: its image_shape is not the resized size of its image",
                "image_shape (input pixels)",
                [meta.image_shape[0] * sh, meta.image_shape[1] * sw],
                list(_pair(ours["image_shape"], "image_shape")),
                "store the processor's own sizes (original_shape before the resize, image_shape after), or drop "
                "the wrong field",
            )
        )
    if meta.padding is not None:
        checks.append(
            (
                f"meta_data padding of {where} is not this checkpoint's padding for its original size",
                "top/bottom/left/right padding (input pixels)",
                [v * s for v, s in zip(meta.padding, (sh, sh, sw, sw), strict=True)],
                [float(ours["padding"][k]) for k in PADDING_KEYS],
                "re-process the raw image with this checkpoint's processor; the pixels were padded differently (or "
                "the original_shape is wrong)",
            )
        )
    if meta.box is not None and "box" in ours:
        box = ours["box"]
        checks.append(
            (
                f"meta_data of {where} records another part of the image than this checkpoint's view",
                "box (top, left, bottom, right; original pixels)",
                list(meta.box),
                [float(box[k]) for k in BOX_KEYS],
                "re-process the raw image with this checkpoint's processor (or check the original_shape)",
            )
        )
    for problem, what, found, expected, fix in checks:
        if max(abs(a - b) for a, b in zip(found, expected, strict=True)) > META_TOLERANCE:
            raise ImageSizeError(
                problem,
                found=f"{what} {[round(v, 2) for v in found]}",
                expected=f"{[round(v, 2) for v in expected]} for a {geometry.original_size} image",
                fix=fix,
            )
