"""LLaVA-NeXT / OneVision's resolve step of ``normalize``: tiles per image and a geometry per image.

The core has read the sample (ids, sizes, raw vs processed, values). What is anyres's own: each
image is a stack of tiles whose count follows from its size, in one of the layouts of
:mod:`.pixels`; sizes may also come from F-LMM's ``ori_shape``; OneVision's ``batch_num_images``
says which images were read as one padded square instead. The stock forward gets the tiles flat
(``[all tiles, 3, S, S]``), ``image_sizes`` as (height, width), and OneVision's ``batch_num_images``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vlm_adapters import ImageGeometry, MissingInputError, TokenCountError, VisionInputError
from vlm_adapters.geometry import Size
from vlm_adapters.normalize import ResolvedImages, SampleImages
from vlm_adapters.placeholders import image_runs

from .pixels import GivenPixels, given_tiles
from .sizes import (
    SIZE_FIX,
    SwappedImageSizeError,
    check_against_pixels,
    check_meta_layout,
    require_sizes,
    with_ori_shape,
)

if TYPE_CHECKING:
    from .adapter import AnyresAdapter


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


def check_token_layout(ids: torch.Tensor, image_token_id: int, geometries: Sequence[ImageGeometry]) -> None:
    """Refuse image-token runs that fit neither the layout nor one placeholder per image, naming each
    view's share (the count depends on the image size, so a fixed guess like 576 is the usual bug)."""
    lengths = [n for _, n in image_runs(ids, image_token_id)]
    counts = [g.num_image_tokens for g in geometries]
    if sum(lengths) in (sum(counts), len(counts)):
        return  # the core's token step checks the runs in detail
    raise TokenCountError(
        "image tokens in input_ids do not match the images",
        found=f"{sum(lengths)} tokens of id {image_token_id} in runs of {lengths}",
        expected=f"{describe_layout(geometries)}; or one <image> placeholder per image",
        fix="expand each placeholder with the checkpoint's processor for the image's own size (the count depends "
        "on it), or leave one placeholder per image for normalize to expand",
    )


def groups(sample: Mapping[str, Any], count: int) -> torch.Tensor:
    """OneVision's ``batch_num_images`` (images per prompt as the processor grouped them); all ones if absent."""
    value = sample.get("batch_num_images")
    if value is None:
        return torch.ones(count, dtype=torch.long)
    array = np.asarray(value.tolist() if isinstance(value, torch.Tensor) else value)
    if array.ndim != 1 or array.dtype.kind not in "iu" or int(array.sum()) != count or bool((array < 1).any()):
        raise VisionInputError(
            "batch_num_images does not add up to the images",
            found=repr(value)[:80],
            expected=f"positive counts summing to {count}",
            fix="keep the processor's batch_num_images for this sample, or drop it (every image is then tiled)",
        )
    return torch.as_tensor(array, dtype=torch.long)


def _image_count(given: GivenPixels, sizes: list[Size | None] | None, ids: torch.Tensor, token: int) -> int:
    if given.count is not None:
        return given.count
    if sizes is not None:
        return len(sizes)
    return max(1, len(image_runs(ids, token)))


def _split(
    adapter: AnyresAdapter, given: GivenPixels, sizes: list[Size], extra: dict[str, torch.Tensor]
) -> list[torch.Tensor]:
    """Per-image stacks; a flat stack whose length only a swapped size explains is a swap."""
    geometries = adapter.geometries_for(extra, [sizes])[0]
    try:
        return given.split(adapter.tiles_per_image(geometries))
    except TokenCountError:
        if given.flat is None:
            raise
        for i, size in enumerate(sizes):
            swapped = [*sizes[:i], (size[1], size[0]), *sizes[i + 1 :]]
            other = adapter.geometries_for(extra, [swapped])[0]
            if size[0] != size[1] and sum(adapter.tiles_per_image(other)) == given.flat.shape[0]:
                raise SwappedImageSizeError(
                    f"image {i}'s size is (width, height)",
                    found=f"size {size}: the sizes give other tile counts than the {given.flat.shape[0]} tiles "
                    f"in the pixels, which {(size[1], size[0])} gives",
                    expected="(height, width)",
                    fix=SIZE_FIX,
                ) from None
        raise


def resolve_anyres_images(adapter: AnyresAdapter, images: SampleImages) -> ResolvedImages:
    """All tiles (given, else the raw images') and one geometry per image; see the module docstring."""
    spec = adapter.anyres
    if "pixel_values" in images.processed:
        given = given_tiles(images.processed["pixel_values"], adapter.pixel_form)
    elif images.from_raw is not None:
        given = GivenPixels(flat=images.from_raw["pixel_values"].to(torch.float32))
    else:
        raise MissingInputError(
            "the sample has no pixel_values and no raw image",
            found=f"keys {sorted(map(str, images.sample))[:12]}",
            expected="pixel_values [tiles, 3, S, S] per image, or the raw image under 'image'",
            fix="keep the processor's pixel_values in the sample, or the raw image",
        )
    count = _image_count(given, images.sizes, images.input_ids, spec.image_token_id)
    extra = {"batch_num_images": groups(images.sample, count)} if "batch_num_images" in adapter.extra_inputs else {}
    sizes = require_sizes(spec, with_ori_shape(images.sample, images.sizes, count), given.guess_stacks(count))
    stacks = _split(adapter, given, sizes, extra)
    geometries = adapter.geometries_for(extra, [sizes])[0]
    tiled = [not one for one in adapter.single_view_images(extra, len(sizes))]
    check_against_pixels(
        spec, [s for s, t in zip(sizes, tiled, strict=True) if t], [p for p, t in zip(stacks, tiled, strict=True) if t]
    )
    if all(tiled):
        check_meta_layout(spec, images.sample, sizes)
    check_token_layout(images.input_ids, spec.image_token_id, geometries)
    pixels = {"pixel_values": torch.cat(stacks), "image_sizes": torch.tensor(sizes, dtype=torch.long), **extra}
    return ResolvedImages(pixels, geometries)
