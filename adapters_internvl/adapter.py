"""The InternVL adapter (``internvl``, the transformers-format checkpoints such as InternVL3-hf).

The stock processor does all the work: it tiles, adds the thumbnail and expands each
``<IMG_CONTEXT>`` placeholder into ``<img>`` + 256 tokens per tile + ``</img>``. The adapter
declares that layout as views (one per tile, the thumbnail last, all in one run) so attention
comes back per tile and fuses onto the original image, and resolves research samples (flat or
per-image tile stacks, tile counts, sizes) into the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import torch
from PIL import Image
from transformers import PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, ImageGeometry, TokenCountError, VisionInputError
from vlm_adapters.normalize import EXPAND_FIX, PixelForm, PixelView, ResolvedImages, SampleImages
from vlm_adapters.normalize.tiles import view_cells
from vlm_adapters.placeholders import image_runs, splice_placeholders

from . import tiny
from .resolve import resolve_internvl_images
from .spec import InternVLTileSpec, build_internvl_spec


class InternVLAdapter(BackboneAdapter):
    name = "internvl"
    model_types = ("internvl",)
    spec_kind = "internvl_tiles"
    description = "InternVL (hf format): 448 px tiles by aspect ratio + thumbnail, 256 tokens per tile, one run"
    adjacent_images_share_a_run = False  # <img> ... </img> around every image

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        if variant not in (None, *cls.model_types):
            raise ValueError(f"{cls.name} has no tiny variant {variant!r}; variants: {list(cls.variants())}")
        return tiny.tiny_config()

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig, **image_processor_kwargs: Any) -> ProcessorMixin:
        """Stock processor + offline tokenizer; ``min_patches`` / ``max_patches`` may be overridden."""
        return tiny.tiny_processor(config, **image_processor_kwargs)

    @cached_property
    def spec(self) -> InternVLTileSpec:
        """The checkpoint's tiling (narrows the base class's type)."""
        return self.build_spec()

    def build_spec(self) -> InternVLTileSpec:
        return build_internvl_spec(self.config, self.processor)

    # --- normalize: the backbone's steps of the core procedure ---------------------------
    @cached_property
    def pixel_form(self) -> PixelForm:
        """Processed pixels are tile stacks ``[tiles, 3, 448, 448]``."""
        spec = self.spec
        view = PixelView(tuple(spec.image_mean), tuple(spec.image_std), spec.tile_size)
        return PixelForm(views={"pixel_values": view}, channels=int(self.config.vision_config.num_channels))

    def process_images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The image processor with the processor's call-time settings (it turns tiling on)."""
        kwargs = self.processor._merge_kwargs()["images_kwargs"]
        out = self.processor.image_processor(images=images, return_tensors="pt", **kwargs)
        return {"pixel_values": out["pixel_values"], "num_patches": torch.as_tensor(out["num_patches"])}

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        return resolve_internvl_images(self, images)

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
        """Expanded ids are kept (each image's run must sit between ``<img>`` and ``</img>``); one
        ``<IMG_CONTEXT>`` per image becomes the processor's ``<img>`` + tokens + ``</img>`` (only the
        tokens where the placeholder is already wrapped)."""
        spec = self.spec
        runs = image_runs(ids, spec.image_token_id)
        lengths = [n for _, n in runs]
        places = (ids == spec.image_token_id).nonzero().flatten().tolist()
        if len(places) == len(counts) and lengths != list(counts):  # one placeholder per image
            replacements = [self._expansion(ids, at, count) for at, count in zip(places, counts, strict=True)]
            new_ids, new = splice_placeholders(ids, companions, places, replacements, self.spec.image_token_id)
            return new_ids, new, True
        kept = super().expand_image_tokens(ids, companions, counts, name, geometries)
        for i, (at, n) in enumerate(runs):
            if not (at > 0 and at + n < ids.numel() and self._wrapped(ids, at, n)):
                raise TokenCountError(
                    f"image {i}'s tokens in {name} are not wrapped in the image start and end tokens",
                    found=f"ids {ids[max(at - 1, 0)].item()} before and {ids[min(at + n, ids.numel() - 1)].item()} "
                    f"after its {n} tokens",
                    expected=f"{spec.vision_start_token_id} before and {spec.vision_end_token_id} after",
                    fix="expand the prompt with the stock processor, or pass one placeholder per image",
                )
        return kept

    def _wrapped(self, ids: torch.Tensor, at: int, n: int) -> bool:
        spec = self.spec
        return int(ids[at - 1]) == spec.vision_start_token_id and int(ids[at + n]) == spec.vision_end_token_id

    def _expansion(self, ids: torch.Tensor, at: int, count: int) -> torch.Tensor:
        """The processor's text for an image of ``count`` tokens, tokenized (the bare tokens where
        the placeholder already sits between the start and end tokens)."""
        if 0 < at < ids.numel() - 1 and self._wrapped(ids, at, 1):
            return torch.full((count,), self.spec.image_token_id, dtype=ids.dtype)
        text = self.processor.replace_image_token({"num_patches": [count // self.spec.tokens_per_tile]}, 0)
        return torch.as_tensor(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_count_error(
        self, lengths: list[int], counts: Sequence[int], name: str, geometries: Sequence[ImageGeometry] = ()
    ) -> VisionInputError:
        per = self.spec.tokens_per_tile
        images = "; ".join(f"image {i}: {c // per} views = {c}" for i, c in enumerate(counts))
        return TokenCountError(
            f"image tokens in {name} do not match the images",
            found=f"runs of {lengths} tokens of id {self.spec.image_token_id} for {len(counts)} image(s)",
            expected=f"{per} tokens per view (each tile and the thumbnail), one run per image ({images}), or one "
            "placeholder per image",
            fix=EXPAND_FIX,
        )
