"""Inputs from outside that used to pass checks they should fail, or cost far more than their size:
device names, parameter pairs, long commands, 16-bit colour images, oversized images, camera
models, checkpoint dtypes and sidecar encoder overrides (docs/reliability.md). No DDS: message
classes at most."""
from __future__ import annotations

import time

import numpy as np
import pytest

from refseg_ros.language.parser import Action, parse_command
from refseg_ros.ros import params as P
from refseg_ros.utils.device import resolve_device


# ---- device names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cuda:\u00b2", "cuda:\u0663", "cuda:1\u00b9", "cuda:", "cuda:-1", "cuda:0x1"])
def test_device_index_must_be_ascii_digits(name, monkeypatch):
    assert P.validate("device", name) is not None
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="cuda:N"):
        resolve_device(name, strict=True)
    device, note = resolve_device(name)  # the node falls back, saying why, instead of failing to configure
    assert device == "cuda:0" and "cuda:N" in note


def test_valid_device_names_still_pass():
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert P.validate("device", name) is None


# ---- parameter pairs ---------------------------------------------------------------------------------
def test_depth_min_above_depth_max_is_refused():
    current = {name: spec.default for name, spec in P.SPECS.items()}
    reason = P.refuse_change([("depth_min", 20.0)], "active", current=current)
    assert reason and "depth_min" in reason and "depth_max" in reason
    assert P.refuse_change([("depth_max", 0.01)], "active", current=current)
    # both at once, consistent together, is fine; so is a change that keeps the order
    assert P.refuse_change([("depth_min", 20.0), ("depth_max", 30.0)], "active", current=current) is None
    assert P.refuse_change([("depth_min", 1.0)], "active", current=current) is None
    assert P.check_values({**current, "depth_min": 5.0, "depth_max": 1.0})


class _FakeNode:
    """What ``declare_all`` uses of a node: parameters from a params file, a logger."""

    def __init__(self, given):
        self.given, self.errors = given, []

    def declare_parameter(self, name, default, descriptor):
        self.given.setdefault(name, default)

    def get_parameter(self, name):
        return type("Value", (), {"value": self.given[name]})

    def get_logger(self):
        return type("Logger", (), {"error": lambda _, text: self.errors.append(text)})()


def test_a_params_file_with_depth_min_above_depth_max_gets_the_defaults():
    node = _FakeNode({"depth_min": 3.0, "depth_max": 2.0})
    values = P.declare_all(node)
    assert (values["depth_min"], values["depth_max"]) == (P.SPECS["depth_min"].default, P.SPECS["depth_max"].default)
    assert any("depth_min" in e for e in node.errors)


# ---- long commands -----------------------------------------------------------------------------------
LONG = {
    "fillers": "please " * 14_000,
    "trailing politeness": "the mug " + "please " * 14_000,
    "conjunctions": "the duck " + "and " * 24_000,
    "fillers after and": "the duck and " + "and also " * 11_000 + "x",
    "one long phrase": "the red mug " * 8_000,
    "many objects": ", ".join(f"the mug {i}" for i in range(9_000)),
    "verbs": "pick up " * 12_000 + "the mug",
    "stops": "stop " * 19_000,
}


