"""Specs from a checkpoint's config and stock processor, which must agree with each other.

Every number comes from one of the two; where both hold it (grid pinpoints, feature counts,
token ids, OneVision's ``vision_aspect_ratio``) a disagreement is a :class:`SpecError` now,
instead of a token-count error deep in the forward later.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from vlm_adapters.errors import SpecError
from vlm_adapters.spec import Color, FixedSpec

from .layout import max_tiles
from .spec import AnyresSpec, CenterCropSpec

CLS_TOKENS = {"clip_vision_model": 1, "siglip_vision_model": 0}
"""Non-patch tokens (CLS) each vision tower emits before its patch features."""


def _cls_tokens(vision: PretrainedConfig) -> int:
    extra = CLS_TOKENS.get(vision.model_type)
    if extra is None:
        raise SpecError(
            f"unknown vision tower {vision.model_type!r}: how many CLS tokens it emits is not known "
            f"(known: {sorted(CLS_TOKENS)})"
        )
    return extra


def _features_per_view(config: PretrainedConfig) -> int:
    """Features the model keeps per tower input: patches plus CLS, minus CLS for ``default``."""
    vision = config.vision_config
    grid = vision.image_size // vision.patch_size
    kept = grid * grid + _cls_tokens(vision) - (config.vision_feature_select_strategy == "default")
    if kept != grid * grid:
        raise SpecError(
            f"vision_feature_select_strategy {config.vision_feature_select_strategy!r} with {vision.model_type} "
            f"gives {kept} features per image, not a {grid}x{grid} grid"
        )
    return kept


def _check_token_id(config: PretrainedConfig, processor: Any) -> None:
    if processor.image_token_id != config.image_token_id:
        raise SpecError(
            f"processor image token id {processor.image_token_id} != config.image_token_id {config.image_token_id}"
        )


def _feature_layer(config: PretrainedConfig) -> int | tuple[int, ...]:
    layer = config.vision_feature_layer
    return layer if isinstance(layer, int) else tuple(int(v) for v in layer)


def _size_dict(value: Any) -> dict[str, int]:
    return {k: int(v) for k, v in dict(value or {}).items() if v is not None}


def _mean_colour(image_processor: Any) -> Color:
    """The padding colour the processors use: ``int(255 * mean)`` per channel (truncated, as they do)."""
    r, g, b = (int(m * 255) for m in image_processor.image_mean)
    return r, g, b


def _normalisation(image_processor: Any) -> dict[str, Any]:
    mean = tuple(float(m) for m in image_processor.image_mean)
    return {"image_mean": mean, "image_std": tuple(float(s) for s in image_processor.image_std)}


# --- LLaVA-1.5 ---------------------------------------------------------------------------------
def llava_spec(config: PretrainedConfig, processor: Any) -> FixedSpec | CenterCropSpec:
    """LLaVA-1.5: pad to a mean-coloured square then resize (``do_pad``), or resize the shortest
    edge then centre-crop; either way one tower input of ``image_size`` and CLS dropped."""
    vision, image_processor = config.vision_config, processor.image_processor
    side, patch = int(vision.image_size), int(vision.patch_size)
    grid = side // patch
    kept = _features_per_view(config)
    if processor.patch_size != patch:
        raise SpecError(f"processor patch_size {processor.patch_size} != vision_config.patch_size {patch}")
    expanded = (
        grid * grid + processor.num_additional_image_tokens - (processor.vision_feature_select_strategy == "default")
    )
    if expanded != kept:
        raise SpecError(
            f"the processor expands <image> to {expanded} tokens but the model gives {kept} features; set the "
            "processor's num_additional_image_tokens / vision_feature_select_strategy to match the config"
        )
    _check_token_id(config, processor)
    size, crop = _size_dict(image_processor.size), _size_dict(image_processor.crop_size)
    common = {"image_token_id": config.image_token_id, "image_token": processor.image_token, "patch_size": patch}
    common.update(_normalisation(image_processor))
    if not image_processor.do_center_crop or (crop.get("height"), crop.get("width")) != (side, side):
        raise SpecError(
            f"the image processor must centre-crop to the tower's {side}x{side}; it has do_center_crop="
            f"{image_processor.do_center_crop}, crop_size {crop}"
        )
    if image_processor.do_pad:
        resized = size.get("shortest_edge") or (size["height"] if size.get("height") == size.get("width") else None)
        if not image_processor.do_resize or resized != side:
            raise SpecError(f"the padded square must be resized to the tower's {side}x{side}; the size is {size}")
        return FixedSpec(
            **common,
            image_size=(side, side),
            token_grid=(grid, grid),
            resize_mode="pad_then_resize",
            background_color=_mean_colour(image_processor),
        )
    edge = size.get("shortest_edge")
    if not image_processor.do_resize or edge is None or set(size) != {"shortest_edge"}:
        raise SpecError(
            f"without padding the image processor must resize the shortest edge (size={{'shortest_edge': n}}); "
            f"it has do_resize={image_processor.do_resize}, size {size}"
        )
    return CenterCropSpec(**common, shortest_edge=edge, crop_size=(side, side))


# --- LLaVA-NeXT, LLaVA-OneVision ----------------------------------------------------------------
def _tile_side(image_processor: Any, side: int) -> None:
    """The anyres processors stretch the base view to ``size`` and cut tiles of the crop (or size)
    side, then resize and crop every piece again: all of it must be the tower's square."""
    size, crop = _size_dict(image_processor.size), _size_dict(image_processor.crop_size)
    base = (size["height"], size["width"]) if "height" in size else (size.get("shortest_edge"),) * 2
    tile = crop.get("height") or size.get("height") or size.get("shortest_edge")
    pieces_stay = size in ({"shortest_edge": side}, {"height": side, "width": side})
    cropped_stay = not image_processor.do_center_crop or (crop.get("height"), crop.get("width")) == (side, side)
    if base != (side, side) or tile != side or not pieces_stay or not cropped_stay:
        raise SpecError(
            f"the image processor must make {side}x{side} base views and tiles for this tower; it has size {size}, "
            f"crop_size {crop}, do_center_crop={image_processor.do_center_crop}"
        )


