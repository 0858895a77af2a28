"""Processed NeXT / OneVision pixels in every layout research code stores them, as one tile stack
per image.

Each image is a stack of tower inputs ``[tiles, 3, S, S]``: the base view, then the canvas tiles.
Datasets hand them over as

* ``[tiles, 3, S, S]``: the tiles of one image, or of several images back to back (split by the
  tile counts their sizes give);
* ``[images, max_tiles, 3, S, S]``: the stock processor's batch, padded with all-zero tiles;
* a list of per-image arrays (``[tiles, 3, S, S]``), as collates leave them.

The core has already checked the values (finite, normalised, not a disguised patch matrix);
:func:`~vlm_adapters.normalize.resolve.stack_images` checks each part's shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vlm_adapters import TokenCountError
from vlm_adapters.normalize import PixelForm, PixelValue
from vlm_adapters.normalize.resolve import stack_images


@dataclass(frozen=True)
class GivenPixels:
    """The sample's tiles, in the layout given: per-image stacks, one padded batch, or one flat stack."""

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
            if [s.shape[0] for s in self.stacks] != list(counts):
                raise TokenCountError(
                    "the per-image pixel stacks do not hold the tiles the images need",
                    found=f"{[int(s.shape[0]) for s in self.stacks]} tiles per image",
                    expected=f"{list(counts)} (the base view and the canvas tiles for each size)",
                    fix="keep image_sizes aligned with pixel_values, as (height, width) per image",
                )
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


def given_tiles(value: PixelValue, form: PixelForm, key: str = "pixel_values") -> GivenPixels:
    """The sample's tiles, shape-checked, in the layout given."""
    if value.listed:
        return GivenPixels(stacks=[stack_images(PixelValue([p], listed=False), key, form) for p in value.parts])
    x = value.parts[0]
    if x.ndim == 5:
        flat = stack_images(PixelValue([x.flatten(0, 1)], listed=False), key, form)
        return GivenPixels(padded=flat.reshape(x.shape))
    return GivenPixels(flat=stack_images(value, key, form))
