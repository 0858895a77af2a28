"""``VisionBatch``: what the stock forward needs, plus where each image sits.

The stock model only needs ``inputs``. Grounding code also needs, per image, its
``ImageGeometry`` and the positions of its image tokens in the sequence; carrying them in
the same object is what keeps the grid from getting lost between preprocessing and the maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from .geometry import ImageGeometry


@dataclass
class VisionBatch:
    """One batch, ready for ``model(**batch.inputs)``.

    * ``inputs``: exactly the keyword arguments of the stock forward (``input_ids``,
      ``attention_mask``, ``pixel_values`` and whatever else the backbone needs).
    * ``geometries[b][i]``: geometry of image ``i`` of sample ``b``.
    * ``image_token_positions[b][i]``: 1-D positions of that image's tokens in
      ``input_ids[b]``, in sequence order (the spec's ``token_order`` says how they map onto
      ``token_grid``).
    * ``mask_ids``: optional ``[batch, seq]`` object index per token (-1 elsewhere), aligned
      with the final, expanded ``input_ids``.
    """

    inputs: dict[str, torch.Tensor]
    geometries: list[list[ImageGeometry]]
    image_token_positions: list[list[torch.Tensor]]
    mask_ids: torch.Tensor | None = None
    extras: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.batch_size
        if len(self.geometries) != n or len(self.image_token_positions) != n:
            raise ValueError(
                f"VisionBatch of {n} samples has {len(self.geometries)} geometry lists and "
                f"{len(self.image_token_positions)} position lists"
            )
        for b, (geos, poss) in enumerate(zip(self.geometries, self.image_token_positions, strict=True)):
            if len(geos) != len(poss):
                raise ValueError(f"sample {b}: {len(geos)} geometries but {len(poss)} image position sets")
            for g, p in zip(geos, poss, strict=True):
                if p.numel() != g.num_image_tokens:
                    raise ValueError(
                        f"sample {b}: {p.numel()} image-token positions for a geometry of {g.num_image_tokens} tokens"
                    )

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    @property
    def batch_size(self) -> int:
        return int(self.inputs["input_ids"].shape[0])

    @property
    def num_images(self) -> list[int]:
        return [len(g) for g in self.geometries]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> VisionBatch:
        """Move tensors; floating ``inputs`` (pixels) also take ``dtype``, ids stay integers."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return replace(
            self,
            inputs={k: move(v) for k, v in self.inputs.items()},
            mask_ids=None if self.mask_ids is None else self.mask_ids.to(device),
        )

    def samples(self) -> Iterator[tuple[list[ImageGeometry], list[torch.Tensor]]]:
        """(geometries, positions) per sample."""
        yield from zip(self.geometries, self.image_token_positions, strict=True)
