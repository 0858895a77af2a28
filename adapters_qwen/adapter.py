"""Adapters for Qwen2-VL, Qwen2.5-VL and Qwen3-VL: one dynamic-grid scheme, three checkpoints.

All three use the stock ``Qwen2VLImageProcessor`` (smart resize to multiples of ``patch*merge``,
flattened patches in merge-window order), mrope positions that need ``mm_token_type_ids``, and
LLM image tokens in raster order of the merged grid. They differ in the vision tower: Qwen2.5-VL
reorders patches into attention windows inside the tower, Qwen3-VL uses patch 16 and deepstack.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, ClassVar

import torch
from transformers import (
    PretrainedConfig,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, DynamicSpec, ImageGeometry, SpecError, VisionBatch
from vlm_adapters.images import RawImage

from . import tiny
from .grid import Grid, parse_grid
from .normalize import normalize_sample
from .order import grid_to_patch_rows, patch_rows_to_grid, split_rows, undo_window_order
from .pixels import raw_image
from .spec import build_qwen_spec

logger = logging.getLogger("adapters_qwen")


class QwenAdapter(BackboneAdapter):
    """Shared behaviour of the Qwen-VL family; concrete classes name the checkpoint kind."""

    spec_kind = "dynamic"
    processor_class: ClassVar[type[ProcessorMixin]]
    video_processor_class: ClassVar[type[Any]]
    vision_window_attention: ClassVar[bool] = False
    """Whether the vision tower's per-patch tensors come back in attention-window order."""
    verify_grids_with_content: bool = True
    """Also check given or size-derived grids against patch continuity (a few ms per image):
    catches transposed grids that come with transposed sizes, e.g. from PIL's (width, height)."""

    def __init__(self, config: PretrainedConfig, processor: ProcessorMixin) -> None:
        super().__init__(config, processor)
        self._logged: set[str] = set()

    # --- construction --------------------------------------------------------------------
    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        model_type = variant or cls.model_types[0]
        if model_type not in cls.model_types:
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.model_types)}")
        return tiny.tiny_config(model_type)

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
        """Stock processor + offline tokenizer; ``min_pixels``/``max_pixels`` may be overridden."""
        return tiny.tiny_processor(config, cls.processor_class, cls.video_processor_class, **image_processor_kwargs)

    # --- spec ----------------------------------------------------------------------------
    @cached_property
    def spec(self) -> DynamicSpec:
        """The checkpoint's dynamic-grid spec (narrows the base class's union)."""
        return self.build_spec()

    def build_spec(self) -> DynamicSpec:
        return build_qwen_spec(self.config, self.processor)

    # --- inputs --------------------------------------------------------------------------
    def prepare(
        self,
        images: Sequence[RawImage] | Sequence[Sequence[RawImage]] | RawImage,
        texts: Sequence[str] | str,
    ) -> VisionBatch:
        """The core ``prepare`` (stock processor, which adds ``mm_token_type_ids``), after refusing
        images that are not raw images: normalised tensors, floats above 1, disguised patch rows."""
        n = 1 if isinstance(texts, str) else len(texts)
        checked = [
            [raw_image(img, self.spec, f"images[{b}][{i}]") for i, img in enumerate(group)]
            for b, group in enumerate(self._group_images(images, n))
        ]
        return super().prepare(checked, texts)

    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        """A one-sample batch the stock model reads correctly, from a dataset-style dict.

        Accepts ``input_ids`` (expanded, or one placeholder per image; 1-D or ``[1, L]``),
        ``input_ids_with_vision``, ``mask_ids``, ``labels``, ``attention_mask``; images as the
        processor's patch matrix ``[N, C*T*p*p]`` (tensor, array, or one array per image) with
        ``image_grid_thw`` in any nesting, or as raw images (PIL, HWC arrays, CHW/BCHW tensors);
        ``image_sizes`` / ``meta_data(s)`` for the image sizes. A missing grid is derived from
        the image size (exact), else recovered from patch continuity only when unambiguous;
        anything contradictory or unrecoverable raises a ``VisionInputError``.
        ``mm_token_type_ids`` is always (re)computed with the stock processor's own method.
        """
        return normalize_sample(self, sample)

    def geometries_for(
        self, inputs: Mapping[str, torch.Tensor], original_sizes: Sequence[Sequence[tuple[int, int]]]
    ) -> list[list[ImageGeometry]]:
        """Geometry from the processor's actual grids, checked against the spec's prediction."""
        grids = parse_grid(inputs.get("image_grid_thw")) or []
        if len(grids) != sum(len(sizes) for sizes in original_sizes):
            raise SpecError(
                f"the processor returned {len(grids)} image grids for "
                f"{sum(len(s) for s in original_sizes)} images: inputs do not come from this processor"
            )
        remaining = iter(grids)
        out: list[list[ImageGeometry]] = []
        for sizes in original_sizes:
            row = []
            for size in sizes:
                grid = next(remaining)
                if grid != self.spec.grid_thw(size):
                    raise SpecError(
                        f"the stock processor gave grid {list(grid)} for a {size[0]}x{size[1]} image but "
                        f"the spec predicts {list(self.spec.grid_thw(size))}: the spec is out of date with "
                        "the processor (please report this)"
                    )
                row.append(self.spec.geometry_for_grid(grid, original_size=size))
            out.append(row)
        return out

    def log_once(self, key: str, message: str) -> None:
        """INFO the first time a kind of repair happens on this adapter, DEBUG afterwards."""
        if key in self._logged:
            logger.debug(message)
        else:
            self._logged.add(key)
            logger.info("%s (further repairs of this kind are logged at DEBUG)", message)

    # --- orders --------------------------------------------------------------------------
    def patch_rows_to_grid(self, x: torch.Tensor, grid: Grid | ImageGeometry, dim: int = 0) -> torch.Tensor:
        """One image's processor patch rows (merge-window order) on axis ``dim`` -> ``[..., h, w]``.

        Also right for the vision tower's per-patch tensors of Qwen2-VL and Qwen3-VL; for
        Qwen2.5-VL use :meth:`vision_patches_to_grids`, which first undoes the window order.
        """
        return patch_rows_to_grid(x, _grid_of(grid), self.spec.merge_size, dim=dim)

    def grid_to_patch_rows(self, maps: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patch_rows_to_grid` (``t == 1``, axis last)."""
        return grid_to_patch_rows(maps, self.spec.merge_size)

    def vision_to_processor_order(self, x: torch.Tensor, image_grid_thw: Any, dim: int = 0) -> torch.Tensor:
        """Per-patch vision-tower tensor (all images concatenated) -> processor patch order."""
        if not self.vision_window_attention:
            return x
        vision = self.config.vision_config
        return undo_window_order(
            x,
            parse_grid(image_grid_thw) or [],
            merge_size=self.spec.merge_size,
            window_size=int(vision.window_size),
            patch_size=self.spec.patch_size,
            dim=dim,
        )

    def vision_patches_to_grids(self, x: torch.Tensor, image_grid_thw: Any, dim: int = 0) -> list[torch.Tensor]:
        """Vision-tower per-patch outputs (e.g. block hidden states ``[N, D]``) -> one
        ``[..., h, w]`` map per image, whatever order the tower keeps them in."""
        grids = parse_grid(image_grid_thw) or []
        x = self.vision_to_processor_order(x, grids, dim=dim)
        return [
            patch_rows_to_grid(chunk, grid, self.spec.merge_size, dim=dim)
            for chunk, grid in zip(split_rows(x, grids, dim=dim), grids, strict=True)
        ]


def _grid_of(grid: Grid | ImageGeometry) -> Grid:
    if isinstance(grid, ImageGeometry):
        if grid.patch_grid is None:
            raise ValueError("geometry has no patch_grid; build it with spec.geometry_for_grid")
        return grid.temporal, grid.patch_grid[0], grid.patch_grid[1]
    return grid


class Qwen2VLAdapter(QwenAdapter):
    name = "qwen2_vl"
    model_types = ("qwen2_vl",)
    description = "Qwen2-VL: dynamic grid (patch 14, 2x2 merge), mrope; stock Qwen2VLProcessor"
    processor_class = Qwen2VLProcessor
    video_processor_class = Qwen2VLVideoProcessor


class Qwen2_5_VLAdapter(QwenAdapter):
    name = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)
    description = "Qwen2.5-VL: dynamic grid (patch 14, 2x2 merge), windowed vision tower, mrope"
    processor_class = Qwen2_5_VLProcessor
    video_processor_class = Qwen2VLVideoProcessor
    vision_window_attention = True


class Qwen3VLAdapter(QwenAdapter):
    name = "qwen3_vl"
    model_types = ("qwen3_vl",)
    description = "Qwen3-VL: dynamic grid (patch 16, 2x2 merge), deepstack, interleaved mrope"
    processor_class = Qwen3VLProcessor
    video_processor_class = Qwen3VLVideoProcessor
