"""The pan-and-scan crop rule equals the stock ``Gemma3ImageProcessor.pan_and_scan_batched``.

The stock function slices an image tensor; we hand it a tensor that holds no pixels worth
processing and read each crop's box back from its shape and storage offset, so thousands of
sizes cost milliseconds and the boxes come from transformers itself.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from transformers import Gemma3ImageProcessor

from adapters_gemma3.crops import CropBox, PanAndScan
from vlm_adapters import ImageShapeError

STOCK_DEFAULTS = {"min_crop_size": 256, "max_num_crops": 4, "min_ratio_to_activate": 1.2}
"""The stock processor's defaults (``Gemma3Processor.images_kwargs``), checked below."""
SETTINGS = [
    STOCK_DEFAULTS,
    {"min_crop_size": 64, "max_num_crops": 8, "min_ratio_to_activate": 1.0},
    {"min_crop_size": 300, "max_num_crops": 2, "min_ratio_to_activate": 2.5},
    {"min_crop_size": 128, "max_num_crops": 6, "min_ratio_to_activate": 1.5},
]


def stock_boxes(size: tuple[int, int], settings: dict[str, float]) -> list[CropBox]:
    """Crop boxes as the stock processor cuts them, read from the slices it returns."""
    h, w = size
    image = torch.empty((1, h, w), dtype=torch.uint8)
    crops = Gemma3ImageProcessor().pan_and_scan_batched(
        image,
        pan_and_scan_min_crop_size=int(settings["min_crop_size"]),
        pan_and_scan_max_num_crops=int(settings["max_num_crops"]),
        pan_and_scan_min_ratio_to_activate=float(settings["min_ratio_to_activate"]),
    )
    boxes = []
    for crop in crops:
        top, left = divmod(crop.storage_offset(), w)
        boxes.append((top, left, top + crop.shape[-2], left + crop.shape[-1]))
    return boxes


def crop_test_sizes(seed: int = 0) -> list[tuple[int, int]]:
    """Log-uniform sizes, aspect ratios at every branch of the rule, and extreme strips."""
    rng = np.random.default_rng(seed)
    sides = np.exp(rng.uniform(np.log(16), np.log(4000), size=(400, 2))).round().astype(int)
    sizes = [(int(h), int(w)) for h, w in sides]
    for short in (224, 255, 256, 257, 300, 511, 512, 513, 896, 1000):
        for ratio in (1.0, 1.19, 1.2, 1.21, 1.49, 1.5, 1.51, 2.0, 2.49, 2.5, 2.51, 3.5, 4.5, 5.0, 8.0, 20.0):
            long = round(short * ratio)
            sizes += [(short, long), (long, short)]
    for _ in range(60):  # strips up to 1:200
        short = int(rng.integers(1, 300))
        long = int(short * rng.uniform(5, 200))
        sizes += [(short, long), (long, short)]
    return sizes


SIZES = crop_test_sizes()


def test_stock_defaults_are_what_the_processor_uses() -> None:
    from transformers import Gemma3Processor

    defaults = Gemma3Processor.images_kwargs
    assert {k: defaults[f"pan_and_scan_{k}"] for k in STOCK_DEFAULTS} == STOCK_DEFAULTS
    assert defaults["do_pan_and_scan"] is False


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_crop_boxes_equal_stock(settings: dict[str, float]) -> None:
    rule = PanAndScan(enabled=True, **settings)
    assert len(SIZES) >= 500
    cropped = 0
    for size in SIZES:
        want = stock_boxes(size, settings)
        if want and min(min(b - t, r - left) for t, left, b, r in want) == 0:
            with pytest.raises(ImageShapeError):  # the stock processor would cut an empty crop
                rule.crop_boxes(size)
            continue
        assert rule.crop_boxes(size) == want, size
        assert rule.num_crops(size) == len(want)
        cropped += bool(want)
    assert cropped > 100  # the sizes really exercise the cropping branch


def test_crops_tile_the_long_side_exactly() -> None:
    rule = PanAndScan(enabled=True, **STOCK_DEFAULTS)
    for h, w in SIZES:
        boxes = rule.crop_boxes((h, w))
        if not boxes:
            continue
        landscape = w >= h
        spans = [(left, r) if landscape else (t, b) for t, left, b, r in boxes]
        assert spans[0][0] == 0 and spans[-1][1] == (w if landscape else h)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert 2 <= len(boxes) <= STOCK_DEFAULTS["max_num_crops"]
        assert max(h, w) / min(h, w) >= STOCK_DEFAULTS["min_ratio_to_activate"]
        step = math.ceil(max(h, w) / len(boxes))
        assert all(min(b - t, r - left) >= STOCK_DEFAULTS["min_crop_size"] for t, left, b, r in boxes[:-1]), step


def test_disabled_rule_adds_no_crops() -> None:
    rule = PanAndScan(enabled=False, **STOCK_DEFAULTS)
    assert rule.num_crops((300, 1000)) == 0
    assert len(rule.crop_boxes((300, 1000))) == 3


def test_settings_that_cut_empty_crops_raise() -> None:
    """With tiny crops allowed, the stock rule can place a crop past the image edge."""
    settings = {"min_crop_size": 1, "max_num_crops": 4, "min_ratio_to_activate": 1.0}
    rule = PanAndScan(enabled=True, **settings)
    empty = 0
    for h in range(1, 4):
        for w in range(h, 40):
            for size in ((h, w), (w, h)):
                want = stock_boxes(size, settings)
                if want and min(min(b - t, r - left) for t, left, b, r in want) == 0:
                    empty += 1
                    with pytest.raises(ImageShapeError, match="empty crop"):
                        rule.crop_boxes(size)
                else:
                    assert rule.crop_boxes(size) == want, size
    assert empty > 0
