"""What the sample reader hands a backbone, and what the backbone's resolve step hands back.

The reader has already applied the one policy (ids, sizes, raw-vs-processed, value ranges,
disguised patch matrices); these records carry its findings to ``resolve_images``, the only
step that knows how a backbone lays out its pixels and derives each image's geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..geometry import ImageGeometry, Size


@dataclass(frozen=True)
class PixelView:
    """One pixel input of the stock forward (``pixel_values``, a second view...)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    """The processor's normalisation of this view: processed values are ``(x - mean) / std``, x in [0, 1]."""
    size: Size | None = None
    """``(height, width)`` of the processed images, for backbones whose processed pixels are images
    of one size; ``None`` when the size varies (or the pixels are a patch matrix)."""
    background: tuple[int, int, int] | None = None
    """The RGB colour (0-255) the processor pads this view with, for padded views."""


@dataclass(frozen=True)
class PixelForm:
    """The shape of a backbone's processed pixels, as far as the sample reader needs to know it."""

    views: Mapping[str, PixelView]
    """Sample (and stock forward) keys of the pixel inputs, the primary one first."""
    channels: int = 3
    patch_width: int | None = None
    """For backbones whose processor returns a flattened patch matrix ``[N, C*T*p*p]``: its row
    width. ``None``: processed pixels are image stacks ``[N, C, H, W]``."""

    @property
    def input_sizes(self) -> set[Size]:
        return {v.size for v in self.views.values() if v.size is not None}


@dataclass(frozen=True)
class PixelValue:
    """One processed pixel field as the sample gave it: one array, or a list of per-image arrays."""

    parts: list[torch.Tensor]
    listed: bool
    """True when the sample held a list (one array per image, as some collates leave them)."""

    @property
    def tensor(self) -> torch.Tensor:
        """The array itself (the sample gave one), or the parts concatenated along dim 0."""
        return self.parts[0] if not self.listed else torch.cat(self.parts, dim=0)


@dataclass
class SampleImages:
    """Everything about a sample's images, checked by the core, for ``resolve_images``."""

    sample: Mapping[str, Any]
    """The sample itself, for backbone-specific keys (e.g. ``image_grid_thw``)."""
    input_ids: torch.Tensor
    """The 1-D prompt ids as given (expanded by the processor, or one placeholder per image)."""
    processed: dict[str, PixelValue]
    """Processed pixel fields (keys of :attr:`PixelForm.views`), finite and in the normalised range."""
    raw: list[Image.Image] | None = None
    """Decoded raw images (RGB), in order, or ``None``."""
    from_raw: dict[str, torch.Tensor] | None = None
    """The stock image processor's output for :attr:`raw`."""
    sizes: list[Size | None] | None = None
    """Original ``(height, width)`` per image from every size source, merged and checked; ``None``
    entries are unknown, and the whole list is ``None`` when the sample declares no size at all."""


@dataclass
class ResolvedImages:
    """The stock forward's pixel inputs (and grid tensors) plus one geometry per image."""

    pixels: dict[str, torch.Tensor]
    geometries: list[ImageGeometry]
    notes: list[str] = field(default_factory=list)
    """Repairs made (a derived grid...), reported in ``batch.extras['repairs']``."""
