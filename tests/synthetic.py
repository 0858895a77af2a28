"""Synthetic images with photo statistics, for offline tests of grid recovery (test-only: not shipped).

No photos can be downloaded here, and grid recovery from content must be proven on images that
behave like photos (smooth regions, edges, a 1/f spectrum) *and* refuse pure noise. These
generators are deterministic per seed.
"""

from __future__ import annotations

import numpy as np


def photo_like(height: int, width: int, seed: int = 0, roughness: float = 1.5) -> np.ndarray:
    """``[H, W, 3]`` uint8: 1/f^roughness background plus a few flat shapes with soft edges.

    ``roughness`` 2 is very smooth, 1 has the spectrum of natural photos at full resolution.
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**roughness
        spectrum[0, 0] = 0.0
        channels.append(np.fft.irfft2(spectrum, s=(height, width)))
    img = np.stack(channels, -1)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-9)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.4) * height + 1, rng.uniform(0.05, 0.4) * width + 1
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        alpha = np.clip((1.0 - inside) * 4.0, 0.0, 1.0)[..., None]
        img = img * (1 - alpha) + rng.uniform(0, 1, size=3) * alpha
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def noise_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """``[H, W, 3]`` uint8 of independent uniform pixels: no spatial structure at all."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
