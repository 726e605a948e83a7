"""A "not found" answer over DDS: refseg_node in its own process says so, and publishes nothing a
robot could act on (no box, no mask, no 3D target, no marker); diagnostics count it. A found
answer on the same node, with the threshold lowered at run time, carries all of them, so the
checks are not true of every message. Then an expression asking for every match: all its
results, adjacent and under its text, in one GroundingArray.

The random-weight checkpoint of the other node tests; ``found_threshold`` decides found or not
(1.0: nothing is found, 0.0: everything is), as the node parameter a user sets.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from node_process import STARTUP_TIMEOUT, NodeProcess
from paths import PARAMS_FILE
from scenes import box_scene

pytest.importorskip("rclpy")
from ros_client import Client, diag, stamp_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/notfound"


@pytest.fixture(scope="module")
def node(checkpoint, ros_env):
    proc = NodeProcess(["--params-file", str(PARAMS_FILE), "-r", f"__ns:={NS}", "-p", f"checkpoint:={checkpoint}",
                        "-p", "use_depth:=true", "-p", "backend:=torch", "-p", "num_threads:=1",
                        "-p", "found_threshold:=1.0", "-p", "mask_threshold:=0.0", "-p", "max_rate_hz:=5.0",
                        "-p", "diagnostics_period:=0.5",
                        # every refused command logged (repeats of one kind are throttled by default)
                        "-p", "warn_throttle_sec:=0.0"], env=ros_env)
    try:
        if not proc.wait_for(r"active: listening on", STARTUP_TIMEOUT):
            pytest.fail(f"refseg_node did not become active:\n{proc.log()[-4000:]}")
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(node):
    c = Client(ns=NS)
    c.wait_connected()
    yield c
    c.close()


@pytest.fixture(scope="module")
def scene(frames):
    import cv2

    depth, k = box_scene()
    return [cv2.resize(f, (320, 240)) for f in frames], (depth, k)


def _fresh(client, text, t0):
    """Results for ``text`` from frames sent after ``t0`` (not a frame grounded before the change)."""
    return [a for _, a in client.results_for(text, t0) if client.sent.get(stamp_ns(a.header.stamp), 0) >= t0]


def test_not_found_publishes_no_box_mask_target_or_marker(client, node, scene):
    rgb, depth = scene
    text = "the blue cube"
    client.command(text, node, expect=r"-> \['the blue cube'\]")
    t0 = time.monotonic()
    assert client.stream_until(rgb, lambda: len(_fresh(client, text, t0)) >= 3, 90, rate_hz=5.0, depth=depth), \
        node.log()[-3000:]
    client.spin(1.0)  # the visual outputs follow their GroundingArray
    for arr in _fresh(client, text, t0):
        (g,) = arr.results
        assert g.expression == text and not g.found
        assert (g.x_min, g.y_min, g.x_max, g.y_max) == (0.0, 0.0, 0.0, 0.0)
        assert (g.mask.height, g.mask.width) == (0, 0) and len(g.mask.data) == 0
        assert not g.has_position and g.position.z == 0.0
    assert not [m for t, m in client.received["target"] if t >= t0]
    markers = [m for t, m in client.received["markers"] if t >= t0]
    assert markers and all([mk.action for mk in m.markers] == [3] for m in markers)  # DELETEALL only
    masks = [m for t, m in client.received["mask"] if t >= t0]
    assert masks and not any(np.frombuffer(bytes(m.data), np.uint8).any() for m in masks)
    assert client.received["overlay"]

    def counted():
        d = diag(client, f"{NS}/refseg_node")
        return d is not None and int(d.get("not_found", 0)) >= 3
    assert client.spin_until(counted, 10), diag(client, f"{NS}/refseg_node")

    # the same node, frames and command with everything found: the same fields are all filled
    assert all(r.successful for r in client.set_params(found_threshold=0.0))
    t1 = time.monotonic()
    ok = client.stream_until(rgb, lambda: any(g.has_position for a in _fresh(client, text, t1) for g in a.results),
                             90, rate_hz=5.0, depth=depth)
    assert ok, node.log()[-3000:]
    found = next(a for a in _fresh(client, text, t1) if a.results[0].has_position).results[0]
    assert found.found and found.x_max > found.x_min and (found.mask.height, found.mask.width) == (240, 320)
    assert client.spin_until(lambda: [m for t, m in client.received["target"] if t >= t1], 10)
    assert client.spin_until(lambda: any(len(m.markers) > 1 for t, m in client.received["markers"] if t >= t1), 10)
    assert all(r.successful for r in client.set_params(found_threshold=1.0))


def test_ground_service_answers_not_found_too(client, node, scene):
    from refseg_ros.ros.images import numpy_to_imgmsg
    from refseg_ros.srv import Ground

    rgb, (depth, k) = scene
    req = Ground.Request()
    req.image = numpy_to_imgmsg(rgb[0], "rgb8")
    req.command = "grab the duck and the red mug"
    req.depth = numpy_to_imgmsg(depth, "16UC1")
    req.camera_info.k = [float(v) for v in k.reshape(-1)]
    req.camera_info.width, req.camera_info.height = 320, 240
    assert client.ground.wait_for_service(timeout_sec=30)
    future = client.ground.call_async(req)
    assert client.spin_until(future.done, 90)
    res = future.result()
    assert res.success, res.message
    assert [(g.expression, g.found, g.mask.height, g.has_position) for g in res.groundings.results] == \
        [("the duck", False, 0, False), ("the red mug", False, 0, False)]


def test_all_matches_are_published_together_under_one_expression(client, node, scene):
    rgb, depth = scene
    text = "pick up all the cubes and the duck"
    assert all(r.successful for r in client.set_params(found_threshold=0.0))
    try:
        client.command(text, node, expect=r"-> \['all the cubes', 'the duck'\]")
        t0 = time.monotonic()
        assert client.stream_until(rgb, lambda: len(_fresh(client, text, t0)) >= 2, 90, rate_hz=5.0, depth=depth), \
            node.log()[-3000:]
        for arr in _fresh(client, text, t0):
            names = [g.expression for g in arr.results]
            # every object of "all the cubes" first (at least one), then the duck: one message, in command order
            assert names[-1] == "the duck" and set(names[:-1]) == {"all the cubes"}, names
            cubes = [g for g in arr.results if g.expression == "all the cubes"]
            assert all(g.found and g.x_max > g.x_min for g in cubes)
            if len(cubes) > 1:  # separate objects: separate boxes
                assert len({(g.x_min, g.y_min, g.x_max, g.y_max) for g in cubes}) == len(cubes)
    finally:
        client.set_params(found_threshold=1.0)


@pytest.mark.parametrize("said, why", [("not", "names no object"), ("all", "does not say which object"),
                                       ("both", "names no object"), ("no, not the red one", "says only what not")])
def test_commands_naming_nothing_are_refused_and_the_active_one_stays(client, node, scene, said, why):
    rgb, depth = scene
    client.command("the duck", node, expect=r"-> \['the duck'\]")
    mark = node.mark()
    client.command(said)
    assert node.wait_for(rf"WARN.*ignoring command '{re.escape(said)}': .*{why}", 30, since=mark), node.since(mark)
    t0 = time.monotonic()
    assert client.stream_until(rgb, lambda: len(_fresh(client, "the duck", t0)) >= 1, 60, rate_hz=5.0, depth=depth)
    assert not client.results_for(said)  # nothing grounded for it; the duck still is
