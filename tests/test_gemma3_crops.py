"""The pan-and-scan crop rule equals the stock ``Gemma3ImageProcessor.pan_and_scan_batched``.

The stock function slices an image tensor; we hand it a tensor that holds no pixels worth
processing and read each crop's box back from its shape and storage offset, so thousands of
sizes cost milliseconds and the boxes come from transformers itself.
"""

from __future__ import annotations

import itertools
import math

import pytest
from gemma3_stock import SETTINGS, STOCK_DEFAULTS, crop_test_sizes, stock_boxes

from adapters_gemma3.crops import PanAndScan
from vlm_adapters import ImageShapeError

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
