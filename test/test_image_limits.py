"""Untrusted CompressedImage data: sizes are read from the PNG/JPEG header before decoding (no ROS)."""
from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from refseg_ros.ros import images
from refseg_ros.ros.images import ImageConversionError, compressed_dimensions, compressed_to_numpy


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header for a huge image, with a tiny (incomplete) pixel stream."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_header_dimensions_match_the_decoder(ext):
    img = np.random.default_rng(0).integers(0, 255, (37, 91, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    kind, w, h = compressed_dimensions(buf.tobytes())
    assert (w, h) == (91, 37) and kind == ("png" if ext == ".png" else "jpeg")
    out, _ = compressed_to_numpy(SimpleNamespace(format=ext[1:], data=buf.tobytes()))
    assert out.shape[:2] == (37, 91)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _png_claiming(30_000, 30_000)  # 2.7 GB decoded, about 1 kB on the wire
    assert len(bomb) < 2000
    with pytest.raises(ImageConversionError, match="30000x30000 pixels refused"):
        compressed_to_numpy(SimpleNamespace(format="png", data=bomb))
    with pytest.raises(ImageConversionError, match="refused"):
        compressed_to_numpy(SimpleNamespace(format="16UC1; compressedDepth png", data=bytes(12) + bomb))
    with pytest.raises(ImageConversionError, match="refused"):  # within a side, too many pixels
        compressed_to_numpy(SimpleNamespace(format="png", data=_png_claiming(images.MAX_SIDE, images.MAX_SIDE)))


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp"])
def test_only_png_and_jpeg_reach_the_decoder(ext):
    ok, buf = cv2.imencode(ext, np.zeros((8, 8, 3), np.uint8))
    assert ok
    with pytest.raises(ImageConversionError, match="neither JPEG nor PNG"):
        compressed_to_numpy(SimpleNamespace(format="jpeg", data=buf.tobytes()))


def test_random_and_damaged_payloads_give_conversion_errors():
    rng = np.random.default_rng(3)
    ok, jpg = cv2.imencode(".jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    ok2, png = cv2.imencode(".png", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert ok and ok2
    payloads = [rng.bytes(n) for n in (1, 2, 10, 100, 5000)]
    for base in (jpg.tobytes(), png.tobytes()):
        payloads += [base[:n] for n in (2, 3, 9, 20, 24, len(base) // 2)]
        for _ in range(20):
            b = bytearray(base)
            for _ in range(int(rng.integers(1, 20))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            payloads.append(bytes(b))
    decoded = 0
    for data in payloads:
        try:
            out, _ = compressed_to_numpy(SimpleNamespace(format="jpeg", data=data))
        except ImageConversionError:
            continue
        decoded += 1  # a flip in pixel data can still decode: then it must be a sane image
        assert out.dtype in (np.uint8, np.uint16) and 0 < out.shape[0] <= images.MAX_SIDE
    assert decoded < len(payloads)
