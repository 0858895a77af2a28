"""Recover a lost grid from the patch content, only when the content leaves no doubt.

The rows of a patch matrix come in merge windows (``m*p`` pixels square, e.g. 28x28) that are
intact whatever the grid: a candidate grid only decides which windows touch. In the true grid,
touching windows continue each other like any two adjacent pixel rows of a photo; in a wrong grid
they are pieces from unrelated places. So each candidate is scored by the pixel discontinuity
across the window edges it claims, and the best candidate must beat *every* other one on the
edges where the two disagree, by a clear ratio and with statistical significance, and must itself
look as continuous as the inside of a window. Noise, flat images and tiny images fail these tests
and raise :class:`AmbiguousGridError`; nothing here ever guesses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vlm_adapters import AmbiguousGridError, DynamicSpec, GridError

from .grid import KEEP_GRID_FIX, Grid, candidate_grids

MIN_RATIO = 2.0
"""A wrong grid's disputed edges must be at least this many times more discontinuous."""
MIN_Z = 6.0
"""...and that difference must be this many standard errors of a true edge's cost."""
MAX_PLAUSIBLE = 1.8
"""The winner's vertical window edges may be at most this much rougher than vertical pixel pairs
inside windows (true grids measure about 1.0-1.6; a grid one window too wide or narrow, 2.3+)."""
MIN_EDGES = 2
"""Fewer disputed edges than this on either side is too little evidence."""


@dataclass(frozen=True)
class Recovery:
    """A grid recovered from content, with the evidence (for the warning and for tests)."""

    grid: Grid
    candidates: list[Grid]
    ratio: float
    """Smallest ratio of a rival's disputed-edge cost to the winner's (``inf``: one candidate)."""
    z: float
    plausibility: float


