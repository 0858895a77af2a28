"""The Qwen-VL ``DynamicSpec``, read from the checkpoint's config and its processor.

Both sides carry the vision sizes: the config drives the model (patch embedding, merger, mrope),
the image processor drives the resize and the patch matrix. A processor that disagrees with
its model produces inputs the model mis-reads without an error, so every value both sides
declare is cross-checked here, once, and a disagreement is a ``SpecError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import DynamicSpec, SpecError


def _square(name: str, value: Any) -> int:
    """Config sizes may be ``int`` or ``[h, w]``; Qwen-VL only uses square ones."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(set(value)) != 1:
            raise SpecError(f"{name} {list(value)} is not square; Qwen-VL adapters need one size")
        value = value[0]
    return int(value)


def _agree(name: str, config_value: Any, processor_value: Any) -> int:
    a, b = _square(name, config_value), _square(name, processor_value)
    if a != b:
        raise SpecError(
            f"{name} differs between model config ({a}) and image processor ({b}): the processor "
            "does not belong to this checkpoint. Fix: load both from the same folder."
        )
    return a


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    values = [float(v) for v in (value if isinstance(value, Sequence) else [value] * 3)]
    if len(values) != 3:
        raise SpecError(f"image processor {name} {value} does not have 3 channels")
    return values[0], values[1], values[2]


def _token_id(config: PretrainedConfig, processor: ProcessorMixin, name: str) -> int | None:
    """Id from the config, checked against the processor (or its tokenizer) where it has one."""
    config_id = getattr(config, name, None)
    proc_id = getattr(processor, name, None)
    if proc_id is None:
        proc_id = getattr(processor.tokenizer, name, None)
    if config_id is not None and proc_id is not None and int(config_id) != int(proc_id):
        raise SpecError(
            f"{name} differs between model config ({config_id}) and processor ({proc_id}): prompts "
            "would carry tokens the model does not replace. Fix: load both from the same folder."
        )
    value = config_id if config_id is not None else proc_id
    return None if value is None else int(value)


def build_qwen_spec(config: PretrainedConfig, processor: ProcessorMixin) -> DynamicSpec:
    """The spec of a Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoint; no value comes from a literal."""
    vision = config.vision_config
    ip = processor.image_processor
    if not getattr(ip, "do_resize", True):
        raise SpecError(
            "the image processor has do_resize=False, so image sizes no longer determine the grid. "
            "Fix: keep do_resize=True (the checkpoint default)."
        )
    size = ip.size
    min_pixels, max_pixels = size["shortest_edge"], size["longest_edge"]
    if not min_pixels or not max_pixels:
        raise SpecError(f"image processor size {size} lacks shortest_edge/longest_edge (min/max pixels)")
    image_token_id = _token_id(config, processor, "image_token_id")
    if image_token_id is None:
        raise SpecError("neither the config nor the processor declares image_token_id")
    return DynamicSpec(
        image_token_id=image_token_id,
        image_token=getattr(processor, "image_token", None),
        video_token_id=_token_id(config, processor, "video_token_id"),
        vision_start_token_id=_token_id(config, processor, "vision_start_token_id"),
        vision_end_token_id=_token_id(config, processor, "vision_end_token_id"),
        patch_size=_agree("patch_size", vision.patch_size, ip.patch_size),
        merge_size=_agree("merge_size", vision.spatial_merge_size, ip.merge_size),
        temporal_patch_size=_agree("temporal_patch_size", vision.temporal_patch_size, ip.temporal_patch_size),
        in_channels=int(vision.in_channels),
        min_pixels=int(min_pixels),
        max_pixels=int(max_pixels),
        image_mean=_triple("image_mean", ip.image_mean),
        image_std=_triple("image_std", ip.image_std),
    )
