"""``TiledLlavaAdapter``: the synthetic global-view-plus-tiles family as a vlm-adapters backbone.

It reads the ``global_tiles`` spec from the config and the processor (and refuses them when
they disagree) and builds tiny offline fixtures for both token layouts (variants ``newline`` and
``markers``). Dataset samples go through the core's one ``normalize``; this adapter supplies
only its steps: how its views are stacked in ``pixel_values`` and, with markers, that every view
is a run of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import CLIPVisionConfig, LlamaConfig, LlavaImageProcessor, PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from vlm_adapters import BackboneAdapter, ImageShapeError, SpecError, TokenCountError, VisionInputError
from vlm_adapters.geometry import ImageGeometry
from vlm_adapters.normalize import PixelForm, PixelView, ResolvedImages, SampleImages
from vlm_adapters.normalize.crosscheck import check_padding_visible
from vlm_adapters.normalize.resolve import geometries_from_sizes, stack_images
from vlm_adapters.tiny import build_tokenizer

from .model import MODEL_TYPE, TiledLlavaConfig
from .processor import TiledLlavaProcessor
from .spec import GlobalTilesSpec

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ' : ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ ' ' + item['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant :' }}{% endif %}"
)
LAYOUTS = ("newline", "markers")
"""The processor's token layouts, which are also the tiny variants."""


