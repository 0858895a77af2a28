"""``normalize`` on Gemma 3 research-code samples: every accepted form gives exactly what ``prepare``
gives (the stock processor's inputs), lost crop layouts are recovered only when the sizes fix
them, and everything else is refused with the views' token counts or the candidates."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adapters_gemma3 import Gemma3Adapter
from adapters_gemma3.adapter import PAN_AND_SCAN_VARIANT
from adapters_gemma3.layout import AmbiguousCropsError
from vlm_adapters import ImageShapeError, MissingInputError, TokenCountError, VisionBatch, VisionInputError
from vlm_adapters.errors import ImageSizeError
from vlm_adapters.testing.contract import assert_inputs_equal, sample_from_batch
from vlm_adapters.testing.corpus import MUTATIONS, run_corpus
from vlm_adapters.testing.images import smooth_image

WIDE, SQUARE, TALL = (300, 1000), (600, 600), (900, 420)
"""Under the stock crop settings: 3 crops side by side, none, 2 crops stacked."""


@pytest.fixture(scope="module")
def on() -> Gemma3Adapter:
    return Gemma3Adapter.from_tiny(PAN_AND_SCAN_VARIANT)


@pytest.fixture(scope="module")
def off() -> Gemma3Adapter:
    return Gemma3Adapter.from_tiny()


def _prepared(adapter: Gemma3Adapter, sizes: list[tuple[int, int]]) -> tuple[VisionBatch, list[Any]]:
    images = [smooth_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    prompt = adapter.format_prompt("describe the red cat", num_images=len(images), answer="a cat on a chair")
    return adapter.prepare([images], [prompt]), images


def _same(got: VisionBatch, want: VisionBatch) -> None:
    assert_inputs_equal(got.inputs, want.inputs)
    assert got.geometries == want.geometries
    for a, b in zip(got.image_token_positions[0], want.image_token_positions[0], strict=True):
        assert torch.equal(a, b)


def _per_image(batch: VisionBatch) -> list[torch.Tensor]:
    counts = [g.num_views for g in batch.geometries[0]]
    return list(batch.inputs["pixel_values"].split(counts))


def test_the_images_under_test_have_the_crops_they_claim(on: Gemma3Adapter) -> None:
    assert [on.gemma_spec.geometry(s).num_views - 1 for s in (WIDE, SQUARE, TALL)] == [3, 0, 2]


def test_processor_stack_equals_prepare(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE, SQUARE, TALL])
    _same(on.normalize(sample_from_batch(batch)), batch)


def test_views_stacked_per_image_equal_prepare(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE, SQUARE, TALL])
    sample = {**sample_from_batch(batch), "pixel_values": _per_image(batch)}
    _same(on.normalize(sample), batch)


def test_equal_crop_counts_stacked_as_one_5d_tensor(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE, (310, 1000)])
    sample = {**sample_from_batch(batch), "pixel_values": torch.stack(_per_image(batch))}
    assert sample["pixel_values"].ndim == 5
    _same(on.normalize(sample), batch)


def test_num_crops_is_read_and_checked(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE, SQUARE])
    sample = sample_from_batch(batch)
    _same(on.normalize({**sample, "num_crops": [[3, 0]]}), batch)
    with pytest.raises(TokenCountError, match=r"declared crops per image \[2, 1\]"):
        on.normalize({**sample, "num_crops": [2, 1]})
    with pytest.raises(VisionInputError, match="contradicts the views stacked per image"):
        on.normalize({**sample, "pixel_values": _per_image(batch), "num_crops": [1, 2]})


def test_meta_data_gives_the_sizes(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE, TALL])
    sample = sample_from_batch(batch)
    del sample["image_sizes"]
    flmm = [{"original_shape": {"height": h, "width": w}} for h, w in (WIDE, TALL)]
    _same(on.normalize({**sample, "meta_data": flmm}), batch)


def test_raw_images_give_the_processor_views(on: Gemma3Adapter) -> None:
    batch, images = _prepared(on, [WIDE, TALL])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k not in ("pixel_values", "image_sizes")}
    _same(on.normalize({**sample, "image": images}), batch)


def test_sizes_that_contradict_the_raw_image_are_refused(on: Gemma3Adapter) -> None:
    batch, images = _prepared(on, [WIDE])
    sample = {**sample_from_batch(batch), "image": images, "image_sizes": [[301, 1000]]}
    del sample["pixel_values"]
    with pytest.raises(ImageShapeError, match="not the sizes of the images passed"):
        on.normalize(sample)


def test_lost_crop_layout_is_recovered_when_the_sizes_fix_it(on: Gemma3Adapter, off: Gemma3Adapter) -> None:
    """A sample made with pan-and-scan on, read by an adapter whose processor has it off: the sizes and
    the crop rule determine every box, so the batch is the pan-and-scan one, and says so."""
    batch, _ = _prepared(on, [WIDE, TALL])
    got = off.normalize(sample_from_batch(batch))
    _same(got, batch)
    assert "pan-and-scan on" in got.extras["repairs"][0]
    model = off.load_model(seed=0)
    with torch.no_grad():
        torch.testing.assert_close(model(**got.inputs).logits, model(**batch.inputs).logits, rtol=0, atol=0)


def test_crops_without_sizes_are_refused_with_candidates(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE, TALL])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.raises(AmbiguousCropsError) as info:
        on.normalize({**sample, "pixel_values": _per_image(batch)})
    assert info.value.candidates == [
        "image 0: 3 crops side by side (a wide image) or stacked (a tall image)",
        "image 1: 2 crops side by side (a wide image) or stacked (a tall image)",
    ]
    with pytest.raises(AmbiguousCropsError) as info:
        on.normalize(sample)  # the flat stack: not even the images' view counts are known
    assert "7 image(s) without crops" in info.value.candidates
    assert "Fix: pass image_sizes" in str(info.value)


def test_uncropped_image_without_size_is_refused(off: Gemma3Adapter) -> None:
    batch, _ = _prepared(off, [WIDE])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "image_sizes"}
    with pytest.raises(MissingInputError, match="original image size is unknown"):
        off.normalize({**sample, "num_crops": [0]})


def test_views_that_fit_no_crop_setting_are_refused(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE])
    sample = {**sample_from_batch(batch), "image_sizes": [list(SQUARE)]}
    with pytest.raises(TokenCountError) as info:
        on.normalize(sample)
    message = str(info.value)
    assert "4 views for 1 image(s) of sizes [[600, 600]]" in message
    assert "[0] crops per image (1 views) with pan-and-scan on" in message


def test_a_wrong_token_count_names_every_view(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE])
    sample = sample_from_batch(batch)
    ids = sample["input_ids"]
    crop_2 = batch.image_token_positions[0][0][2 * on.gemma_spec.tokens_per_view]
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[int(crop_2)] = False
    short = {**sample, "input_ids": ids[keep], "token_type_ids": sample["token_type_ids"][keep]}
    with pytest.raises(TokenCountError) as info:
        on.normalize(short)
    message = str(info.value)
    assert "found runs of [256, 256, 255, 256]" in message
    assert "expected runs of [256, 256, 256, 256]: 256 tokens for each of the 4 views" in message


def test_one_placeholder_per_image_is_refused_not_guessed(off: Gemma3Adapter) -> None:
    """Gemma 3 writes text and start/end tokens around each view; the ids of the bare prompt cannot
    be expanded exactly (a tokenizer may merge that text with its neighbours), so they are refused."""
    batch, _ = _prepared(off, [WIDE])
    prompt = off.format_prompt("describe the red cat", answer="a cat on a chair")
    ids = off.processor.tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    sample = {**sample_from_batch(batch), "input_ids": ids}
    del sample["token_type_ids"]
    with pytest.raises(TokenCountError, match="one <start_of_image> placeholder per image is not expandable"):
        off.normalize(sample)


def test_token_type_ids_are_recomputed_because_the_model_needs_them(off: Gemma3Adapter) -> None:
    """Without ``token_type_ids`` the stock model silently runs a causal mask over the image; the
    batch always carries the stock processor's values."""
    batch, images = _prepared(off, [WIDE])
    sample = {k: v for k, v in sample_from_batch(batch).items() if k != "token_type_ids"}
    got = off.normalize(sample)
    prompt = off.format_prompt("describe the red cat", answer="a cat on a chair")
    stock = off.processor(images=images, text=[prompt], return_tensors="pt")
    assert torch.equal(got.inputs["token_type_ids"], stock["token_type_ids"])
    model = off.load_model(seed=0)
    with torch.no_grad():
        with_types = model(**got.inputs).logits
        without = model(**{k: v for k, v in got.inputs.items() if k != "token_type_ids"}).logits
        torch.testing.assert_close(with_types, model(**stock).logits, rtol=0, atol=1e-6)
    assert float((with_types - without).abs().max()) > 1e-4


