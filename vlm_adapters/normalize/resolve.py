"""The default resolve step: processed pixels that are image stacks of one size per view, and a
geometry that follows from each image's original size (``spec.geometry(size)``).

That covers padded or stretched fixed-size inputs (one view, or several views of one image at
different resolutions). Backbones whose processed pixels are something else (a patch matrix, a
variable number of tiles) override ``resolve_images`` and may reuse the pieces here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ImageShapeError, MissingInputError
from ..geometry import ImageGeometry, Size
from .sample import PixelForm, PixelValue, ResolvedImages, SampleImages
from .sizes import check_count, one_count


def stack_images(value: PixelValue, key: str, form: PixelForm) -> torch.Tensor:
    """``[N, C, H, W]`` from ``[C, H, W]``, ``[N, C, H, W]``, ``[B, n, C, H, W]`` or a list of
    per-image ``[C, H, W]`` / ``[1, C, H, W]``; the view's size and the channels checked."""
    size = form.views[key].size
    c = form.channels
    want = f"[N, {c}, {size[0]}, {size[1]}]" if size else f"[N, {c}, H, W]"
    expected = f"{want} (also [{c}, H, W], [B, n, {c}, H, W], or a list of [{c}, H, W] per image)"
    parts = [p[None] if p.ndim == 3 else p for p in value.parts]
    if value.listed and any(p.ndim != 4 or p.shape[0] != 1 for p in parts):
        raise ImageShapeError(
            f"{key} is a list of tensors that are not one image each",
            found=[list(p.shape) for p in value.parts],
            expected=f"one [{c}, H, W] (or [1, {c}, H, W]) tensor per image",
            fix="pass one processed image per list entry, or the processor's stacked output",
        )
    if value.listed and len({tuple(p.shape) for p in parts}) > 1:
        raise ImageShapeError(
            f"{key} is a list of differently shaped images",
            found=[list(p.shape) for p in value.parts],
            expected=expected,
            fix="process every image with this checkpoint's processor",
        )
    x = torch.cat(parts) if value.listed else parts[0]
    shape = list(x.shape)
    if x.ndim == 5:
        x = x.reshape(-1, *x.shape[2:])
    if x.ndim != 4 or x.shape[0] == 0:
        raise ImageShapeError(
            f"{key} has an unsupported rank",
            found=shape,
            expected=expected,
            fix="pass one tensor per sample holding its images, as the processor returned them",
        )
    if x.shape[1] != c:
        channels_last = x.shape[-1] == c
        raise ImageShapeError(
            f"{key} does not have {c} channels first",
            found=shape,
            expected=expected,
            fix="permute channels-last pixels with .permute(0, 3, 1, 2)"
            if channels_last
            else "pass the image processor's output unchanged",
        )
    if size is not None and tuple(x.shape[-2:]) != size:
        found = (int(x.shape[-2]), int(x.shape[-1]))
        elsewhere = [k for k, v in form.views.items() if k != key and v.size == found]
        fix = (
            f"this is the {found[0]}x{found[1]} view; pass it as {elsewhere[0]!r}"
            if elsewhere
            else "these pixels were processed for another resolution or backbone; re-process the raw image with "
            "this checkpoint's processor (or pass the raw image under 'image')"
        )
        problem = f"{key} does not have the backbone's input shape (wrong resolution)"
        raise ImageShapeError(problem, found=shape, expected=expected, fix=fix)
    return x.to(torch.float32).contiguous()


def geometries_from_sizes(
    spec: Any, sizes: Sequence[Size | None] | None, num_images: int, input_size: Size | None
) -> list[ImageGeometry]:
    """``spec.geometry(size)`` per image; an unknown size is a :class:`MissingInputError`."""
    check_count(sizes, num_images)
    if sizes is None or any(s is None for s in sizes):
        opt_out = (
            f"; to treat the {input_size[0]}x{input_size[1]} input itself as the image, pass "
            f"image_sizes=[{tuple(input_size)}]"
            if input_size
            else ""
        )
        raise MissingInputError(
            "the original image size is unknown, so the geometry is too",
            found=f"processed pixels of {num_images} image(s) and no image_sizes, meta_data or raw image for "
            + ("them" if sizes is None else f"image(s) {[i for i, s in enumerate(sizes) if s is None]}"),
            expected="the original (height, width) of each image",
            fix="pass image_sizes=[(height, width), ...] or F-LMM meta_data, or the raw image under 'image'" + opt_out,
        )
    return [spec.geometry(s) for s in sizes if s is not None]


def resolve_image_stacks(spec: Any, form: PixelForm, images: SampleImages) -> ResolvedImages:
    """Pixels per view (given, else from the raw images) and a geometry per image from its size."""
    pixels: dict[str, torch.Tensor] = {}
    for key in form.views:
        if key in images.processed:
            pixels[key] = stack_images(images.processed[key], key, form)
        elif images.from_raw is not None and key in images.from_raw:
            pixels[key] = images.from_raw[key].to(torch.float32)
    missing = [k for k in form.views if k not in pixels]
    if missing:
        raise MissingInputError(
            f"the sample lacks {missing} and has no raw image to compute it from",
            found=f"keys {sorted(images.processed)}",
            expected=f"all of {list(form.views)}",
            fix="keep every output of the stock processor in the sample, or include the raw image under 'image'",
        )
    counts = one_count(
        {key: int(x.shape[0]) for key, x in pixels.items()},
        "pixel inputs disagree on the number of images",
        fix="keep every view of every image, in the same order",
        error=ImageShapeError,
    )
    first = next(iter(pixels.values()))
    input_size = (int(first.shape[-2]), int(first.shape[-1]))
    return ResolvedImages(pixels, geometries_from_sizes(spec, images.sizes, counts, input_size))
