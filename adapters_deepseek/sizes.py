"""Original image sizes: the one thing processed DeepSeek-VL pixels cannot tell.

Every image becomes a 384x384 square, so the padding (and hence where the image sits on the
24x24 token grid) depends on the original ``(height, width)``. It comes from the raw image
when the sample has one, else from ``image_sizes`` or F-LMM's ``meta_data(s)``. Sources that
are present must agree; ``meta_data`` padding, when given, must match the spec's geometry to
within a pixel (research code that truncates instead of rounding is off by at most one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vlm_adapters import ImageGeometry, ImageShapeError
from vlm_adapters.geometry import Size
from vlm_adapters.samples import image_sizes, meta_list, size_pair

PADDING_TOLERANCE = 1.0
"""Input pixels by which a ``meta_data`` padding may differ from the spec's (rounding conventions)."""

_SIZE_FIX = "give one (height, width) per image, in the order of the images"


def _meta_size(meta: Any, i: int) -> Size | None:
    """``original_shape`` of one F-LMM meta_data dict; ``None`` when the dict has none (DeepSeek's
    research processor writes only ``padding`` / ``image_shape`` / ``padded_shape``)."""
    if not isinstance(meta, Mapping):
        raise ImageShapeError(
            f"meta_data[{i}] is not a dict",
            found=repr(meta)[:80],
            expected="{'original_shape': {'height': h, 'width': w}, 'padding': {...}, ...}",
            fix="keep F-LMM's meta_data as the dataset built it, or pass image_sizes",
        )
    if "original_shape" not in meta:
        return None
    try:
        shape = meta["original_shape"]
        return size_pair((shape["height"], shape["width"]), f"meta_data[{i}]['original_shape']")
    except (KeyError, TypeError, IndexError):
        raise ImageShapeError(
            f"meta_data[{i}]['original_shape'] is malformed",
            found=repr(meta["original_shape"])[:120],
            expected="{'height': h, 'width': w}",
            fix="keep F-LMM's meta_data as the dataset built it, or pass image_sizes",
        ) from None


def original_sizes(sample: Mapping[str, Any], num_images: int, raw_sizes: Sequence[Size] | None) -> list[Size] | None:
    """Original ``(height, width)`` per image from every source present, checked to agree;
    ``None`` when no source is present."""
    sources: dict[str, list[Size]] = {}
    if raw_sizes is not None:
        sources["the raw image"] = list(raw_sizes)
    if sample.get("image_sizes") is not None:
        sources["image_sizes"] = image_sizes(sample["image_sizes"])
    metas = meta_list(sample)
    if metas is not None:
        meta_sizes = [_meta_size(m, i) for i, m in enumerate(metas)]
        if all(size is not None for size in meta_sizes):
            sources["meta_data"] = [size for size in meta_sizes if size is not None]
        elif len(metas) != num_images:
            raise ImageShapeError(
                "meta_data does not have one entry per image",
                found=f"{len(metas)} entr(ies)",
                expected=f"{num_images}",
                fix=_SIZE_FIX,
            )
    for name, sizes in sources.items():
        if len(sizes) != num_images:
            raise ImageShapeError(
                f"{name} does not have one size per image",
                found=f"{len(sizes)} size(s)",
                expected=f"{num_images}",
                fix=_SIZE_FIX,
            )
    if not sources:
        return None
    (first_name, first), *rest = sources.items()
    for name, sizes in rest:
        if sizes != first:
            raise ImageShapeError(
                f"{name} contradicts {first_name}",
                found=sizes,
                expected=first,
                fix="sizes are (height, width) of the original image, before any resize or padding",
            )
    return first


def check_meta_padding(sample: Mapping[str, Any], geometries: Sequence[ImageGeometry]) -> None:
    """Refuse ``meta_data`` whose padding describes a different preprocessing than this checkpoint's."""
    for i, (meta, geo) in enumerate(zip(meta_list(sample) or [], geometries, strict=False)):
        if not isinstance(meta, Mapping) or "padding" not in meta or "padded_shape" not in meta:
            continue
        try:
            scale = geo.input_size[0] / float(meta["padded_shape"]["height"])
            pad = meta["padding"]
            found = [float(pad[k]) * scale for k in ("before_height", "after_height", "before_width", "after_width")]
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            raise ImageShapeError(
                f"meta_data[{i}] padding is malformed",
                found=repr(meta)[:120],
                expected="F-LMM's padding / padded_shape dicts",
                fix="drop 'padding' or keep it as the dataset built it",
            ) from None
        p = geo.padding
        expected = [p.top, p.bottom, p.left, p.right]
        if any(abs(f - e) > PADDING_TOLERANCE for f, e in zip(found, expected, strict=True)):
            raise ImageShapeError(
                f"meta_data[{i}] padding is not this checkpoint's padding for its original size",
                found=f"top/bottom/left/right {[round(v, 2) for v in found]} (input pixels)",
                expected=f"{[round(v, 2) for v in expected]} for {geo.original_size}",
                fix="re-process the raw image with this checkpoint's processor; the pixels were padded "
                "differently (or the original_shape is wrong)",
            )
