"""Image files named on the command line: checked to exist and decode before any model loads."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ImageFileError


def check_image_file(path: Path) -> tuple[int, int]:
    """(height, width) of an image file that exists and decodes; :class:`ImageFileError` otherwise."""
    if not path.is_file():
        raise ImageFileError(
            "image file not found",
            found=f"{str(path)!r} ({'a folder' if path.is_dir() else 'no such file'})",
            expected="the path of an image file (PNG, JPEG, ...)",
            fix="check the path passed to --image",
        )
    try:
        with Image.open(path) as image:
            image.verify()  # structure and checksums
        with Image.open(path) as image:
            image.load()  # the pixels themselves
            return image.height, image.width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageFileError(
            "file does not decode as an image",
            found=f"{str(path)!r}: {type(exc).__name__}: {exc}",
            expected="an image file PIL can read (PNG, JPEG, WebP, ...), not truncated",
            fix="re-export or re-download the image, or leave it out of --image",
        ) from None


def load_image_file(path: Path) -> Image.Image:
    """The decoded image in RGB, as every stock image processor takes it."""
    with Image.open(path) as image:
        return image.convert("RGB")
