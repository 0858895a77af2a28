"""Read a Gemma 3 checkpoint's config and stock processor into its ``PanAndScanSpec``.

Config and processor both declare the view size, the tokens per view and the image token ids;
a processor that disagrees with its model makes prompts the model mis-reads (or rejects deep in
the forward), so every value both declare must agree, and a disagreement is a ``SpecError``.

Two traps of the stock processor decide where the pan-and-scan settings are read:

* the processor passes its own call defaults (``Gemma3Processor.images_kwargs``, pan-and-scan
  off) to the image processor on every call, so the image processor's own ``do_pan_and_scan``
  attribute never takes effect through the processor;
* ``AutoProcessor.from_pretrained(path, do_pan_and_scan=True)`` does turn it on, by storing the
  setting in the tokenizer's init kwargs, which the processor merges over its defaults.

So the settings are the ones the processor's own kwargs merge resolves for a call without
arguments, which is exactly what ``adapter.prepare`` makes.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import SpecError

from .crops import PanAndScan
from .spec import PanAndScanSpec

PAN_AND_SCAN_KEYS = {
    "enabled": "do_pan_and_scan",
    "min_crop_size": "pan_and_scan_min_crop_size",
    "max_num_crops": "pan_and_scan_max_num_crops",
    "min_ratio_to_activate": "pan_and_scan_min_ratio_to_activate",
}
"""``PanAndScan`` field -> the processor's keyword."""


def _agreed(what: str, **sources: Any) -> Any:
    """The one value every source declares for ``what`` (sources that say nothing are skipped)."""
    said = {name: value for name, value in sources.items() if value is not None}
    if len({repr(v) for v in said.values()}) > 1:
        raise SpecError(
            f"{what} differs between {' and '.join(said)} ({', '.join(f'{k}={v!r}' for k, v in said.items())}): "
            "the processor does not belong to this checkpoint. Fix: load config and processor from the same folder."
        )
    if not said:
        raise SpecError(f"neither {' nor '.join(sources)} declares {what}")
    return next(iter(said.values()))


def _side(value: Any) -> int | None:
    """A square side from an int or a ``{"height", "width"}`` size; ``None`` if not square."""
    if isinstance(value, int):
        return value
    height, width = (value["height"], value["width"]) if hasattr(value, "__getitem__") else (None, None)
    return int(height) if height == width and height is not None else None


def pan_and_scan_settings(processor: Any) -> PanAndScan:
    """The pan-and-scan settings a processor call without arguments uses (see the module doc)."""
    merged = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs)["images_kwargs"]
    image_processor = processor.image_processor
    values = {}
    for field, key in PAN_AND_SCAN_KEYS.items():
        value = merged.get(key, getattr(image_processor, key, None))
        if value is None:
            raise SpecError(
                f"the processor has no value for {key}. Fix: set it, e.g. "
                f"AutoProcessor.from_pretrained(path, {key}=...), or use a transformers whose Gemma3Processor "
                "defines it"
            )
        values[field] = value
    return PanAndScan(**values)


def wrapper_token_counts(processor: Any, image_token_id: int, tokens_per_view: int, max_crops: int) -> tuple[int, ...]:
    """Tokens the processor writes around an image with 0..``max_crops`` crops, besides its image
    tokens: its own replacement text for each crop count, tokenized with its own tokenizer."""
    counts = []
    for crops in range(max_crops + 1):
        text = processor.replace_image_token({"num_crops": [crops]}, 0)
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        image_tokens = sum(1 for i in ids if i == image_token_id)
        if image_tokens != (crops + 1) * tokens_per_view:
            raise SpecError(
                f"the processor writes {image_tokens} image tokens for an image with {crops} crops, not "
                f"{(crops + 1) * tokens_per_view} ({crops + 1} views of {tokens_per_view}). Fix: make the "
                "processor's image_seq_length equal the config's mm_tokens_per_image"
            )
        counts.append(len(ids) - image_tokens)
    return tuple(counts)


def build_gemma3_spec(config: PretrainedConfig, processor: ProcessorMixin) -> PanAndScanSpec:
    """The spec of a ``gemma3`` checkpoint, every number from its config or its processor."""
    cfg: Any = config
    proc: Any = processor
    vision = cfg.vision_config
    image_processor = proc.image_processor
    tokenizer = proc.tokenizer
    side = _agreed("the view size", config=_side(vision.image_size), image_processor=_side(image_processor.size))
    if not image_processor.do_resize:
        raise SpecError(
            "the image processor has do_resize off, so views would not have the vision tower's "
            f"{side}x{side} input. Fix: keep do_resize=True"
        )
    tokens = _agreed("image tokens per view", config=cfg.mm_tokens_per_image, processor=proc.image_seq_length)
    per_side = int(tokens**0.5)  # as the projector computes its pooled grid
    if per_side * per_side != tokens:
        raise SpecError(f"mm_tokens_per_image {tokens} is not a square number: the projector cannot pool to it")
    image_token_id = _agreed("the image token id", config=cfg.image_token_id, tokenizer=tokenizer.image_token_id)
    boi = _agreed("the start-of-image token id", config=cfg.boi_token_id, tokenizer=tokenizer.boi_token_id)
    eoi = _agreed("the end-of-image token id", config=cfg.eoi_token_id, tokenizer=tokenizer.eoi_token_id)
    rule = pan_and_scan_settings(proc)
    try:
        return PanAndScanSpec(
            image_token_id=int(image_token_id),
            image_token=str(proc.image_token),
            vision_start_token_id=int(boi),
            vision_end_token_id=int(eoi),
            image_mean=tuple(float(v) for v in image_processor.image_mean),  # type: ignore[arg-type]
            image_std=tuple(float(v) for v in image_processor.image_std),  # type: ignore[arg-type]
            image_size=(side, side),
            patch_size=int(vision.patch_size),
            token_grid=(per_side, per_side),
            pan_and_scan=rule,
            wrapper_tokens=wrapper_token_counts(proc, int(image_token_id), tokens, rule.max_num_crops),
        )
    except ValidationError as exc:
        raise SpecError(f"this checkpoint does not describe a valid Gemma 3 vision input: {exc}") from exc
