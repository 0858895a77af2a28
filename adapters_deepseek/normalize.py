"""``normalize(sample)`` for DeepSeek-VL: a dataset-style dict to a checked one-sample batch.

Order of trust: a raw image is the truth (it gives exact pixels for every view and the
original size); processed pixels are validated and used as they are; sizes come from the raw
image, ``image_sizes`` or ``meta_data(s)``. What is derivable exactly is derived (expanded
image tokens, a missing hybrid high-res view from the raw image); everything else is a
:class:`~vlm_adapters.VisionInputError` naming what was found, what was expected and the fix.

Processed pixels with no size anywhere are refused with :class:`MissingInputError`: a
``VisionBatch`` always carries each image's geometry, and 384x384 pixels do not say where the
padding was. Callers who only want model inputs can declare the input itself as the original
(``image_sizes=[spec.image_size]``), which gives a geometry without padding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from vlm_adapters import FixedSpec, ImageShapeError, MissingInputError, VisionBatch, VisionInputError
from vlm_adapters.geometry import Size
from vlm_adapters.placeholders import COMPANION_KEYS
from vlm_adapters.samples import require_mapping

from .pixels import processed_pixels
from .raw import is_raw_pixel_values, raw_images
from .sizes import check_meta_padding, original_sizes
from .tokens import check_vocabulary, expand_image_tokens, sequence

if TYPE_CHECKING:
    from .adapter import DeepseekAdapterBase

CONSISTENCY_TOLERANCE = 0.1
"""Mean absolute difference (normalised units, after average-pooling both to the token grid) above
which given pixels are not a view of the sample's raw image (another image, a flip, a crop).
Pooling makes the check blind to resampler details: DeepSeek's research processor (PIL resize,
``int`` instead of ``round`` for the content size) differs from the stock one by 0.005-0.02 pooled,
while a flipped photo differs by 0.3-1.0."""


def views(spec: FixedSpec, image_processor: Any) -> dict[str, tuple[Size, tuple[float, ...], tuple[float, ...]]]:
    """Pixel inputs the stock forward takes: key -> (size, mean, std)."""
    out = {"pixel_values": (spec.image_size, tuple(spec.image_mean), tuple(spec.image_std))}
    if spec.high_res_image_size is not None:
        out["high_res_pixel_values"] = (
            spec.high_res_image_size,
            tuple(image_processor.high_res_image_mean),
            tuple(image_processor.high_res_image_std),
        )
    return out


def _pixels(
    adapter: DeepseekAdapterBase, sample: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], list[Size] | None]:
    """Every pixel view the model needs, ``[N, 3, H, W]`` each, and the raw sizes if known."""
    spec = adapter.spec_fixed
    image_processor: Any = getattr(adapter.processor, "image_processor", None)
    wanted = views(spec, image_processor)
    channels = int(adapter.config.vision_config.num_channels)
    other = {size: key for key, (size, _, _) in wanted.items()}
    given: dict[str, torch.Tensor] = {}
    for key, (size, mean, std) in wanted.items():
        value = sample.get(key)
        if value is None or (key == "pixel_values" and is_raw_pixel_values(sample)):
            continue
        given[key] = processed_pixels(
            value,
            key,
            size=size,
            channels=channels,
            mean=mean,
            std=std,
            other_views={s: k for s, k in other.items() if k != key},
        )
    raw = raw_images(sample)
    if raw is None:
        if given and len(given) < len(wanted):
            missing = sorted(set(wanted) - set(given))
            raise MissingInputError(
                f"the sample lacks {missing} and has no raw image to compute it from",
                found=f"keys {sorted(given)}",
                expected=f"all of {sorted(wanted)}",
                fix="keep every output of the stock processor in the sample, or include the raw image under 'image'",
            )
        return given, None
    images, sizes = raw
    computed = image_processor(images=images, return_tensors="pt")
    out: dict[str, torch.Tensor] = {}
    for key in wanted:
        fresh = computed[key].to(torch.float32)
        if key in given:
            _check_same_image(key, given[key], fresh, spec.token_grid)
            out[key] = given[key]
        else:
            out[key] = fresh
    return out, sizes


def _check_same_image(key: str, given: torch.Tensor, fresh: torch.Tensor, grid: Size) -> None:
    if given.shape[0] != fresh.shape[0]:
        raise ImageShapeError(
            f"{key} and the raw images differ in count",
            found=f"{given.shape[0]} in {key}",
            expected=f"{fresh.shape[0]} (one per raw image)",
            fix="keep the images and their processed pixels in the same order and number",
        )
    pool = torch.nn.functional.adaptive_avg_pool2d
    diff = (pool(given, grid) - pool(fresh, grid)).abs().mean(dim=(1, 2, 3))
    if (diff > CONSISTENCY_TOLERANCE).any():
        raise VisionInputError(
            f"{key} is not the processed form of the sample's raw image",
            found=f"mean |difference| per image on the token grid {[round(float(d), 3) for d in diff]}",
            expected=f"<= {CONSISTENCY_TOLERANCE} (the processor's output for that image)",
            fix="drop the raw image if the pixels were augmented (and give image_sizes of what was processed), "
            "or drop the processed pixels",
        )


def _image_count(pixels: Mapping[str, torch.Tensor]) -> int:
    counts = {key: int(x.shape[0]) for key, x in pixels.items()}
    if len(set(counts.values())) > 1:
        raise ImageShapeError(
            "pixel inputs disagree on the number of images",
            found=counts,
            expected="the same count in every view",
            fix="keep every view of every image, in the same order",
        )
    return next(iter(counts.values()), 0)


def _companions(sample: Mapping[str, Any], vocab_size: int) -> dict[str, torch.Tensor]:
    out = {key: sequence(sample[key], key) for key in COMPANION_KEYS if sample.get(key) is not None}
    labels = out.get("labels")
    if labels is not None and (((labels < 0) & (labels != -100)) | (labels >= vocab_size)).any():
        raise VisionInputError(
            "labels hold ids outside the vocabulary",
            found=f"[{labels.min()}, {labels.max()}]",
            expected=f"-100 or ids in [0, {vocab_size - 1}]",
            fix="mark ignored positions with -100",
        )
    mask = out.get("attention_mask")
    if mask is not None and ((mask != 0) & (mask != 1)).any():
        raise VisionInputError(
            "attention_mask is not 0/1",
            found=mask.unique().tolist()[:8],
            expected="0 (padding) or 1",
            fix="pass the tokenizer's attention_mask",
        )
    return out


def normalize_sample(adapter: DeepseekAdapterBase, sample: Mapping[str, Any]) -> VisionBatch:
    """Validate and repair one sample; see the module docstring for the rules."""
    sample = require_mapping(sample)
    spec = adapter.spec_fixed
    vocab_size = int(adapter.config.text_config.vocab_size)
    pixels, raw_sizes = _pixels(adapter, sample)
    num_images = _image_count(pixels)
    if sample.get("input_ids") is None:
        raise MissingInputError(
            "the sample has no input_ids",
            found=sorted(sample)[:12],
            expected="input_ids with one image placeholder (or a full run of image tokens) per image",
            fix="tokenize adapter.format_prompt(text, num_images) with the processor's tokenizer, or use "
            "adapter.prepare(images, texts)",
        )
    input_ids = sequence(sample["input_ids"], "input_ids")
    check_vocabulary(input_ids, vocab_size)
    ids, extra = expand_image_tokens(
        input_ids,
        _companions(sample, vocab_size),
        image_token_id=spec.image_token_id,
        tokens_per_image=spec.num_image_tokens,
        num_images=num_images,
    )
    sizes = original_sizes(sample, num_images, raw_sizes)
    if sizes is None and num_images:
        raise MissingInputError(
            "the original image size is unknown, so the padding geometry is too",
            found=f"processed pixels {tuple(pixels['pixel_values'].shape)} and no image_sizes, meta_data or raw image",
            expected="the original (height, width) of each image",
            fix="pass image_sizes=[(height, width), ...] or F-LMM meta_data, or the raw image under 'image'; "
            f"to treat the {spec.image_size[0]}x{spec.image_size[1]} input itself as the image, pass "
            f"image_sizes=[{tuple(spec.image_size)}]",
        )
    inputs = {"input_ids": ids[None], "attention_mask": extra.get("attention_mask", torch.ones_like(ids))[None]}
    if "labels" in extra:
        inputs["labels"] = extra["labels"][None]
    inputs.update(pixels)
    mask_ids = extra["mask_ids"][None] if "mask_ids" in extra else None
    batch = adapter.finish_batch(inputs, [sizes or []], mask_ids=mask_ids)
    check_meta_padding(sample, batch.geometries[0])
    return batch
