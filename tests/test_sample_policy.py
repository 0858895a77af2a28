"""One dataset dict, one verdict, whatever the backbone.

The same valid sample (built by each adapter's ``prepare``, i.e. the stock processor) is mutated
the same way for every registered adapter: each mistake must be
refused with the same error type everywhere (ids, sizes, ``meta_data``, value ranges, raw vs
processed pixels), and each harmless variation of the form must give exactly the stock inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from vlm_adapters import (
    BackboneAdapter,
    ImageShapeError,
    ImageSizeError,
    MissingInputError,
    PatchMatrixAsImageError,
    PixelValueError,
    TokenCountError,
    TokenIdError,
    VisionBatch,
    VisionInputError,
    get_adapter,
)
from vlm_adapters.registry import list_adapters
from vlm_adapters.testing import assert_inputs_equal, sample_from_batch, smooth_image

ADAPTERS = [info.name for info in list_adapters()]
SIZE = (300, 500)  # (height, width): landscape, so padded inputs have bands at the top and bottom


@dataclass
class Case:
    adapter: BackboneAdapter
    image: Any
    batch: VisionBatch
    sample: dict[str, Any]

    @property
    def ids(self) -> torch.Tensor:
        return self.sample["input_ids"]

    @property
    def meta(self) -> dict[str, Any] | list[dict[str, Any]]:
        """The image's ``meta_data`` entry: one dict, or one per view for an image of several views."""
        return self.batch.geometries[0][0].to_meta_data()

    @property
    def view_metas(self) -> list[dict[str, Any]]:
        meta = self.meta
        return meta if isinstance(meta, list) else [meta]

    def without(self, *keys: str, **extra: Any) -> dict[str, Any]:
        return {**{k: v for k, v in self.sample.items() if k not in keys}, **extra}


@pytest.fixture(scope="module", params=ADAPTERS)
def case(request: pytest.FixtureRequest) -> Case:
    adapter = get_adapter(request.param).from_tiny()
    image = smooth_image(*SIZE, seed=3)
    batch = adapter.prepare([image], [adapter.format_prompt("the red cat", answer="the red cat")])
    return Case(adapter, image, batch, sample_from_batch(batch))


def _other_token_run(c: Case) -> torch.Tensor:
    ids = c.ids
    first = int((ids == c.adapter.spec.image_token_id).nonzero()[0])
    return torch.cat([ids[:first], ids[first + 1 :]])  # one image token short


def _meta_with(c: Case, view: int = 0, **changes: Any) -> dict[str, Any]:
    """``meta_data`` with ``changes`` in one view's entry (the only one, for a single view)."""
    views = c.view_metas
    views[view].update(changes)
    return c.without("image_sizes", meta_data=[views if isinstance(c.meta, list) else views[0]])


def _shift_padding(c: Case) -> dict[str, Any]:
    padding = dict(c.view_metas[0]["padding"])
    padding["before_height"] += 40
    return _meta_with(c, padding=padding)


def _transposed_image_shape(c: Case) -> dict[str, Any]:
    """The first view whose content is not square gets its ``image_shape`` transposed."""
    shapes = [m["image_shape"] for m in c.view_metas]
    view = next((i for i, s in enumerate(shapes) if s["height"] != s["width"]), None)
    if view is None:  # every view is stretched to a square: the record's only orientation is the original's
        views = c.view_metas
        for v in views:  # the whole record as if the image were transposed: its size and each view's box
            o, b = v["original_shape"], v["box"]
            v["original_shape"] = {"height": o["width"], "width": o["height"]}
            v["box"] = {"top": b["left"], "left": b["top"], "bottom": b["right"], "right": b["bottom"]}
        return c.without("image_sizes", meta_data=[views if isinstance(c.meta, list) else views[0]])
    shape = shapes[view]
    return _meta_with(c, view, image_shape={"height": shape["width"], "width": shape["height"]})


def _declared_size(sample: dict[str, Any]) -> tuple[int, int]:
    """The original size a sample declares, from ``image_sizes`` or its ``meta_data``."""
    if "image_sizes" in sample:
        return tuple(sample["image_sizes"][0])  # type: ignore[return-value]
    entry = sample["meta_data"]
    entry = entry[0] if isinstance(entry, list) else entry
    entry = entry[0] if isinstance(entry, list) else entry
    return entry["original_shape"]["height"], entry["original_shape"]["width"]


