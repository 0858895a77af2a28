"""Grid recovery from patch content: photos come back with the stock grid or are refused; noise,
flat images and too-small evidence are always refused; the true grid is always a candidate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import noise_image, photo_like

from adapters_qwen import QwenAdapter
from adapters_qwen.continuity import MIN_RATIO, recover_grid
from adapters_qwen.grid import candidate_grids
from vlm_adapters import AmbiguousGridError, GridError, get_adapter


@pytest.fixture(scope="module", params=("qwen2_5_vl", "qwen3_vl"))
def adapter(request: pytest.FixtureRequest) -> QwenAdapter:
    """Patch 14 and patch 16 (Qwen2-VL shares Qwen2.5-VL's processor settings)."""
    return get_adapter(request.param).from_tiny()  # type: ignore[return-value]


def stock(adapter: QwenAdapter, arr: np.ndarray) -> tuple[torch.Tensor, tuple[int, int, int]]:
    out = adapter.processor.image_processor(images=[Image.fromarray(arr)], return_tensors="pt")
    t, h, w = out["image_grid_thw"][0].tolist()
    return out["pixel_values"], (t, h, w)


def test_true_grid_is_always_a_candidate(adapter: QwenAdapter) -> None:
    """The candidate list is a superset of what the resize can produce (never excludes the truth)."""
    spec = adapter.spec
    rng = np.random.default_rng(0)
    sides = np.exp(rng.uniform(0, np.log(6000), size=(1500, 2))).round().astype(int)
    for h, w in [(max(int(a), 1), max(int(b), 1)) for a, b in sides]:
        if max(h, w) / min(h, w) > spec.max_aspect_ratio:
            continue
        grid = spec.grid_thw((h, w))
        assert grid in candidate_grids(grid[1] * grid[2], spec), (h, w)


@pytest.mark.parametrize("size", [(427, 640), (640, 427), (480, 640), (300, 300), (900, 120), (333, 500)])
def test_photos_are_recovered(adapter: QwenAdapter, size: tuple[int, int]) -> None:
    pv, grid = stock(adapter, photo_like(*size, seed=sum(size)))
    found = recover_grid(pv, adapter.spec)
    assert found.grid == grid and grid in found.candidates and len(found.candidates) > 1
    assert found.ratio >= MIN_RATIO


def test_photos_never_get_a_wrong_grid(adapter: QwenAdapter) -> None:
    """40 photo-shaped images (most must come back) and 20 thin or tiny ones (may be refused)."""
    rng = np.random.default_rng(1)
    recovered = {"photo": 0, "thin": 0}
    for i in range(60):
        kind = "photo" if i < 40 else "thin"
        if kind == "photo":
            side, ratio = np.exp(rng.uniform(np.log(120), np.log(900))), np.exp(rng.uniform(-1.4, 1.4))
            h, w = round(side * np.sqrt(ratio)), round(side / np.sqrt(ratio))
        else:
            h, w = (int(v) for v in np.exp(rng.uniform(np.log(20), np.log(900), size=2)))
        pv, grid = stock(adapter, photo_like(h, w, seed=i, roughness=float(rng.choice([1.0, 1.5, 2.0]))))
        try:
            found = recover_grid(pv, adapter.spec)
        except AmbiguousGridError as exc:
            assert list(grid) in exc.candidates
            continue
        assert found.grid == grid, (h, w)
        recovered[kind] += 1
    assert recovered["photo"] >= 32, recovered  # refusals happen; wrong grids never do


def test_noise_and_flat_images_are_refused(adapter: QwenAdapter) -> None:
    rng = np.random.default_rng(2)
    for i in range(15):
        h, w = (int(v) for v in rng.integers(60, 700, size=2))
        pv, grid = stock(adapter, noise_image(h, w, seed=i))
        with pytest.raises(AmbiguousGridError) as info:
            recover_grid(pv, adapter.spec)
        assert list(grid) in info.value.candidates
    pv, _ = stock(adapter, np.full((300, 500, 3), 90, np.uint8))
    with pytest.raises(AmbiguousGridError, match="flat"):
        recover_grid(pv, adapter.spec)


def test_rows_no_grid_can_have_are_a_grid_error(adapter: QwenAdapter) -> None:
    pv, _ = stock(adapter, photo_like(300, 400, seed=3))
    with pytest.raises(GridError, match="no grid"):
        recover_grid(pv[:-1], adapter.spec)  # not whole merge windows
    with pytest.raises(GridError, match="no grid"):
        recover_grid(pv[:4], adapter.spec)  # one merge window: below min_pixels
    with pytest.raises(GridError):  # one window short: no candidate is the image, none may win
        recover_grid(pv[:-4], adapter.spec)