def anyres_spec(config: PretrainedConfig, processor: Any) -> AnyresSpec:
    """LLaVA-NeXT and LLaVA-OneVision: base view plus unpadded high-resolution view."""
    vision, image_processor = config.vision_config, processor.image_processor
    side, patch = int(vision.image_size), int(vision.patch_size)
    grid = side // patch
    kept = _features_per_view(config)
    pinpoints = [list(map(int, p)) for p in config.image_grid_pinpoints]
    processor_pins = [list(map(int, p)) for p in image_processor.image_grid_pinpoints]
    if processor_pins != pinpoints:
        raise SpecError(
            f"the processor tiles on grid pinpoints {processor_pins} but the model unpads on {pinpoints}; "
            "use the checkpoint's own processor (image_grid_pinpoints must match config.image_grid_pinpoints)"
        )
    _tile_side(image_processor, side)
    _check_token_id(config, processor)
    drop = processor.vision_feature_select_strategy == "default"
    budget = None
    if config.model_type == "llava_onevision":
        expanded = processor.num_image_tokens - drop
        if processor.vision_aspect_ratio != config.vision_aspect_ratio:
            raise SpecError(
                f"processor vision_aspect_ratio {processor.vision_aspect_ratio!r} != config.vision_aspect_ratio "
                f"{config.vision_aspect_ratio!r}: the processor would count tokens for another downsampling"
            )
        budget = max_tiles(config.vision_aspect_ratio)
        if budget is None:
            raise SpecError(
                f"config.vision_aspect_ratio {config.vision_aspect_ratio!r} is not of the form 'anyres_max_N', "
                "the only one the OneVision model reads"
            )
    else:
        if processor.patch_size != patch:
            raise SpecError(f"processor patch_size {processor.patch_size} != vision_config.patch_size {patch}")
        expanded = grid * grid + processor.num_additional_image_tokens - drop
    if expanded != kept:
        raise SpecError(
            f"the processor counts {expanded} tokens per tile but the model gives {kept} features; set the "
            "processor's num_additional_image_tokens / num_image_tokens / vision_feature_select_strategy to match "
            "the config"
        )
    return AnyresSpec(
        image_token_id=config.image_token_id,
        image_token=processor.image_token,
        **_normalisation(image_processor),
        tile_size=side,
        patch_size=patch,
        grid_pinpoints=tuple((h, w) for h, w in pinpoints),
        max_tiles=budget,
        background_color=_mean_colour(image_processor) if budget else None,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        vision_feature_layer=_feature_layer(config),
    )