def _scaled(c: Case, factor: float) -> dict[str, Any]:
    return c.without(pixel_values=c.sample["pixel_values"] * factor)


def _with_nan(c: Case) -> dict[str, Any]:
    pixels = c.sample["pixel_values"].clone()
    pixels.view(-1)[7] = float("nan")
    return c.without(pixel_values=pixels)


def _disguised_patch_matrix(c: Case) -> dict[str, Any]:
    rows = torch.randn(64, 1176, generator=torch.Generator().manual_seed(0)).clamp(-1.5, 1.5)
    return c.without(pixel_values=rows[None, None].expand(1, 3, *rows.shape))


BAD: dict[str, tuple[Callable[[Case], Any], type[VisionInputError]]] = {
    # --- ids -------------------------------------------------------------------------------
    "whole-float ids": (lambda c: c.without(input_ids=c.ids.float()), TokenIdError),
    "string ids": (lambda c: c.without(input_ids=[str(int(i)) for i in c.ids]), TokenIdError),
    "ragged ids": (lambda c: c.without(input_ids=[c.ids.tolist(), [1]]), TokenIdError),
    "None in ids": (lambda c: c.without(input_ids=[*c.ids.tolist(), None]), TokenIdError),
    "a batch of two": (lambda c: c.without(input_ids=torch.stack([c.ids, c.ids])), TokenIdError),
    "empty ids": (lambda c: c.without(input_ids=torch.zeros(0, dtype=torch.long)), TokenIdError),
    "id beyond the vocabulary": (
        lambda c: c.without(input_ids=torch.cat([c.ids, torch.tensor([c.adapter.vocab_size])])),
        TokenIdError,
    ),
    "negative id": (lambda c: c.without(input_ids=torch.cat([torch.tensor([-3]), c.ids])), TokenIdError),
    "labels of -7": (lambda c: c.without(labels=torch.full_like(c.ids, -7)), TokenIdError),
    "labels beyond the vocabulary": (lambda c: c.without(labels=torch.full_like(c.ids, 10**6)), TokenIdError),
    "attention mask of 2s": (lambda c: c.without(attention_mask=torch.full_like(c.ids, 2)), TokenIdError),
    "all-zero attention mask": (lambda c: c.without(attention_mask=torch.zeros_like(c.ids)), TokenIdError),
    "mask_ids below -1": (lambda c: c.without(mask_ids=torch.full_like(c.ids, -5)), TokenIdError),
    "mask_ids of another length": (lambda c: c.without(mask_ids=torch.full((c.ids.numel() + 1,), -1)), TokenCountError),
    "one image token short": (lambda c: c.without(input_ids=_other_token_run(c)), TokenCountError),
    "no input_ids": (lambda c: c.without("input_ids"), MissingInputError),
    "image tokens and no pixels": (lambda c: {"input_ids": c.ids}, MissingInputError),
    "not a dict": (lambda c: [c.sample], VisionInputError),
    # --- sizes -----------------------------------------------------------------------------
    "(width, height) sizes": (lambda c: c.without(image_sizes=[SIZE[::-1]]), ImageSizeError),
    "a size of another aspect ratio": (lambda c: c.without(image_sizes=[(SIZE[0], 2 * SIZE[1])]), ImageSizeError),
    "a size of a taller image": (lambda c: c.without(image_sizes=[(SIZE[0] + 120, SIZE[1])]), ImageSizeError),
    "a square size for a landscape image": (lambda c: c.without(image_sizes=[(SIZE[1], SIZE[1])]), ImageSizeError),
    "a size no image can have": (lambda c: c.without(image_sizes=[(10**9, 10**9)]), ImageSizeError),
    "two sizes for one image": (lambda c: c.without(image_sizes=[SIZE, SIZE]), ImageSizeError),
    "size as a string": (lambda c: c.without(image_sizes="300x500"), ImageSizeError),
    "zero size": (lambda c: c.without(image_sizes=[(0, 500)]), ImageSizeError),
    "fractional size": (lambda c: c.without(image_sizes=[(300.5, 500)]), ImageSizeError),
    "bool size": (lambda c: c.without(image_sizes=[(True, True)]), ImageSizeError),
    "image_sizes and meta_data disagree": (
        lambda c: c.without(meta_data={"original_shape": {"height": 301, "width": 500}}),
        ImageSizeError,
    ),
    "raw image of another size than declared": (
        lambda c: c.without("pixel_values", "high_res_pixel_values", image=c.image, image_sizes=[(310, 500)]),
        ImageSizeError,
    ),
    # --- meta_data -------------------------------------------------------------------------
    "meta_data not a dict": (lambda c: c.without("image_sizes", meta_data="meta"), ImageSizeError),
    "negative original_shape": (
        lambda c: _meta_with(c, original_shape={"height": -300, "width": 500}),
        ImageSizeError,
    ),
    "meta_data padding of another preprocessing": (_shift_padding, ImageSizeError),
    "meta_data image_shape transposed": (_transposed_image_shape, ImageSizeError),
    # --- values and pixels -----------------------------------------------------------------
    "0-255 pixel values": (lambda c: _scaled(c, 255.0), PixelValueError),
    "NaN pixel": (_with_nan, PixelValueError),
    "patch matrix disguised as an image": (_disguised_patch_matrix, PatchMatrixAsImageError),
    "pixels of another image than the raw one": (
        lambda c: c.without("image_sizes", "image_grid_thw", image=np.ascontiguousarray(np.asarray(c.image)[::-1])),
        PixelValueError,
    ),
    "raw float image on a 0-255 scale": (
        lambda c: c.without("pixel_values", "high_res_pixel_values", image=np.asarray(c.image).astype(np.float32)),
        ImageShapeError,
    ),
    "normalised tensor as a raw image": (
        lambda c: c.without("pixel_values", "high_res_pixel_values", image=torch.rand(3, *SIZE) - 0.5),
        ImageShapeError,
    ),
    "raw images under two keys": (lambda c: c.without(image=c.image, images=[c.image]), ImageShapeError),
    "a string as the image": (
        lambda c: c.without("pixel_values", "high_res_pixel_values", image="cat.png"),
        ImageShapeError,
    ),
}


