"""``normalize`` on DeepSeek-VL samples: every bad input is a typed error with the fix, and a
property test over random valid and corrupted samples: each one is either a batch the stock
model accepts with the right geometry, or a ``VisionInputError``; never another exception."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlm_adapters import (
    ImageShapeError,
    ImageSizeError,
    MissingInputError,
    PatchMatrixAsImageError,
    TokenCountError,
    VisionInputError,
    get_adapter,
)
from vlm_adapters.testing import sample_from_batch, smooth_image

NAMES = ("deepseek_vl", "deepseek_vl_hybrid")


@pytest.fixture(scope="module", params=NAMES)
def adapter(request: pytest.FixtureRequest):
    return get_adapter(request.param).from_tiny()


@pytest.fixture(scope="module")
def model(adapter):
    return adapter.load_model(seed=0)


@pytest.fixture(scope="module")
def good(adapter) -> dict[str, Any]:
    """A valid dataset-style sample (stock processor output + image_sizes) and its image."""
    image = smooth_image(480, 640, seed=1)
    batch = adapter.prepare([image], [adapter.format_prompt("the red cat", answer="the red cat")])
    return {"sample": sample_from_batch(batch), "image": image}


def refused(adapter, sample: dict[str, Any], kind: type[VisionInputError]) -> VisionInputError:
    with pytest.raises(kind) as info:
        adapter.normalize(sample)
    err = info.value
    assert err.found is not None and err.expected is not None and err.fix, err
    return err


def test_wrong_resolution_is_an_image_shape_error_with_the_fix(adapter, good) -> None:
    pixels = good["sample"]["pixel_values"]
    small = torch.nn.functional.interpolate(pixels, size=(336, 336), mode="bilinear")
    err = refused(adapter, {**good["sample"], "pixel_values": small}, ImageShapeError)
    assert "336" in str(err.found) and "384" in str(err.expected) and "re-process" in err.fix
    big = torch.nn.functional.interpolate(pixels, size=(1024, 1024), mode="bilinear")
    err = refused(adapter, {**good["sample"], "pixel_values": big}, ImageShapeError)
    if adapter.spec.high_res_image_size is not None:
        assert "high_res_pixel_values" in err.fix
        swapped = {**good["sample"], "high_res_pixel_values": pixels}
        assert "'pixel_values'" in refused(adapter, swapped, ImageShapeError).fix


def test_stock_count_error_is_misleading_ours_says_576(adapter, model, good) -> None:
    sample = good["sample"]
    ids = sample["input_ids"]
    first = int((ids == adapter.spec.image_token_id).nonzero()[0])
    short = torch.cat([ids[:first], ids[first + 9 :]])  # 567 image tokens left
    with pytest.raises(Exception, match="tokens: 567, features"), torch.no_grad():  # the stock model's words
        model(input_ids=short[None], **{k: v for k, v in sample.items() if k.endswith("pixel_values")})
    err = refused(adapter, {**sample, "input_ids": short}, TokenCountError)
    assert "567" in str(err.found) and f"{adapter.spec.num_image_tokens} tokens per image" in str(err.expected)
    assert adapter.spec.num_image_tokens == 576


def test_image_tokens_split_into_wrong_runs(adapter, good) -> None:
    ids = good["sample"]["input_ids"].clone()
    first = int((ids == adapter.spec.image_token_id).nonzero()[0])
    ids[first + 100] = 0  # one image token moved out of the run...
    ids[0] = adapter.spec.image_token_id  # ...to the start: the total is right, the run is not
    err = refused(adapter, {**good["sample"], "input_ids": ids}, TokenCountError)
    assert "runs of" in str(err.found)


def test_patch_matrix_in_disguise(adapter, good) -> None:
    rng = torch.Generator().manual_seed(0)
    for fake in (
        torch.randn(1, 3, 1380, 1176, generator=rng),
        torch.randn(1380, 1176, generator=rng),
        [np.zeros((1380, 1176), dtype=np.float32)],
    ):
        refused(adapter, {**good["sample"], "pixel_values": fake}, PatchMatrixAsImageError)


def test_hybrid_high_res_missing() -> None:
    adapter = get_adapter("deepseek_vl_hybrid").from_tiny()
    image = smooth_image(480, 640, seed=1)
    batch = adapter.prepare([image], [adapter.format_prompt("the red cat", answer="the red cat")])
    sample = sample_from_batch(batch)
    del sample["high_res_pixel_values"]
    err = refused(adapter, sample, MissingInputError)
    assert "high_res_pixel_values" in err.problem
    repaired = adapter.normalize({**sample, "image": image})
    assert torch.equal(repaired.inputs["high_res_pixel_values"], batch.inputs["high_res_pixel_values"])
    assert torch.equal(repaired.inputs["pixel_values"], batch.inputs["pixel_values"])


def test_1_3b_ignores_a_high_res_view() -> None:
    adapter = get_adapter("deepseek_vl").from_tiny()
    image = smooth_image(200, 100)
    sample = sample_from_batch(adapter.prepare([image], [adapter.format_prompt("a", answer="b")]))
    sample["high_res_pixel_values"] = torch.zeros(1, 3, 1024, 1024)
    assert "high_res_pixel_values" not in adapter.normalize(sample).inputs


def test_unknown_original_size(adapter, good) -> None:
    sample = {k: v for k, v in good["sample"].items() if k != "image_sizes"}
    err = refused(adapter, sample, MissingInputError)
    assert "image_sizes" in err.fix
    side = adapter.spec.image_size
    batch = adapter.normalize({**sample, "image_sizes": [side]})  # the explicit opt-in the fix names
    assert batch.geometries[0][0].padding.is_zero
    meta = adapter.spec.geometry((480, 640)).to_meta_data()
    assert adapter.normalize({**sample, "meta_data": meta}).geometries[0][0] == adapter.spec.geometry((480, 640))


def test_contradicting_sizes(adapter, good) -> None:
    sample = {**good["sample"], "image": good["image"], "image_sizes": [(640, 480)]}  # (w, h) by mistake
    refused(adapter, sample, ImageShapeError)
    meta = adapter.spec.geometry((480, 640)).to_meta_data()
    meta["padding"] = {"before_height": 0, "after_height": 0, "before_width": 48, "after_width": 48}
    sample = {k: v for k, v in good["sample"].items() if k != "image_sizes"}
    refused(adapter, {**sample, "meta_data": [meta]}, ImageShapeError)
    refused(adapter, {**sample, "image_sizes": [(480, 640), (10, 10)]}, ImageShapeError)


def test_pixels_that_are_not_the_raw_image(adapter, good) -> None:
    flipped = np.ascontiguousarray(np.asarray(good["image"])[::-1])
    refused(adapter, {**good["sample"], "image": flipped}, VisionInputError)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ("mask_ids_length", TokenCountError),
        ("batch_of_two_ids", VisionInputError),
        ("ids_out_of_vocab", VisionInputError),
        ("float_ids", VisionInputError),
        ("no_input_ids", MissingInputError),
        ("tokens_without_image", MissingInputError),
        ("raw_0_255_as_processed", VisionInputError),
        ("nan_pixels", VisionInputError),
        ("channels_last", ImageShapeError),
        ("labels_out_of_vocab", VisionInputError),
        ("raw_float_image_not_in_0_1", ImageShapeError),
        ("not_a_dict", VisionInputError),
    ],
)
def test_bad_inputs(adapter, good, change: str, kind: type[VisionInputError]) -> None:
    s = dict(good["sample"])
    ids, pixels = s["input_ids"], s["pixel_values"]
    if change == "mask_ids_length":
        s["mask_ids"] = torch.full((ids.numel() + 1,), -1)
    elif change == "batch_of_two_ids":
        s["input_ids"] = torch.stack([ids, ids])
    elif change == "ids_out_of_vocab":
        s["input_ids"] = torch.cat([ids, torch.tensor([adapter.config.text_config.vocab_size])])
    elif change == "float_ids":
        s["input_ids"] = ids.float()
    elif change == "no_input_ids":
        del s["input_ids"]
    elif change == "tokens_without_image":
        s = {"input_ids": ids}
    elif change == "raw_0_255_as_processed":
        s["pixel_values"] = (pixels * 0.27 + 0.45) * 255
    elif change == "nan_pixels":
        s["pixel_values"] = pixels.clone()
        s["pixel_values"][0, 0, 5, 5] = float("nan")
    elif change == "channels_last":
        s["pixel_values"] = pixels.permute(0, 2, 3, 1)
    elif change == "labels_out_of_vocab":
        s["labels"] = torch.full_like(ids, 10**6)
    elif change == "raw_float_image_not_in_0_1":
        s = {"input_ids": ids, "image": pixels[0]}  # processed pixels under the raw-image key
    else:
        s = [s]  # type: ignore[assignment]
    refused(adapter, s, kind)


# --- property test ---------------------------------------------------------------------------
POOL_SIZES = ((37, 61), (90, 17), (5, 120), (64, 64))
CORRUPTIONS = (
    "drop_image_token",
    "extra_image_token",
    "resolution",
    "patch_matrix",
    "nan",
    "mask_length",
    "out_of_vocab",
    "drop_high_res",
    "swap_sizes",
    "bad_sizes",
    "float_ids",
    "drop_pixels",
    "channels_last",
    "batch_ids",
    "bad_meta",
    "labels_range",
    "attention_mask_values",
    "string_pixels",
    "raw_negative",
    "empty_image",
    "drop_input_ids",
)


FORMS = ("pil", "numpy", "tensor", "uint8_pixel_values", "processed")
NEEDS_PROCESSED = {"nan", "channels_last", "drop_high_res"}
NEEDS_RAW = {"swap_sizes"}


@st.composite
def samples(
    draw: st.DrawFn, adapter, pool, corruption: str | None, form: str | None = None
) -> tuple[dict[str, Any], list[tuple[int, int]], bool]:
    """(sample, true original sizes, whether it must be accepted), with ``corruption`` applied.

    Everything else is random: image count and sizes, raw or processed form, tensor layout,
    size source, expanded or placeholder ids, id container, mask_ids and labels. A corruption
    is applied only where it makes the sample wrong (dropping the high-res view is wrong only
    for the hybrid without a raw image), so a corrupted sample must always be refused."""
    spec = adapter.spec
    n = draw(st.sampled_from([1, 2, 1, 2, 0])) if corruption is None else draw(st.integers(1, 2))
    candidates = [i for i, c in enumerate(pool) if corruption not in NEEDS_RAW or c["size"][0] != c["size"][1]]
    chosen = [pool[i] for i in draw(st.lists(st.sampled_from(candidates), min_size=n, max_size=n))]
    forms = list(FORMS) if form is None else [form]
    if corruption in NEEDS_PROCESSED:
        forms = ["processed"]
    elif corruption in NEEDS_RAW:
        forms = forms[:4]
    form = draw(st.sampled_from(forms))
    layout = draw(st.sampled_from(["nchw", "b1chw", "1nchw", "list"] + (["chw"] if n == 1 else [])))
    size_source = draw(st.sampled_from(["none", "image_sizes", "meta_data"]))
    expand = draw(st.booleans())
    words = draw(st.lists(st.integers(5, 60), min_size=1, max_size=6))
    cut = draw(st.integers(0, len(words)))
    per = spec.num_image_tokens if expand else 1
    ids = [*words[:cut], *([spec.image_token_id] * per * n), *words[cut:]]
    container = draw(st.sampled_from(["1d", "2d", "list", "numpy"]))
    wrapped = {"1d": torch.tensor(ids), "2d": torch.tensor([ids]), "list": ids, "numpy": np.asarray(ids)}
    sample: dict[str, Any] = {"input_ids": wrapped[container]}
    if draw(st.booleans()):
        sample["mask_ids"] = torch.tensor([-1] * (len(ids) - 1) + [0])
    if draw(st.booleans()):
        sample["labels"] = torch.tensor(ids)
    if n and form in ("pil", "numpy", "tensor"):
        conv = {"pil": Image.fromarray, "numpy": lambda a: a, "tensor": lambda a: torch.from_numpy(a).permute(2, 0, 1)}
        sample["images"] = [conv[form](c["array"]) for c in chosen]
    elif n and form == "uint8_pixel_values":
        sample["pixel_values"] = [torch.from_numpy(c["array"]).permute(2, 0, 1) for c in chosen]
    elif n:
        for key in chosen[0]["views"]:
            x = torch.cat([c["views"][key] for c in chosen])
            sample[key] = {"nchw": x, "b1chw": x[:, None], "1nchw": x[None], "list": list(x), "chw": x[0]}[layout]
    sizes = [c["size"] for c in chosen]
    if size_source == "image_sizes":
        sample["image_sizes"] = [list(s) for s in sizes]
    elif size_source == "meta_data":
        sample["meta_datas"] = [spec.geometry(s).to_meta_data() for s in sizes]
    raw = n > 0 and form != "processed"
    valid = n == 0 or raw or size_source != "none"
    if corruption == "drop_high_res" and spec.high_res_image_size is None:
        corruption = None

    image_key = "images" if "images" in sample else "pixel_values"
    if corruption == "drop_image_token":
        at = ids.index(spec.image_token_id)
        sample["input_ids"] = torch.tensor(ids[:at] + ids[at + 1 :])
    elif corruption == "extra_image_token":
        sample["input_ids"] = torch.tensor([spec.image_token_id, *ids])
    elif corruption == "resolution":
        sample["pixel_values"] = torch.rand(n, 3, 336, 336)
    elif corruption == "patch_matrix":
        sample["pixel_values"] = draw(st.sampled_from([torch.randn(1380, 1176), torch.randn(1, 3, 1380, 1176)]))
    elif corruption == "nan":
        x = torch.cat([c["views"]["pixel_values"] for c in chosen]).clone()
        x[0, 1, 2, 3] = float("nan")
        sample["pixel_values"] = x
    elif corruption == "mask_length":
        sample["mask_ids"] = torch.full((len(ids) + 3,), -1)
    elif corruption == "out_of_vocab":
        sample["input_ids"] = torch.tensor([*ids, adapter.config.text_config.vocab_size + 5])
    elif corruption == "drop_high_res":
        del sample["high_res_pixel_values"]
    elif corruption == "swap_sizes":
        sample["image_sizes"] = [[w, h] for h, w in sizes]
    elif corruption == "bad_sizes":
        sample["image_sizes"] = draw(st.sampled_from([[[0, 5]] * n, "480x640", [[1, 2, 3]] * n, [[4, 4]] * (n + 1)]))
    elif corruption == "float_ids":
        sample["input_ids"] = torch.tensor(ids, dtype=torch.float32)
    elif corruption == "drop_pixels":
        for key in ("pixel_values", "high_res_pixel_values", "images"):
            sample.pop(key, None)
    elif corruption == "channels_last":
        sample["pixel_values"] = torch.cat([c["views"]["pixel_values"] for c in chosen]).permute(0, 2, 3, 1)
    elif corruption == "batch_ids":
        sample["input_ids"] = torch.tensor([ids, ids])
    elif corruption == "bad_meta":
        bad_meta = [[None] * n, "meta", [{"original_shape": {"height": -3, "width": 4}}] * n, [{"foo": 1}] * (n + 1)]
        sample["meta_data"] = draw(st.sampled_from(bad_meta))
        sample.pop("meta_datas", None)
    elif corruption == "labels_range":
        sample["labels"] = torch.tensor([-7] * len(ids))
    elif corruption == "attention_mask_values":
        sample["attention_mask"] = torch.full((len(ids),), 2)
    elif corruption == "string_pixels":
        sample[image_key] = "pixels.png"
    elif corruption == "raw_negative":
        sample["images"] = [np.full((8, 8, 3), -0.5, dtype=np.float32)] * n
        sample.pop("pixel_values", None)
    elif corruption == "empty_image":
        sample["images"] = [np.zeros((0, 5, 3), dtype=np.uint8)] * n
        sample.pop("pixel_values", None)
    elif corruption == "drop_input_ids":
        del sample["input_ids"]
    return sample, sizes, valid and corruption is None


def _check_outcome(adapter, model, sample, sizes, must_accept) -> None:
    try:
        batch = adapter.normalize(sample)
    except VisionInputError:
        assert not must_accept, f"a valid sample was refused: {sample}"
        return
    # accepted: the stock model must take it, with the geometry of the true original sizes
    assert must_accept, f"a corrupted sample was accepted: {sample}"
    assert batch.geometries == [[adapter.spec.geometry(s) for s in sizes]]
    for positions in batch.image_token_positions[0]:
        assert (batch.input_ids[0, positions] == adapter.spec.image_token_id).all()
    with torch.no_grad():
        out = model(**batch.inputs)
    assert out.logits.shape[:2] == batch.input_ids.shape


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, tuple[Any, Any, list[dict[str, Any]]]]:
    out = {}
    for name in NAMES:
        adapter = get_adapter(name).from_tiny()
        out[name] = (adapter, adapter.load_model(seed=0), _pool(adapter))
    return out


CASES = [*(pytest.param(None, f, id=f"valid-{f}") for f in FORMS), *(pytest.param(c, None, id=c) for c in CORRUPTIONS)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("corruption", "form"), CASES)
def test_property_every_outcome_is_a_good_batch_or_a_vision_input_error(tiny_models, name, corruption, form) -> None:
    adapter, model, pool_ = tiny_models[name]
    hybrid = adapter.spec.high_res_image_size is not None
    examples = (6 if hybrid else 15) if corruption is None else (2 if hybrid else 4)

    @settings(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _check_outcome(adapter, model, *data.draw(samples(adapter, pool_, corruption, form)))

    run()


def _pool(adapter) -> list[dict[str, Any]]:
    """Small images with their stock-processed views (computed once: the hybrid's 1024 view is slow)."""
    rng = np.random.default_rng(0)
    out = []
    for h, w in POOL_SIZES:
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        views = adapter.processor.image_processor(images=[arr], return_tensors="pt")
        out.append({"array": arr, "size": (h, w), "views": {k: views[k] for k in views}})
    return out


def _research_processed(image: Image.Image, spec) -> tuple[torch.Tensor, dict[str, Any]]:
    """Pixels and meta_data the way DeepSeek-VL's research processor (used by F-LMM) makes them:
    PIL bicubic resize with ``int`` (not ``round``) content sizes, pasted on the background."""
    w, h = image.size
    side = spec.image_size[0]
    rh, rw = max(int(h / max(h, w) * side), spec.min_side), max(int(w / max(h, w) * side), spec.min_side)
    canvas = Image.new("RGB", (side, side), spec.background_color)
    top, left = (side - rh) // 2, (side - rw) // 2
    canvas.paste(image.resize((rw, rh), Image.Resampling.BICUBIC), (left, top))
    x = torch.from_numpy(np.array(canvas)).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(spec.image_mean).view(3, 1, 1)) / torch.tensor(spec.image_std).view(3, 1, 1)
    meta = {  # what that processor writes: no original_shape (F-LMM samples carry the raw image)
        "image_shape": {"height": rh, "width": rw},
        "padded_shape": {"height": side, "width": side},
        "padding": {
            "before_height": top,
            "after_height": side - rh - top,
            "before_width": left,
            "after_width": side - rw - left,
        },
    }
    return x, meta


