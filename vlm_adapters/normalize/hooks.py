"""The backbone's side of ``normalize``: the steps the core procedure asks an adapter for.

``BackboneAdapter`` inherits these defaults, which suit backbones whose processed pixels are
image stacks of one size per view and whose geometry follows from the original size alone.
A backbone overrides only what differs (a patch-matrix layout and grid recovery, a prompt
format that reads each run of image tokens as one image, a diagnosis of token counts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from PIL import Image

from ..errors import TokenCountError, VisionInputError
from ..geometry import ImageGeometry
from ..placeholders import expand_placeholders
from .crosscheck import image_cells
from .resolve import resolve_image_stacks
from .sample import PixelForm, PixelView, ResolvedImages, SampleImages

if TYPE_CHECKING:
    from transformers import PretrainedConfig


EXPAND_FIX = (
    "tokenize the prompt with one image placeholder per image and let the adapter expand it (or use "
    "adapter.prepare); do not truncate sequences inside an image"
)
"""The fix every image-token count error gives: the adapter, not the caller, expands placeholders."""


class SampleHooks:
    """Backbone-specific steps of the one ``normalize`` procedure, with their defaults."""

    adjacent_images_share_a_run: ClassVar[bool] = True
    """Whether adjacent images' tokens may form one run (prompt formats that put nothing between
    them); each image must still end where a run ends. ``False`` where the model reads each run as
    one image (then every image must be its own run)."""

    if TYPE_CHECKING:
        config: PretrainedConfig
        processor: Any

        @property
        def spec(self) -> Any: ...

    @property
    def pixel_form(self) -> PixelForm:
        """The processed pixels' keys, normalisation and layout; by default one ``pixel_values``
        view of ``spec.image_size`` and padded with ``spec.background_color`` (where the spec has
        them) with the spec's mean/std."""
        spec = self.spec
        size, background = getattr(spec, "image_size", None), getattr(spec, "background_color", None)
        vision = getattr(self.config, "vision_config", None)
        view = PixelView(
            tuple(spec.image_mean),
            tuple(spec.image_std),
            None if size is None else tuple(size),
            None if background is None else tuple(background),
        )
        return PixelForm(views={"pixel_values": view}, channels=int(getattr(vision, "num_channels", 3)))

    @property
    def vocab_size(self) -> int:
        """Rows of the language model's embedding table: ids must stay below it."""
        return int(self.config.get_text_config().vocab_size)

    def process_images(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The stock image processor's tensors for raw images (the truth processed pixels are checked against)."""
        out = self.processor.image_processor(images=images, return_tensors="pt")
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}

    def resolve_images(self, images: SampleImages) -> ResolvedImages:
        """The stock forward's pixel inputs and one geometry per image (see :mod:`.resolve`)."""
        return resolve_image_stacks(self.spec, self.pixel_form, images)

    def expand_image_tokens(
        self,
        ids: torch.Tensor,
        companions: Mapping[str, torch.Tensor],
        counts: Sequence[int],
        name: str,
        geometries: Sequence[ImageGeometry] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """Keep expanded image tokens (``counts[i]`` for image ``i``) or expand one placeholder per image.

        ``geometries`` are the images' layouts, for prompt formats whose expansion depends on more
        than the count (markers per sub-image and per row of sub-images)."""
        return expand_placeholders(
            ids,
            companions,
            self.spec.image_token_id,
            counts,
            mismatch=lambda lengths: self.token_count_error(lengths, counts, name, geometries),
            shared_runs=self.adjacent_images_share_a_run,
        )

    def token_count_error(
        self, lengths: list[int], counts: Sequence[int], name: str, geometries: Sequence[ImageGeometry] = ()
    ) -> VisionInputError:
        """The error for image-token runs of ``lengths`` that fit neither ``counts`` nor one placeholder
        each; ``geometries`` (the images' layouts, when known) let an override name each view's share."""
        token = self.spec.image_token_id
        per_image = f"{counts[0]}" if len(set(counts)) == 1 else f"{list(counts)}"
        return TokenCountError(
            f"image tokens in {name} do not match the images",
            found=f"{sum(lengths)} tokens of id {token} in runs of {lengths} for {len(counts)} image(s)",
            expected=f"{per_image} tokens per image, one contiguous run each ({sum(counts)} in all), or one "
            "placeholder per image",
            fix=EXPAND_FIX,
        )

    def pixel_cells(self, key: str, pixels: torch.Tensor, geometries: Sequence[ImageGeometry]) -> list[torch.Tensor]:
        """``pixels`` (the model's layout) averaged over token cells, one tensor per image: what two
        versions of one image's pixels are compared on (resampler details average out)."""
        return image_cells(pixels, geometries)

    def note_repair(self, kind: str, message: str) -> None:
        """Log a repair at INFO the first time its kind happens on this adapter, at DEBUG afterwards,
        on the logger of the adapter's package."""
        logger = logging.getLogger(type(self).__module__.partition(".")[0])
        seen: set[str] = self.__dict__.setdefault("_repairs_logged", set())
        if kind in seen:
            logger.debug(message)
        else:
            seen.add(kind)
            logger.info("%s (further repairs of this kind are logged at DEBUG)", message)