SIZE_MISTAKES = frozenset(
    {
        "(width, height) sizes",
        "a size of another aspect ratio",
        "a size of a taller image",
        "a square size for a landscape image",
        "meta_data image_shape transposed",
    }
)
"""Wrong sizes that only the pixels can expose (padding bands, a grid's shape, crop boxes)."""
SIZES_UNOBSERVABLE = {
    "gemma3": "views are stretched, never padded, and an image of this size gets no crops: no pixel shows its "
    "aspect ratio (with crops, a wrong size is refused: tests/test_gemma3_normalize.py)",
}
"""Adapters whose processed pixels carry no trace of the original size at :data:`SIZE`, and why."""
PLACEHOLDERS_NOT_EXPANDABLE = {
    "gemma3": "the processor writes text (newlines, the crop sentence) around every view, which a tokenizer may "
    "merge with the prompt's neighbouring text, so ids with one placeholder per image are refused",
}


@pytest.mark.parametrize("mistake", list(BAD))
def test_the_same_mistake_gets_the_same_error(case: Case, mistake: str) -> None:
    mutate, kind = BAD[mistake]
    if mistake in SIZE_MISTAKES and case.adapter.name in SIZES_UNOBSERVABLE:
        sample = mutate(case)  # nothing to check it against: the declared size is what the batch maps onto
        declared = case.adapter.normalize(sample).geometries[0][0].original_size
        assert declared == _declared_size(sample)
        return
    with pytest.raises(kind) as info:
        case.adapter.normalize(mutate(case))
    err = info.value
    assert err.found is not None and err.expected is not None and err.fix, err
    assert "Fix:" in str(err)


def _unexpanded(c: Case) -> dict[str, Any]:
    """The prompt with one placeholder per image, and mask_ids on it: expanded alongside."""
    text = c.adapter.format_prompt("the red cat", answer="the red cat")
    ids = c.adapter.processor.tokenizer(text, return_tensors="pt")["input_ids"][0]
    return c.without(input_ids=ids.tolist(), mask_ids=torch.where(ids == c.adapter.spec.image_token_id, 7, -1))


