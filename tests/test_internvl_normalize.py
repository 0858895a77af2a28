"""InternVL ``normalize``: the research formats of tiled images, against the stock processor's own output.

Every accepted form must give exactly the inputs ``prepare`` (the stock processor) gives; a lost
tiling is recovered only when the tiles leave one possibility, otherwise refused with the
candidates named; a wrong token count says how many tokens each view takes.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from adapters_internvl import InternVLAdapter
from adapters_internvl.resolve import TileGridRecoveredWarning
from vlm_adapters import (
    AmbiguousGridError,
    ImageSizeError,
    MissingInputError,
    TokenCountError,
    VisionBatch,
    get_adapter,
)
from vlm_adapters.testing import assert_inputs_equal, sample_from_batch, smooth_image

SIZES = ((427, 640), (300, 1200))  # 2x3 tiles + thumbnail, 1x4 tiles + thumbnail


@pytest.fixture(scope="module")
def adapter() -> InternVLAdapter:
    return get_adapter("internvl").from_tiny()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def two(adapter: InternVLAdapter) -> tuple[list[Image.Image], VisionBatch]:
    images = [smooth_image(h, w, seed=i) for i, (h, w) in enumerate(SIZES)]
    return images, adapter.prepare([images], [adapter.format_prompt("the red cat", num_images=2)])


def placeholder_ids(adapter: InternVLAdapter, num_images: int) -> torch.Tensor:
    prompt = adapter.format_prompt("the red cat", num_images=num_images)
    return torch.as_tensor(adapter.processor.tokenizer(prompt)["input_ids"])


def same_as_prepare(got: VisionBatch, want: VisionBatch) -> None:
    assert_inputs_equal(got.inputs, {k: v for k, v in want.inputs.items() if k != "attention_mask"})
    assert got.geometries == want.geometries
    for a, b in zip(got.image_token_positions[0], want.image_token_positions[0], strict=True):
        assert torch.equal(a, b)


def test_flat_tiles_with_sizes_or_meta_data(adapter: InternVLAdapter, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    same_as_prepare(adapter.normalize(sample), batch)
    metas = [g.to_meta_data() for g in batch.geometries[0]]
    assert isinstance(metas[0], list)  # one entry per view
    flmm = {k: v for k, v in sample.items() if k != "image_sizes"}
    flmm["meta_data"] = [{"original_shape": {"height": h, "width": w}} for h, w in SIZES]
    same_as_prepare(adapter.normalize(flmm), batch)


def test_placeholder_ids_are_expanded_with_the_wrappers(adapter: InternVLAdapter, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    ids = placeholder_ids(adapter, 2)
    mask = torch.full_like(ids, -1)
    mask[-2] = 0
    out = adapter.normalize({**sample, "input_ids": ids, "mask_ids": mask})
    same_as_prepare(out, batch)
    assert out.mask_ids is not None and int((out.mask_ids == 0).sum()) == 1
    assert any("expanded" in note for note in out.extras["repairs"])  # type: ignore[union-attr]


def test_a_placeholder_already_wrapped_gets_only_the_tokens(adapter: InternVLAdapter) -> None:
    """InternVL's own chat code writes ``<img><IMG_CONTEXT></img>``-style prompts."""
    spec = adapter.spec
    one = adapter.prepare([smooth_image(*SIZES[0], seed=0)], [adapter.format_prompt("the red cat")])
    ids = placeholder_ids(adapter, 1)
    at = int((ids == spec.image_token_id).nonzero()[0])
    start, end = torch.tensor([spec.vision_start_token_id]), torch.tensor([spec.vision_end_token_id])
    wrapped = torch.cat([ids[:at], start, ids[at : at + 1], end, ids[at + 1 :]])
    same_as_prepare(adapter.normalize({**sample_from_batch(one), "input_ids": wrapped}), one)


