"""Raw-image helpers: tell an image from a processed tensor and read its size.

Datasets hand over PIL images, numpy arrays (HWC) and torch tensors (CHW). Only what is
certainly a raw image is treated as one; anything else is left for the adapter to validate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import ImageShapeError
from .geometry import Size

RawImage = Image.Image | np.ndarray | torch.Tensor


def image_size(image: Any) -> Size:
    """(height, width) of a raw image: PIL, numpy ``HWC``/``HW``, torch ``CHW``."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray):
        if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4)):
            return int(image.shape[0]), int(image.shape[1])
        if image.ndim == 3 and image.shape[0] in (1, 3, 4):
            return int(image.shape[1]), int(image.shape[2])
    if isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] in (1, 3, 4):
        return int(image.shape[1]), int(image.shape[2])
    shape = getattr(image, "shape", None)
    raise ImageShapeError(
        "not a raw image",
        found=f"{type(image).__name__} of shape {tuple(shape) if shape is not None else None}",
        expected="a PIL image, a numpy HxWxC array or a torch CxHxW tensor",
        fix="pass the decoded image itself (one per placeholder), not processed pixel values",
    )


def is_raw_image(obj: Any) -> bool:
    """True for PIL images, uint8 arrays/tensors, and 3-channel CHW/HWC float images."""
    if isinstance(obj, Image.Image):
        return True
    if isinstance(obj, np.ndarray):
        return obj.ndim == 3 and (obj.shape[-1] in (1, 3, 4) or obj.shape[0] in (1, 3, 4))
    if isinstance(obj, torch.Tensor):
        return obj.ndim == 3 and obj.shape[0] in (1, 3, 4)
    return False


def to_pil(image: RawImage) -> Image.Image:
    """A PIL RGB image from any raw image form (floats are taken to be in [0, 1])."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr).convert("RGB")
