"""ImageGeometry: maps on the token grid <-> original pixels, padding cropped exactly."""

from __future__ import annotations

import pytest
import torch

from vlm_adapters import DynamicSpec, FixedSpec, ImageShapeError

FIXED = FixedSpec(image_token_id=5, image_size=(384, 384), patch_size=16, token_grid=(24, 24))
DYNAMIC = DynamicSpec(
    image_token_id=7, patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=3136, max_pixels=1003520
)


def test_padding_tokens_never_reach_the_image() -> None:
    g = FIXED.geometry((480, 640))  # content rows 48..335 = token rows 3..20
    maps = torch.zeros(24, 24)
    maps[:3] = 100.0  # only the padding rows light up
    maps[21:] = 100.0
    maps[3:21] = 1.0
    back = g.to_image(maps)
    assert back.shape == (480, 640)
    # bilinear upsampling bleeds at most half a token (8 input px = 13.3 original px) into the content
    assert torch.allclose(back[14:-14], torch.ones(480 - 28, 640))
    assert back.max() < 100.0


def test_content_block_maps_to_its_tokens() -> None:
    g = FIXED.geometry((480, 640))
    mask = torch.zeros(480, 640)
    mask[:, :320] = 1.0  # left half of the photo
    on_grid = g.to_token_grid(mask)
    assert on_grid.shape == (24, 24)
    assert torch.all(on_grid[:3] == 0) and torch.all(on_grid[21:] == 0)  # padding rows
    assert torch.allclose(on_grid[3:21, :12], torch.ones(18, 12))
    assert torch.allclose(on_grid[3:21, 12:], torch.zeros(18, 12))


def test_dynamic_round_trip_is_identity_on_token_aligned_maps() -> None:
    g = DYNAMIC.geometry((420, 644))  # already a multiple of 28: no resize
    assert g.resized_size == (420, 644) and g.token_grid == (15, 23)
    maps = torch.rand(2, 3, 15, 23)
    img = g.to_image(maps, mode="nearest")
    assert img.shape == (2, 3, 420, 644)
    torch.testing.assert_close(g.to_token_grid(img), maps)


def test_leading_dims_and_dtype_are_kept() -> None:
    g = FIXED.geometry((100, 50))
    maps = torch.rand(4, 2, 24, 24, dtype=torch.float64)
    out = g.to_image(maps)
    assert out.shape == (4, 2, 100, 50) and out.dtype == torch.float64


def test_wrong_shapes_raise_typed_errors() -> None:
    g = FIXED.geometry((100, 50))
    with pytest.raises(ImageShapeError, match="token grid"):
        g.to_image(torch.zeros(23, 24))
    with pytest.raises(ImageShapeError, match="original image size"):
        g.to_token_grid(torch.zeros(50, 100))


def test_meta_data_matches_the_research_format() -> None:
    meta = FIXED.geometry((480, 640)).to_meta_data()
    assert meta["original_shape"] == {"height": 480, "width": 640}
    assert meta["padded_shape"] == {"height": 384, "width": 384}
    assert meta["padding"] == {"before_height": 48, "after_height": 48, "before_width": 0, "after_width": 0}
    assert meta["image_shape"] == {"height": 288, "width": 384}
    assert meta["scale_factor"] == pytest.approx((0.6, 0.6))


def test_fractional_padding_is_cropped_exactly() -> None:
    # a hybrid-style spec: padding happens at 1024 and the square is resized to 384,
    # so a 683x1024 image has 63.75 / 64.125 rows of padding on the 384 input
    spec = FixedSpec(image_token_id=5, image_size=(384, 384), patch_size=16, token_grid=(24, 24), pad_size=1024)
    g = spec.geometry((683, 1024))
    assert (g.padding.top, g.padding.bottom) == (63.75, 64.125)
    # a map that is linear in the token row coordinate (cell r holds its centre, r + 0.5):
    # bilinear sampling reproduces it, so original row i must read the token coordinate it maps to
    ramp = (torch.arange(24, dtype=torch.float64) + 0.5)[:, None].expand(24, 24)
    out = g.to_image(ramp)
    top, bottom = g.padding.top / 16, (384 - g.padding.bottom) / 16
    rows = torch.arange(683, dtype=torch.float64)
    expected = top + (rows + 0.5) * (bottom - top) / 683
    torch.testing.assert_close(out[:, 0], expected, rtol=0, atol=1e-5)
