"""sim_camera: the pure parts (camera motion, ground truth record, re-rendered views) and the node in
its own process over real DDS (frames, stamps, frame ids, depth vs ground truth, reshuffle)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refseg_ros.data import geometry
from refseg_ros.data.sim_scene import decode_instances, ground_truth, look_at_point, orbit_pose
from refseg_ros.data.tabletop import render_scene, render_view

W, H = 320, 240
SEED = 4242


@pytest.fixture(scope="module")
def scene():
    return render_scene(SEED, W, H)


# ---- pure ------------------------------------------------------------------------------------------

def test_orbit_pose_swings_around_the_look_at_point(scene):
    T = scene.T_table_camera
    target = look_at_point(T)
    assert abs(target[2]) < 1e-9
    np.testing.assert_allclose(orbit_pose(T, 0.0), T, atol=1e-9)
    for yaw in (-7.0, 3.0, 12.0):
        M = orbit_pose(T, yaw)
        np.testing.assert_allclose(look_at_point(M), target, atol=1e-9)
        assert np.isclose(np.linalg.norm(M[:3, 3] - target), np.linalg.norm(T[:3, 3] - target))
        assert np.isclose(M[2, 3], T[2, 3])  # same height
        assert abs(M[2, 0]) < 1e-9  # image x stays horizontal: no roll
        heading = np.degrees(np.arctan2(*(M[:2, 3] - target[:2])[::-1]) - np.arctan2(*(T[:2, 3] - target[:2])[::-1]))
        assert np.isclose((heading + 180) % 360 - 180, yaw)


def test_render_view_reproduces_the_scene_and_follows_the_camera(scene):
    same = render_view(scene, scene.T_table_camera)
    assert np.array_equal(same.instances, scene.instances)
    np.testing.assert_allclose(same.depth, scene.depth)
    for a, b in zip(same.objects, scene.objects):
        assert a["bbox"] == b["bbox"] and np.allclose(a["position_cam"], b["position_cam"])
    moved = render_view(scene, orbit_pose(scene.T_table_camera, 6.0))
    assert not np.array_equal(moved.instances, scene.instances)
    K = moved.K
    for k, o in enumerate(moved.objects):  # records follow the new pose: centres project into masks
        mask = moved.instances == k + 1
        if o["area"] > 200:
            u, v = (int(round(x)) for x in o["center_px"])
            ys, xs = np.nonzero(mask)
            assert xs.min() - 3 <= u <= xs.max() + 3 and ys.min() - 3 <= v <= ys.max() + 3
            pts = geometry.backproject(moved.depth, K, mask)
            assert np.linalg.norm(np.median(pts, 0) - o["position_cam"]) < o["radius"] + 0.03
    other = render_scene(SEED + 1, W, H)
    with pytest.raises(ValueError):
        render_view(scene, scene.T_table_camera)  # no longer the renderer's current scene
    assert other.seed == SEED + 1


def test_ground_truth_record_round_trips(scene):
    gt = json.loads(json.dumps(ground_truth(scene, 3, 1, "cam_optical", (12, 34))))
    assert gt["scene"] == 3 and gt["view"] == 1 and gt["seed"] == SEED and gt["frame_id"] == "cam_optical"
    assert gt["stamp"] == {"sec": 12, "nanosec": 34}
    assert np.array_equal(decode_instances(gt), scene.instances)
    assert len(gt["objects"]) == len(scene.objects)
    for k, o in enumerate(gt["objects"]):
        assert o["id"] == k and o["bbox"] == scene.objects[k]["bbox"]
        assert np.allclose(o["position_cam"], scene.objects[k]["position_cam"])
    assert {int(k) for k in gt["expressions"]} == set(scene.expressions)
    np.testing.assert_allclose(np.reshape(gt["K"], (3, 3)), scene.K)


@pytest.mark.ros
def test_view_messages_in_every_encoding(scene):
    pytest.importorskip("rclpy")
    from refseg_ros.ros.images import depth_to_metres, imgmsg_to_numpy
    from refseg_ros.ros.sim_camera import PARAMS, _View

    p = {s.name: s.default for s in PARAMS}
    for colour, depth in (("rgb8", "16UC1"), ("bgr8", "32FC1")):
        p.update(color_encoding=colour, depth_encoding=depth, frame_id="f")
        view = _View(scene, 0, 0, p)
        rgb = imgmsg_to_numpy(view.image)
        assert np.array_equal(rgb if colour == "rgb8" else rgb[:, :, ::-1], scene.image)
        assert view.depth.encoding == depth
        metres = depth_to_metres(imgmsg_to_numpy(view.depth), depth)
        valid = scene.depth > 0
        assert np.isnan(metres[~valid]).all()
        np.testing.assert_allclose(metres[valid], scene.depth[valid], atol=6e-4)
        assert view.image.header.frame_id == view.depth.header.frame_id == view.info.header.frame_id == "f"
        np.testing.assert_allclose(np.reshape(view.info.k, (3, 3)), scene.K)


# ---- the node over DDS -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def camera(ros_env, tmp_path_factory):
    rclpy = pytest.importorskip("rclpy")
    log = tmp_path_factory.mktemp("sim_camera") / "sim_camera.log"
    exe = Path(sys.executable).with_name("sim_camera")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "refseg_ros.ros.sim_camera"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd + ["--ros-args", "-r", "__ns:=/simtest", "-p", f"width:={W}", "-p", f"height:={H}",
                                       "-p", f"seed:={SEED}", "-p", "rate_hz:=10.0"],
                                env=ros_env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc, log
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


class _Probe:
    def __init__(self, ctx):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        self.node = Node("sim_probe", namespace="/simtest", context=ctx)
        self.got = {"image": [], "depth": [], "camera_info": [], "ground_truth": []}
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind in (("image", Image), ("depth", Image), ("camera_info", CameraInfo)):
            self.node.create_subscription(kind, topic, lambda m, t=topic: self.got[t].append(m), reliable)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(String, "ground_truth", lambda m: self.got["ground_truth"].append(
            json.loads(m.data)), latched)
        self.reshuffle = self.node.create_client(Trigger, "reshuffle")
        self.Trigger = Trigger
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)

    def spin_until(self, predicate, timeout: float, proc=None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if proc is not None and proc.poll() is not None:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.ros
def test_sim_camera_streams_the_scene_with_consistent_frames_and_ground_truth(camera, rclpy_context, scene):
    from refseg_ros.ros.images import depth_to_metres, imgmsg_to_numpy

    proc, log = camera
    probe = _Probe(rclpy_context)
    assert probe.spin_until(lambda: probe.got["ground_truth"] and len(probe.got["image"]) >= 5
                            and len(probe.got["depth"]) >= 5, 180, proc), log.read_text()[-3000:]
    truth = probe.got["ground_truth"][-1]
    assert truth["scene"] == 0 and truth["seed"] == SEED and truth["frame_id"] == "camera_color_optical_frame"

    images, depths, infos = probe.got["image"], probe.got["depth"], probe.got["camera_info"]
    # the dataset generator's scene, republished (same pixels) with fresh, increasing stamps
    stamps = [_stamp(m) for m in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    first = imgmsg_to_numpy(images[0])
    assert images[0].encoding == "rgb8" and np.array_equal(first, scene.image)
    assert all(np.array_equal(imgmsg_to_numpy(m), first) for m in images[1:])
    # image, depth and camera_info of a frame share stamp and frame id
    by_stamp = {_stamp(m): m for m in depths}
    info_by_stamp = {_stamp(m): m for m in infos}
    common = [s for s in stamps if s in by_stamp and s in info_by_stamp]
    assert len(common) >= 3
    for msgs in (images, depths, infos):
        assert {m.header.frame_id for m in msgs} == {truth["frame_id"]}
    assert _stamp(images[0]) >= truth["stamp"]["sec"] * 1_000_000_000 + truth["stamp"]["nanosec"]
    info = info_by_stamp[common[0]]
    K = np.reshape(info.k, (3, 3))
    np.testing.assert_allclose(K, np.reshape(truth["K"], (3, 3)))
    assert (info.width, info.height) == (W, H)

    # depth is registered to the image: each object's pixels back-project to its true position
    depth_msg = by_stamp[common[0]]
    assert depth_msg.encoding == "16UC1"
    depth = np.nan_to_num(depth_to_metres(imgmsg_to_numpy(depth_msg), depth_msg.encoding))
    instances = decode_instances(truth)
    assert np.array_equal(instances, scene.instances)
    for k, o in enumerate(truth["objects"]):
        mask = instances == k + 1
        ys, xs = np.nonzero(mask)
        assert o["bbox"] == [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        surface = np.median(geometry.backproject(depth, K, mask), axis=0)
        assert np.linalg.norm(surface - o["position_cam"]) < o["radius"] + 0.03, (k, surface, o["position_cam"])


@pytest.mark.ros
def test_reshuffle_service_moves_to_the_next_scene(camera, rclpy_context):
    from refseg_ros.ros.images import imgmsg_to_numpy

    proc, log = camera
    probe = _Probe(rclpy_context)
    assert probe.spin_until(lambda: probe.got["ground_truth"] and probe.got["image"], 180, proc), log.read_text()[-3000:]
    before = imgmsg_to_numpy(probe.got["image"][-1]).copy()
    assert probe.reshuffle.wait_for_service(timeout_sec=30)
    future = probe.reshuffle.call_async(probe.Trigger.Request())
    assert probe.spin_until(future.done, 120, proc), log.read_text()[-3000:]
    result = future.result()
    assert result.success, result.message
    assert f"scene 1 (seed {SEED + 1})" in result.message
    assert probe.spin_until(lambda: any(t["scene"] == 1 for t in probe.got["ground_truth"]), 30, proc)
    truth = next(t for t in probe.got["ground_truth"] if t["scene"] == 1)
    assert truth["seed"] == SEED + 1
    since = truth["stamp"]["sec"] * 1_000_000_000 + truth["stamp"]["nanosec"]
    n = len(probe.got["image"])
    assert probe.spin_until(lambda: len(probe.got["image"]) > n + 2, 30, proc)
    after = [m for m in probe.got["image"][n:] if _stamp(m) >= since]
    assert after and not np.array_equal(imgmsg_to_numpy(after[-1]), before)
    assert str(since // 1_000_000_000) in result.message  # the answer names the first frame's stamp


@pytest.mark.ros
def test_parameters_are_checked_at_run_time(camera, rclpy_context):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    proc, log = camera
    probe = _Probe(rclpy_context)
    client = AsyncParameterClient(probe.node, "/simtest/sim_camera")
    assert client.wait_for_services(timeout_sec=30)

    def set_one(name, value) -> bool:
        future = client.set_parameters([Parameter(name, value=value)])
        assert probe.spin_until(future.done, 30, proc)
        return future.result().results[0].successful

    assert not set_one("rate_hz", 500.0)  # out of range
    assert not set_one("width", 100)  # read at start-up only
    assert not set_one("color_encoding", "yuv422")
    assert set_one("rate_hz", 5.0)
    n = len(probe.got["image"])
    assert probe.spin_until(lambda: len(probe.got["image"]) > n + 2, 30, proc)  # still streaming
    assert proc.poll() is None


def test_renderers_in_one_process_keep_their_own_simulation():
    # pybullet calls without a client id go to client 0: a renderer closed by one test must not
    # break the one render_scene keeps (the simulated camera and these tests render in-process)
    from refseg_ros.data.tabletop import TabletopRenderer

    first = TabletopRenderer()
    a = first.render(SEED + 7, W, H)
    b = render_scene(SEED + 8, W, H)
    first.close()
    again = render_scene(SEED + 8, W, H)
    assert np.array_equal(b.image, again.image) and np.array_equal(b.instances, again.instances)
    with TabletopRenderer() as other:
        assert np.array_equal(other.render(SEED + 7, W, H).image, a.image)