def test_mask_ids_and_labels_stay_aligned(on: Gemma3Adapter) -> None:
    batch, _ = _prepared(on, [WIDE])
    sample = sample_from_batch(batch)
    ids = sample["input_ids"]
    mask_ids = torch.full_like(ids, -1)
    mask_ids[-4:-2] = 0
    got = on.normalize({**sample, "mask_ids": mask_ids, "labels": ids.clone()})
    assert got.mask_ids is not None and torch.equal(got.mask_ids[0], mask_ids)
    assert torch.equal(got.inputs["labels"][0], ids)
    with pytest.raises(TokenCountError, match="mask_ids is not aligned"):
        on.normalize({**sample, "mask_ids": mask_ids[:-1]})


def test_swapped_sizes_are_refused_where_crops_show_them(on: Gemma3Adapter) -> None:
    """Views are stretched, so only crops show an image's aspect ratio: a (width, height) size for
    a cropped image puts every crop box elsewhere, and the whole-image view says so."""
    batch, _ = _prepared(on, [WIDE])
    sample = sample_from_batch(batch)
    swapped = {**sample, "image_sizes": [[WIDE[1], WIDE[0]]]}  # also 3 crops, stacked instead of side by side
    assert on.gemma_spec.geometry(WIDE[::-1]).num_views == on.gemma_spec.geometry(WIDE).num_views
    with pytest.raises(ImageSizeError, match="crop views do not show the boxes"):
        on.normalize(swapped)
    pixels = sample["pixel_values"]
    reordered = {**sample, "pixel_values": pixels[[0, 2, 1, 3]]}
    with pytest.raises(ImageSizeError, match="crop views do not show the boxes"):
        on.normalize(reordered)


