"""sensor_msgs/Image and CompressedImage <-> numpy, covering what cv_bridge covers for this package.

No ROS 2 cv_bridge can be installed from the registries this project builds on, and PyPI's
``cv-bridge`` is a broken ROS 1 port, so this module is the one conversion path, fully tested.

* ``imgmsg_to_numpy`` reads any message with the Image fields (height, width, encoding,
  is_bigendian, step, data); it honours row padding in ``step`` and big-endian data, and raises
  :class:`ImageConversionError` naming the encoding and sizes when they are inconsistent.
* ``numpy_to_imgmsg`` builds a ``sensor_msgs.msg.Image`` (imported lazily, so the decoding side
  is usable without ROS).
* ``to_rgb8`` turns any supported colour/mono image into the HxWx3 uint8 RGB the model takes.
* ``compressed_to_numpy`` / ``numpy_to_compressed`` handle ``sensor_msgs/CompressedImage``
  (jpeg, png, and image_transport's ``compressedDepth`` PNG for 16UC1).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np


class ImageConversionError(ValueError):
    """An Image/CompressedImage message that cannot be converted; the message says why."""


@dataclass(frozen=True)
class EncodingInfo:
    dtype: np.dtype
    channels: int


_ENCODINGS: dict[str, EncodingInfo] = {
    "bgr8": EncodingInfo(np.dtype(np.uint8), 3),
    "rgb8": EncodingInfo(np.dtype(np.uint8), 3),
    "bgra8": EncodingInfo(np.dtype(np.uint8), 4),
    "rgba8": EncodingInfo(np.dtype(np.uint8), 4),
    "mono8": EncodingInfo(np.dtype(np.uint8), 1),
    "mono16": EncodingInfo(np.dtype(np.uint16), 1),
    "8UC1": EncodingInfo(np.dtype(np.uint8), 1),
    "8UC3": EncodingInfo(np.dtype(np.uint8), 3),
    "8UC4": EncodingInfo(np.dtype(np.uint8), 4),
    "16UC1": EncodingInfo(np.dtype(np.uint16), 1),
    "32FC1": EncodingInfo(np.dtype(np.float32), 1),
}

#: Encodings this module converts.
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)

#: Largest image side accepted (a guard against absurd or malicious dimensions).
MAX_SIDE = 16384
#: Default cap on width x height of any image decoded here (node parameter ``max_image_pixels``,
#: ``refseg predict --max-image-pixels``): what a frame costs downstream grows with its pixels, so
#: this cap is what bounds the node's memory (docs/reliability.md).
MAX_IMAGE_PIXELS = 4096 * 4096


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """ImageConversionError when a ``width`` x ``height`` image is over ``max_pixels`` or ``MAX_SIDE``."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise ImageConversionError(f"{what} of {width}x{height} pixels refused (at most {MAX_SIDE} a side and "
                                   f"{max_pixels} pixels, max_image_pixels)")