def test_flmm_research_sample_is_accepted_as_is() -> None:
    """An F-LMM DeepSeek sample: raw ``image``, research-processed ``pixel_values`` [3, H, W],
    expanded 1-D ``input_ids``, ``mask_ids`` and ``meta_data``. Its pixels differ from the stock
    processor's by resampling and a one-pixel content size (481 * 384 / 640 = 288.6), which is
    within the documented tolerances; the pixels are used as given."""
    adapter = get_adapter("deepseek_vl").from_tiny()
    image = smooth_image(481, 640, seed=2)
    pixels, meta = _research_processed(image, adapter.spec)
    ids = adapter.prepare([image], [adapter.format_prompt("the cat", answer="the cat")]).input_ids[0]
    mask_ids = torch.where(torch.arange(ids.numel()) >= ids.numel() - 3, 0, -1)
    sample = {"image": image, "pixel_values": pixels, "input_ids": ids, "mask_ids": mask_ids, "meta_data": meta}
    batch = adapter.normalize(sample)
    assert torch.equal(batch.inputs["pixel_values"][0], pixels)
    assert batch.geometries[0][0] == adapter.spec.geometry((481, 640))
    assert torch.equal(batch.mask_ids[0], mask_ids)
    mirrored = {**sample, "pixel_values": pixels.flip(-1)}  # augmented pixels with the un-augmented image
    refused(adapter, mirrored, VisionInputError)


