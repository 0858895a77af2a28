"""Attention overlays as figures: the map over the image, a colour bar in attention units, a title.

Drawn with matplotlib's Agg backend (files only, no display), imported by ``run`` alone so that
the other commands start fast. A map from a random-weight model carries a red mark on every
figure: such maps show the pipeline works, not where a trained model looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import OptionError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

RANDOM_WEIGHTS_MARK = "RANDOM WEIGHTS: tiny default model, the maps carry no meaning"
PANEL_INCHES = 8.0
"""Long side of an overlay's image panel (at 100 dpi); the PNG keeps the image's aspect ratio."""
SHEET_PANEL_INCHES = 4.0
"""Long side of each panel of a contact sheet."""
DPI = 100
DISPLAY_MAX_SIDE = int(PANEL_INCHES * DPI)
"""Longest side, in pixels, of the image and maps a figure draws: what its largest panel shows. Maps
are sampled at this size (same field of view), so memory does not grow with the original image."""


@dataclass(frozen=True)
class OverlayStyle:
    """How overlays look (``run``'s ``--cmap``, ``--alpha``, ``--gray-underlay``)."""

    cmap: str = "turbo"
    alpha: float = 0.5
    gray_underlay: bool = False
    random_weights: bool = False

    def check(self) -> None:
        """Refuse a colour map matplotlib does not have or an alpha outside [0, 1]."""
        import matplotlib

        if self.cmap not in matplotlib.colormaps:
            raise OptionError(
                "--cmap is not a matplotlib colour map",
                found=repr(self.cmap),
                expected="a name from matplotlib.colormaps, e.g. turbo, viridis, inferno, jet",
                fix="pick one of matplotlib's colour maps",
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise OptionError(
                "--alpha is outside [0, 1]",
                found=self.alpha,
                expected="0 (image only) to 1 (map only)",
                fix="use e.g. --alpha 0.5",
            )


@dataclass(frozen=True)
class Panel:
    """One map to draw: its label and values on the original image's pixels ``[H, W]``."""

    label: str
    values: np.ndarray


def value_range(panels: Sequence[Panel]) -> tuple[float, float]:
    """One (min, max) over several maps: the shared colour scale."""
    return min(float(p.values.min()) for p in panels), max(float(p.values.max()) for p in panels)


def display_image(image: Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> Image.Image:
    """``image`` shrunk (aspect kept) so its longest side is at most ``max_side``; as is if smaller."""
    scale = max_side / max(image.width, image.height)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _figure(rows: int, cols: int, image: Image.Image, inches: float) -> tuple[Figure, np.ndarray]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # not pyplot: nothing global, no display, freed with the object

    scale = inches / max(image.width, image.height)
    panel_w, panel_h = image.width * scale, image.height * scale
    fig = Figure(figsize=(cols * (panel_w + 1.6), rows * (panel_h + 0.7) + 1.1), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def _underlay(image: Image.Image, style: OverlayStyle) -> np.ndarray:
    rgb = image.convert("L").convert("RGB") if style.gray_underlay else image.convert("RGB")
    return np.asarray(rgb)


def _draw(
    ax: Axes, base: np.ndarray, values: np.ndarray, style: OverlayStyle, vmin: float, vmax: float
) -> ScalarMappable:
    """The map over the image; returns an opaque mappable for the colour bar (the overlay itself is see-through)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax.imshow(base)
    ax.imshow(values, cmap=style.cmap, alpha=style.alpha, vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    return ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=style.cmap)


def _mark(fig: Figure, title: str, style: OverlayStyle) -> None:
    heading = f"{title}\n{RANDOM_WEIGHTS_MARK}" if style.random_weights else title
    text = fig.suptitle(heading, fontsize=12)
    if style.random_weights:
        text.set_color("#b00000")
        text.set_fontweight("bold")


def overlay_figure(
    image: Image.Image, panel: Panel, title: str, style: OverlayStyle, scale: tuple[float, float] | None = None
) -> Figure:
    """One map over ``image``, titled ``title`` and the panel's label, with a colour bar in attention
    units over ``scale`` (or the map's own range)."""
    fig, axes = _figure(1, 1, image, PANEL_INCHES)
    vmin, vmax = scale if scale is not None else value_range([panel])
    shown = _draw(axes[0, 0], _underlay(image, style), panel.values, style, vmin, vmax)
    fig.colorbar(shown, ax=axes[0, 0], label="attention", shrink=0.9)
    _mark(fig, f"{panel.label}  |  {title}", style)
    return fig


def contact_sheet(image: Image.Image, panels: Sequence[Panel], title: str, style: OverlayStyle, shared: bool) -> Figure:
    """Every map of one image side by side; one colour bar when ``shared``, else one per map."""
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = _figure(rows, cols, image, SHEET_PANEL_INCHES)
    base = _underlay(image, style)
    scale = value_range(panels) if shared else None
    shown: ScalarMappable | None = None
    for ax, panel in zip(axes.flat, panels, strict=False):
        vmin, vmax = scale if scale is not None else value_range([panel])
        shown = _draw(ax, base, panel.values, style, vmin, vmax)
        ax.set_title(panel.label, fontsize=11)
        if not shared:
            fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    if shared and shown is not None:
        fig.colorbar(shown, ax=axes, label="attention (one scale for all words)", shrink=0.8)
    _mark(fig, title, style)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """Write the figure as a PNG and free it (figures are not kept by pyplot, so no leak)."""
    fig.savefig(path, format="png")
