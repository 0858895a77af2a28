"""``normalize`` on the sample forms research datasets produce, and on the seed failure.

Every expectation comes from the stock processor (``prepare`` is the stock processor path) or the
stock model; the only literals are the stock processor's facts for the 640x427 seed photo.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import noise_image, photo_like

from adapters_qwen import GridRecoveredWarning, QwenAdapter
from vlm_adapters import (
    AmbiguousGridError,
    GridError,
    ImageShapeError,
    ImageSizeError,
    MissingInputError,
    PatchMatrixAsImageError,
    PixelValueError,
    TokenCountError,
    VisionBatch,
    VisionInputError,
    get_adapter,
)

SEED_SIZE = (427, 640)  # the seed photo: 427 high, 640 wide


@pytest.fixture(scope="module")
def qwen25() -> tuple[QwenAdapter, Any]:
    adapter = get_adapter("qwen2_5_vl").from_tiny()
    return adapter, adapter.load_model(seed=0)  # type: ignore[return-value]


@pytest.fixture(scope="module", params=("qwen2_vl", "qwen2_5_vl", "qwen3_vl"))
def family(request: pytest.FixtureRequest) -> QwenAdapter:
    return get_adapter(request.param).from_tiny()  # type: ignore[return-value]


def logits(model: Any, batch: VisionBatch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch.inputs).logits


def prepared(adapter: QwenAdapter, images: list[Any], answer: str = "the cat") -> VisionBatch:
    text = adapter.format_prompt("where is the cat", num_images=len(images), answer=answer)
    return adapter.prepare([images], [text])


def as_sample(batch: VisionBatch, **extra: Any) -> dict[str, Any]:
    """What a Qwen dataset hands over: 1-D input_ids, the patch matrix, the grid."""
    sample = {
        "input_ids": batch.input_ids[0],
        "pixel_values": batch.inputs["pixel_values"],
        "image_grid_thw": batch.inputs["image_grid_thw"],
    }
    sample.update(extra)
    return {k: v for k, v in sample.items() if v is not ...}


def assert_same_inputs(got: VisionBatch, want: VisionBatch) -> None:
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw"):
        assert torch.equal(got.inputs[key], want.inputs[key]), key


@pytest.fixture(scope="module")
def seed(qwen25: tuple[QwenAdapter, Any]) -> VisionBatch:
    """The seed photo through the stock processor: grid [[1, 30, 46]], pixel_values [1380, 1176]."""
    batch = prepared(qwen25[0], [Image.fromarray(photo_like(*SEED_SIZE, seed=0))])
    assert batch.inputs["image_grid_thw"].tolist() == [[1, 30, 46]]
    assert tuple(batch.inputs["pixel_values"].shape) == (1380, 1176)
    return batch


# --- the seed scenarios ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        lambda g: g,
        lambda g: g.tolist(),
        lambda g: g[0].tolist(),
        lambda g: tuple(g[0].tolist()),
        lambda g: g.numpy(),
        lambda g: g[None],
        lambda g: [g[0]],
    ],
    ids=["tensor", "nested-list", "flat-list", "tuple", "numpy", "batched", "list-of-tensors"],
)
def test_grid_given_is_kept_unchanged(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch, form: Any) -> None:
    adapter, _ = qwen25
    got = adapter.normalize(as_sample(seed, image_grid_thw=form(seed.inputs["image_grid_thw"])))
    assert_same_inputs(got, seed)
    assert got.extras["repairs"] == []


@pytest.mark.parametrize(
    "declared",
    [
        {"image_sizes": [SEED_SIZE]},
        {"image_sizes": SEED_SIZE},
        {"image_sizes": torch.tensor([SEED_SIZE])},
        {"meta_data": {"original_shape": {"height": 427, "width": 640}}},
        {"meta_datas": [{"image_shape": {"height": 420, "width": 644}}]},  # the processor's resized size
        {"meta_data": [{"original_shape": (427, 640), "image_shape": (420, 644)}], "image_sizes": [SEED_SIZE]},
    ],
    ids=["image_sizes", "flat-pair", "tensor", "meta-original", "meta-resized", "all-agree"],
)
@pytest.mark.parametrize("missing", ["none", "absent"])
def test_grid_none_with_size_known_is_derived_exactly(
    qwen25: tuple[QwenAdapter, Any], seed: VisionBatch, declared: dict[str, Any], missing: str
) -> None:
    adapter, _ = qwen25
    sample = as_sample(seed, image_grid_thw=None if missing == "none" else ..., **declared)
    got = adapter.normalize(sample)
    assert got.inputs["image_grid_thw"].tolist() == [[1, 30, 46]]
    assert_same_inputs(got, seed)
    assert "derived from image size" in got.extras["repairs"][0]


def test_grid_derivation_is_logged_once(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch, caplog: Any) -> None:
    adapter = type(qwen25[0]).from_tiny()
    sample = as_sample(seed, image_grid_thw=None, image_sizes=[SEED_SIZE])
    with caplog.at_level(logging.INFO, logger="adapters_qwen"):
        adapter.normalize(sample)
        adapter.normalize(sample)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "[1, 30, 46]" in infos[0].getMessage()


def test_derived_grid_gives_the_stock_logits(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, model = qwen25
    got = adapter.normalize(as_sample(seed, image_grid_thw=None, image_sizes=[SEED_SIZE]))
    torch.testing.assert_close(logits(model, got), logits(model, seed), rtol=0, atol=0)
    assert got.geometries == seed.geometries


def test_grid_none_with_nothing_else_is_recovered_from_a_photo(
    qwen25: tuple[QwenAdapter, Any], seed: VisionBatch
) -> None:
    adapter, model = qwen25
    with pytest.warns(GridRecoveredWarning, match="image_grid_thw"):
        got = adapter.normalize(as_sample(seed, image_grid_thw=None))
    assert got.inputs["image_grid_thw"].tolist() == [[1, 30, 46]]
    torch.testing.assert_close(logits(model, got), logits(model, seed), rtol=0, atol=0)
    assert got.extras["original_size_known"] == [[False]]
    assert got.geometries[0][0].original_size == (420, 644)  # unknown: maps come back at resized size


def test_grid_none_with_nothing_else_refuses_noise(qwen25: tuple[QwenAdapter, Any]) -> None:
    adapter, _ = qwen25
    batch = prepared(adapter, [Image.fromarray(noise_image(*SEED_SIZE, seed=1))])
    with pytest.raises(AmbiguousGridError) as info:
        adapter.normalize(as_sample(batch, image_grid_thw=None))
    assert [1, 30, 46] in info.value.candidates and [1, 46, 30] in info.value.candidates
    assert "image_grid_thw" in info.value.fix and "image_sizes" in info.value.fix


def test_patch_matrix_as_image_is_refused(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, _ = qwen25
    pv = seed.inputs["pixel_values"]
    disguises = [
        pv[None, None].expand(1, 3, *pv.shape),  # the seed's "recovered" [1, 3, 1380, 1176]
        pv[None].expand(3, *pv.shape),
        pv[None, None].expand(1, 3, *pv.shape).numpy(),
        [pv[None].expand(3, *pv.shape)],
    ]
    for fake in disguises:
        for extra in ({"image_grid_thw": None}, {"image_sizes": [SEED_SIZE]}, {}):
            with pytest.raises(PatchMatrixAsImageError) as info:
                adapter.normalize(as_sample(seed, pixel_values=fake, **extra))
            assert "[1380, 1176]" in str(info.value.expected) and "flattened patch" in info.value.problem


def test_transposed_grid_with_known_size_is_refused(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, model = qwen25
    transposed = torch.tensor([[1, 46, 30]])
    # the stock model itself runs on it without complaint and returns something else
    silent = {**seed.inputs, "image_grid_thw": transposed}
    with torch.no_grad():
        assert (model(**silent).logits - logits(model, seed)).abs().max() > 1e-4
    with pytest.raises(GridError, match="transposed") as info:
        adapter.normalize(as_sample(seed, image_grid_thw=transposed, image_sizes=[SEED_SIZE]))
    assert "[1, 30, 46]" in str(info.value.expected)


# --- grids that cannot be right -------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ([[1, 30, 44]], "does not fit the patch rows"),
        ([[1, 15, 92]], "multiples of the merge size"),
        ([[2, 30, 23]], "t=2"),
        ([[1, 2, 690]], None),  # the right product, reachable shape: accepted only without a size
        ([1, 30], "wrong shape"),
        ([[1, 30.5, 46]], "positive integers"),
        ([[1, -30, -46]], "positive integers"),
    ],
)
def test_impossible_grids_raise(
    qwen25: tuple[QwenAdapter, Any], seed: VisionBatch, grid: Any, match: str | None
) -> None:
    adapter, _ = qwen25
    if match is None:
        with pytest.raises(GridError, match="contradicts the image size"):
            adapter.normalize(as_sample(seed, image_grid_thw=grid, image_sizes=[SEED_SIZE]))
        return
    with pytest.raises(GridError, match=match):
        adapter.normalize(as_sample(seed, image_grid_thw=grid))


def test_grid_beyond_max_pixels_is_refused(family: QwenAdapter) -> None:
    spec = family.spec
    side = 2 * int(np.sqrt(spec.max_pixels) / spec.factor + 2)  # patches per side, even, over max
    sample = {
        "input_ids": torch.tensor([spec.vision_start_token_id, spec.image_token_id, spec.vision_end_token_id]),
        "pixel_values": torch.zeros(4, spec.patch_dim),  # the grid is refused before the rows are counted
        "image_grid_thw": [[1, side, side]],
    }
    with pytest.raises(GridError, match="above max_pixels"):
        family.normalize(sample)


def test_sizes_that_contradict_rows_or_each_other(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, _ = qwen25
    with pytest.raises(GridError, match="do not match the declared image size"):
        adapter.normalize(as_sample(seed, image_grid_thw=None, image_sizes=[(480, 640)]))
    # size sources that contradict each other: the core's ImageSizeError, as for every backbone
    meta = {"original_shape": {"height": 427, "width": 640}, "image_shape": {"height": 644, "width": 420}}
    with pytest.raises(ImageSizeError, match="contradicts itself"):
        adapter.normalize(as_sample(seed, image_grid_thw=None, meta_data=meta))
    with pytest.raises(ImageSizeError, match="disagree"):
        adapter.normalize(
            as_sample(seed, image_grid_thw=None, image_sizes=[SEED_SIZE], meta_data={"original_shape": (640, 427)})
        )


# --- tokens ---------------------------------------------------------------------------------


def test_token_errors(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, _ = qwen25
    spec = adapter.spec
    ids = seed.input_ids[0]
    image_at = (ids == spec.image_token_id).nonzero().flatten()
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[image_at[0]] = False
    with pytest.raises(TokenCountError, match="do not match"):
        adapter.normalize(as_sample(seed, input_ids=ids[keep]))
    patches_not_tokens = torch.cat([ids[: image_at[0]], ids[image_at].repeat(4), ids[image_at[-1] + 1 :]])
    with pytest.raises(TokenCountError, match="merge_size"):
        adapter.normalize(as_sample(seed, input_ids=patches_not_tokens))
    with pytest.raises(TokenCountError, match="no image tokens"):
        adapter.normalize(as_sample(seed, input_ids=ids[ids != spec.image_token_id]))
    with pytest.raises(MissingInputError, match="no pixel values"):
        adapter.normalize({"input_ids": ids})
    with pytest.raises(MissingInputError, match="no input_ids"):
        adapter.normalize({"pixel_values": seed.inputs["pixel_values"], "image_grid_thw": [[1, 30, 46]]})
    with pytest.raises(VisionInputError, match="video tokens"):
        adapter.normalize(as_sample(seed, input_ids=torch.cat([ids, torch.tensor([spec.video_token_id])])))
    with pytest.raises(TokenCountError, match="not aligned"):
        adapter.normalize(as_sample(seed, mask_ids=torch.full((5,), -1)))
    with pytest.raises(VisionInputError, match="one sample"):
        adapter.normalize(as_sample(seed, input_ids=seed.input_ids.expand(2, -1)))


def _unexpanded(adapter: QwenAdapter, num_images: int, answer: str = "the cat is left") -> tuple[str, torch.Tensor]:
    text = adapter.format_prompt("where is the cat", num_images=num_images, answer=answer)
    return text, adapter.processor.tokenizer(text, return_tensors="pt")["input_ids"][0]


def test_unexpanded_ids_are_expanded_like_the_processor(family: QwenAdapter) -> None:
    """One placeholder per image -> the processor's expansion; mask_ids and labels follow."""
    adapter = family
    images = [Image.fromarray(photo_like(300, 200, seed=7)), Image.fromarray(photo_like(90, 400, seed=8))]
    text, ids = _unexpanded(adapter, 2)
    stock = adapter.processor(images=images, text=[text], return_tensors="pt")
    tok = adapter.processor.tokenizer
    (cat,), (left,) = (tok(" " + word, add_special_tokens=False)["input_ids"] for word in ("cat", "left"))
    mask_ids = torch.where(ids == cat, 0, torch.where(ids == left, 1, -1))
    labels = torch.where(ids == left, ids, -100)
    sample = {
        "input_ids": ids.tolist(),
        "mask_ids": mask_ids,
        "labels": labels,
        "pixel_values": stock["pixel_values"],
        "image_grid_thw": stock["image_grid_thw"],
    }
    got = adapter.normalize(sample)
    want_ids = stock["input_ids"][0]
    assert torch.equal(got.input_ids[0], want_ids)
    assert torch.equal(got.inputs["mm_token_type_ids"], stock["mm_token_type_ids"])
    assert got.mask_ids is not None
    want_mask = torch.where(want_ids == cat, 0, torch.where(want_ids == left, 1, -1))
    assert torch.equal(got.mask_ids[0], want_mask)
    assert torch.equal(got.inputs["labels"][0], torch.where(want_ids == left, want_ids, -100))
    assert any("expanded" in r for r in got.extras["repairs"])


