"""sensor_msgs/Image <-> numpy conversion: every encoding, padding, byte order, bad input."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from refseg_ros.ros import images
from refseg_ros.ros.images import ImageConversionError

ENCODING_ARRAYS = {
    "bgr8": (np.uint8, 3), "rgb8": (np.uint8, 3), "bgra8": (np.uint8, 4), "rgba8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1),
}


def _random_image(encoding: str, h: int = 7, w: int = 5, seed: int = 0) -> np.ndarray:
    dtype, c = ENCODING_ARRAYS[encoding]
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        arr = rng.uniform(0.1, 9.0, size=(h, w, c)).astype(dtype)
    else:
        arr = rng.integers(0, np.iinfo(dtype).max, size=(h, w, c), endpoint=True).astype(dtype)
    return arr[:, :, 0] if c == 1 else arr


def _raw_msg(arr: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> SimpleNamespace:
    """Build Image fields by hand (independently of numpy_to_imgmsg), with optional row padding."""
    a = arr if arr.ndim == 3 else arr[:, :, None]
    dt = a.dtype.newbyteorder(">" if bigendian else "<")
    rows = a.astype(dt).reshape(a.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return SimpleNamespace(height=a.shape[0], width=a.shape[1], encoding=encoding, is_bigendian=bigendian,
                           step=padded.shape[1], data=padded.tobytes())


@pytest.mark.ros  # builds sensor_msgs messages
@pytest.mark.parametrize("encoding", sorted(ENCODING_ARRAYS))
def test_roundtrip_every_encoding_through_real_message(encoding):
    arr = _random_image(encoding)
    msg = images.numpy_to_imgmsg(arr, encoding)
    assert type(msg).__name__ == "Image" and msg.encoding == encoding
    assert msg.step == arr.shape[1] * ENCODING_ARRAYS[encoding][1] * arr.dtype.itemsize
    back = images.imgmsg_to_numpy(msg)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", sorted(ENCODING_ARRAYS))
@pytest.mark.parametrize("pad", [1, 3, 64])
@pytest.mark.parametrize("bigendian", [False, True])
def test_padded_rows_and_byte_order(encoding, pad, bigendian):
    arr = _random_image(encoding, h=6, w=9, seed=pad)
    back = images.imgmsg_to_numpy(_raw_msg(arr, encoding, pad=pad, bigendian=bigendian))
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_bigendian_16bit_values_are_swapped():
    # 0x0102 stored big-endian is bytes 01 02; read as little-endian it would be 0x0201 = 513.
    msg = SimpleNamespace(height=1, width=1, encoding="16UC1", is_bigendian=True, step=2, data=b"\x01\x02")
    assert int(images.imgmsg_to_numpy(msg)[0, 0]) == 0x0102
    msg.is_bigendian = False
    assert int(images.imgmsg_to_numpy(msg)[0, 0]) == 0x0201


def test_rclpy_array_data_is_accepted():
    import array
    arr = _random_image("bgr8")
    msg = _raw_msg(arr, "bgr8")
    msg.data = array.array("B", msg.data)
    np.testing.assert_array_equal(images.imgmsg_to_numpy(msg), arr)


@pytest.mark.parametrize("delta", [-1, 1, -24])
def test_data_length_mismatch_is_a_clear_error(delta):
    arr = _random_image("rgb8", h=4, w=4)
    msg = _raw_msg(arr, "rgb8")
    msg.data = msg.data[:delta] if delta < 0 else msg.data + b"\0" * delta
    with pytest.raises(ImageConversionError, match=r"rgb8.*4x4.*step 12|height x step"):
        images.imgmsg_to_numpy(msg)


def test_step_too_small_and_empty_and_huge():
    arr = _random_image("bgr8", h=4, w=4)
    msg = _raw_msg(arr, "bgr8")
    msg.step = 11
    with pytest.raises(ImageConversionError, match="step 11"):
        images.imgmsg_to_numpy(msg)
    empty = SimpleNamespace(height=0, width=0, encoding="bgr8", is_bigendian=False, step=0, data=b"")
    with pytest.raises(ImageConversionError, match="empty image"):
        images.imgmsg_to_numpy(empty)
    huge = SimpleNamespace(height=20000, width=20000, encoding="mono8", is_bigendian=False, step=20000, data=b"")
    with pytest.raises(ImageConversionError, match="20000x20000 pixels refused"):
        images.imgmsg_to_numpy(huge)


@pytest.mark.parametrize("encoding", ["yuv422", "bayer_rggb8", "64FC1", "", "BGR8"])
def test_unsupported_encoding_names_it(encoding):
    msg = SimpleNamespace(height=2, width=2, encoding=encoding, is_bigendian=False, step=6, data=b"\0" * 12)
    with pytest.raises(ImageConversionError, match="unsupported image encoding") as exc:
        images.imgmsg_to_numpy(msg)
    assert repr(encoding) in str(exc.value)


@pytest.mark.ros  # builds sensor_msgs messages
def test_numpy_to_imgmsg_rejects_mismatched_arrays():
    with pytest.raises(ImageConversionError, match="channel"):
        images.numpy_to_imgmsg(np.zeros((2, 2, 3), np.uint8), "mono8")
    with pytest.raises(ImageConversionError, match="dtype"):
        images.numpy_to_imgmsg(np.zeros((2, 2), np.float64), "32FC1")


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16"])
def test_to_rgb8(encoding):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red
    if encoding in ("mono8", "mono16"):
        gray = np.full((2, 3), 200, np.uint8)
        arr = gray if encoding == "mono8" else gray.astype(np.uint16) << 8
        out = images.to_rgb8(arr, encoding)
        assert out.shape == (2, 3, 3) and (out == 200).all()
        return
    arr = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, np.full((2, 3), 9, np.uint8)]),
           "bgra8": np.dstack([rgb[..., ::-1], np.full((2, 3), 9, np.uint8)])}[encoding]
    out = images.to_rgb8(np.ascontiguousarray(arr), encoding)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous


def test_depth_to_metres():
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    m = images.depth_to_metres(mm, "16UC1")
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.0) and m[1, 0] == pytest.approx(2.5)
    f = np.array([[np.nan, 1.5], [np.inf, -1.0]], np.float32)
    mf = images.depth_to_metres(f, "32FC1")
    assert np.isnan(mf[0, 0]) and mf[0, 1] == pytest.approx(1.5) and np.isnan(mf[1, 0]) and np.isnan(mf[1, 1])
    with pytest.raises(ImageConversionError, match="depth encoding"):
        images.depth_to_metres(mm, "bgr8")


@pytest.mark.ros  # builds sensor_msgs messages
def test_compressed_png_is_lossless_and_jpeg_close():
    rng = np.random.default_rng(1)
    bgr = cv2.GaussianBlur(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), (5, 5), 0)
    png = images.numpy_to_compressed(bgr, "bgr8", "png")
    out, enc = images.compressed_to_numpy(png)
    assert enc == "bgr8"
    np.testing.assert_array_equal(out, bgr)
    jpg = images.numpy_to_compressed(bgr[..., ::-1].copy(), "rgb8", "jpeg")
    out, enc = images.compressed_to_numpy(jpg)
    assert enc == "bgr8" and np.abs(out.astype(int) - bgr).mean() < 6


def test_compressed_depth_png():
    depth = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 321)
    ok, buf = cv2.imencode(".png", depth)
    msg = SimpleNamespace(format="16UC1; compressedDepth png", data=b"\0" * 12 + buf.tobytes())
    out, enc = images.compressed_to_numpy(msg)
    assert enc == "16UC1"
    np.testing.assert_array_equal(out, depth)


@pytest.mark.parametrize("payload", [b"", b"\xff\xd8\xff\xe0garbage", bytes(range(256)) * 4])
def test_corrupt_compressed_is_a_clear_error(payload):
    with pytest.raises(ImageConversionError):
        images.compressed_to_numpy(SimpleNamespace(format="jpeg", data=payload))


def test_decoding_side_does_not_need_ros():
    code = ("import sys, types; sys.modules['rclpy'] = None; sys.modules['sensor_msgs'] = None\n"
            "import numpy as np\nfrom refseg_ros.ros.images import imgmsg_to_numpy\n"
            "m = types.SimpleNamespace(height=1, width=2, encoding='mono8', is_bigendian=False, step=2, data=b'ab')\n"
            "print(imgmsg_to_numpy(m).tolist())")
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[[97, 98]]"