def test_declared_size_is_checked_against_the_visible_padding() -> None:
    """Without a raw image, the background bands of processed pixels show where the content is:
    research-processed pixels (content one row off the stock rounding) with their true size are
    accepted, the same pixels with a (width, height) size or another aspect ratio are refused."""
    adapter = get_adapter("deepseek_vl").from_tiny()
    image = smooth_image(481, 640, seed=2)
    pixels, _ = _research_processed(image, adapter.spec)
    ids = adapter.prepare([image], [adapter.format_prompt("the cat", answer="the cat")]).input_ids[0]
    batch = adapter.normalize({"pixel_values": pixels, "input_ids": ids, "image_sizes": [(481, 640)]})
    assert batch.geometries[0][0] == adapter.spec.geometry((481, 640))
    for wrong in ((640, 481), (481, 900), (600, 640)):
        err = refused(adapter, {"pixel_values": pixels, "input_ids": ids, "image_sizes": [wrong]}, ImageSizeError)
        assert "padding" in err.problem and str(wrong) in str(err.found)


def test_research_meta_data_alone_stands_in_for_the_size() -> None:
    """DeepSeek's research ``meta_data`` has no ``original_shape``; at 384 px its ``image_shape`` is a
    size the resize maps onto itself, so it gives the exact input geometry (original size unknown)."""
    adapter = get_adapter("deepseek_vl").from_tiny()
    image = smooth_image(481, 640, seed=2)
    pixels, meta = _research_processed(image, adapter.spec)
    ids = adapter.prepare([image], [adapter.format_prompt("the cat", answer="the cat")]).input_ids[0]
    batch = adapter.normalize({"pixel_values": pixels, "input_ids": ids, "meta_data": meta})
    geometry = batch.geometries[0][0]
    assert geometry.original_size == (meta["image_shape"]["height"], meta["image_shape"]["width"])
    assert (geometry.padding.top, geometry.padding.bottom) == (
        meta["padding"]["before_height"],
        meta["padding"]["after_height"],
    )
    assert batch.extras["original_size_known"] == [[False]]
