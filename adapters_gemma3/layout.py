"""Which crops each image of a dataset sample has: from what the sample declares, checked against
the processor's crop rule, recovered only where that rule determines it exactly.

Research code keeps Gemma 3's views in several forms: the processor's flat stack of every view
of every image, crops stacked per image, per-image crop counts (the image processor's
``num_crops``, which the processor itself drops), plus sizes (``image_sizes``, ``meta_data``,
raw images). A crop's box needs the image's original size; the rule then fixes the boxes, so
the only freedom is whether pan-and-scan was on when the sample was made. That is recovered when
exactly one setting (this processor's, or the same rule switched the other way) explains the
views the sample holds, and refused otherwise, naming the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlm_adapters import AmbiguousGridError, MissingInputError, TokenCountError
from vlm_adapters.errors import ImageSizeError
from vlm_adapters.geometry import Size

from .crops import CropBox, PanAndScan


class AmbiguousCropsError(AmbiguousGridError):
    """The sample's views fit several crop layouts and nothing at hand tells them apart."""


SIZE_FIX = "pass image_sizes=[(height, width), ...] (or F-LMM meta_data, or the raw image under 'image')"


def _setting(rule: PanAndScan, enabled: bool) -> str:
    if not enabled:
        return "pan-and-scan off"
    return (
        f"pan-and-scan on (min crop {rule.min_crop_size}, at most {rule.max_num_crops} crops, "
        f"from aspect ratio {rule.min_ratio_to_activate:g})"
    )


@dataclass(frozen=True)
class CropLayout:
    """Every image's crop boxes, under which setting, and a note when that was not the processor's."""

    boxes: list[list[CropBox]]
    pan_and_scan: bool
    note: str | None = None


def crops_per_image(
    rule: PanAndScan,
    sizes: Sequence[Size | None] | None,
    total_views: int,
    declared: Sequence[int] | None = None,
) -> CropLayout:
    """The crop boxes of every image, and a note when the layout was recovered.

    ``total_views``: views the sample's pixels hold (whole images plus crops, all images);
    ``declared``: crops per image where the sample says (a per-image stack, ``num_crops``).
    """
    _check_image_count(sizes, total_views, declared)
    if sizes is None or any(s is None for s in sizes):
        return _unknown_sizes(rule, sizes, total_views, declared)
    known = [s for s in sizes if s is not None]
    settings = [rule.enabled, not rule.enabled]
    layouts = {on: [rule.crop_boxes(s) if on else [] for s in known] for on in settings}
    fits = [on for on in settings if _fits(layouts[on], total_views, declared)]
    if not fits:
        raise _no_fit(rule, known, total_views, declared, layouts)
    chosen = fits[0]  # the processor's own setting wins when both explain the sample (no crops at all)
    note = None
    if chosen != rule.enabled:
        note = (
            f"the sample was made with {_setting(rule, chosen)}, not this processor's setting; its crops "
            f"{[len(b) for b in layouts[chosen]]} follow from the image sizes exactly"
        )
    return CropLayout(layouts[chosen], chosen, note)


def _check_image_count(sizes: Sequence[Size | None] | None, total_views: int, declared: Sequence[int] | None) -> None:
    """The sizes list one entry per image: no more than there are views, as many as declared counts."""
    if sizes is None:
        return
    if len(sizes) > total_views or (declared is not None and len(declared) != len(sizes)):
        raise ImageSizeError(
            "the sizes do not list one entry per image",
            found=f"{len(sizes)} size(s) for {total_views} view(s)"
            + ("" if declared is None else f" of {len(declared)} image(s)"),
            expected="one (height, width) per image (each image has 1 + its crops views)",
            fix="keep image_sizes / meta_data aligned with the images, one entry each",
        )


def _fits(layout: list[list[CropBox]], total_views: int, declared: Sequence[int] | None) -> bool:
    counts = [len(boxes) for boxes in layout]
    if declared is not None and list(declared) != counts:
        return False
    return total_views == sum(1 + n for n in counts)


def _no_fit(
    rule: PanAndScan,
    sizes: list[Size],
    total_views: int,
    declared: Sequence[int] | None,
    layouts: dict[bool, list[list[CropBox]]],
) -> TokenCountError:
    found = f"{total_views} views for {len(sizes)} image(s) of sizes {[list(s) for s in sizes]}"
    if declared is not None:
        found += f", declared crops per image {list(declared)}"
    expected = " or ".join(
        f"{[len(b) for b in layouts[on]]} crops per image ({sum(1 + len(b) for b in layouts[on])} views) with "
        f"{_setting(rule, on)}"
        for on in (rule.enabled, not rule.enabled)
    )
    return TokenCountError(
        "the sample's views do not match its images under this processor's crop rule",
        found=found,
        expected=expected,
        fix="keep every view the processor made for every image, in order, with the sizes of the images they "
        "came from; or re-process the raw images with this checkpoint's processor",
    )


def _unknown_sizes(
    rule: PanAndScan, sizes: Sequence[Size | None] | None, total_views: int, declared: Sequence[int] | None
) -> CropLayout:
    """Without every original size no crop box is known; say what the views could be."""
    num_images = len(sizes) if sizes is not None else (len(declared) if declared is not None else None)
    counts = list(declared) if declared is not None else None
    if counts is None and num_images is not None and total_views == num_images:
        counts = [0] * num_images
    if counts is not None and not any(counts):
        unknown = [i for i, s in enumerate(sizes or [None] * len(counts)) if s is None]
        raise MissingInputError(
            "the original image size is unknown, so the geometry is too",
            found=f"processed views of {len(counts)} image(s) and no size for image(s) {unknown}",
            expected="the original (height, width) of each image",
            fix=SIZE_FIX,
        )
    if counts is not None:
        candidates = [
            f"image {i}: {n} crops side by side (a wide image) or stacked (a tall image)"
            for i, n in enumerate(counts)
            if n
        ]
        problem = "pan-and-scan crops without the original image size: their boxes are unknown"
    else:
        candidates = _splits(total_views, rule.max_num_crops)
        problem = "the sample's views cannot be assigned to images: neither sizes nor crop counts are given"
    raise AmbiguousCropsError(
        problem,
        found=f"{total_views} views" + (f", crops per image {counts}" if counts is not None else ""),
        candidates=candidates,
        fix=SIZE_FIX,
    )


def _splits(total_views: int, max_crops: int, limit: int = 6) -> list[str]:
    """A few ways ``total_views`` views can be images with 0..``max_crops`` crops each."""
    out = [f"{total_views} image(s) without crops"]
    for crops in range(2, max_crops + 1):
        if total_views % (crops + 1) == 0:
            out.append(f"{total_views // (crops + 1)} image(s) with {crops} crops each")
    if total_views > 1:
        out.append(f"1 image with {total_views - 1} crops" if total_views - 1 <= max_crops else "mixed crop counts")
    return list(dict.fromkeys(out))[:limit]
