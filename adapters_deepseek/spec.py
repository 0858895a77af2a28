"""Build the DeepSeek-VL ``FixedSpec`` from a checkpoint's config and stock processor.

Every number comes from one of the two, and where both say something they must agree:
the vision tower only accepts its own ``image_size`` (SigLIP and SAM have fixed position
embeddings) and emits ``(image_size / patch_size) ** 2`` features, which the processor must
expand each placeholder to. A checkpoint where they disagree cannot run; we say so here,
once, instead of failing later inside the forward.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import FixedSpec, SpecError
from vlm_adapters.spec import require_agreement, size_setting


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def build_deepseek_spec(config: PretrainedConfig, processor: ProcessorMixin) -> FixedSpec:
    """The spec of a ``deepseek_vl`` or ``deepseek_vl_hybrid`` checkpoint."""
    proc: Any = processor  # DeepseekVLProcessor / DeepseekVLHybridProcessor attributes
    vision = config.vision_config
    image_processor = proc.image_processor
    image_size = size_setting(vision.image_size, "vision_config.image_size")
    patch = size_setting(vision.patch_size, "vision_config.patch_size")
    grid = (image_size[0] // patch[0], image_size[1] // patch[1])
    require_agreement("image size", image_size, size_setting(image_processor.size, "image_processor.size"))
    require_agreement("image tokens per image", grid[0] * grid[1], int(proc.num_image_tokens))
    require_agreement("image_token_id", int(config.image_token_id), int(proc.image_token_id))
    if not (image_processor.do_resize and image_processor.do_pad):
        raise SpecError(
            "the image processor has do_resize or do_pad off, so it does not produce the square "
            f"{image_size} input the vision tower takes. Fix: keep do_resize=True and do_pad=True."
        )

    pad_size: int | None = None
    high_res: tuple[int, int] | None = None
    background: Any = image_processor.background_color
    if config.model_type == "deepseek_vl_hybrid":
        # The hybrid pads at the SAM resolution and makes the low-res view by resizing that
        # padded square, so the padding (and its colour) is decided at ``high_res_size``.
        high_res = size_setting(image_processor.high_res_size, "image_processor.high_res_size")
        require_agreement(
            "high-res image size", size_setting(config.high_res_vision_config.image_size, "sam image_size"), high_res
        )
        pad_size = high_res[0]
        background = image_processor.high_res_background_color
    try:
        return FixedSpec(
            image_token_id=int(config.image_token_id),
            image_token=str(proc.image_token),
            image_mean=_triple(image_processor.image_mean),
            image_std=_triple(image_processor.image_std),
            image_size=image_size,
            patch_size=patch[0],
            token_grid=grid,
            resize_mode="pad_to_square",
            pad_size=pad_size,
            min_side=int(image_processor.min_size),
            background_color=(int(background[0]), int(background[1]), int(background[2])),
            high_res_image_size=high_res,
        )
    except ValidationError as exc:
        raise SpecError(f"this checkpoint does not describe a valid fixed DeepSeek-VL input: {exc}") from exc
