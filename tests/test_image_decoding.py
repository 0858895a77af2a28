"""One documented rule per image mode and bit depth: 16-bit and float images scaled, not clipped;
ambiguous scales and decompression bombs refused with typed errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_adapters import ImageShapeError
from vlm_adapters.images import open_image, to_pil
from vlm_adapters.registry import get_adapter


def _ramp(h: int = 12, w: int = 20) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * 255 // (h * w - 1)).astype(np.uint8)


def test_a_16_bit_png_keeps_its_picture(tmp_path: Path) -> None:
    eight = _ramp()
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    opened = Image.open(tmp_path / "g16.png")
    assert opened.mode == "I;16"  # how PIL opens 16-bit PNGs
    rgb = np.asarray(to_pil(opened))
    assert rgb.shape == (12, 20, 3)
    assert np.array_equal(rgb[..., 0], eight)  # PIL's own convert("RGB") would clip to white


def test_float_images_are_scaled_the_same_as_pil_or_numpy() -> None:
    values = _ramp().astype(np.float32) / 255
    from_pil = np.asarray(to_pil(Image.fromarray(values, mode="F")))
    from_numpy = np.asarray(to_pil(values))
    assert np.array_equal(from_pil, from_numpy)
    assert np.array_equal(from_pil[..., 0], _ramp())  # not black


def test_uint16_arrays_are_scaled() -> None:
    assert np.array_equal(np.asarray(to_pil(_ramp().astype(np.uint16) * 257))[..., 1], _ramp())


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "LA", "CMYK", "YCbCr"])
def test_eight_bit_modes_convert_as_pil_does(mode: str) -> None:
    image = Image.fromarray(np.stack([_ramp(), _ramp()[::-1], _ramp()[:, ::-1]], -1)).convert(mode)
    assert np.array_equal(np.asarray(to_pil(image)), np.asarray(image.convert("RGB")))


def test_images_without_a_known_scale_are_refused() -> None:
    with pytest.raises(ImageShapeError, match="32-bit integer"):
        to_pil(Image.fromarray(_ramp().astype(np.int32) * 1000, mode="I"))
    with pytest.raises(ImageShapeError, match="scale is ambiguous"):
        to_pil(Image.fromarray(_ramp().astype(np.float32), mode="F"))


def _png_header_only(path: Path, height: int, width: int) -> None:
    """A PNG whose header claims ``height x width`` (nothing else needs to be real for PIL to refuse it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_decompression_bombs_are_typed_errors(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 100_000, 100_000)
    with pytest.raises(ImageShapeError, match="too large to decode safely"):
        open_image(bomb)
    big = tmp_path / "big.png"  # above PIL's warning limit, below its error limit
    _png_header_only(big, 10_000, 10_000)
    with pytest.raises(ImageShapeError, match="too large"):
        open_image(big)


def test_a_16_bit_raw_image_reaches_the_model_as_its_8_bit_picture() -> None:
    adapter = get_adapter("deepseek_vl").from_tiny()
    eight = np.stack([_ramp(40, 60)] * 3, -1)
    prompt = adapter.format_prompt("what is this", answer="a ramp")
    want = adapter.prepare([Image.fromarray(eight)], [prompt]).inputs["pixel_values"]
    got = adapter.prepare([Image.fromarray(eight[..., 0].astype(np.uint16) * 257)], [prompt]).inputs["pixel_values"]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