def encoding_info(encoding: str) -> EncodingInfo:
    try:
        return _ENCODINGS[encoding]
    except KeyError:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def imgmsg_to_numpy(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Return the image as an (H, W) or (H, W, C) array in native byte order.

    The result may share memory with ``msg.data`` and be read-only; copy before writing to it.
    Images over ``max_pixels`` are refused from their fields, before anything is copied.
    """
    encoding = str(msg.encoding)
    info = encoding_info(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    where = f"(encoding {encoding}, {width}x{height}, step {step})"
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image {where}")
    check_pixels(width, height, max_pixels, f"image {where}")
    row_bytes = width * info.channels * info.dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than width x channels x bytes = {row_bytes} {where}")
    buf = msg.data
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        buf = memoryview(buf)  # array.array from rclpy
    raw = np.frombuffer(buf, dtype=np.uint8)
    if raw.size != height * step:
        raise ImageConversionError(
            f"data holds {raw.size} bytes but height x step = {height * step} {where}")
    rows = raw.reshape(height, step)[:, :row_bytes]
    dtype = info.dtype
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    # Dropping the row padding keeps the last axis contiguous, so the byte rows can be viewed
    # as the pixel dtype without a copy (numpy handles unaligned views).
    arr = rows.view(dtype).reshape(height, width, info.channels)
    if dtype.itemsize > 1 and not dtype.isnative:
        arr = arr.astype(info.dtype)  # byte-swap into native order (copies)
    if info.channels == 1:
        arr = arr[:, :, 0]
    return arr


def numpy_to_imgmsg(arr: np.ndarray, encoding: str, header=None):
    """Build a ``sensor_msgs.msg.Image`` (unpadded rows, native byte order) from ``arr``."""
    from sensor_msgs.msg import Image

    info = encoding_info(encoding)
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != info.channels:
        raise ImageConversionError(
            f"array of shape {arr.shape} does not fit encoding {encoding} ({info.channels} channel(s))")
    if arr.dtype != info.dtype:
        raise ImageConversionError(f"array dtype {arr.dtype} does not fit encoding {encoding} ({info.dtype})")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == "big"
    msg.step = int(arr.shape[1] * info.channels * info.dtype.itemsize)
    msg.data = np.ascontiguousarray(arr).tobytes()
    return msg


def to_rgb8(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a decoded colour or mono image to contiguous HxWx3 uint8 RGB for the model."""
    import cv2

    expected = _ENCODINGS[encoding].dtype if encoding in _ENCODINGS else None
    if expected is not None and arr.dtype != expected:
        raise ImageConversionError(f"{arr.dtype} pixels do not fit encoding {encoding!r} ({expected})")
    if encoding in ("rgb8",):
        out = arr
    elif encoding in ("bgr8", "8UC3"):
        out = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif encoding == "bgra8" or encoding == "8UC4":
        out = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    elif encoding == "rgba8":
        out = cv2.cvtColor(arr, cv2.COLOR_RGBA2RGB)
    elif encoding in ("mono8", "8UC1"):
        out = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    elif encoding == "mono16":
        out = cv2.cvtColor((arr >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    else:
        raise ImageConversionError(f"encoding {encoding!r} is not a colour or mono image (depth?)")
    return np.ascontiguousarray(out)


def depth_to_metres(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Depth image -> float32 metres with invalid pixels as NaN (16UC1 is millimetres, 0 = invalid)."""
    if encoding in ("16UC1", "mono16"):
        out = arr.astype(np.float32) * 1e-3
        out[arr == 0] = np.nan
    elif encoding == "32FC1":
        out = arr.astype(np.float32, copy=True)
        out[~np.isfinite(out) | (out <= 0)] = np.nan
    else:
        raise ImageConversionError(f"unsupported depth encoding {encoding!r}; use 16UC1 (mm) or 32FC1 (m)")
    return out


# --- CompressedImage -------------------------------------------------------------------------------

_COMPRESSED_DEPTH_HEADER = 12  # image_transport's ConfigHeader: int32 format + float32[2] quantisation
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def compressed_dimensions(data: bytes) -> tuple[str, int, int]:
    """(kind, width, height) from a PNG or JPEG header, without decoding the pixels.

    Only these two formats are accepted (what image_transport publishes), so arbitrary codecs of
    OpenCV (TIFF, EXR, ...) never see data from the network.
    """
    if data[:8] == _PNG_MAGIC:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageConversionError(f"PNG data without an IHDR header ({len(data)} bytes)")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(data):  # walk the marker segments up to the frame header (SOFn)
            if data[i] != 0xFF:
                break
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return "jpeg", int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            if length < 2:
                break
            i += 2 + length
        raise ImageConversionError(f"JPEG data without a readable frame header ({len(data)} bytes)")
    raise ImageConversionError(f"CompressedImage data is neither JPEG nor PNG (starts {bytes(data[:8])!r})")


def _check_compressed_size(data: bytes, max_pixels: int) -> None:
    # A few kB of PNG can claim 30,000 x 30,000 pixels (2.7 GB decoded): the size in the header
    # is checked before the decoder allocates anything.
    kind, width, height = compressed_dimensions(data)
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"compressed {kind} of {width}x{height} pixels refused (empty)")
    check_pixels(width, height, max_pixels, f"compressed {kind}")


def compressed_to_numpy(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, str]:
    """Decode a CompressedImage; returns (array, encoding), colour images as bgr8 (16-bit colour is
    reduced to 8 bits, as a colour camera's image would be); images over ``max_pixels`` are
    refused from their header."""
    import cv2

    fmt = str(msg.format).lower()
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size == 0:
        raise ImageConversionError(f"empty CompressedImage (format {msg.format!r})")
    if "compresseddepth" in fmt:
        if "32fc1" in fmt:
            raise ImageConversionError("compressedDepth 32FC1 (inverse-depth quantised) is not supported; "
                                       "publish depth as 16UC1")
        if data.size <= _COMPRESSED_DEPTH_HEADER:
            raise ImageConversionError(f"compressedDepth payload too short ({data.size} bytes)")
        _check_compressed_size(data[_COMPRESSED_DEPTH_HEADER:].tobytes(), max_pixels)
        img = cv2.imdecode(data[_COMPRESSED_DEPTH_HEADER:], cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint16 or img.ndim != 2:
            raise ImageConversionError(f"could not decode compressedDepth data ({data.size} bytes)")
        return img, "16UC1"
    _check_compressed_size(data.tobytes(), max_pixels)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageConversionError(f"could not decode CompressedImage ({data.size} bytes, format {msg.format!r})")
    channels = img.shape[2] if img.ndim == 3 else 1
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise ImageConversionError(f"CompressedImage decodes to {img.dtype} {img.shape}, not 8- or 16-bit grey "
                                   "or colour")
    if img.ndim == 2:
        return img, "mono8" if img.dtype == np.uint8 else "mono16"
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR), "bgr8"
    return img, "bgr8"


def numpy_to_compressed(arr: np.ndarray, encoding: str, fmt: str = "jpeg", header=None):
    """Encode ``arr`` into a ``sensor_msgs.msg.CompressedImage`` (format "jpeg" or "png")."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    if fmt not in ("jpeg", "png"):
        raise ImageConversionError(f"unsupported compression format {fmt!r}; use jpeg or png")
    if encoding == "rgb8":
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", arr)
    if not ok:
        raise ImageConversionError(f"could not encode {arr.shape} {arr.dtype} image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = buf.tobytes()
    return msg