@pytest.mark.parametrize("form", ["list_per_image", "num_patches", "expanded_ids", "stack_5d"])
def test_tiles_per_image_without_sizes(adapter: InternVLAdapter, two, form: str) -> None:
    """Without sizes the tiles per image come from the layout, a count field or the prompt; each
    grid is then recovered from its thumbnail, and the geometry sits on the resized canvas."""
    images, batch = two
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    counts = [g.num_views for g in batch.geometries[0]]
    pixels = sample["pixel_values"]
    if form == "list_per_image":
        sample = {**sample, "pixel_values": list(pixels.split(counts)), "input_ids": placeholder_ids(adapter, 2)}
    elif form == "num_patches":
        sample = {**sample, "num_patches": counts, "input_ids": placeholder_ids(adapter, 2)}
    elif form == "stack_5d":  # equal tile counts per image: [images, tiles, 3, H, W]
        one = adapter.prepare([[images[0], images[0]]], [adapter.format_prompt("the red cat", num_images=2)])
        batch, counts = one, [7, 7]
        sample = {**sample_from_batch(one), "pixel_values": one.inputs["pixel_values"].reshape(2, 7, 3, 448, 448)}
        sample.pop("image_sizes")
    with pytest.warns(TileGridRecoveredWarning):
        out = adapter.normalize(sample)
    assert torch.equal(out.input_ids, batch.input_ids)
    assert torch.equal(out.inputs["pixel_values"], batch.inputs["pixel_values"].float())
    for got, want in zip(out.geometries[0], batch.geometries[0], strict=True):
        rows, cols = adapter.spec.tile_grid(want.original_size)
        assert got.original_size == (rows * 448, cols * 448)
        assert [v.name for v in got.views] == [v.name for v in want.views]
    assert out.extras["original_size_known"] == [[False, False]]


def test_one_image_needs_nothing_but_its_tiles(adapter: InternVLAdapter) -> None:
    batch = adapter.prepare([smooth_image(500, 800, seed=4)], [adapter.format_prompt("the red cat")])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.warns(TileGridRecoveredWarning):
        out = adapter.normalize({**sample, "input_ids": placeholder_ids(adapter, 1)})
    assert torch.equal(out.input_ids, batch.input_ids)
    assert adapter.spec.tile_grid((500, 800)) == (2, 3) and out.geometries[0][0].original_size == (896, 1344)


def test_a_flat_image_leaves_the_grid_open_and_is_refused(adapter: InternVLAdapter) -> None:
    flat = Image.new("RGB", (640, 427), (90, 120, 200))
    batch = adapter.prepare([flat], [adapter.format_prompt("the red cat")])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.raises(AmbiguousGridError) as info:
        adapter.normalize(sample)
    assert {"2x3", "3x2"} <= set(info.value.candidates) and "image_sizes" in info.value.fix


def test_several_images_flat_without_any_split_are_refused(adapter: InternVLAdapter, two) -> None:
    _, batch = two
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.raises(MissingInputError, match="which of the 12 tiles belong"):
        adapter.normalize({**sample, "input_ids": placeholder_ids(adapter, 2)})


def test_transposed_sizes_are_refused(adapter: InternVLAdapter, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    with pytest.raises(ImageSizeError, match="gives a 3x2 tile grid, but the tiles form a 2x3 grid"):
        adapter.normalize({**sample, "image_sizes": [[640, 427], [300, 1200]]})


def test_a_wrong_token_count_says_what_each_view_takes(adapter: InternVLAdapter, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    ids = sample["input_ids"]
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[int((ids == adapter.spec.image_token_id).nonzero()[5])] = False
    with pytest.raises(TokenCountError) as info:
        adapter.normalize({**sample, "input_ids": ids[keep]})
    message = str(info.value)
    assert "256 tokens per view" in message and "image 0: 7 views = 1792" in message, message


def test_tile_counts_that_contradict_the_sizes_are_refused(adapter: InternVLAdapter, two) -> None:
    _, batch = two
    with pytest.raises(ImageSizeError, match="disagree on the tiles"):
        adapter.normalize({**sample_from_batch(batch), "num_patches": [5, 7]})


def test_ids_without_the_wrappers_are_refused(adapter: InternVLAdapter) -> None:
    batch = adapter.prepare([smooth_image(60, 90, seed=1)], [adapter.format_prompt("the red cat")])
    sample = sample_from_batch(batch)
    spec = adapter.spec
    ids = sample["input_ids"]
    bare = ids[(ids != spec.vision_start_token_id) & (ids != spec.vision_end_token_id)]
    with pytest.raises(TokenCountError, match="not wrapped"):
        adapter.normalize({**sample, "input_ids": bare})


def test_raw_image_and_placeholder_ids(adapter: InternVLAdapter) -> None:
    image = smooth_image(*SIZES[1], seed=2)
    batch = adapter.prepare([image], [adapter.format_prompt("the red cat")])
    same_as_prepare(adapter.normalize({"image": image, "input_ids": placeholder_ids(adapter, 1)}), batch)
