"""Image sizes carried by a dataset sample: the one thing that makes a lost grid exactly recoverable.

Sources, in the forms research datasets use: ``image_sizes`` (``(height, width)`` per image,
or one pair for one image) and ``meta_data`` / ``meta_datas`` (F-LMM style dicts with
``original_shape`` and ``image_shape``, each ``{'height', 'width'}`` or ``(h, w)``).
The stock resize is idempotent on its own outputs, so a resized ``image_shape`` gives the same
grid as the original size; both are used and must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlm_adapters import DynamicSpec, GridError, ImageShapeError
from vlm_adapters.geometry import Size
from vlm_adapters.samples import image_sizes, size_pair

from .grid import Grid


def _meta_sizes(metas: Any, spec: DynamicSpec) -> list[Size | None]:
    if isinstance(metas, Mapping):
        metas = [metas]
    out: list[Size | None] = []
    for i, meta in enumerate(metas):
        if not isinstance(meta, Mapping):
            raise ImageShapeError(
                f"meta_data[{i}] is not a dict",
                found=type(meta).__name__,
                expected="{'original_shape': {'height', 'width'}, 'image_shape': ...}",
                fix="pass one meta_data dict per image",
            )
        original = meta.get("original_shape")
        resized = meta.get("image_shape")
        orig = size_pair(original, f"meta_data[{i}]['original_shape']") if original is not None else None
        res = size_pair(resized, f"meta_data[{i}]['image_shape']") if resized is not None else None
        if orig is not None and res is not None and spec.grid_thw(orig) != spec.grid_thw(res):
            raise GridError(
                f"meta_data[{i}] contradicts itself",
                found=f"original_shape {orig} gives grid {list(spec.grid_thw(orig))}, image_shape {res} "
                f"gives {list(spec.grid_thw(res))}",
                expected="sizes of the same image before and after the processor's resize",
                fix="store the processor's own sizes, or drop the wrong field",
            )
        out.append(orig or res)
    return out


def sample_sizes(sample: Mapping[str, Any], spec: DynamicSpec) -> list[Size | None] | None:
    """Per-image sizes the sample declares (``None`` entries: unknown), or ``None`` if none at all.

    ``original_shape`` wins over ``image_shape`` for geometry; where ``image_sizes`` and
    ``meta_data`` both exist they must give the same grids.
    """
    sources: list[list[Size | None]] = []
    if sample.get("image_sizes") is not None:
        sources.append(list(image_sizes(sample["image_sizes"])))
    for key in ("meta_data", "meta_datas"):
        if sample.get(key) is not None:
            sources.append(_meta_sizes(sample[key], spec))
    if not sources:
        return None
    sizes = sources[0]
    for other in sources[1:]:
        if len(other) != len(sizes):
            raise GridError(
                "image_sizes and meta_data list different numbers of images",
                found=f"{len(sizes)} vs {len(other)}",
                expected="one size per image in each",
                fix="keep the per-image lists aligned",
            )
        merged: list[Size | None] = []
        for i, (a, b) in enumerate(zip(sizes, other, strict=True)):
            if a is not None and b is not None and spec.grid_thw(a) != spec.grid_thw(b):
                raise GridError(
                    f"image {i}: image_sizes and meta_data disagree",
                    found=f"{a} vs {b}",
                    expected="the same image's size",
                    fix="drop the stale field",
                )
            merged.append(a if a is not None else b)
        sizes = merged
    return sizes


def grids_from_sizes(sizes: list[Size | None], spec: DynamicSpec) -> list[Grid | None]:
    return [None if s is None else spec.grid_thw(s) for s in sizes]
