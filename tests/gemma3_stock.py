"""Ground truth for Gemma 3 tests, from the stock processor: its crop function on any size."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Gemma3ImageProcessor

from adapters_gemma3.crops import CropBox

STOCK_DEFAULTS = {"min_crop_size": 256, "max_num_crops": 4, "min_ratio_to_activate": 1.2}
"""The stock processor's defaults (``Gemma3Processor.images_kwargs``), checked in test_gemma3_crops."""
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
