"""Adapters for Qwen2-VL, Qwen2.5-VL and Qwen3-VL: one dynamic-grid scheme, three checkpoints.

All three use the stock ``Qwen2VLImageProcessor`` (smart resize to multiples of ``patch*merge``,
flattened patches in merge-window order), mrope positions that need ``mm_token_type_ids``, and
LLM image tokens in raster order of the merged grid. They differ in the vision tower: Qwen2.5-VL
reorders patches into attention windows inside the tower, Qwen3-VL uses patch 16 and deepstack.
"""

from __future__ import annotations

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

from vlm_adapters import BackboneAdapter, DynamicSpec, ImageGeometry, SpecError, VisionBatch, VisionInputError
from vlm_adapters.normalize import PixelForm, PixelView, ResolvedImages, SampleImages

from . import tiny
from .grid import Grid, parse_grid
from .order import grid_to_patch_rows, patch_rows_to_grid, split_rows, undo_window_order
from .resolve import resolve_qwen_images
from .spec import build_qwen_spec
from .tokens import check_token_kinds, diagnose


class QwenAdapter(BackboneAdapter):
    """Shared behaviour of the Qwen-VL family; concrete classes name the checkpoint kind."""

    spec_kind = "dynamic"
    processor_class: ClassVar[type[ProcessorMixin]]
    video_processor_class: ClassVar[type[Any]]
    vision_window_attention: ClassVar[bool] = False
    """Whether the vision tower's per-patch tensors come back in attention-window order."""
    adjacent_images_share_a_run: ClassVar[bool] = False
    """Each image is its own run, wrapped in vision_start/vision_end: ``get_rope_index`` would read
    two adjacent images' tokens as one grid."""
    verify_grids_with_content: bool = True
    """Also check given or size-derived grids against patch continuity (a few ms per image):
    catches transposed grids that come with transposed sizes, e.g. from PIL's (width, height)."""

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

    # --- normalize: the backbone's steps of the core procedure ---------------------------
    @cached_property
    def pixel_form(self) -> PixelForm:
        """Processed pixels are the processor's flattened patch matrix ``[N, C*T*p*p]``."""
        spec = self.spec
        view = PixelView(tuple(spec.image_mean), tuple(spec.image_std))
        return PixelForm(views={"pixel_values": view}, channels=spec.in_channels, patch_width=spec.patch_dim)

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        """The patch matrix and a grid per image: given (checked against sizes and content), derived
        from the image size (exact), or recovered from patch continuity when unambiguous."""
        return resolve_qwen_images(self, images)

    def expand_image_tokens(
        self,
        ids: torch.Tensor,
        companions: Mapping[str, torch.Tensor],
        counts: Sequence[int],
        name: str,
        geometries: Sequence[ImageGeometry] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """The core expansion, after refusing video tokens (``normalize`` takes still images)."""
        check_token_kinds(ids, self.spec)
        return super().expand_image_tokens(ids, companions, counts, name, geometries)

    def token_count_error(
        self, lengths: list[int], counts: Sequence[int], name: str, geometries: Sequence[ImageGeometry] = ()
    ) -> VisionInputError:
        return diagnose(lengths, counts, self.spec, name)

    def pixel_cells(self, key: str, pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
        """Patch rows averaged per merge window (one LLM token's cell), ``[tokens, C]`` per image."""
        m2, c = self.spec.merge_size**2, self.spec.in_channels
        cells = pixels.float().reshape(-1, m2, c, pixels.shape[-1] // c).mean(dim=(1, 3))
        return list(cells.split([g.num_image_tokens for g in geometries]))

    def finish_batch(
        self,
        inputs: dict[str, torch.Tensor],
        original_sizes: Sequence[Sequence[tuple[int, int]]],
        mask_ids: torch.Tensor | None = None,
        geometries: list[list[ImageGeometry]] | None = None,
    ) -> VisionBatch:
        """Always (re)computes ``mm_token_type_ids`` with the processor's own method: transformers
        builds mrope positions only with it (Qwen2.5-VL silently falls back to 1-D positions)."""
        mm = self.processor.create_mm_token_type_ids(inputs["input_ids"].tolist())
        inputs = {**inputs, "mm_token_type_ids": torch.tensor(mm, dtype=torch.long)}
        return super().finish_batch(inputs, original_sizes, mask_ids, geometries)

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