def _parse_seconds(text: str) -> float:
    """The best of three parse times (the machine may be busy with other work)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        parsed = parse_command(text, max_chars=100_000)
        best = min(best, time.perf_counter() - t0)
    assert parsed.action in Action
    return best


@pytest.mark.parametrize("kind", sorted(LONG))
def test_parsing_time_grows_linearly_with_the_command(kind):
    text = LONG[kind][:99_000]
    whole, quarter = _parse_seconds(text), _parse_seconds(text[:len(text) // 4])
    # linear: about 4 times the quarter's time; quadratic: about 16 times
    assert whole < 0.25 or whole < 8 * quarter, f"{kind}: {whole:.2f} s for {len(text)} characters, " \
        f"{quarter:.2f} s for a quarter of them"


# ---- colour images: 16-bit, and more pixels than the cap ----------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header for a huge image over a tiny (incomplete) pixel stream."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_a_16_bit_colour_png_becomes_8_bit_rgb(channels):
    import cv2

    from refseg_ros.ros.images import compressed_to_numpy, to_rgb8

    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (24, 32, channels), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", eight.astype(np.uint16) * 257)  # 16-bit, each value v * 257
    assert ok
    arr, encoding = compressed_to_numpy(type("Msg", (), {"format": "png", "data": buf.tobytes()}))
    rgb = to_rgb8(arr, encoding)
    assert rgb.dtype == np.uint8 and rgb.shape == (24, 32, 3)
    np.testing.assert_array_equal(rgb, eight[:, :, 2::-1])  # BGR(A) 16-bit -> RGB 8-bit, same values


def test_to_rgb8_refuses_an_array_that_does_not_match_its_encoding():
    from refseg_ros.ros.images import ImageConversionError, to_rgb8

    with pytest.raises(ImageConversionError, match="uint16"):
        to_rgb8(np.zeros((4, 4, 3), np.uint16), "bgr8")


def test_compressed_images_above_the_pixel_cap_are_refused_from_the_header():
    from refseg_ros.ros.images import MAX_IMAGE_PIXELS, ImageConversionError, compressed_to_numpy

    msg = type("Msg", (), {"format": "png", "data": _png_claiming(7071, 7071)})  # under the old 50 Mpx cap
    assert 7071 * 7071 > MAX_IMAGE_PIXELS
    with pytest.raises(ImageConversionError, match="7071x7071 pixels refused"):
        compressed_to_numpy(msg)
    import cv2

    ok, buf = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))
    small = type("Msg", (), {"format": "png", "data": buf.tobytes()})
    assert compressed_to_numpy(small)[0].shape == (20, 30, 3)
    with pytest.raises(ImageConversionError, match="max_image_pixels"):
        compressed_to_numpy(small, max_pixels=599)


def test_raw_images_above_the_pixel_cap_are_refused_before_any_copy():
    from refseg_ros.ros.images import ImageConversionError, imgmsg_to_numpy

    # A 16384 x 16384 mono8 frame, claimed by its fields (no 268 MB of data needed to be refused).
    big = type("Msg", (), {"height": 16384, "width": 16384, "encoding": "mono8", "is_bigendian": 0,
                           "step": 16384, "data": b""})
    with pytest.raises(ImageConversionError, match="max_image_pixels"):
        imgmsg_to_numpy(big)
    small = type("Msg", (), {"height": 10, "width": 20, "encoding": "mono8", "is_bigendian": 0, "step": 20,
                             "data": bytes(200)})
    assert imgmsg_to_numpy(small).shape == (10, 20)
    with pytest.raises(ImageConversionError, match="max_image_pixels"):
        imgmsg_to_numpy(small, max_pixels=199)


def test_node_side_checks_use_the_cap():
    """The subscription's cheap check and the worker's decoding both refuse frames over the cap."""
    pytest.importorskip("sensor_msgs")
    from sensor_msgs.msg import CompressedImage, Image

    from refseg_ros.ros import messages as M
    from refseg_ros.ros.images import ImageConversionError

    compressed = CompressedImage(format="png", data=_png_claiming(7071, 7071))
    assert "compressed png of 7071x7071 pixels refused" in M.colour_problem(compressed)
    assert M.colour_problem(compressed, max_pixels=7071 * 7071) == ""
    raw = Image(height=8, width=8, encoding="rgb8", step=24, data=bytes(192))
    assert M.colour_problem(raw) == "" and "refused" in M.colour_problem(raw, max_pixels=63)
    with pytest.raises(ImageConversionError, match="refused"):
        M.decode_colour(raw, max_pixels=63)
    assert M.decode_colour(raw).shape == (8, 8, 3)


# ---- camera models ------------------------------------------------------------------------------------
def _box_mask_and_depth(h=120, w=160):
    mask = np.zeros((h, w), bool)
    mask[40:80, 60:100] = True
    return mask, np.full((h, w), 0.8, np.float32)


@pytest.mark.parametrize("k", [
    dict(fx=5e-324, fy=500.0, cx=79.5, cy=59.5),    # a denormal focal length: x = inf
    dict(fx=500.0, fy=0.5, cx=79.5, cy=59.5),       # under a pixel
    dict(fx=2e5, fy=500.0, cx=79.5, cy=59.5),       # a 2e5 px focal length
    dict(fx=500.0, fy=500.0, cx=1e308, cy=59.5),    # principal point far outside the image: x = -1e305
    dict(fx=500.0, fy=500.0, cx=79.5, cy=-1000.0),
    dict(fx=500.0, fy=500.0, cx=float("nan"), cy=59.5),
])
def test_implausible_intrinsics_give_no_position_and_say_why(k):
    from refseg_ros.ros.geometry import Intrinsics, object_position

    mask, depth = _box_mask_and_depth()
    res = object_position(mask, depth, Intrinsics(**k, width=160, height=120))
    assert res.point is None and "intrinsics" in res.reason


def test_plausible_intrinsics_still_give_the_same_position():
    from refseg_ros.ros.geometry import Intrinsics, object_position

    mask, depth = _box_mask_and_depth()
    for cx in (79.5, -150.0, 400.0):  # a principal point up to two image widths outside is accepted
        res = object_position(mask, depth, Intrinsics(500.0, 500.0, cx, 59.5, 160, 120))
        assert res.point is not None
        assert res.point == pytest.approx([(79.5 - cx) * 0.8 / 500.0, (59.5 - 59.5) * 0.8 / 500.0, 0.8])


def test_a_ray_almost_sideways_gives_no_position():
    from refseg_ros.ros.geometry import Intrinsics, object_position

    mask, depth = _box_mask_and_depth()  # the mask's centroid is at u = 79.5
    k = Intrinsics(1.0, 1.0, -240.0, 59.5, 160, 120)  # legal values, 319.5 px off at fx = 1 px
    res = object_position(mask, depth, k)
    assert res.point is None and "sideways" in res.reason
    assert object_position(mask, depth, Intrinsics(5.0, 5.0, -240.0, 59.5, 160, 120)).point is not None


def test_published_positions_are_finite_and_within_the_depth_limits():
    pytest.importorskip("sensor_msgs")
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from refseg_ros.model.postprocess import Grounding
    from refseg_ros.ros import messages as M
    from refseg_ros.ros.images import numpy_to_imgmsg

    mask, depth = _box_mask_and_depth()
    depth_msg = numpy_to_imgmsg(depth, "32FC1")
    result = Grounding("the mug", (60.0, 40.0, 100.0, 80.0), 0.9, mask, True)
    for k, ok in (([500.0, 0, 79.5, 0, 500.0, 59.5, 0, 0, 1], True),
                  ([5e-324, 0, 79.5, 0, 500.0, 59.5, 0, 0, 1], False),
                  ([500.0, 0, 1e308, 0, 500.0, 59.5, 0, 0, 1], False)):
        view = M.DepthView.from_messages(depth_msg, CameraInfo(k=k, width=160, height=120))
        assert (view.problem == "") is ok and (not ok or view.intrinsics is not None)
        out = M.grounding_array(Header(), "the mug", [result], view, fill_masks=False)
        g = out.array.results[0]
        assert g.has_position is ok
        if ok:
            p = np.array([g.position.x, g.position.y, g.position.z])
            assert np.isfinite(p).all() and 0.05 <= p[2] <= 10.0


# ---- refseg predict --image ----------------------------------------------------------------------------
def _predict_args(argv):
    import argparse

    from refseg_ros.cli import predict

    parser = argparse.ArgumentParser()
    predict.add_arguments(parser)
    return predict, parser.parse_args(argv)


def test_predict_refuses_an_image_over_the_cap_from_its_header(tmp_path, monkeypatch, capsys):
    import cv2

    from refseg_ros.model import predictor

    def never(*args, **kwargs):
        raise AssertionError("decoded or loaded although the image is over the cap")

    monkeypatch.setattr(cv2, "imdecode", never)
    monkeypatch.setattr(cv2, "imread", never)
    monkeypatch.setattr(predictor.GroundingPredictor, "from_checkpoint", never)
    image = tmp_path / "huge.png"
    image.write_bytes(_png_claiming(20_000, 20_000))  # 1.2 GB of pixels in a 1 kB file
    predict, args = _predict_args(["--image", str(image), "--expr", "the mug"])
    assert predict.run(args) == 1
    err = capsys.readouterr().err
    assert "20000x20000" in err and "--max-image-pixels" in err
    for name, data in (("tiny.png", _png_claiming(64, 48)), ("junk.png", b"not an image at all")):
        (tmp_path / name).write_bytes(data)
        predict, args = _predict_args(["--image", str(tmp_path / name), "--expr", "x", "--max-image-pixels", "1000"])
        assert predict.run(args) == 1
    assert "64x48" in capsys.readouterr().err


# ---- the model input of a large frame ------------------------------------------------------------------
@pytest.mark.parametrize("h, w", [(480, 640), (2000, 2600), (5000, 300), (300, 5000), (100, 200), (240, 320)])
def test_strip_wise_letterbox_equals_the_whole_frame_one(h, w):
    import torch

    from refseg_ros.model.letterbox import letterbox_images, letterbox_uint8_in_strips

    image = torch.from_numpy(np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8))
    fill = torch.tensor([0.485, 0.456, 0.406])
    whole, box = letterbox_images(image.permute(2, 0, 1).unsqueeze(0).float().div_(255.0), (320, 240), fill)
    strips, box2 = letterbox_uint8_in_strips(image, (320, 240), fill, rows=97)
    assert box == box2 and torch.equal(whole, strips)  # bit for bit: the model sees the same input


def test_the_depth_buffer_is_bounded_in_bytes_too():
    from types import SimpleNamespace

    from refseg_ros.ros.sync import ApproximateMatcher

    matcher = ApproximateMatcher(slop_s=1.0, queue_size=10, max_bytes=250)
    for i in range(10):
        matcher.push("depth", i * 1000, SimpleNamespace(data=bytes(100)))
    assert matcher.stats()["depth"] == 2 and matcher.latest("depth") is not None
    matcher.push("depth", 20_000, SimpleNamespace(data=bytes(1000)))  # the newest is kept even when over
    assert matcher.stats()["depth"] == 1
    matcher.push("camera_info", 0, SimpleNamespace(k=[1.0] * 9))  # messages without image data: count only
    assert matcher.stats()["camera_info"] == 1
