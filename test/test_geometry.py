"""3D position from mask + depth + intrinsics (pure), and the node's approximate-sync buffer."""
from __future__ import annotations

import numpy as np
import pytest

from refseg_ros.ros.geometry import Intrinsics, mask_centroid, object_position
from refseg_ros.ros.images import depth_to_metres
from refseg_ros.ros.sync import ApproximateMatcher

K = Intrinsics(fx=525.0, fy=520.0, cx=319.5, cy=239.5, width=640, height=480)


def _scene(box=(380, 160, 460, 240), z_obj=0.75, z_bg=1.40, h=480, w=640):
    """A box-shaped object at depth z_obj in front of a wall at z_bg; returns depth (m), mask, expected."""
    depth = np.full((h, w), z_bg, np.float32)
    x0, y0, x1, y1 = box
    depth[y0:y1, x0:x1] = z_obj
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    u, v = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    expected = np.array([(u - K.cx) * z_obj / K.fx, (v - K.cy) * z_obj / K.fy, z_obj])
    return depth, mask, expected


def test_box_object_at_known_depth_within_3cm():
    depth, mask, expected = _scene()
    res = object_position(mask, depth, K)
    assert res.point is not None and res.reason == ""
    assert np.linalg.norm(res.point - expected) < 0.03
    assert res.point == pytest.approx(expected, abs=1e-6)  # exact for a clean scene


def test_robust_to_holes_nans_and_a_mask_that_spills_over_the_edge():
    depth, mask, expected = _scene()
    rng = np.random.default_rng(0)
    holes = rng.random(depth.shape) < 0.3
    depth[holes] = 0.0  # sensor holes
    depth[rng.random(depth.shape) < 0.05] = np.nan
    depth[200, 400] = np.inf
    spilled = mask.copy()
    spilled[150:250, 370:470] = True  # 10 px of wall all round: ~36% of the mask is background
    res = object_position(spilled, depth, K)
    assert res.point is not None
    assert np.linalg.norm(res.point - expected) < 0.03


def test_16uc1_millimetres_via_depth_to_metres():
    depth, mask, expected = _scene(z_obj=0.612)
    mm = np.round(depth * 1000).astype(np.uint16)
    mm[::7, ::5] = 0  # invalid
    res = object_position(mask, depth_to_metres(mm, "16UC1"), K)
    assert np.linalg.norm(res.point - expected) < 0.03


def test_no_valid_depth_gives_no_position_and_a_reason():
    depth, mask, _ = _scene()
    depth[mask] = 0.0
    res = object_position(mask, depth, K)
    assert res.point is None and res.valid_pixels == 0 and "valid depth" in res.reason
    depth[mask] = np.nan
    assert object_position(mask, depth, K).point is None
    assert "empty" in object_position(np.zeros_like(mask), depth, K).reason
    assert "intrinsics" in object_position(mask, depth, Intrinsics(0, 0, 0, 0)).reason
    # out of range depths are invalid too
    depth, mask, _ = _scene(z_obj=25.0, z_bg=30.0)
    assert object_position(mask, depth, K, max_depth=20.0).point is None


def test_too_few_valid_pixels():
    depth, mask, _ = _scene()
    depth[mask] = np.nan
    depth[200, 400:403] = 0.75
    assert object_position(mask, depth, K, min_valid_pixels=10).point is None
    assert object_position(mask, depth, K, min_valid_pixels=3).point[2] == pytest.approx(0.75)


def test_depth_at_another_resolution_and_scaled_intrinsics():
    depth, mask, expected = _scene()
    half_depth = depth[::2, ::2]  # a 320x240 depth stream registered to the 640x480 colour image
    res = object_position(mask, half_depth, K)
    assert np.linalg.norm(res.point - expected) < 0.03
    # camera_info for 1280x960 while images are 640x480: intrinsics are rescaled
    k_big = Intrinsics(K.fx * 2, K.fy * 2, (K.cx + 0.5) * 2 - 0.5, (K.cy + 0.5) * 2 - 0.5, 1280, 960)
    res = object_position(mask, depth, k_big)
    assert res.point == pytest.approx(expected, abs=1e-6)


def test_from_k_and_centroid():
    k = Intrinsics.from_k([525.0, 0, 319.5, 0, 520.0, 239.5, 0, 0, 1], 640, 480)
    assert k == K and k.valid
    assert not Intrinsics.from_k([0.0] * 9).valid
    with pytest.raises(ValueError):
        Intrinsics.from_k([1.0, 2.0])
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    assert mask_centroid(mask) == (3.5, 1.5)
    assert mask_centroid(np.zeros((3, 3), bool)) is None


# --- approximate sync ---------------------------------------------------------------------------

MS = 1_000_000


def test_matcher_picks_nearest_within_slop():
    m = ApproximateMatcher(slop_s=0.02, queue_size=5)
    for t in (0, 33, 66, 100):
        m.push("depth", t * MS, f"d{t}")
    assert m.match("depth", 70 * MS) == "d66"
    assert m.match("depth", 34 * MS) == "d33"
    assert m.match("depth", 130 * MS) is None  # 30 ms from the nearest: outside the slop
    assert m.match("camera_info", 0) is None
    assert m.latest("depth") == "d100"


def test_matcher_buffers_are_bounded_and_reconfigurable():
    m = ApproximateMatcher(slop_s=0.01, queue_size=3)
    for t in range(100):
        m.push("depth", t * 10 * MS, t)
    assert m.stats()["depth"] == 3
    assert m.match("depth", 0) is None  # evicted long ago
    assert m.match("depth", 990 * MS) == 99
    m.configure(slop_s=0.5, queue_size=2)
    assert m.stats()["depth"] == 2
    assert m.match("depth", 600 * MS) == 98
    m.clear()
    assert m.stats() == {}


def test_may_still_arrive():
    m = ApproximateMatcher(slop_s=0.02)
    assert not m.may_still_arrive("depth", 100 * MS)  # stream not live: do not wait
    m.push("depth", 90 * MS, "a")
    assert m.may_still_arrive("depth", 100 * MS)  # the frame for 100 may be in flight
    m.push("depth", 101 * MS, "b")
    assert not m.may_still_arrive("depth", 100 * MS)


def test_a_stopped_stream_is_not_waited_for():
    m = ApproximateMatcher(slop_s=0.02)
    m.push("depth", 1000 * MS, "last before the driver died")
    assert m.may_still_arrive("depth", 1500 * MS)  # half a second: may be a hiccup
    assert not m.may_still_arrive("depth", 2001 * MS)  # over a second of silence: stale, no wait
    assert not m.may_still_arrive("depth", 1200 * MS, stale_ns=100 * MS)
    m.push("depth", 2100 * MS, "back")
    assert m.may_still_arrive("depth", 2150 * MS)  # live again