def test_placeholders_without_pixels_are_refused(off: Gemma3Adapter) -> None:
    """``<start_of_image>`` is not the image token the model counts, so a sample that lost its pixels
    would pass as text-only if it were not looked for."""
    prompt = off.format_prompt("describe the red cat", answer="a cat on a chair")
    ids = off.processor.tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    with pytest.raises(MissingInputError, match="carries image placeholders"):
        off.normalize({"input_ids": ids})


@pytest.mark.parametrize("variant", [None, PAN_AND_SCAN_VARIANT])
def test_bad_input_corpus(variant: str | None) -> None:
    """The kit's corpus: no crash, and nothing silent except a swapped size on an image without
    crops, which no pixel shows (a stretch fits any aspect ratio; with crops it is refused, above)."""
    adapter = Gemma3Adapter.from_tiny(variant)
    report = run_corpus(adapter, adapter.load_model(seed=0), chains=60)
    assert report.counts["crash"] == 0, report.describe()
    unobservable = {"sizes_swapped"}
    by_name = {m.name: m for m in MUTATIONS}
    for outcome in report.failures:
        refused_for = {n for n in outcome.mutations if by_name[n].expect == "refuse"}
        assert refused_for <= unobservable and outcome.detail == "accepted a sample that must be refused", outcome
    assert report.counts["accepted"] > 10 and report.counts["refused"] > 200
