"""The Idefics3 and SmolVLM adapters (``idefics3``, ``smolvlm``): one splitting scheme, two checkpoints.

Both stock processors split an image into sub-images plus a global view and write each as its
own run of ``<image>`` tokens behind a ``<row_i_col_j>`` marker; SmolVLM's processor also
takes videos and wants images grouped per prompt. The adapter declares the layout as views
(one per sub-image, the global view last, one run each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import torch
from PIL import Image
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, ImageGeometry, TokenCountError, VisionBatch, VisionInputError
from vlm_adapters.adapter import concat_batches
from vlm_adapters.images import RawImage
from vlm_adapters.normalize import EXPAND_FIX, PixelForm, PixelView, ResolvedImages, SampleImages
from vlm_adapters.normalize.tiles import view_cells
from vlm_adapters.placeholders import image_runs, splice_placeholders

from . import tiny
from .resolve import resolve_split_images
from .spec import Idefics3SplitSpec, build_idefics3_spec


class Idefics3AdapterBase(BackboneAdapter):
    """What Idefics3 and SmolVLM share: the spec, the tiny factories."""

    spec_kind = "idefics3_split"
    adjacent_images_share_a_run = False  # every view is a run of its own
    image_stack_keys = frozenset({"pixel_values", "pixel_attention_mask"})

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.variants()):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config(variant or cls.model_types[0])

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
        """Stock processor + offline tokenizer; ``size`` / ``max_image_size`` / ``do_image_splitting``
        may be overridden."""
        return tiny.tiny_processor(config, **image_processor_kwargs)

    @cached_property
    def spec(self) -> Idefics3SplitSpec:
        """The checkpoint's splitting (narrows the base class's type)."""
        return self.build_spec()

    def build_spec(self) -> Idefics3SplitSpec:
        return build_idefics3_spec(self.config, self.processor)

    # --- normalize: the backbone's steps of the core procedure ---------------------------
    @cached_property
    def pixel_form(self) -> PixelForm:
        """Processed pixels are stacks of square views ``[1, views, 3, T, T]``."""
        spec = self.spec
        side = (spec.tile_size, spec.tile_size)
        view = PixelView(tuple(spec.image_mean), tuple(spec.image_std), side)
        return PixelForm(views={"pixel_values": view}, channels=int(self.config.vision_config.num_channels))

    def process_images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The image processor on the sample's images (one sample), with each image's rows and cols."""
        out = self.processor.image_processor(images=[images], return_tensors="pt", return_row_col_info=True)
        return {
            "pixel_values": out["pixel_values"],
            "rows": torch.as_tensor(out["rows"]).reshape(-1),
            "cols": torch.as_tensor(out["cols"]).reshape(-1),
        }

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        return resolve_split_images(self, images)

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
        """Expanded ids are kept when their runs are the views' runs; one ``<image>`` per image
        becomes the processor's text for its split (markers, newlines, runs), tokenized."""
        runs = image_runs(ids, self.spec.image_token_id)
        lengths = [n for _, n in runs]
        expected = [n for g in geometries for n in g.run_lengths]
        if lengths == expected:
            # nothing replaced; the companions' lengths are checked
            kept, aligned = splice_placeholders(ids, companions, [], [], self.spec.image_token_id)
            return kept, aligned, False
        places = (ids == self.spec.image_token_id).nonzero().flatten().tolist()
        if len(places) == len(geometries):  # one placeholder per image
            replacements = [self._expansion(g) for g in geometries]
            new_ids, new = splice_placeholders(ids, companions, places, replacements, self.spec.image_token_id)
            return new_ids, new, True
        raise self.token_count_error(lengths, counts, name, geometries)

    def _expansion(self, geometry: ImageGeometry) -> torch.Tensor:
        rows, cols = self.spec.grid_of(geometry)
        text = self.processor.replace_image_token({"rows": [[rows]], "cols": [[cols]]}, 0)
        return torch.as_tensor(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_count_error(
        self, lengths: list[int], counts: Sequence[int], name: str, geometries: Sequence[ImageGeometry] = ()
    ) -> VisionInputError:
        per = self.spec.tokens_per_view
        images = "; ".join(
            f"image {i}: {'x'.join(map(str, self.spec.grid_of(g)))} sub-images + global = {g.num_views} runs"
            for i, g in enumerate(geometries)
        )
        return TokenCountError(
            f"image tokens in {name} do not match the images",
            found=f"runs of {lengths} tokens of id {self.spec.image_token_id}",
            expected=f"{per} tokens per view (each sub-image and the global view), one run per view"
            + (f" ({images})" if images else f" ({list(counts)} tokens per image)")
            + ", or one placeholder per image",
            fix=EXPAND_FIX,
        )


class Idefics3Adapter(Idefics3AdapterBase):
    name = "idefics3"
    model_types = ("idefics3",)
    description = "Idefics3: 364 px sub-images + global view, 169 tokens each, one run per view between markers"


class SmolVLMAdapter(Idefics3AdapterBase):
    name = "smolvlm"
    model_types = ("smolvlm",)
    description = "SmolVLM: 512 px sub-images + global view, 64 tokens each, one run per view between markers"

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """``smolvlm`` (256M/500M geometry) and ``smolvlm_2.2b`` (384 px views, 378 px of them seen)."""
        return (*cls.model_types, tiny.SMOLVLM_2B)

    def prepare(
        self,
        images: Sequence[RawImage] | Sequence[Sequence[RawImage]] | RawImage,
        texts: Sequence[str] | str,
    ) -> VisionBatch:
        """The stock processor per prompt, padded into one batch as the processor pads.

        SmolVLM's processor reads a flat image list as the images of one prompt, so several
        prompts go through it one at a time; the batch is then what it would have built.
        """
        if isinstance(texts, str) or len(texts) <= 1:
            return super().prepare(images, texts)
        groups = self._group_images(images, len(texts))
        samples = [
            super(SmolVLMAdapter, self).prepare([group], [text]) for group, text in zip(groups, texts, strict=True)
        ]
        return concat_batches(samples, self.pad_token_id, self.padding_side, self.sequence_keys, self.image_stack_keys)
