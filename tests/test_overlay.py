"""Overlay figures: title with backbone, word, layers and heads; a colour bar in attention units (one per
word, or one shared); the random-weights mark; options checked before anything runs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlm_adapters.errors import OptionError
from vlm_adapters.overlay import RANDOM_WEIGHTS_MARK, OverlayStyle, Panel, contact_sheet, overlay_figure

IMAGE = Image.new("RGB", (64, 48), (120, 30, 30))
HEADING = "deepseek_vl  |  layers 0,1 of 2  |  heads all of 2"


def panels() -> list[Panel]:
    rng = np.random.default_rng(0)
    return [Panel('"red"', rng.random((48, 64)) * 0.01), Panel('"circle"', 0.5 + rng.random((48, 64)))]


def colour_bars(fig) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """(vmin, vmax) of every colour bar of a figure."""
    return [ax._colorbar.mappable.get_clim() for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_overlay_has_title_colour_bar_and_mark() -> None:
    red = panels()[0]
    fig = overlay_figure(IMAGE, red, HEADING, OverlayStyle(random_weights=True))
    title = fig.get_suptitle()
    assert '"red"' in title and "deepseek_vl" in title and "layers 0,1" in title and "heads all" in title
    assert RANDOM_WEIGHTS_MARK in title
    ((low, high),) = colour_bars(fig)
    assert (low, high) == (red.values.min(), red.values.max())  # the attention values, not 0..1
    trained = overlay_figure(IMAGE, red, HEADING, OverlayStyle(random_weights=False))
    assert RANDOM_WEIGHTS_MARK not in trained.get_suptitle()


def test_contact_sheet_scales() -> None:
    both = panels()
    own = contact_sheet(IMAGE, both, HEADING, OverlayStyle(), shared=False)
    assert colour_bars(own) == [(p.values.min(), p.values.max()) for p in both]
    shared = contact_sheet(IMAGE, both, HEADING, OverlayStyle(), shared=True)
    low = min(p.values.min() for p in both)
    high = max(p.values.max() for p in both)
    assert colour_bars(shared) == [(low, high)]
    assert [ax.get_title() for ax in shared.axes if ax.get_title()] == ['"red"', '"circle"']


def test_gray_underlay_draws_the_image_in_gray() -> None:
    fig = overlay_figure(IMAGE, panels()[0], HEADING, OverlayStyle(gray_underlay=True, alpha=0.3))
    base, heat = fig.axes[0].get_images()
    pixels = base.get_array()
    assert pixels.shape == (48, 64, 3) and (pixels[..., 0] == pixels[..., 1]).all()
    assert heat.get_alpha() == 0.3


@pytest.mark.parametrize("style", [OverlayStyle(cmap="no_such_map"), OverlayStyle(alpha=-0.1)])
def test_bad_style_is_refused(style: OverlayStyle) -> None:
    with pytest.raises(OptionError):
        style.check()


def test_overlays_of_a_huge_photo_are_drawn_at_display_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same picture at 600x800 and at 3000x4000 gives overlays of the same pixel size, and the
    image is shrunk (aspect kept) to the display bound before maps are sampled onto it."""
    from vlm_adapters.cli import main
    from vlm_adapters.overlay import DISPLAY_MAX_SIDE, display_image
    from vlm_adapters.testing import smooth_image

    big = smooth_image(3000, 4000, seed=1)
    shown = display_image(big)
    assert max(shown.size) == DISPLAY_MAX_SIDE and abs(shown.width / shown.height - 4000 / 3000) < 0.01
    assert display_image(IMAGE) is IMAGE  # small images are drawn as they are
    sizes = {}
    for name, image in (("small", big.resize((800, 600))), ("big", big)):
        path = tmp_path / f"{name}.png"
        image.save(path)
        out = tmp_path / f"out_{name}"
        args = ["run", "--backbone", "deepseek_vl", "--image", str(path), "--text", "a red cat", "--out", str(out)]
        assert main(args) == 0
        with Image.open(next(out.glob("000_*")) / "overlay_all.png") as png:
            sizes[name] = png.size
    assert sizes["big"] == sizes["small"]
