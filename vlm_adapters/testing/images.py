"""Deterministic test images: smooth content (so patch borders are continuous) of any size."""

from __future__ import annotations

import numpy as np
from PIL import Image


def smooth_image(height: int, width: int, seed: int = 0) -> Image.Image:
    """An RGB image of low-frequency colour waves, different per ``seed``."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    fy, fx, phase = rng.uniform(0.5, 3.0, 3), rng.uniform(0.5, 3.0, 3), rng.uniform(0, 6.3, 3)
    arr = 0.5 + 0.45 * np.sin(2 * np.pi * (fy * y + fx * x) + phase)
    return Image.fromarray((arr * 255).round().astype(np.uint8), "RGB")


def solid_image(height: int, width: int, color: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    return Image.new("RGB", (width, height), color)


def random_sizes(count: int, seed: int = 0, low: int = 8, high: int = 2000) -> list[tuple[int, int]]:
    """``count`` (height, width) pairs: log-uniform sides plus thin and tiny edge cases."""
    rng = np.random.default_rng(seed)
    sides = np.exp(rng.uniform(np.log(low), np.log(high), size=(count, 2))).round().astype(int)
    sizes = [(int(h), int(w)) for h, w in sides]
    edge = [(low, low), (low, high), (high, low), (1, 1), (3, 5), (high, high)]
    return edge + sizes[: max(0, count - len(edge))]