def _windows(rows: torch.Tensor, spec: DynamicSpec) -> np.ndarray:
    """``[R, C*T*p*p]`` patch rows -> ``[R / m^2, C, m*p, m*p]`` merge windows (first frame).

    The scoring runs in numpy: many small reductions, which torch's thread pool makes slow on a
    busy CPU.
    """
    c, tp, p, m = spec.in_channels, spec.temporal_patch_size, spec.patch_size, spec.merge_size
    n = rows.shape[0]
    x = rows.detach().float().cpu().numpy().reshape(n, c, tp, p, p)[:, :, 0]
    x = x.reshape(n // (m * m), m, m, c, p, p).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(x.reshape(n // (m * m), c, m * p, m * p))


class _Edges:
    """Costs of every edge between windows ``i`` and ``j`` a candidate could claim."""

    def __init__(self, win: np.ndarray) -> None:
        self.n = win.shape[0]
        self.top, self.bottom = np.ascontiguousarray(win[:, :, 0, :]), np.ascontiguousarray(win[:, :, -1, :])
        left, right = win[:, :, :, 0], win[:, :, :, -1]
        self.horizontal = np.abs(right[:-1] - left[1:]).mean((1, 2))  # window i | window i+1
        self._vertical: dict[int, np.ndarray] = {}
        # true edges, for reference: adjacent pixel pairs inside windows, as edge-sized rows
        inner_v = np.abs(win[:, :, 1:, :] - win[:, :, :-1, :]).mean((1, 3))  # [n, S-1]
        inner_h = np.abs(win[:, :, :, 1:] - win[:, :, :, :-1]).mean((1, 2))
        inner = np.concatenate([inner_v, inner_h], axis=1).ravel()
        self.inner_mean = float(inner.mean())
        self.inner_vertical = float(inner_v.mean())
        self.inner_std = float(inner.std(ddof=1)) if inner.size > 1 else 0.0

    def vertical(self, cols: int) -> np.ndarray:
        """Window i over window i + cols, for every i with a window below."""
        if self.n <= cols:
            return np.zeros(0)
        if cols not in self._vertical:
            self._vertical[cols] = np.abs(self.bottom[:-cols] - self.top[cols:]).mean((1, 2))
        return self._vertical[cols]

    def wraps(self, cols: int) -> np.ndarray:
        """Mask over horizontal edges (i, i+1) that a ``cols``-wide grid does *not* claim."""
        return (np.arange(self.n - 1) % cols) == cols - 1


def _disputed(edges: _Edges, own: int, rival: int) -> np.ndarray:
    """Costs of the edges a grid ``own`` windows wide claims and a ``rival``-wide grid does not."""
    horizontal = edges.horizontal[edges.wraps(rival) & ~edges.wraps(own)]
    return np.concatenate([edges.vertical(own), horizontal])


def recover_grid(rows: torch.Tensor, spec: DynamicSpec, image: int = 0) -> Recovery:
    """The grid of one image's patch rows, or :class:`AmbiguousGridError` listing the candidates."""
    m2 = spec.merge_size**2
    candidates = candidate_grids(rows.shape[0], spec) if rows.shape[0] % m2 == 0 else []
    if not candidates:
        raise GridError(
            f"image {image}: no grid of this backbone has this many patch rows",
            found=f"{rows.shape[0]} rows",
            expected=f"t*h*w rows with even h, w and {spec.min_pixels}..{spec.max_pixels} pixels",
            fix="pass the processor's pixel_values and image_grid_thw unchanged",
        )
    if len(candidates) == 1:
        return Recovery(candidates[0], candidates, math.inf, math.inf, 0.0)

    def refuse(why: str) -> AmbiguousGridError:
        return AmbiguousGridError(
            f"image {image}: image_grid_thw is missing and the patch content does not single out one grid ({why})",
            found=f"{rows.shape[0]} patch rows and no image size",
            candidates=[list(c) for c in candidates],
            fix=KEEP_GRID_FIX,
        )

    edges = _Edges(_windows(rows, spec))
    if edges.inner_mean <= 1e-6:
        raise refuse("the image is flat")
    m = spec.merge_size
    widths = {c: c[2] // m for c in candidates}
    # A single row or column of windows has edges in one direction only: nothing to verify the
    # other against (a scrambled image in raster order looks continuous along the row). Such
    # grids compete as rivals but never win.
    checkable = [c for c in candidates if c[1] > m and c[2] > m]
    if not checkable:
        raise refuse("a single row or column of merge windows cannot be checked")
    own_cost = {
        c: float(np.concatenate([edges.vertical(b), edges.horizontal[~edges.wraps(b)]]).mean())
        for c, b in widths.items()
    }
    best = min(checkable, key=own_cost.__getitem__)
    plausibility = float(edges.vertical(widths[best]).mean()) / max(edges.inner_vertical, 1e-9)
    if plausibility > MAX_PLAUSIBLE:
        raise refuse(f"even the best grid is {plausibility:.1f}x rougher across windows than inside them")
    sigma = max(edges.inner_std, 1e-6)
    worst_ratio, worst_z = math.inf, math.inf
    for rival in candidates:
        if rival == best:
            continue
        mine = _disputed(edges, widths[best], widths[rival])
        theirs = _disputed(edges, widths[rival], widths[best])
        if mine.size < MIN_EDGES or theirs.size < MIN_EDGES:
            raise refuse(f"too few window edges tell {list(best)} from {list(rival)}")
        a, b = float(mine.mean()), float(theirs.mean())
        ratio = b / max(a, 1e-9)
        z = (b - a) / (sigma * math.sqrt(1 / mine.size + 1 / theirs.size))
        worst_ratio, worst_z = min(worst_ratio, ratio), min(worst_z, z)
        if ratio < MIN_RATIO or z < MIN_Z:
            raise refuse(f"{list(best)} beats {list(rival)} only by {ratio:.2f}x (z={z:.1f})")
    return Recovery(best, candidates, worst_ratio, worst_z, plausibility)
