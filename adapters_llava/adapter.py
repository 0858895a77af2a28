"""The LLaVA adapters: LLaVA-1.5 (``llava``), LLaVA-NeXT (``llava_next``) and LLaVA-OneVision
(``llava_onevision``).

LLaVA-1.5 is one view: the core ``fixed`` spec (pad to a mean-coloured square, then resize), or a
``center_crop`` spec for processors that crop instead. NeXT and OneVision are ``anyres``: a base
view plus an unpadded high-resolution view with a newline feature per row, whose size follows
the image; their pixels are a stack of tiles per image, which this adapter keeps flat
(``[all tiles, 3, H, W]``, a form the stock models take) so samples with different tile counts
batch by plain concatenation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from PIL import Image
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, FixedSpec, ImageGeometry, VisionBatch, VisionInputError
from vlm_adapters.normalize import PixelForm, PixelView, ResolvedImages, SampleImages

from . import tiny
from .build import anyres_spec, llava_spec
from .resolve import layout_count_error, resolve_anyres_images
from .spec import AnyresSpec, CenterCropSpec


class LlavaFamilyAdapter(BackboneAdapter):
    """What the three share: tiny factories by model type."""

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.model_types):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config(cls.model_types[0])

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        return tiny.tiny_processor(config)


class LlavaAdapter(LlavaFamilyAdapter):
    name = "llava"
    model_types = ("llava",)
    spec_kind = "fixed"
    description = (
        "LLaVA-1.5: pad to a mean-coloured square, resize, CLIP patches without CLS "
        "(centre-crop processors: spec kind center_crop)"
    )

    def build_spec(self) -> FixedSpec | CenterCropSpec:
        return llava_spec(self.config, self.processor)


class AnyresAdapter(LlavaFamilyAdapter):
    """LLaVA-NeXT and OneVision: a base view and an unpadded high-resolution view per image."""

    spec_kind = "anyres"
    extra_inputs: ClassVar[tuple[str, ...]] = ("image_sizes",)

    def build_spec(self) -> AnyresSpec:
        return anyres_spec(self.config, self.processor)

    # --- normalize hooks -------------------------------------------------------------------
    @property
    def pixel_form(self) -> PixelForm:
        """Tiles of ``tile_size`` with the processor's normalisation (canvas padding is 0, not a colour)."""
        spec = self.anyres
        side = (spec.tile_size, spec.tile_size)
        return PixelForm(views={"pixel_values": PixelView(tuple(spec.image_mean), tuple(spec.image_std), side)})

    def process_images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The stock processor's tiles for raw images, flat (padding tiles dropped), as the forward takes them."""
        out = super().process_images(images)
        sizes = [tuple(s) for s in out["image_sizes"].tolist()]
        counts = [self.anyres.num_tiles(s) for s in sizes]
        out["pixel_values"] = torch.cat([p[:n] for p, n in zip(out["pixel_values"], counts, strict=True)])
        return out

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        return resolve_anyres_images(self, images)

    def token_count_error(
        self, lengths: list[int], counts: Sequence[int], name: str, geometries: Sequence[ImageGeometry] = ()
    ) -> VisionInputError:
        """Names each view's share: the count depends on the image size."""
        if geometries:
            return layout_count_error(lengths, geometries, name)
        return super().token_count_error(lengths, counts, name)

    def pixel_cells(self, key: str, pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
        """Flat tiles pooled to the per-tile feature grid, one tensor per image."""
        counts = self.tiles_per_image(geometries)
        g = self.anyres.tile_grid
        pool = torch.nn.functional.adaptive_avg_pool2d
        return [pool(stack.float(), (g, g)) for stack in pixels.split(counts)]

    @property
    def anyres(self) -> AnyresSpec:
        """``spec`` typed as the kind it always is here."""
        spec = self.spec
        assert isinstance(spec, AnyresSpec)
        return spec

    def tiles_per_image(self, geometries: Sequence[ImageGeometry]) -> list[int]:
        """Tower inputs each image takes: the base tile plus the canvas tiles, or one padded square
        for the images of OneVision's multi-image samples."""
        return [self.anyres.tiles_of(g) for g in geometries]

    def single_view_images(self, inputs: Mapping[str, torch.Tensor], count: int) -> list[bool]:
        """Which images the model reads as one view (none, except on OneVision)."""
        return [False] * count

    def geometries_for(
        self, inputs: Mapping[str, torch.Tensor], original_sizes: Sequence[Sequence[tuple[int, int]]]
    ) -> list[list[ImageGeometry]]:
        flat = [s for sizes in original_sizes for s in sizes]
        single = iter(self.single_view_images(inputs, len(flat)))
        spec = self.anyres
        return [
            [spec.single_view_geometry(s) if next(single) else spec.geometry(s) for s in sizes]
            for sizes in original_sizes
        ]

    def finish_batch(
        self,
        inputs: dict[str, torch.Tensor],
        original_sizes: Sequence[Sequence[tuple[int, int]]],
        mask_ids: torch.Tensor | None = None,
        geometries: list[list[ImageGeometry]] | None = None,
    ) -> VisionBatch:
        """Attach geometry; the processor's ``[images, max tiles, 3, H, W]`` become ``[tiles, 3, H, W]``."""
        pixels = inputs.get("pixel_values")
        if pixels is not None and pixels.ndim == 5:
            known = geometries if geometries is not None else self.geometries_for(inputs, original_sizes)
            counts = self.tiles_per_image([g for gs in known for g in gs])
            inputs = {**inputs, "pixel_values": torch.cat([p[:n] for p, n in zip(pixels, counts, strict=True)])}
        return super().finish_batch(inputs, original_sizes, mask_ids, geometries)


class LlavaNextAdapter(AnyresAdapter):
    name = "llava_next"
    model_types = ("llava_next",)
    description = "LLaVA-NeXT (1.6): base view + anyres tiles, unpadded, one newline token per row"


class LlavaOnevisionAdapter(AnyresAdapter):
    name = "llava_onevision"
    model_types = ("llava_onevision",)
    description = "LLaVA-OneVision: SigLIP anyres_max_9 (big grids downsampled), newline per row"
    extra_inputs = ("image_sizes", "batch_num_images")

    def single_view_images(self, inputs: Mapping[str, torch.Tensor], count: int) -> list[bool]:
        groups = inputs.get("batch_num_images")
        if groups is None:
            return [False] * count
        return [int(n) > 1 for n in groups.tolist() for _ in range(int(n))]
