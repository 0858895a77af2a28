"""``normalize(sample)`` for Gemma 3: a dataset-style dict to a checked one-sample batch.

Accepted: ``input_ids`` as the processor expanded them (1-D or ``[1, L]``) with ``mask_ids``,
``labels``, ``attention_mask`` alongside; the views as the processor stacked them, stacked per
image, or raw images (under ``image`` / ``images``, or raw pixels under ``pixel_values``);
``num_crops``; sizes from ``image_sizes``, F-LMM ``meta_data(s)`` or the raw images, which must
agree. ``token_type_ids`` are always recomputed from the ids (the model's image mask needs them).

Refused, with what was found, what was expected and the fix: ids with one ``<start_of_image>``
per image and no image tokens (the processor writes text around every view, which ids alone
cannot reproduce), image-token runs that are not the views' runs, crops whose boxes no size
determines, and views that fit no crop setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vlm_adapters.samples import image_sizes, meta_list, require_mapping, size_pair

from vlm_adapters import ImageShapeError, MissingInputError, TokenCountError, VisionBatch, VisionInputError
from vlm_adapters.adapter import contiguous_runs, describe_counts
from vlm_adapters.geometry import ImageGeometry, Size
from vlm_adapters.images import image_size, is_raw_image, to_pil
from vlm_adapters.placeholders import COMPANION_KEYS

from .layout import crops_per_image
from .views import declared_crops, view_stack

if TYPE_CHECKING:
    from PIL import Image

    from .adapter import Gemma3Adapter

RAW_KEYS = ("image", "images")


def _ids(value: Any, key: str) -> torch.Tensor:
    """A 1-D int64 tensor of whole numbers from a tensor, array or list (1-D or ``[1, L]``)."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    integral = not t.dtype.is_complex and t.dtype != torch.bool and bool((t == t.round()).all())
    if t.ndim != 1 or t.numel() == 0 or not integral:
        raise VisionInputError(
            f"{key} is not one sample's token ids",
            found=f"dtype {t.dtype}, shape {tuple(t.shape)}",
            expected="a 1-D (or [1, seq]) sequence of integer ids",
            fix=f"pass {key} as the tokenizer returned it; batch several samples with adapter.collate",
        )
    return t.to(torch.long)


def _raw_images(sample: Mapping[str, Any]) -> list[Image.Image] | None:
    for key in (*RAW_KEYS, "pixel_values"):
        value = sample.get(key)
        if value is None:
            continue
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if key in RAW_KEYS or (items and all(is_raw_image(v) for v in items)):
            return [to_pil(v, f"{key}[{i}]") for i, v in enumerate(items)]
    return None


def _sizes(sample: Mapping[str, Any], raw: list[Image.Image] | None) -> list[Size] | None:
    """Original sizes from every source present, which must agree exactly."""
    sources: dict[str, list[Size]] = {}
    if sample.get("image_sizes") is not None:
        sources["image_sizes"] = image_sizes(sample["image_sizes"])
    metas = meta_list(sample)
    if metas is not None:
        sources["meta_data"] = [_meta_size(m, i) for i, m in enumerate(metas)]
    if raw is not None:
        sources["raw images"] = [image_size(im) for im in raw]
    if len({tuple(v) for v in sources.values()}) > 1:
        raise ImageShapeError(
            "the sample's image sizes contradict each other",
            found={k: [list(s) for s in v] for k, v in sources.items()},
            expected="the same (height, width) per image from every source",
            fix="keep image_sizes / meta_data for the images the sample holds, in order",
        )
    return next(iter(sources.values()), None)


def _meta_size(meta: Any, index: int) -> Size:
    """``original_shape`` of one image's meta data (one dict, or one per view as ``to_meta_data`` writes)."""
    views = list(meta) if isinstance(meta, (list, tuple)) else [meta]
    shapes = {
        size_pair(v.get("original_shape") if isinstance(v, Mapping) else None, f"meta_data[{index}]") for v in views
    }
    if len(shapes) != 1:
        raise ImageShapeError(
            f"meta_data[{index}] gives several original sizes",
            found=sorted(shapes),
            expected="one original_shape for all views of an image",
            fix="keep the meta data of one image together",
        )
    return shapes.pop()


