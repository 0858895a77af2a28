"""VisionInputSpec: validation, JSON, and the pure geometry rules of both kinds."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from vlm_adapters import DynamicSpec, FixedSpec, ImageShapeError, SpecError, VisionInputError, spec_from_json
from vlm_adapters.spec import spec_from_dict, spec_json_schema

QWEN_LIKE = {"image_token_id": 7, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
DEEPSEEK_LIKE = {"image_token_id": 5, "image_size": (384, 384), "patch_size": 16, "token_grid": (24, 24)}


def dynamic(**kw: object) -> DynamicSpec:
    return DynamicSpec(**{**QWEN_LIKE, "min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280, **kw})


def test_json_round_trip_keeps_kind_and_values() -> None:
    for spec in (dynamic(), FixedSpec(**DEEPSEEK_LIKE, background_color=(122, 116, 104))):
        data = spec.model_dump_json()
        assert json.loads(data)["kind"] == spec.kind
        again = spec_from_json(data)
        assert again == spec and type(again) is type(spec)
        assert spec_from_dict(json.loads(data)) == spec


def test_schema_is_a_discriminated_union() -> None:
    schema = json.dumps(spec_json_schema())
    assert "fixed" in schema and "dynamic" in schema and "discriminator" in schema


def test_specs_are_immutable() -> None:
    spec = dynamic()
    with pytest.raises(ValidationError):
        spec.patch_size = 16  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"min_pixels": 10_000, "max_pixels": 5_000},  # min above max
        {"max_pixels": 100},  # below one merge window
        {"patch_size": 0},
        {"image_token_id": -1},
        {"max_aspect_ratio": 0.5},
        {"unknown_field": 1},
    ],
)
def test_impossible_dynamic_specs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        dynamic(**bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"image_size": (384, 380)},  # pad_to_square needs a square
        {"token_grid": (25, 24)},  # 384 is not a whole number of 25 cells
        {"patch_size": 10},  # 384 is not a multiple of 10
    ],
)
def test_impossible_fixed_specs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FixedSpec(**{**DEEPSEEK_LIKE, **bad})


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(SpecError, match="no spec kind 'tiled'"):
        spec_from_dict({"kind": "tiled", "image_token_id": 1})


@given(st.integers(1, 5000), st.integers(1, 5000))
def test_dynamic_geometry_invariants(h: int, w: int) -> None:
    spec = dynamic()
    if max(h, w) / min(h, w) > spec.max_aspect_ratio:
        with pytest.raises(ImageShapeError):
            spec.geometry((h, w))
        return
    g = spec.geometry((h, w))
    rh, rw = g.resized_size
    assert rh % spec.factor == 0 and rw % spec.factor == 0
    assert rh * rw <= spec.max_pixels
    if rh > spec.factor and rw > spec.factor:  # clamping to one window may undershoot min_pixels
        assert rh * rw >= spec.min_pixels or max(rh, rw) == spec.factor
    t, gh, gw = spec.grid_thw((h, w))
    assert (t, gh, gw) == (1, rh // 14, rw // 14)
    assert g.token_grid == (gh // 2, gw // 2)
    assert g.num_image_tokens == gh * gw // 4
    assert g.padding.is_zero


@given(st.integers(1, 4000), st.integers(1, 4000))
def test_fixed_geometry_invariants(h: int, w: int) -> None:
    spec = FixedSpec(**DEEPSEEK_LIKE)
    g = spec.geometry((h, w))
    assert g.input_size == (384, 384) and g.token_grid == (24, 24) and g.num_image_tokens == 576
    p = g.padding
    assert p.top >= 0 and p.bottom >= 0 and p.left >= 0 and p.right >= 0
    assert abs(p.top - p.bottom) <= 1 and abs(p.left - p.right) <= 1  # centred
    assert min(p.top + p.bottom, p.left + p.right) == 0  # padding on one axis only
    assert max(g.resized_size) == 384
    if h > w:
        assert math.isclose(g.content_width, max(1, round(w * 384 / h)))


def test_fixed_geometry_known_case() -> None:
    g = FixedSpec(**DEEPSEEK_LIKE).geometry((480, 640))
    # long side 640 -> 384, short side 480 * 0.6 = 288, centred: rows 48..335
    assert g.resized_size == (288, 384)
    assert (g.padding.top, g.padding.bottom, g.padding.left, g.padding.right) == (48, 48, 0, 0)
    assert g.content_box_tokens == (3.0, 21.0, 0.0, 24.0)


def test_pad_then_resize_pads_the_original() -> None:
    spec = FixedSpec(
        image_token_id=1, image_size=(336, 336), patch_size=14, token_grid=(24, 24), resize_mode="pad_then_resize"
    )
    g = spec.geometry((100, 300))  # padded to 300x300 at rows 100..199, scaled by 336/300
    assert g.padding.top == pytest.approx(100 * 336 / 300)
    assert g.content_height == pytest.approx(100 * 336 / 300)


def test_stretch_has_no_padding() -> None:
    spec = FixedSpec(**{**DEEPSEEK_LIKE, "image_size": (384, 192), "token_grid": (24, 12)}, resize_mode="stretch")
    g = spec.geometry((10, 1000))
    assert g.padding.is_zero and g.input_size == (384, 192)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), ("a", 3), (5,)])
def test_bad_image_sizes_raise_typed_errors(size: object) -> None:
    for spec in (dynamic(), FixedSpec(**DEEPSEEK_LIKE)):
        with pytest.raises(VisionInputError) as info:
            spec.geometry(size)  # type: ignore[arg-type]
        assert "Fix:" in str(info.value)


def test_aspect_ratio_limit_names_the_ratio() -> None:
    with pytest.raises(ImageShapeError) as info:
        dynamic().geometry((10, 2500))
    assert "250" in str(info.value) and "200" in str(info.value)
