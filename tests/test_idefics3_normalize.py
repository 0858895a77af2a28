"""Idefics3 / SmolVLM ``normalize``: the research formats of split images, against the stock processor.

Every accepted form must give exactly the inputs ``prepare`` (the stock processor) gives; the split
is taken from the sizes, the prompt's markers or the processor's rows/cols, recovered from the
global view only when one split fits, and otherwise refused with the candidates named; a wrong
token count says how many tokens each view takes.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from adapters_idefics3 import Idefics3AdapterBase
from adapters_idefics3.resolve import SplitRecoveredWarning
from vlm_adapters import (
    AmbiguousGridError,
    ImageSizeError,
    MissingInputError,
    TokenCountError,
    VisionBatch,
    get_adapter,
)
from vlm_adapters.testing import assert_inputs_equal, sample_from_batch, smooth_image

SIZES = ((427, 640), (300, 1200))  # 3x4 and 1x4 sub-images (plus the global view each)


@pytest.fixture(scope="module", params=["idefics3", "smolvlm"])
def adapter(request: pytest.FixtureRequest) -> Idefics3AdapterBase:
    return get_adapter(request.param).from_tiny()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def two(adapter: Idefics3AdapterBase) -> tuple[list[Image.Image], VisionBatch]:
    images = [smooth_image(h, w, seed=i) for i, (h, w) in enumerate(SIZES)]
    return images, adapter.prepare([images], [adapter.format_prompt("the red cat", num_images=2)])


def placeholder_ids(adapter: Idefics3AdapterBase, num_images: int) -> torch.Tensor:
    prompt = adapter.format_prompt("the red cat", num_images=num_images)
    return torch.as_tensor(adapter.processor.tokenizer(prompt)["input_ids"])


def same_as_prepare(got: VisionBatch, want: VisionBatch) -> None:
    assert_inputs_equal(got.inputs, {k: v for k, v in want.inputs.items() if k != "attention_mask"})
    assert got.geometries == want.geometries
    for a, b in zip(got.image_token_positions[0], want.image_token_positions[0], strict=True):
        assert torch.equal(a, b)


def test_processor_format_with_sizes_or_meta_data(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    same_as_prepare(adapter.normalize(sample), batch)
    flmm = {k: v for k, v in sample.items() if k != "image_sizes"}
    flmm["meta_data"] = [{"original_shape": {"height": h, "width": w}} for h, w in SIZES]
    same_as_prepare(adapter.normalize(flmm), batch)


def test_placeholders_are_expanded_with_markers_and_newlines(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    ids = placeholder_ids(adapter, 2)
    labels = ids.clone()
    labels[:-3] = -100
    out = adapter.normalize({**sample_from_batch(batch), "input_ids": ids, "labels": labels})
    same_as_prepare(out, batch)
    assert int((out.inputs["labels"] != -100).sum()) == 3


def test_a_sample_of_a_processor_batch_drops_the_padding_views(adapter: Idefics3AdapterBase) -> None:
    """The processor pads every sample of a batch to the most views with all-zero views."""
    wide, small = smooth_image(300, 1200, seed=1), smooth_image(427, 640, seed=2)
    prompts = [adapter.format_prompt("the red cat")] * 2
    both = adapter.processor(images=[[wide], [small]], text=prompts, return_tensors="pt", padding=True)
    assert both["pixel_values"].shape[1] == 13 and not bool(both["pixel_values"][0, 5:].any())
    alone = adapter.prepare([wide], prompts[:1])
    keep = both["attention_mask"][0].bool()
    sample = {
        "input_ids": both["input_ids"][0][keep],
        "pixel_values": both["pixel_values"][:1],
        "image_sizes": [[300, 1200]],
    }
    out = adapter.normalize(sample)
    same_as_prepare(out, alone)
    assert any("batch-padding" in note for note in out.extras["repairs"])  # type: ignore[union-attr]


@pytest.mark.parametrize("form", ["markers", "rows_cols", "list_per_image"])
def test_split_without_sizes(adapter: Idefics3AdapterBase, two, form: str) -> None:
    """Without sizes the split comes from the prompt's markers, the processor's rows/cols, or one
    pixel stack per image; the geometry then sits on the stretched canvas."""
    _, batch = two
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    if form == "rows_cols":
        sample = {**sample, "rows": [3, 1], "cols": [4, 4], "input_ids": placeholder_ids(adapter, 2)}
    elif form == "list_per_image":
        views = sample["pixel_values"][0]
        sample = {**sample, "pixel_values": [views[:13], views[13:]]}
    out = adapter.normalize(sample)
    assert torch.equal(out.input_ids, batch.input_ids)
    assert torch.equal(out.inputs["pixel_values"], batch.inputs["pixel_values"].float())
    t = adapter.spec.tile_size
    assert [g.original_size for g in out.geometries[0]] == [(3 * t, 4 * t), (t, 4 * t)]
    for got, want in zip(out.geometries[0], batch.geometries[0], strict=True):
        assert [v.name for v in got.views] == [v.name for v in want.views] and got.run_lengths == want.run_lengths
    assert out.extras["original_size_known"] == [[False, False]]


def test_one_image_split_recovered_from_the_global_view(adapter: Idefics3AdapterBase) -> None:
    batch = adapter.prepare([smooth_image(427, 640, seed=4)], [adapter.format_prompt("the red cat")])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.warns(SplitRecoveredWarning, match="split 3x4"):  # 12 sub-images: 3x4 or 4x3
        out = adapter.normalize({**sample, "input_ids": placeholder_ids(adapter, 1)})
    assert torch.equal(out.input_ids, batch.input_ids)


def test_a_flat_image_leaves_the_split_open_and_is_refused(adapter: Idefics3AdapterBase) -> None:
    flat = Image.new("RGB", (640, 427), (90, 120, 200))
    batch = adapter.prepare([flat], [adapter.format_prompt("the red cat")])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.raises(AmbiguousGridError) as info:
        adapter.normalize({**sample, "input_ids": placeholder_ids(adapter, 1)})
    assert set(info.value.candidates) == {"3x4", "4x3"}


def test_several_images_without_any_split_are_refused(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.raises(MissingInputError, match="which of the 18 views belong"):
        adapter.normalize({**sample, "input_ids": placeholder_ids(adapter, 2)})


def test_transposed_sizes_are_refused(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    with pytest.raises(ImageSizeError):
        adapter.normalize({**sample, "image_sizes": [[640, 427], [300, 1200]]})


def test_markers_that_contradict_the_sizes_are_refused(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    with pytest.raises(ImageSizeError, match="disagree on the sub-image rows and columns"):
        adapter.normalize({**sample_from_batch(batch), "rows": [4, 1], "cols": [3, 4]})


def test_a_wrong_token_count_says_what_each_view_takes(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    sample = sample_from_batch(batch)
    ids = sample["input_ids"]
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[int((ids == adapter.spec.image_token_id).nonzero()[0])] = False
    with pytest.raises(TokenCountError) as info:
        adapter.normalize({**sample, "input_ids": ids[keep]})
    per = adapter.spec.tokens_per_view
    message = str(info.value)
    assert f"{per} tokens per view" in message and "image 0: 3x4 sub-images + global = 13 runs" in message, message


def test_a_run_without_its_marker_is_refused(adapter: Idefics3AdapterBase, two) -> None:
    _, batch = two
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    ids = sample["input_ids"].clone()
    first = int((ids == adapter.spec.image_token_id).nonzero()[0])
    ids[first - 1] = ids[0]
    with pytest.raises(TokenCountError, match="no marker before it"):
        adapter.normalize({**sample, "input_ids": ids})


def test_raw_image_and_placeholder_ids(adapter: Idefics3AdapterBase) -> None:
    image = smooth_image(*SIZES[1], seed=2)
    batch = adapter.prepare([image], [adapter.format_prompt("the red cat")])
    same_as_prepare(adapter.normalize({"image": image, "input_ids": placeholder_ids(adapter, 1)}), batch)


def test_prepare_of_several_prompts_equals_the_stock_processor(adapter: Idefics3AdapterBase) -> None:
    """SmolVLM's processor reads a flat image list as one prompt's images; ``prepare`` groups them."""
    images = [[smooth_image(300, 1200, seed=1)], [smooth_image(427, 640, seed=2), smooth_image(50, 60, seed=3)]]
    texts = [adapter.format_prompt("the red cat"), adapter.format_prompt("two cats", num_images=2)]
    batch = adapter.prepare(images, texts)
    stock = adapter.processor(images=images, text=texts, return_tensors="pt", padding=True)
    assert_inputs_equal(batch.inputs, {k: v for k, v in stock.items() if isinstance(v, torch.Tensor)})
