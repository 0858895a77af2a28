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

import torch

from vlm_adapters import AmbiguousGridError, DynamicSpec, GridError

from .grid import KEEP_GRID_FIX, Grid, candidate_grids

MIN_RATIO = 2.0
"""A wrong grid's disputed edges must be at least this many times more discontinuous."""
MIN_Z = 6.0
"""...and that difference must be this many standard errors of a true edge's cost."""
MAX_PLAUSIBLE = 1.5
"""The winner's edges may be at most this much rougher than adjacent pixel pairs inside windows."""
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


def _windows(rows: torch.Tensor, spec: DynamicSpec) -> torch.Tensor:
    """``[R, C*T*p*p]`` patch rows -> ``[R / m^2, C, m*p, m*p]`` merge windows (first frame)."""
    c, tp, p, m = spec.in_channels, spec.temporal_patch_size, spec.patch_size, spec.merge_size
    n = rows.shape[0]
    x = rows.detach().float().reshape(n, c, tp, p, p)[:, :, 0]
    x = x.reshape(n // (m * m), m, m, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n // (m * m), c, m * p, m * p)


class _Edges:
    """Costs of every edge between windows ``i`` and ``j`` a candidate could claim."""

    def __init__(self, win: torch.Tensor) -> None:
        self.n = win.shape[0]
        self.top, self.bottom = win[:, :, 0, :], win[:, :, -1, :]
        left, right = win[:, :, :, 0], win[:, :, :, -1]
        self.horizontal = (right[:-1] - left[1:]).abs().mean((1, 2))  # window i | window i+1
        # true edges, for reference: adjacent pixel pairs inside windows, as edge-sized rows
        inner_v = (win[:, :, 1:, :] - win[:, :, :-1, :]).abs().mean(1)  # [n, S-1, S]
        inner_h = (win[:, :, :, 1:] - win[:, :, :, :-1]).abs().mean(1).transpose(1, 2)
        inner = torch.cat([inner_v.mean(-1), inner_h.mean(-1)], dim=1).flatten()
        self.inner_mean = float(inner.mean())
        self.inner_std = float(inner.std()) if inner.numel() > 1 else 0.0

    def vertical(self, cols: int) -> torch.Tensor:
        """Window i over window i + cols, for every i with a window below."""
        if self.n <= cols:
            return torch.zeros(0)
        return (self.bottom[:-cols] - self.top[cols:]).abs().mean((1, 2))

    def wraps(self, cols: int) -> torch.Tensor:
        """Mask over horizontal edges (i, i+1) that a ``cols``-wide grid does *not* claim."""
        return (torch.arange(self.n - 1) % cols) == cols - 1


def _disputed(edges: _Edges, own: int, rival: int) -> torch.Tensor:
    """Costs of the edges a grid ``own`` windows wide claims and a ``rival``-wide grid does not."""
    horizontal = edges.horizontal[edges.wraps(rival) & ~edges.wraps(own)]
    return torch.cat([edges.vertical(own), horizontal])


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
            f"image {image}: image_grid_thw is missing and the patch content does not single out "
            f"one grid ({why})",
            found=f"{rows.shape[0]} patch rows and no image size",
            candidates=[list(c) for c in candidates],
            fix=KEEP_GRID_FIX,
        )

    edges = _Edges(_windows(rows, spec))
    if edges.inner_mean <= 1e-6:
        raise refuse("the image is flat")
    m = spec.merge_size
    widths = {c: c[2] // m for c in candidates}
    own_cost = {
        c: float(torch.cat([edges.vertical(b), edges.horizontal[~edges.wraps(b)]]).mean()) for c, b in widths.items()
    }
    best = min(candidates, key=own_cost.__getitem__)
    plausibility = own_cost[best] / edges.inner_mean
    if plausibility > MAX_PLAUSIBLE:
        raise refuse(f"even the best grid is {plausibility:.1f}x rougher across windows than inside them")
    sigma = max(edges.inner_std, 1e-6)
    worst_ratio, worst_z = math.inf, math.inf
    for rival in candidates:
        if rival == best:
            continue
        mine = _disputed(edges, widths[best], widths[rival])
        theirs = _disputed(edges, widths[rival], widths[best])
        if mine.numel() < MIN_EDGES or theirs.numel() < MIN_EDGES:
            raise refuse(f"too few window edges tell {list(best)} from {list(rival)}")
        a, b = float(mine.mean()), float(theirs.mean())
        ratio = b / max(a, 1e-9)
        z = (b - a) / (sigma * math.sqrt(1 / mine.numel() + 1 / theirs.numel()))
        worst_ratio, worst_z = min(worst_ratio, ratio), min(worst_z, z)
        if ratio < MIN_RATIO or z < MIN_Z:
            raise refuse(f"{list(best)} beats {list(rival)} only by {ratio:.2f}x (z={z:.1f})")
    return Recovery(best, candidates, worst_ratio, worst_z, plausibility)