GOOD: dict[str, Callable[[Case], dict[str, Any]]] = {
    "as prepared": lambda c: c.sample,
    "ids as a list": lambda c: c.without(input_ids=c.ids.tolist()),
    "ids as int32 numpy [1, S]": lambda c: c.without(input_ids=c.ids.numpy().astype(np.int32)[None]),
    "ids with one placeholder per image": _unexpanded,
    "labels with -100": lambda c: c.without(labels=torch.where(c.ids == c.adapter.spec.image_token_id, -100, c.ids)),
    "bool attention mask": lambda c: c.without(attention_mask=torch.ones_like(c.ids, dtype=torch.bool)),
    "whole-float sizes": lambda c: c.without(image_sizes=[[float(SIZE[0]), float(SIZE[1])]]),
    "meta_data instead of image_sizes": lambda c: c.without("image_sizes", meta_data=[c.meta]),
    "meta_data and image_sizes": lambda c: c.without(meta_datas=[c.meta]),
    "meta_data with the original size only": lambda c: c.without(
        "image_sizes", meta_data={"original_shape": c.view_metas[0]["original_shape"]}
    ),
    "raw image under image": lambda c: c.without("pixel_values", "high_res_pixel_values", "image_sizes", image=c.image),
    "uint8 CHW tensor under pixel_values": lambda c: c.without(
        "high_res_pixel_values", "image_sizes", pixel_values=torch.from_numpy(np.array(c.image)).permute(2, 0, 1)
    ),
    "float image in [0, 1] under images": lambda c: c.without(
        "pixel_values", "high_res_pixel_values", images=[np.asarray(c.image) / 255.0]
    ),
    "raw image with its processed pixels": lambda c: c.without("image_sizes", "image_grid_thw", image=c.image),
}


@pytest.mark.parametrize("form", list(GOOD))
def test_a_valid_form_gives_the_stock_inputs(case: Case, form: str) -> None:
    sample = GOOD[form](case)
    if form == "ids with one placeholder per image" and case.adapter.name in PLACEHOLDERS_NOT_EXPANDABLE:
        with pytest.raises(TokenCountError, match="placeholder"):
            case.adapter.normalize(sample)
        return
    batch = case.adapter.normalize(sample)
    want = {k: v for k, v in case.batch.inputs.items() if k != "attention_mask"}
    assert_inputs_equal(batch.inputs, want)
    assert batch.geometries == case.batch.geometries
    assert batch.extras["original_size_known"] == [[True]]
    if "labels" in sample:
        assert batch.inputs["labels"].shape == batch.input_ids.shape
    if form == "ids with one placeholder per image":
        # the placeholder's id goes to the image tokens it became; wrapper and marker tokens are no object
        assert batch.mask_ids is not None
        assert torch.equal(batch.mask_ids[0] == 7, batch.input_ids[0] == case.adapter.spec.image_token_id)


@pytest.mark.parametrize("name", ["qwen2_vl", "qwen2_5_vl"])  # tiny grids: 2x3 token cells at 60x90
def test_a_raw_image_of_another_picture_is_refused_even_when_its_token_cells_agree(name: str) -> None:
    """Pooled to a small token grid, two smooth pictures of the same brightness can look alike; the
    raw image of another picture must still be refused (every value is compared too)."""
    from PIL import Image

    from vlm_adapters.normalize.crosscheck import SAME_IMAGE_TOLERANCE

    adapter = get_adapter(name).from_tiny()
    image = smooth_image(60, 90, seed=0)
    batch = adapter.prepare([image], [adapter.format_prompt("the red cat", answer="the red cat")])
    sample = sample_from_batch(batch)
    given = batch.inputs["pixel_values"]
    alike = 0
    for seed in range(100, 124):
        other = smooth_image(60, 90, seed=seed).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        fresh = adapter.process_images([other])["pixel_values"].to(given.dtype)
        cells = zip(
            adapter.pixel_cells("pixel_values", given, batch.geometries[0]),
            adapter.pixel_cells("pixel_values", fresh, batch.geometries[0]),
            strict=True,
        )
        alike += all(float((a - b).abs().mean()) <= SAME_IMAGE_TOLERANCE for a, b in cells)
        with pytest.raises(PixelValueError, match="not the processed form"):
            adapter.normalize({**sample, "image": other})
    assert alike > 0, "no picture came close on the token cells: the case this pins did not occur"
