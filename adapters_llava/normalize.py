"""``normalize(sample)`` for the LLaVA family: a research-dataset dict to a checked one-sample batch.

Takes ``input_ids`` (expanded, or one ``<image>`` per image as F-LMM tokenizes them), optional
``attention_mask`` / ``mask_ids`` / ``labels`` aligned with them, and the images as processed
``pixel_values`` (any layout of :mod:`.pixels`) or raw under ``images`` / ``image``. Sizes come
from :mod:`.sizes`; OneVision's ``batch_num_images`` says which images were read as one view.
The batch holds exactly what the stock forward takes: ids, mask, pixels (tiles flat), and for
NeXT / OneVision ``image_sizes`` (and ``batch_num_images``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vlm_adapters.samples import meta_list, require_mapping

from vlm_adapters import FixedSpec, ImageGeometry, MissingInputError, TokenCountError, VisionBatch, VisionInputError
from vlm_adapters.geometry import Size
from vlm_adapters.images import image_size, is_raw_image, to_pil
from vlm_adapters.placeholders import COMPANION_KEYS, expand_placeholders

from .pixels import GivenPixels, TileLayout, read_pixels
from .sizes import SwappedImageSizeError, check_against_pixels, check_meta_layout, require_sizes, stated_sizes
from .spec import AnyresSpec, CenterCropSpec

if TYPE_CHECKING:
    from .adapter import LlavaFamilyAdapter


def tile_layout(spec: Any) -> TileLayout:
    """The tower input each spec kind feeds."""
    if isinstance(spec, AnyresSpec):
        side, tiled = spec.tile_size, True
    elif isinstance(spec, CenterCropSpec):
        side, tiled = spec.crop_size[0], False
    else:
        assert isinstance(spec, FixedSpec)
        side, tiled = spec.image_size[0], False
    return TileLayout(side, spec.patch_size, tuple(spec.image_mean), tuple(spec.image_std), tiled)


def _row(value: Any, key: str) -> torch.Tensor:
    """A 1-D integer tensor from 1-D or ``[1, S]`` ids; non-integral values are refused."""
    row = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    row = row[0] if row.ndim == 2 and row.shape[0] == 1 else row
    if row.ndim != 1:
        raise VisionInputError(
            f"{key} is not one sample",
            found=tuple(row.shape),
            expected="[S] or [1, S]",
            fix="normalize() takes one sample; batch several with adapter.collate(samples)",
        )
    if row.is_floating_point() and not bool((row == row.round()).all()):
        raise VisionInputError(
            f"{key} holds non-integral values",
            found=row[row != row.round()][:4].tolist(),
            expected="token ids (integers)",
            fix=f"store {key} as integers",
        )
    return row.long()


def _raw_images(sample: Mapping[str, Any]) -> list[Any] | None:
    for key in ("images", "image"):
        value = sample.get(key)
        if value is None:
            continue
        items = [value] if is_raw_image(value) else list(value)
        if items and all(is_raw_image(i) for i in items):
            return items
    return None


def describe_layout(geometries: Sequence[ImageGeometry]) -> str:
    """Tokens each image takes, view by view: ``image 0: base 24x24 = 576 + high_res 24 rows x (63 + 1
    newline) = 1536, 2112 in all``."""
    parts = []
    for i, g in enumerate(geometries):
        views = []
        for v in g.views:
            rows, cols = v.token_grid
            grid = f"{rows} rows x ({cols} + {v.row_separators} newline)" if v.row_separators else f"{rows}x{cols}"
            views.append(f"{v.name} {grid} = {v.num_tokens}")
        rest = g.num_image_tokens - sum(v.num_tokens for v in g.views)
        if rest:
            views.append(f"{rest} newline(s) of rows with no cell left")
        parts.append(f"image {i}: {' + '.join(views)}, {g.num_image_tokens} in all")
    return "; ".join(parts)


def _groups(sample: Mapping[str, Any], count: int) -> torch.Tensor:
    """OneVision's ``batch_num_images`` (images per prompt as the processor grouped them)."""
    value = sample.get("batch_num_images")
    groups = torch.ones(count, dtype=torch.long) if value is None else _row(value, "batch_num_images")
    if int(groups.sum()) != count or bool((groups < 1).any()):
        raise VisionInputError(
            "batch_num_images does not add up to the images",
            found=groups.tolist(),
            expected=f"positive counts summing to {count}",
            fix="keep the processor's batch_num_images for this sample, or drop it (every image then tiled)",
        )
    return groups


def _pixels(
    adapter: LlavaFamilyAdapter, sample: Mapping[str, Any], layout: TileLayout
) -> tuple[GivenPixels | None, list[Size] | None]:
    raw = _raw_images(sample)
    raw_sizes = None if raw is None else [image_size(i) for i in raw]
    if sample.get("pixel_values") is not None:
        return read_pixels(sample["pixel_values"], layout), raw_sizes
    if raw is None:
        return None, None
    out = adapter.processor.image_processor(images=[to_pil(i) for i in raw], return_tensors="pt")
    return read_pixels(out["pixel_values"], layout), raw_sizes


