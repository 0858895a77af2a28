"""Heatmap overlays: a map on the original image's pixels blended over the image as a PNG."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# A perceptually ordered ramp (dark blue -> teal -> yellow -> red), interpolated linearly.
_RAMP = np.array([[0.05, 0.03, 0.35], [0.13, 0.40, 0.60], [0.20, 0.70, 0.55], [0.95, 0.85, 0.20], [0.85, 0.15, 0.10]])


def colorize(values: np.ndarray) -> np.ndarray:
    """``[H, W]`` values in [0, 1] -> ``[H, W, 3]`` uint8 colours."""
    x = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_RAMP) - 2)
    frac = (x - lo)[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    return (rgb * 255).round().astype(np.uint8)


def overlay(image: Image.Image, heatmap: torch.Tensor, alpha: float = 0.5) -> Image.Image:
    """Blend a ``[H, W]`` heatmap (any scale; min-max normalised here) over ``image``."""
    h = heatmap.detach().float().cpu().numpy()
    if h.shape != (image.height, image.width):
        raise ValueError(f"heatmap {h.shape} does not match image {(image.height, image.width)}")
    span = float(h.max() - h.min())
    h = (h - h.min()) / span if span > 0 else np.zeros_like(h)
    colored = Image.fromarray(colorize(h), "RGB")
    return Image.blend(image.convert("RGB"), colored, alpha)