class TiledLlavaAdapter(BackboneAdapter):
    name: ClassVar[str] = MODEL_TYPE
    model_types: ClassVar[tuple[str, ...]] = (MODEL_TYPE,)
    spec_kind: ClassVar[str] = "global_tiles"
    description: ClassVar[str] = "synthetic test family: a padded global view plus 2x2 stretched tiles"

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return LAYOUTS

    # --- tiny offline backbone -----------------------------------------------------------
    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        variant = variant or "newline"
        if variant not in LAYOUTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {list(LAYOUTS)}")
        tokenizer = _tiny_tokenizer()
        vision = CLIPVisionConfig(
            image_size=56,
            patch_size=14,
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=2,
        )
        text = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return TiledLlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            tile_grid=(2, 2),
            tile_newlines=variant == "newline",
        )

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        side = config.vision_config.image_size
        image_processor = LlavaImageProcessor(
            do_pad=True, size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
        return TiledLlavaProcessor(
            image_processor=image_processor,
            tokenizer=_tiny_tokenizer(),
            tile_grid=config.tile_grid,
            layout="newline" if config.tile_newlines else "markers",
            patch_size=config.vision_config.patch_size,
            chat_template=CHAT_TEMPLATE,
        )

    # --- spec ----------------------------------------------------------------------------
    def build_spec(self) -> GlobalTilesSpec:
        config, processor = self.config, self.processor
        if not isinstance(processor, TiledLlavaProcessor):
            raise SpecError(f"this family needs its TiledLlavaProcessor, got {type(processor).__name__}")
        image_processor = processor.image_processor
        vision = config.vision_config
        side = vision.image_size
        crop = (image_processor.crop_size["height"], image_processor.crop_size["width"])
        if not image_processor.do_pad or crop != (side, side):
            raise SpecError(
                f"the image processor must pad to a square and crop to the tower's {side}x{side} "
                f"(do_pad={image_processor.do_pad}, crop_size={crop})"
            )
        if config.vision_feature_select_strategy != "default":
            raise SpecError("the model must drop CLS (vision_feature_select_strategy='default'): one feature per patch")
        config_layout = "newline" if config.tile_newlines else "markers"
        checks = {
            "layout": (processor.layout, config_layout),
            "tile_grid": (tuple(processor.tile_grid), tuple(config.tile_grid)),
            "patch_size": (processor.patch_size, vision.patch_size),
            "image_token_id": (processor.image_token_id, config.image_token_id),
        }
        for what, (found, expected) in checks.items():
            if found != expected:
                raise SpecError(f"processor {what} {found!r} does not match the config's {expected!r}")
        marker = processor.tokenizer.convert_tokens_to_ids(processor.view_marker)
        markers = processor.layout == "markers"
        red, green, blue = (int(255 * m) for m in image_processor.image_mean)  # the processor pads with these
        return GlobalTilesSpec(
            image_token_id=config.image_token_id,
            image_token=processor.image_token,
            image_mean=_triple(image_processor.image_mean),
            image_std=_triple(image_processor.image_std),
            background_color=(red, green, blue),
            view_size=side,
            patch_size=vision.patch_size,
            tile_grid=_pair(config.tile_grid),
            row_separators=0 if markers else 1,
            markers=markers,
            marker_token_id=marker if markers else None,
        )

    @property
    def tiles_spec(self) -> GlobalTilesSpec:
        spec = self.spec
        assert isinstance(spec, GlobalTilesSpec)
        return spec

    # --- dataset samples: the core's normalize, with this layout's steps ---------------------
    @property
    def pixel_form(self) -> PixelForm:
        """One ``pixel_values`` stack of ``S x S`` views: each image's global view, then its tiles."""
        spec = self.tiles_spec
        side = (spec.view_size, spec.view_size)
        return PixelForm(views={"pixel_values": PixelView(spec.image_mean, spec.image_std, side)})

    @property
    def global_view(self) -> PixelView:
        """The global views alone: padded with the processor's background colour."""
        return replace(self.pixel_form.views["pixel_values"], background=self.tiles_spec.background_color)

    def process_images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """Every view of every raw image, as the processor makes them."""
        processor: Any = self.processor
        return processor.views(images)

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        """The stacked views; one image per ``views_per_image`` of them, its geometry from its size."""
        given = images.processed.get("pixel_values")
        if given is not None:
            pixels = stack_images(given, "pixel_values", self.pixel_form)
        else:
            assert images.from_raw is not None  # the core resolves only samples with pixels or raw images
            pixels = images.from_raw["pixel_values"]
        views = self.tiles_spec.views_per_image
        if pixels.shape[0] % views:
            raise ImageShapeError(
                "pixel_values do not hold whole images",
                found=f"{pixels.shape[0]} views",
                expected=f"{views} views per image (the global view, then the tiles)",
                fix="keep every view of every image, in order, as the processor returned them",
            )
        side = self.pixel_form.views["pixel_values"].size
        geometries = geometries_from_sizes(self.spec, images.sizes, pixels.shape[0] // views, side)
        if given is not None and images.from_raw is None:  # the declared sizes against the visible padding
            global_views = [g.model_copy(update={"views": g.views[:1]}) for g in geometries]
            check_padding_visible(pixels[::views], global_views, self.global_view, "pixel_values (global views)")
        return ResolvedImages({"pixel_values": pixels}, geometries)

    def pixel_cells(self, key: str, pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
        """Each image's views pooled to their token grids, one tensor per image."""
        per_image = pixels.reshape(len(geometries), -1, *pixels.shape[1:])
        pool = torch.nn.functional.adaptive_avg_pool2d
        return [
            torch.cat([pool(x.float(), v.token_grid).flatten(1) for x, v in zip(views, g.views, strict=True)], dim=1)
            for views, g in zip(per_image, geometries, strict=True)
        ]

    def expand_image_tokens(
        self,
        ids: torch.Tensor,
        companions: Mapping[str, torch.Tensor],
        counts: Sequence[int],
        name: str,
        geometries: Sequence[ImageGeometry] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """The core's check, given each run: with markers every view is a run of its own."""
        if self.tiles_spec.markers:
            counts = [n for g in geometries for n in g.run_lengths]
        return super().expand_image_tokens(ids, companions, counts, name, geometries)

    def token_count_error(
        self, lengths: list[int], counts: Sequence[int], name: str, geometries: Sequence[ImageGeometry] = ()
    ) -> VisionInputError:
        if not self.tiles_spec.markers:
            return super().token_count_error(lengths, counts, name, geometries)
        return TokenCountError(
            f"image tokens in {name} are not one run per view",
            found=f"runs of {lengths} tokens of id {self.spec.image_token_id}",
            expected=f"runs of {list(counts)}: every view of every image after its marker token",
            fix="tokenize the prompt with the processor (adapter.prepare): a placeholder cannot be expanded into "
            "views with markers between them",
        )


def _triple(values: Any) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in values)
    return r, g, b


def _pair(values: Any) -> tuple[int, int]:
    rows, cols = (int(v) for v in values)
    return rows, cols


def _tiny_tokenizer() -> Any:
    return build_tokenizer(
        ["<image>", "<view>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
        extra_attributes={"image_token": "<image>"},
    )


__all__ = ["TiledLlavaAdapter"]