def test_input_ids_with_vision(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    """The Qwen fork's pair: prompt ids + the processor's expanded ids; per-token fields may follow either."""
    adapter, _ = qwen25
    _, ids = _unexpanded(adapter, 1, answer="the cat")
    expanded = seed.input_ids[0]
    got = adapter.normalize(
        as_sample(seed, input_ids=ids, input_ids_with_vision=expanded, mask_ids=torch.zeros_like(ids))
    )
    assert torch.equal(got.input_ids[0], expanded) and got.mask_ids is not None
    assert got.mask_ids.shape == expanded[None].shape and bool((got.mask_ids == 0).all())
    only = adapter.normalize(as_sample(seed, input_ids=..., input_ids_with_vision=expanded))
    assert_same_inputs(only, seed)
    with pytest.raises(TokenCountError, match="different prompts"):
        adapter.normalize(as_sample(seed, input_ids=ids[:-3], input_ids_with_vision=expanded))


def test_per_image_numpy_arrays_and_several_images(family: QwenAdapter) -> None:
    adapter = family
    sizes = [(300, 200), (90, 400)]
    images = [Image.fromarray(photo_like(h, w, seed=9 + i)) for i, (h, w) in enumerate(sizes)]
    batch = prepared(adapter, images)
    arrays = [
        a.numpy() for a in batch.inputs["pixel_values"].split([g.num_image_tokens * 4 for g in batch.geometries[0]])
    ]
    for extra in ({"image_sizes": sizes}, {"image_grid_thw": batch.inputs["image_grid_thw"].tolist()}):
        got = adapter.normalize({"input_ids": batch.input_ids[0], "pixel_values": arrays, **extra})
        assert_same_inputs(got, batch)
    with pytest.warns(GridRecoveredWarning):  # no grid, no size: each array recovered on its own
        got = adapter.normalize({"input_ids": batch.input_ids[0], "pixel_values": arrays})
    assert_same_inputs(got, batch)
    with pytest.warns(GridRecoveredWarning):  # one matrix: the expanded prompt's runs split the rows
        got = adapter.normalize({"input_ids": batch.input_ids[0], "pixel_values": batch.inputs["pixel_values"]})
    assert_same_inputs(got, batch)
    _, ids = _unexpanded(adapter, 2)
    with pytest.raises(GridError, match="split"):
        adapter.normalize({"input_ids": ids, "pixel_values": batch.inputs["pixel_values"]})


def test_raw_images_go_through_the_stock_processor(family: QwenAdapter) -> None:
    adapter = family
    arr = photo_like(130, 210, seed=11)
    arr2 = photo_like(130, 210, seed=12)
    _, ids1 = _unexpanded(adapter, 1)
    _, ids2 = _unexpanded(adapter, 2)
    want1 = prepared(adapter, [Image.fromarray(arr)], answer="the cat is left")
    want2 = prepared(adapter, [Image.fromarray(arr), Image.fromarray(arr2)], answer="the cat is left")
    chw = torch.from_numpy(arr).permute(2, 0, 1)
    forms = [
        (ids1, {"pixel_values": Image.fromarray(arr)}, want1),
        (ids1, {"images": [arr]}, want1),
        (ids1, {"pixel_values": arr.astype(np.float64) / 255}, want1),
        (ids1, {"pixel_values": chw}, want1),
        (ids1, {"pixel_values": chw[None].float() / 255}, want1),
        (ids1, {"image": Image.fromarray(arr), "image_sizes": [(130, 210)]}, want1),
        (want1.input_ids[0], {"pixel_values": chw}, want1),  # already expanded: validated
        (ids2, {"pixel_values": torch.stack([chw, torch.from_numpy(arr2).permute(2, 0, 1)])}, want2),
    ]
    for ids, extra, want in forms:
        got = adapter.normalize({"input_ids": ids, **extra})
        assert_same_inputs(got, want)
        assert got.geometries == want.geometries
    with pytest.raises(ImageShapeError, match="scale is ambiguous"):
        adapter.normalize({"input_ids": ids1, "pixel_values": arr.astype(np.float32)})
    with pytest.raises(ImageShapeError, match="normalised"):
        adapter.normalize({"input_ids": ids1, "pixel_values": chw.float() / 255 - 0.5})
    with pytest.raises(ImageShapeError, match="declared image sizes"):
        adapter.normalize({"input_ids": ids1, "pixel_values": chw, "image_sizes": [(427, 640)]})
    with pytest.raises(GridError, match="does not belong"):
        adapter.normalize({"input_ids": ids1, "pixel_values": chw, "image_grid_thw": [[1, 30, 46]]})


def test_patch_values_must_be_normalised(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, _ = qwen25
    spec = adapter.spec
    mean = torch.tensor(spec.image_mean).repeat_interleave(spec.patch_dim // 3)
    std = torch.tensor(spec.image_std).repeat_interleave(spec.patch_dim // 3)
    unnormalised = (seed.inputs["pixel_values"] * std + mean) * 255  # 0..255 patches
    with pytest.raises(ImageShapeError, match="not normalised"):
        adapter.normalize(as_sample(seed, pixel_values=unnormalised))
    with pytest.raises(ImageShapeError, match="width"):
        adapter.normalize(as_sample(seed, pixel_values=seed.inputs["pixel_values"][:, :588]))


def test_text_only_and_mm_token_type_ids(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, model = qwen25
    text = adapter.format_prompt("hello", num_images=0)
    ids = adapter.processor.tokenizer(text, return_tensors="pt")["input_ids"][0]
    got = adapter.normalize({"input_ids": ids})
    assert got.geometries == [[]] and bool((got.inputs["mm_token_type_ids"] == 0).all())
    logits(model, got)
    full = adapter.normalize(as_sample(seed))
    want = torch.tensor(adapter.processor.create_mm_token_type_ids([seed.input_ids[0].tolist()]))
    assert torch.equal(full.inputs["mm_token_type_ids"], want)
    assert torch.equal(full.inputs["mm_token_type_ids"], seed.inputs["mm_token_type_ids"])


def test_collate_of_mixed_forms(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    adapter, model = qwen25
    other = prepared(adapter, [Image.fromarray(photo_like(200, 300, seed=13))], answer="a long answer here")
    samples = [
        as_sample(seed, image_grid_thw=None, image_sizes=[SEED_SIZE]),
        as_sample(other, pixel_values=[other.inputs["pixel_values"].numpy()]),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = adapter.collate(samples)
    out = logits(model, batch)
    for b, single in enumerate((seed, other)):
        valid = batch.inputs["attention_mask"][b].bool()
        torch.testing.assert_close(out[b][valid], logits(model, single)[0], rtol=0, atol=1e-4)


def test_content_catches_a_grid_transposed_together_with_its_size(
    qwen25: tuple[QwenAdapter, Any], seed: VisionBatch
) -> None:
    """PIL's ``img.size`` is (width, height): a collate that uses it transposes grid *and* size
    consistently. The patch content still tells: it only joins up as the true grid."""
    adapter, _ = qwen25
    pil_order = as_sample(seed, image_grid_thw=[[1, 46, 30]], image_sizes=[(640, 427)])
    with pytest.raises(GridError, match="patch content contradicts") as info:
        adapter.normalize(pil_order)
    assert "[1, 30, 46]" in str(info.value.expected) and "(width, height)" in info.value.fix
    with pytest.raises(GridError, match="patch content contradicts"):
        adapter.normalize(as_sample(seed, image_grid_thw=None, image_sizes=[(640, 427)]))
    unchecked = type(adapter).from_tiny()
    unchecked.verify_grids_with_content = False
    assert unchecked.normalize(pil_order).inputs["image_grid_thw"].tolist() == [[1, 46, 30]]


def test_grid_given_on_uninformative_content_is_kept(qwen25: tuple[QwenAdapter, Any]) -> None:
    """Noise cannot confirm a grid, so it cannot contradict one either: the given grid stands."""
    adapter, _ = qwen25
    batch = prepared(adapter, [Image.fromarray(noise_image(*SEED_SIZE, seed=2))])
    got = adapter.normalize(as_sample(batch))
    assert_same_inputs(got, batch)


def test_raw_image_with_pixel_values_gives_the_size(qwen25: tuple[QwenAdapter, Any], seed: VisionBatch) -> None:
    """A raw ``image`` next to ``pixel_values`` and no grid or size: the raw image gives the size
    (and the grid), and the pixels must be that image's processed form."""
    adapter, _ = qwen25
    photo = Image.fromarray(photo_like(*SEED_SIZE, seed=0))  # the seed photo itself
    sample = {"input_ids": seed.input_ids[0], "pixel_values": seed.inputs["pixel_values"], "image": photo}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no recovery from content: the size is known
        got = adapter.normalize(sample)
    assert_same_inputs(got, seed)
    assert got.geometries == seed.geometries and got.geometries[0][0].original_size == SEED_SIZE
    assert got.extras["original_size_known"] == [[True]]
    other = prepared(adapter, [Image.fromarray(photo_like(*SEED_SIZE, seed=5))])  # same size, another photo
    with pytest.raises(PixelValueError, match="not the processed form"):
        adapter.normalize({**sample, "pixel_values": other.inputs["pixel_values"]})
    smaller = prepared(adapter, [Image.fromarray(photo_like(200, 300, seed=0))])
    with pytest.raises(ImageShapeError, match="not the processed form"):
        adapter.normalize({**sample, "pixel_values": smaller.inputs["pixel_values"]})


def test_flat_image_cannot_tell_a_transposed_size(qwen25: tuple[QwenAdapter, Any]) -> None:
    """What is decided when the content cannot confirm a grid: a grid and a size that agree with each
    other stand, even transposed together (nothing in a flat image tells); the raw image settles it."""
    adapter, _ = qwen25
    flat = Image.new("RGB", (SEED_SIZE[1], SEED_SIZE[0]), (90, 120, 200))
    batch = prepared(adapter, [flat])
    pil_order = as_sample(batch, image_grid_thw=[[1, 46, 30]], image_sizes=[SEED_SIZE[::-1]])
    got = adapter.normalize(pil_order)
    assert got.inputs["image_grid_thw"].tolist() == [[1, 46, 30]]
    assert got.geometries[0][0].original_size == SEED_SIZE[::-1]
    derived = adapter.normalize(as_sample(batch, image_grid_thw=None, image_sizes=[SEED_SIZE[::-1]]))
    assert derived.inputs["image_grid_thw"].tolist() == [[1, 46, 30]]
    with pytest.raises(ImageSizeError, match="declared image sizes"):
        adapter.normalize({**pil_order, "image": flat})


def test_raw_image_beyond_the_aspect_limit_is_a_typed_error(family: QwenAdapter) -> None:
    """The stock processor raises a bare ValueError on it; the spec's ImageShapeError comes first."""
    _, ids = _unexpanded(family, 1)
    thin = np.zeros((3, 1000, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="aspect ratio"):
        family.processor.image_processor(images=[thin], return_tensors="pt")
    with pytest.raises(ImageShapeError, match="aspect ratio"):
        family.normalize({"input_ids": ids, "image": thin})