def _check_runs(ids: torch.Tensor, geometries: list[ImageGeometry], image_token_id: int, placeholder: int) -> None:
    positions = (ids == image_token_id).nonzero().flatten()
    runs = contiguous_runs(positions)
    want = [n for g in geometries for n in g.run_lengths]
    if runs == want:
        return
    if not runs and int((ids == placeholder).sum()) == len(geometries):
        raise TokenCountError(
            "input_ids hold one <start_of_image> placeholder per image, not the processor's expansion",
            found=f"{len(geometries)} placeholder(s) and no image tokens",
            expected=f"the expanded image tokens: {describe_counts(geometries)}",
            fix="keep the processor's input_ids (it writes text and start/end tokens around every view, which "
            "cannot be re-derived from ids), or build the batch with adapter.prepare(images, texts)",
        )
    raise TokenCountError(
        "input_ids' image tokens are not the views' runs",
        found=f"runs of {runs} image tokens ({positions.numel()} in all)",
        expected=f"runs of {want}: {describe_counts(geometries)}, one run per view",
        fix="expand the prompt with this checkpoint's processor (same pan-and-scan setting as the pixels), and do "
        "not truncate inside an image",
    )


def normalize_sample(adapter: Gemma3Adapter, sample: Mapping[str, Any]) -> VisionBatch:
    """See the module docstring."""
    sample = require_mapping(sample)
    spec = adapter.gemma_spec
    if sample.get("input_ids") is None:
        raise MissingInputError(
            "the sample has no input_ids",
            found=f"keys {sorted(map(str, sample))[:12]}",
            expected="input_ids as the processor expanded them",
            fix="tokenize with the stock processor, or build the batch with adapter.prepare(images, texts)",
        )
    ids = _ids(sample["input_ids"], "input_ids")
    vocab = int(adapter.config.get_text_config().vocab_size)
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise VisionInputError(
            "input_ids fall outside the vocabulary",
            found=f"ids in [{int(ids.min())}, {int(ids.max())}]",
            expected=f"ids in [0, {vocab - 1}]",
            fix="tokenize with this checkpoint's tokenizer; -100 belongs in labels",
        )
    companions = {k: _ids(sample[k], k) for k in COMPANION_KEYS if sample.get(k) is not None}
    for key, seq in companions.items():
        if seq.numel() != ids.numel():
            raise TokenCountError(
                f"{key} is not aligned with input_ids",
                found=f"{seq.numel()} entries",
                expected=f"one per token: {ids.numel()}",
                fix=f"build {key} from the same tokenization as input_ids",
            )
    raw = _raw_images(sample)
    processed = sample.get("pixel_values") if raw is None or "pixel_values" not in sample else None
    if raw is None and processed is None:
        raise MissingInputError(
            "the sample has no pixel values or images",
            found=f"keys {sorted(map(str, sample))[:12]}",
            expected="pixel_values (the processor's views) or the raw image under 'image'",
            fix="keep pixel_values in your collate, or the raw image in the sample",
        )
    sizes = _sizes(sample, raw)
    channels = int(getattr(adapter.config.vision_config, "num_channels", 3))
    per_image = None
    if processed is not None:
        given, per_image = view_stack(processed, spec, channels)
        total = int(given.shape[0])
    else:
        total = int((ids == spec.image_token_id).sum()) // spec.tokens_per_view
    crops, note = crops_per_image(spec.pan_and_scan, sizes, total, declared_crops(per_image, sample.get("num_crops")))
    assert sizes is not None  # crops_per_image refuses unknown sizes
    geometries = [spec.geometry_for_crops(s, boxes) for s, boxes in zip(sizes, crops, strict=True)]
    if raw is not None:
        given = adapter.process_views(raw, pan_and_scan=any(crops) or spec.pan_and_scan.enabled)
    _check_runs(ids, geometries, spec.image_token_id, adapter.processor.tokenizer.boi_token_id)
    inputs = {"input_ids": ids[None], "attention_mask": companions.get("attention_mask", torch.ones_like(ids))[None]}
    if "labels" in companions:
        inputs["labels"] = companions["labels"][None]
    inputs["pixel_values"] = given
    mask_ids = companions["mask_ids"][None] if "mask_ids" in companions else None
    batch = adapter.finish_batch(inputs, [sizes], mask_ids=mask_ids, geometries=[geometries])
    if note is not None:
        batch.extras["repairs"] = [note]
    return batch
