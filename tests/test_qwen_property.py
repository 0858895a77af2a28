"""Property: whatever a dataset hands over, ``normalize`` returns either a batch the stock model
accepts *with the grid the stock processor made*, or a ``VisionInputError``. Never another
exception, never a wrong grid.

Samples start from the stock processor's output for random images (photo-like or pure noise) and
are then reshaped into the forms datasets use and corrupted. One kind of corruption is left out on
purpose: a wrong grid (or size) with the right number of patches, no other grid or size to
contradict it, and content that does not decide (noise, tiny images). Nothing can detect that, the
stock model included; every other corruption here is detectable and must be detected, and an
uncorrupted sample may only be refused when it carries neither grid, nor size, nor raw image.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from synthetic import noise_image, photo_like

from adapters_qwen import GridRecoveredWarning, QwenAdapter
from adapters_qwen.continuity import recover_grid
from adapters_qwen.grid import candidate_grids
from vlm_adapters import VisionInputError, get_adapter

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
CORRUPTIONS = (
    "none",
    "transpose_grid",
    "other_factorization",
    "swap_grids",
    "grid_plus_two",
    "disguise",
    "truncate_rows",
    "drop_window",
    "drop_image_token",
    "extra_image_token",
    "patches_as_tokens",
    "wrong_size",
    "size_as_width_height",
    "unnormalised",
    "mask_ids_short",
)


@pytest.fixture(scope="module")
def backbones() -> dict[str, tuple[QwenAdapter, Any]]:
    out = {}
    for name in FAMILIES:
        adapter = get_adapter(name).from_tiny()
        out[name] = (adapter, adapter.load_model(seed=0))
    return out  # type: ignore[return-value]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    n_images = draw(st.integers(1, 2))
    sizes = []
    for _ in range(n_images):
        h = draw(st.integers(8, 360))
        w = draw(st.integers(max(8, h // 12), min(360, h * 12)))
        sizes.append((h, w))
    return {
        "family": draw(st.sampled_from(FAMILIES)),
        "sizes": sizes,
        "kind": draw(st.sampled_from(("photo", "noise"))),
        "seed": draw(st.integers(0, 10_000)),
        "grid_form": draw(st.sampled_from(("tensor", "nested", "flat", "none", "absent"))),
        "size_info": draw(st.sampled_from(("none", "image_sizes", "meta_data"))),
        "ids_form": draw(st.sampled_from(("expanded", "unexpanded", "with_vision"))),
        "pixels_form": draw(st.sampled_from(("matrix", "per_image_numpy", "batched", "raw"))),
        "corruption": draw(st.sampled_from(CORRUPTIONS)),
        "mask_ids": draw(st.booleans()),
    }


def _decisive(adapter: QwenAdapter, rows: torch.Tensor, grid: list[int]) -> bool:
    """Whether the patch content alone singles out the true grid (then a wrong grid is detectable)."""
    try:
        return list(recover_grid(rows, adapter.spec).grid) == grid
    except VisionInputError:
        return False


def build(adapter: QwenAdapter, case: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor], bool, str]:
    """(sample, truth from the stock processor, whether it must be refused, the corruption applied).

    Corruptions that nothing could detect (a plausible wrong grid, no size, undecided content)
    fall back to the uncorrupted sample, so the oracle stays strict: accepted means exact.
    """
    spec = adapter.spec
    rng = np.random.default_rng(case["seed"])
    make = photo_like if case["kind"] == "photo" else noise_image
    arrays = [make(h, w, seed=int(rng.integers(1 << 30))) for h, w in case["sizes"]]
    n = len(arrays)
    text = adapter.format_prompt("where is the cat", num_images=n, answer="the cat")
    truth = adapter.processor(images=[Image.fromarray(a) for a in arrays], text=[text], return_tensors="pt")
    truth = {k: v for k, v in truth.items() if isinstance(v, torch.Tensor)}
    grids = truth["image_grid_thw"].tolist()
    unexpanded = adapter.processor.tokenizer(text, return_tensors="pt")["input_ids"][0]
    expanded = truth["input_ids"][0]
    pixel_values = truth["pixel_values"]
    rows = [t * h * w for t, h, w in grids]
    clean = {**case, "corruption": "none"}
    # --- forms -----------------------------------------------------------------------------
    sample: dict[str, Any] = {}
    ids = expanded if case["ids_form"] == "expanded" else unexpanded
    sample["input_ids"] = ids
    if case["ids_form"] == "with_vision":
        sample["input_ids_with_vision"] = expanded
    if case["mask_ids"]:
        sample["mask_ids"] = torch.full_like(ids, -1)
    raw = case["pixels_form"] == "raw"
    per_image = case["pixels_form"] == "per_image_numpy"
    if raw:
        sample["pixel_values"] = [torch.from_numpy(a).permute(2, 0, 1) for a in arrays]
    elif per_image:
        sample["pixel_values"] = [p.numpy() for p in pixel_values.split(rows)]
    elif case["pixels_form"] == "batched":
        sample["pixel_values"] = pixel_values[None]
    else:
        sample["pixel_values"] = pixel_values
    form = case["grid_form"]
    if form == "tensor":
        sample["image_grid_thw"] = truth["image_grid_thw"].clone()
    elif form == "nested" or (form == "flat" and n > 1):
        sample["image_grid_thw"] = [list(g) for g in grids]
    elif form == "flat":
        sample["image_grid_thw"] = list(grids[0])
    elif form == "none":
        sample["image_grid_thw"] = None
    if case["size_info"] == "image_sizes":
        sample["image_sizes"] = [list(s) for s in case["sizes"]]
    elif case["size_info"] == "meta_data":
        sample["meta_data"] = [{"original_shape": {"height": h, "width": w}} for h, w in case["sizes"]]
    has_grid = sample.get("image_grid_thw") is not None
    has_size = case["size_info"] != "none"
    rows0 = pixel_values[: rows[0]]
    # --- corruption ------------------------------------------------------------------------
    c = case["corruption"]
    g0 = grids[0]
    if c == "none":
        return sample, truth, False, "none"
    if c in ("transpose_grid", "other_factorization", "swap_grids", "grid_plus_two"):
        if not has_grid:
            return build(adapter, clean)
        bad = [list(g) for g in grids]
        if c == "transpose_grid" and g0[1] != g0[2]:
            bad[0] = [1, g0[2], g0[1]]
        elif c == "other_factorization":
            others = [list(g) for g in candidate_grids(g0[1] * g0[2], spec) if list(g) != g0]
            if not others:
                return build(adapter, clean)
            bad[0] = others[int(rng.integers(len(others)))]
        elif c == "swap_grids" and n == 2 and grids[0] != grids[1]:
            bad = bad[::-1]
            if not (has_size or raw or per_image or case["ids_form"] != "unexpanded" or rows[0] != rows[1]):
                return build(adapter, clean)
        elif c == "grid_plus_two":
            bad[0] = [1, g0[1] + 2, g0[2]]
        else:
            return build(adapter, clean)
        if c != "grid_plus_two" and not (has_size or raw) and not _decisive(adapter, rows0, g0):
            return build(adapter, clean)  # undetectable in principle
        sample["image_grid_thw"] = bad
        return sample, truth, True, c
    if c == "disguise":
        sample["pixel_values"] = pixel_values[None, None].expand(1, 3, *pixel_values.shape)
        return sample, truth, True, c
    if c in ("truncate_rows", "drop_window"):
        if raw:
            return build(adapter, clean)
        cut = int(rng.integers(1, 4)) if c == "truncate_rows" else spec.merge_size**2
        sample["pixel_values"] = pixel_values[:-cut]
        return sample, truth, True, c
    if c in ("drop_image_token", "extra_image_token", "patches_as_tokens"):
        if c == "patches_as_tokens" and case["ids_form"] == "unexpanded":
            return build(adapter, clean)
        key = "input_ids_with_vision" if case["ids_form"] == "with_vision" else "input_ids"
        seq = sample[key]
        hits = (seq == spec.image_token_id).nonzero().flatten()
        at = int(hits[0])
        if c == "drop_image_token":
            seq = torch.cat([seq[:at], seq[at + 1 :]])
        elif c == "extra_image_token":
            seq = torch.cat([seq[: at + 1], seq[at : at + 1], seq[at + 1 :]])
        else:
            run = rows[0] // spec.merge_size**2
            seq = torch.cat([seq[:at], seq[at : at + 1].repeat(run * spec.merge_size**2), seq[at + run :]])
        sample[key] = seq
        sample.pop("mask_ids", None)
        return sample, truth, True, c
    if c in ("wrong_size", "size_as_width_height"):
        h, w = case["sizes"][0]
        new = (h + 57, w) if c == "wrong_size" else (w, h)
        wrong = list(spec.grid_thw(new)) if max(new) / min(new) <= 200 else None
        if wrong is None or wrong == g0:
            return build(adapter, clean)
        same_rows = wrong[1] * wrong[2] == g0[1] * g0[2]
        if same_rows and not has_grid and not raw and not _decisive(adapter, rows0, g0):
            return build(adapter, clean)  # a plausible size, rows fit, content undecided
        sample["image_sizes"] = [list(new), *[list(s) for s in case["sizes"][1:]]]
        sample.pop("meta_data", None)
        return sample, truth, True, c
    if c == "unnormalised":
        if raw:
            return build(adapter, clean)
        sample["pixel_values"] = (pixel_values + 3.0) * 60.0
        return sample, truth, True, c
    if c == "mask_ids_short":
        sample["mask_ids"] = torch.full((int(sample["input_ids"].numel()) - 1,), -1)
        return sample, truth, True, c
    raise AssertionError(c)


@settings(
    max_examples=int(__import__("os").environ.get("QWEN_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_normalize_never_returns_a_wrong_grid(
    backbones: dict[str, tuple[QwenAdapter, Any]], case: dict[str, Any]
) -> None:
    adapter, model = backbones[case["family"]]
    sample, truth, must_refuse, corruption = build(adapter, case)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GridRecoveredWarning)
            batch = adapter.normalize(sample)
    except VisionInputError as exc:
        event(f"refused {corruption}: {type(exc).__name__}")
        assert "Fix:" in str(exc)
        # an uncorrupted sample may only be refused when it lacks grid, size and raw image
        informed = sample.get("image_grid_thw") is not None or case["size_info"] != "none"
        assert must_refuse or not (informed or case["pixels_form"] == "raw"), f"refused a valid sample: {exc}"
        return
    event(f"accepted {corruption} ({case['kind']})")
    assert not must_refuse, f"accepted a corrupted sample: {corruption}"
    assert torch.equal(batch.inputs["image_grid_thw"], truth["image_grid_thw"])
    for key in ("input_ids", "mm_token_type_ids", "pixel_values"):
        assert torch.equal(batch.inputs[key], truth[key]), key
    with torch.no_grad():
        logits = model(**batch.inputs).logits
    assert torch.isfinite(logits).all()
