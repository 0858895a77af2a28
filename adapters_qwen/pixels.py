"""The Qwen-VL processor's patch matrix in the layouts datasets hand it over.

The stock processor returns flattened patches ``[N, C*T*p*p]``, all images concatenated, with
``image_grid_thw`` saying how many rows each image has. Datasets keep that tensor, wrap it as
``[1, N, D]``, or keep one array per image. The core has already told the matrix from raw images
and from a matrix disguised as an image, and checked its values; what is left is its layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlm_adapters import DynamicSpec, ImageShapeError
from vlm_adapters.normalize import PixelValue


@dataclass
class PatchInput:
    """A processor patch matrix; ``rows_per_image`` is known when it came as one array per image."""

    pixel_values: torch.Tensor
    rows_per_image: list[int] | None = None


def _matrix(x: torch.Tensor) -> torch.Tensor:
    return x[0] if x.ndim == 3 else x


def patch_input(value: PixelValue, spec: DynamicSpec) -> PatchInput:
    """The patch matrix ``[N, patch_dim]`` (float32) and, for per-image arrays, each image's rows."""
    parts = [_matrix(p) for p in value.parts]
    for part in parts:
        if part.shape[-1] != spec.patch_dim:
            raise ImageShapeError(
                "patch rows have the wrong width",
                found=f"shape {list(part.shape)}",
                expected=f"[N, {spec.patch_dim}] (C*T*p*p with p={spec.patch_size}, T={spec.temporal_patch_size})",
                fix="process the images with this checkpoint's own processor",
            )
    matrix = torch.cat(parts, dim=0).to(torch.float32)
    return PatchInput(matrix, [int(p.shape[0]) for p in parts] if value.listed else None)
