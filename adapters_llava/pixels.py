"""Processed LLaVA pixels in every layout research code stores them, as one tile stack per image.

Each image is a stack of tower inputs ``[tiles, 3, S, S]``: one for LLaVA-1.5, the base view plus
the canvas tiles for NeXT / OneVision. Datasets hand them over as

* ``[tiles, 3, S, S]``: the tiles of one image, or of several images back to back (split by the
  tile counts their sizes give);
* ``[images, max_tiles, 3, S, S]``: the stock processor's batch, padded with all-zero tiles;
* a list of per-image arrays (``[tiles, 3, S, S]`` or ``[3, S, S]``), as collates leave them.

``[images, 3, S, S]`` and ``[images, 1, 3, S, S]`` (F-LMM) are the LLaVA-1.5 cases of the above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlm_adapters import ImageShapeError, PatchMatrixAsImageError, TokenCountError


@dataclass(frozen=True)
class TileLayout:
    """What the tower takes: ``side`` x ``side`` inputs with this normalisation."""

    side: int
    patch_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tiled: bool
    """Whether an image may have several tiles (NeXT / OneVision)."""

    @property
    def shape_text(self) -> str:
        tiles = "tiles" if self.tiled else "images"
        return f"float [{tiles}, 3, {self.side}, {self.side}] (or [images, max_tiles, 3, {self.side}, {self.side}])"


@dataclass(frozen=True)
class GivenPixels:
    """The sample's pixels, in the layout given: per-image stacks, one padded batch, or one flat stack."""

    stacks: list[torch.Tensor] | None = None
    padded: torch.Tensor | None = None
    flat: torch.Tensor | None = None

    @property
    def count(self) -> int | None:
        """Images, where the layout says (a flat stack of several images' tiles does not)."""
        if self.stacks is not None:
            return len(self.stacks)
        return None if self.padded is None else int(self.padded.shape[0])

    def guess_stacks(self, count: int) -> list[torch.Tensor] | None:
        """Per-image stacks without the sizes (for diagnosis): a padded batch less its trailing all-zero
        tiles; a flat stack only when it is one image's."""
        if self.flat is not None:
            return [self.flat] if count == 1 else None
        if self.padded is None:
            return self.stacks
        stacks = []
        for image in self.padded:
            used = image.flatten(1).ne(0).any(dim=1)
            stacks.append(image[: int(used.nonzero().max()) + 1 if bool(used.any()) else 0])
        return stacks

    def split(self, counts: Sequence[int]) -> list[torch.Tensor]:
        """One stack per image, given each image's tile count; padding tiles must be all zero."""
        if self.padded is not None:
            stacks = []
            for i, (image, n) in enumerate(zip(self.padded, counts, strict=True)):
                if n > image.shape[0] or bool(image[n:].ne(0).any()):
                    used = int(image.flatten(1).ne(0).any(dim=1).sum())
                    raise TokenCountError(
                        f"image {i} does not have the tiles its size gives",
                        found=f"{used} non-padding tile(s) of {image.shape[0]}",
                        expected=f"{n} (the base view and the canvas tiles for its size), then all-zero padding tiles",
                        fix="keep image_sizes aligned with pixel_values, as (height, width) per image",
                    )
                stacks.append(image[:n])
            return stacks
        if self.stacks is not None:
            return self.stacks
        assert self.flat is not None
        if self.flat.shape[0] != sum(counts):
            raise TokenCountError(
                "pixel_values do not hold the tiles the images need",
                found=f"{self.flat.shape[0]} tiles",
                expected=f"{sum(counts)} ({' + '.join(map(str, counts))} for the image sizes given)",
                fix="keep every tile the processor made for each image, and the image sizes they were made from",
            )
        return list(self.flat.split(list(counts)))


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _check_tiles(pixels: torch.Tensor, layout: TileLayout) -> None:
    if not pixels.is_floating_point():
        raise ImageShapeError(
            "pixel_values are not normalised floats",
            found=f"dtype {pixels.dtype}, shape {tuple(pixels.shape)}",
            expected=layout.shape_text,
            fix="pass raw images under 'images', or run them through the stock processor",
        )
    if pixels.ndim >= 3 and tuple(pixels.shape[-3:]) == (3, layout.side, layout.side):
        return
    problem, error = "pixel_values do not have the backbone's input shape", ImageShapeError
    if pixels.ndim == 2 or (pixels.ndim >= 3 and pixels.shape[-1] % (3 * layout.patch_size**2) == 0):
        problem, error = "pixel_values look like a patch matrix, not images", PatchMatrixAsImageError
    raise error(
        problem,
        found=tuple(pixels.shape),
        expected=layout.shape_text,
        fix=f"process the images with the checkpoint's own processor ({layout.side} px tiles), "
        "or pass them raw under 'images'",
    )


def _check_range(pixels: torch.Tensor, layout: TileLayout) -> None:
    """Normalised values lie between ``(0 - mean) / std`` and ``(1 - mean) / std``; raw 0-255 floats do not."""
    mean = torch.tensor(layout.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(layout.std, dtype=torch.float32).view(3, 1, 1)
    raw = pixels.detach().float() * std + mean
    low, high = float(raw.amin()), float(raw.amax())
    if low < -0.05 or high > 1.05:
        raise ImageShapeError(
            "pixel_values are not in the processor's normalised range",
            found=f"values that undo to [{low:.2f}, {high:.2f}] of the [0, 1] pixel range",
            expected=f"(x - mean) / std with mean {layout.mean}, std {layout.std} and x in [0, 1]",
            fix="normalise with the checkpoint's processor (rescale by 1/255, then mean/std), or pass raw images",
        )


def read_pixels(value: Any, layout: TileLayout) -> GivenPixels:
    """The sample's ``pixel_values``, checked, in the layout given."""
    if isinstance(value, (list, tuple)):
        stacks = []
        for part in (_tensor(v) for v in value):
            _check_tiles(part, layout)
            if part.ndim not in (3, 4):
                raise ImageShapeError(
                    "a pixel_values entry has an unexpected rank",
                    found=tuple(part.shape),
                    expected=f"one [tiles, 3, {layout.side}, {layout.side}] (or [3, H, W]) array per image",
                    fix="keep the processor's per-image arrays as they are",
                )
            _check_range(part, layout)
            stacks.append(part if part.ndim == 4 else part[None])
        return GivenPixels(stacks=stacks if layout.tiled else [t for s in stacks for t in s.split(1)])
    pixels = _tensor(value)
    _check_tiles(pixels, layout)
    _check_range(pixels, layout)
    if pixels.ndim == 3:
        return GivenPixels(stacks=[pixels[None]])
    if pixels.ndim == 4:
        return GivenPixels(flat=pixels) if layout.tiled else GivenPixels(stacks=list(pixels.split(1)))
    if pixels.ndim == 5 and (layout.tiled or pixels.shape[1] == 1):
        return GivenPixels(padded=pixels)
    raise ImageShapeError(
        "pixel_values have an unexpected rank",
        found=tuple(pixels.shape),
        expected=layout.shape_text,
        fix="pass the processor's pixel_values as they are (this checkpoint takes one input per image)"
        if pixels.ndim == 5
        else "pass the processor's pixel_values as they are",
    )
