"""The Gemma 3 adapter (``gemma3``): fixed square SigLIP views pooled to a token grid, optional
pan-and-scan crops in runs of their own, and a forward that needs ``token_type_ids``.

Gemma 3's language model lets each image's tokens attend to each other in both directions; it
builds that mask from ``token_type_ids``. A forward without them runs with no error and a
plain causal mask over the image, which changes every result, so the batch always carries them,
computed with the stock processor's own method from the final ``input_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import PretrainedConfig, PreTrainedModel
from transformers.processing_utils import ProcessorMixin
from typing_extensions import Self

from vlm_adapters import BackboneAdapter, ImageGeometry, SpecError, VisionBatch, VisionInputError
from vlm_adapters.normalize import ResolvedImages, SampleImages

from . import tiny
from .checkpoint import build_gemma3_spec
from .resolve import check_no_orphan_placeholders, resolve_views, view_cells, view_runs_error
from .spec import PanAndScanSpec

PAN_AND_SCAN_VARIANT = "gemma3_pan_and_scan"
"""Tiny variant whose processor has pan-and-scan on (as ``from_pretrained(..., do_pan_and_scan=True)``)."""


class Gemma3Adapter(BackboneAdapter):
    name = "gemma3"
    model_types = ("gemma3",)
    spec_kind: ClassVar[str] = "pan_and_scan"
    description = "Gemma 3: square SigLIP views pooled to a 16x16 grid; optional pan-and-scan crops, each its own run"

    def build_spec(self) -> PanAndScanSpec:
        return build_gemma3_spec(self.config, self.processor)

    @property
    def gemma_spec(self) -> PanAndScanSpec:
        """``spec`` typed as the kind it always is here."""
        spec = self.spec
        assert isinstance(spec, PanAndScanSpec)
        return spec

    # --- tiny offline checkpoints --------------------------------------------------------
    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return (*cls.model_types, PAN_AND_SCAN_VARIANT)

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.variants()):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config()

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        return tiny.tiny_processor(config)

    @classmethod
    def from_tiny(cls, variant: str | None = None) -> Self:
        """The tiny checkpoint; the pan-and-scan variant differs only in its processor's setting."""
        config = cls.tiny_config(variant)
        defaults = tiny.PAN_AND_SCAN_ON if variant == PAN_AND_SCAN_VARIANT else None
        return cls(config, tiny.tiny_processor(config, defaults))

    def load_model(self, path_or_id: str | Path | None = None, **kwargs: Any) -> PreTrainedModel:
        """The stock model; random weights get a random image projection (transformers starts it at
        zeros, which would make every image embed as zeros; see :func:`tiny.randomise_image_projection`)."""
        model = super().load_model(path_or_id, **kwargs)
        if path_or_id is None:
            tiny.randomise_image_projection(model, int(kwargs.get("seed", 0)))
        return model

    # --- batches -------------------------------------------------------------------------
    def finish_batch(
        self,
        inputs: dict[str, torch.Tensor],
        original_sizes: Sequence[Sequence[tuple[int, int]]],
        mask_ids: torch.Tensor | None = None,
        geometries: list[list[ImageGeometry]] | None = None,
    ) -> VisionBatch:
        """The core's batch, with ``token_type_ids`` (re)computed by the stock processor from the
        final ids, so the model's bidirectional image mask is always the one it was trained with."""
        types = self.processor.create_mm_token_type_ids(inputs["input_ids"].tolist())
        inputs = {**inputs, "token_type_ids": torch.tensor(types, dtype=torch.long)}
        return super().finish_batch(inputs, original_sizes, mask_ids=mask_ids, geometries=geometries)

    def process_views(self, images: list[Image.Image], pan_and_scan: bool) -> torch.Tensor:
        """Every view of raw images, as the processor makes them with this spec's crop settings
        (pan-and-scan switched on or off)."""
        rule = self.gemma_spec.pan_and_scan
        out = self.processor.image_processor(
            images=images,
            do_pan_and_scan=pan_and_scan,
            pan_and_scan_min_crop_size=rule.min_crop_size,
            pan_and_scan_max_num_crops=rule.max_num_crops,
            pan_and_scan_min_ratio_to_activate=rule.min_ratio_to_activate,
            return_tensors="pt",
        )
        return out["pixel_values"].to(torch.float32)

    def geometries_for(
        self, inputs: Mapping[str, torch.Tensor], original_sizes: Sequence[Sequence[tuple[int, int]]]
    ) -> list[list[ImageGeometry]]:
        """The spec's geometries, checked against the number of views the processor produced."""
        out = super().geometries_for(inputs, original_sizes)
        pixels = inputs.get("pixel_values")
        views = sum(g.num_views for row in out for g in row)
        given = 0 if pixels is None else int(pixels.shape[0])
        if given != views:
            raise SpecError(
                f"the processor made {given} views but the spec predicts {views} for images of sizes "
                f"{[list(s) for s in original_sizes]}: the spec's pan-and-scan settings differ from the "
                "processor's. Fix: build the adapter from the processor that made these inputs"
            )
        return out

    # --- the backbone's steps of normalize --------------------------------------------------
    def process_images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The views of raw images under this processor's own crop setting."""
        return {"pixel_values": self.process_views(images, pan_and_scan=self.gemma_spec.pan_and_scan.enabled)}

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        """Views in any research form, the crop layout fixed by the sizes (see :mod:`.resolve`)."""
        return resolve_views(self, images)

    def pixel_cells(self, key: str, pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
        return view_cells(pixels, geometries)

    def expand_image_tokens(
        self,
        ids: torch.Tensor,
        companions: Mapping[str, torch.Tensor],
        counts: Sequence[int],
        name: str,
        geometries: Sequence[ImageGeometry] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """The core's check, per view: every view is its own run of image tokens."""
        if not counts:
            check_no_orphan_placeholders(ids, int(self.processor.tokenizer.boi_token_id), name)
        per_view = self.gemma_spec.tokens_per_view
        return super().expand_image_tokens(ids, companions, [per_view] * (sum(counts) // per_view), name)

    def token_count_error(self, lengths: list[int], counts: Sequence[int], name: str) -> VisionInputError:
        return view_runs_error(lengths, self.gemma_spec.tokens_per_view, len(counts), name)