def _image_count(given: GivenPixels | None, sample: Mapping[str, Any], raw_sizes: list[Size] | None) -> int:
    if given is None:
        return 0
    if given.count is not None:
        return given.count
    if raw_sizes is not None:
        return len(raw_sizes)
    if sample.get("image_sizes") is not None:
        value = sample["image_sizes"]
        shape = tuple(value.shape) if hasattr(value, "shape") else np.asarray(value).shape
        return 1 if len(shape) == 1 else int(shape[0])
    return 1  # one [tiles, 3, S, S] stack and nothing saying otherwise: one image


def normalize_sample(adapter: LlavaFamilyAdapter, sample: Mapping[str, Any]) -> VisionBatch:
    """Validate and repair one sample; see the module docstring."""
    sample = require_mapping(sample)
    spec = adapter.spec
    if sample.get("input_ids") is None:
        raise MissingInputError(
            "sample has no input_ids",
            found=sorted(sample)[:12],
            expected="an input_ids key",
            fix="tokenize the prompt (adapter.format_prompt) with the processor's tokenizer",
        )
    ids = _row(sample["input_ids"], "input_ids")
    companions = {k: _row(sample[k], k) for k in COMPANION_KEYS if sample.get(k) is not None}
    layout = tile_layout(spec)
    given, raw_sizes = _pixels(adapter, sample, layout)
    count = _image_count(given, sample, raw_sizes)
    if given is None and bool((ids == spec.image_token_id).any()):
        raise MissingInputError(
            "input_ids hold image tokens but the sample has no images",
            found=f"{int((ids == spec.image_token_id).sum())} tokens of id {spec.image_token_id} and no pixel_values",
            expected="pixel_values (with image_sizes or meta_data) or raw images under 'images'",
            fix="keep pixel_values in the sample (check the collate), or pass the decoded images under 'images'",
        )
    extra: dict[str, torch.Tensor] = {}
    if "batch_num_images" in adapter.extra_inputs:
        extra["batch_num_images"] = _groups(sample, count)
    sizes = require_sizes(spec, stated_sizes(sample, count, raw_sizes), given.guess_stacks(count) if given else None)
    check_meta_layout(spec, meta_list(sample), sizes)
    geometries = adapter.geometries_for(extra, [sizes])[0]
    counts = adapter.tiles_per_image(geometries, extra)
    stacks = _split(given, counts, sizes, adapter, extra) if given is not None else []
    tiled = [c > 1 or not isinstance(spec, AnyresSpec) for c in counts]
    check_against_pixels(
        spec, [s for s, t in zip(sizes, tiled, strict=True) if t], [p for p, t in zip(stacks, tiled, strict=True) if t]
    )
    ids, aligned, _ = expand_placeholders(
        ids,
        companions,
        spec.image_token_id,
        [g.num_image_tokens for g in geometries],
        mismatch=lambda runs: TokenCountError(
            "image tokens in input_ids do not match the images",
            found=f"{sum(runs)} tokens of id {spec.image_token_id} in runs of {runs}",
            expected=f"{describe_layout(geometries)}; or one <image> placeholder per image",
            fix="expand each placeholder with the checkpoint's processor for the image's own size (the count "
            "depends on it), or leave one placeholder per image for normalize to expand",
        ),
        shared_runs=True,
    )
    inputs = {"input_ids": ids[None], "attention_mask": aligned.get("attention_mask", torch.ones_like(ids))[None]}
    if stacks:
        inputs["pixel_values"] = torch.cat(stacks)
        if "image_sizes" in adapter.extra_inputs:
            inputs["image_sizes"] = torch.tensor(sizes, dtype=torch.long)
        inputs.update(extra)
    mask_ids = aligned["mask_ids"][None] if "mask_ids" in aligned else None
    return adapter.finish_batch(inputs, [sizes], mask_ids)


def _split(
    given: GivenPixels,
    counts: list[int],
    sizes: list[Size],
    adapter: LlavaFamilyAdapter,
    extra: Mapping[str, torch.Tensor],
) -> list[torch.Tensor]:
    """Per-image stacks; a flat stack whose length only the swapped sizes explain is a swap."""
    try:
        return given.split(counts)
    except TokenCountError:
        if given.flat is None:
            raise
        for i, size in enumerate(sizes):
            swapped = [*sizes[:i], (size[1], size[0]), *sizes[i + 1 :]]
            geometries = adapter.geometries_for(extra, [swapped])[0]
            if size[0] != size[1] and sum(adapter.tiles_per_image(geometries, extra)) == given.flat.shape[0]:
                raise SwappedImageSizeError(
                    f"image {i}'s size is (width, height)",
                    found=f"size {size}: {sum(counts)} tiles in all, while the pixels hold {given.flat.shape[0]}, "
                    f"which {(size[1], size[0])} gives",
                    expected="(height, width)",
                    fix="store image_sizes as (height, width) per image (PIL's image.size is (width, height))",
                ) from None
        raise
