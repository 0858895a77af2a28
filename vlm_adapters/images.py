"""Raw-image helpers: tell an image from a processed tensor and read its size.

Datasets hand over PIL images, numpy arrays (HWC) and torch tensors (CHW). Only what is
certainly a raw image is treated as one; anything else is left for the adapter to validate.
"""

from __future__ import annotations

import warnings
from pathlib import Path
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
    """True for PIL images and for arrays/tensors that can only be pixels as decoded.

    uint8 data, or floats within [0, 1], in an HWC/HW (numpy) or CHW (torch) layout.
    Normalised processor output (floats outside [0, 1]) is not a raw image.
    """
    if isinstance(obj, Image.Image):
        return True
    if isinstance(obj, np.ndarray):
        layout = obj.ndim == 2 or (obj.ndim == 3 and (obj.shape[-1] in (1, 3, 4) or obj.shape[0] in (1, 3, 4)))
        return layout and _plain_range(obj)
    if isinstance(obj, torch.Tensor):
        return obj.ndim == 3 and obj.shape[0] in (1, 3, 4) and _plain_range(obj.detach().cpu().numpy())
    return False


def _plain_range(arr: np.ndarray) -> bool:
    if arr.dtype in (np.uint8, np.uint16):
        return True
    if arr.size == 0:
        return False
    lo, hi = float(arr.min()), float(arr.max())
    if np.issubdtype(arr.dtype, np.integer):
        return lo >= 0 and hi <= 255
    return lo >= 0.0 and hi <= 1.0


SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _pil_to_rgb(image: Image.Image, where: str) -> Image.Image:
    """One rule per PIL mode: the scale of each mode is known, so nothing is clipped or guessed.

    8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``LA``, ``CMYK``, ``YCbCr``...) convert as
    PIL does (alpha dropped); 16-bit modes (``I;16*``, how 16-bit PNGs open) are scaled by
    255/65535; float mode ``F`` must lie in [0, 1] and is scaled by 255; 32-bit integer mode ``I``
    has no known scale and is refused.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        return to_pil(np.asarray(image).astype(np.uint16), where)
    if image.mode in ("F", "I"):
        arr = np.asarray(image)
        if image.mode == "I":
            raise ImageShapeError(
                f"{where} is a 32-bit integer image: its scale is unknown",
                found=f"PIL mode 'I', values {int(arr.min())}..{int(arr.max())}",
                expected="an 8-bit or 16-bit image, or floats in [0, 1]",
                fix="convert it knowing its range, e.g. Image.fromarray((arr / arr_max * 255).astype('uint8'))",
            )
        return to_pil(arr.astype(np.float32), where)
    return image.convert("RGB")


def open_image(path: str | Path) -> Image.Image:
    """Decode an image file, refusing decompression bombs with a typed error instead of PIL's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageShapeError(
            f"{path} is too large to decode safely",
            found=str(exc).split(" could be")[0][:120],
            expected=f"at most {Image.MAX_IMAGE_PIXELS} pixels (PIL's decompression-bomb limit)",
            fix="downscale the image first, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
        ) from None


def to_pil(image: RawImage, where: str = "image") -> Image.Image:
    """A validated raw image as PIL RGB; ``where`` names it in errors.

    Torch tensors are CHW, numpy arrays HWC (or HW). uint8 (and bool) are taken as they are,
    uint16 is scaled by 255/65535, other integers must lie in 0..255 and floats in [0, 1]: a
    scale is never guessed, and normalised processor output (negative values) is refused rather
    than clipped into a different picture. PIL images follow :func:`_pil_to_rgb`.
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image, where)
    h, w = image_size(image)  # raises the typed error for anything not HWC / CHW / HW
    if h <= 0 or w <= 0:
        raise ImageShapeError(
            f"{where} is empty",
            found=(h, w),
            expected="height > 0 and width > 0",
            fix="check that the image was decoded",
        )
    if isinstance(image, torch.Tensor):
        arr = image.detach().cpu().numpy().transpose(1, 2, 0)
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) * (255.0 / 65535.0)).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN image: reported just below
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        floating = np.issubdtype(arr.dtype, np.floating)
        if floating and not np.isfinite(arr).all():
            raise ImageShapeError(
                f"{where} has NaN or infinite values",
                found=f"{arr.dtype} in [{lo:.3g}, {hi:.3g}]",
                expected="finite pixel values",
                fix="check the decoding of the image",
            )
        if lo < 0:
            raise ImageShapeError(
                f"{where} has negative values: it is normalised, not a raw image",
                found=f"{arr.dtype} in [{lo:.3g}, {hi:.3g}]",
                expected="a raw image: uint8 0..255 or float 0..1",
                fix="pass the decoded image (the stock processor normalises it); processed pixels go "
                "under pixel_values",
            )
        if hi > (1.0 if floating else 255):
            raise ImageShapeError(
                f"{where} is outside the range of decoded pixels, its scale is ambiguous",
                found=f"{arr.dtype} in [{lo:.3g}, {hi:.3g}]",
                expected="uint8 0..255, integers 0..255, or floats in [0, 1]",
                fix="convert to uint8, or divide float images by 255",
            )
        arr = (arr * 255.0).round().astype(np.uint8) if floating else arr.astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
