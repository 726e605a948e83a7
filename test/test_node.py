"""refseg_node over real DDS: the node runs in its own process, started as a user starts it.

One node (``main_node``: autostart, depth on, a randomly initialised tabletop checkpoint written
with the real save function) serves most tests; each test sets its own command and only looks at
results for it. A second, managed node (``autostart: false``, namespace /managed) is driven
through the lifecycle services. With random weights these tests check structure, headers, timing
and robustness; accuracy tests run only when the shipped checkpoint exists.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from node_process import STARTUP_TIMEOUT, NodeProcess
from paths import PARAMS_FILE, REPO
from scenes import box_scene

pytest.importorskip("rclpy")
from ros_client import FRAME_ID, Client, change_state, diag, get_state, stamp_ns  # noqa: E402

pytestmark = pytest.mark.ros

SHIPPED = REPO / "refseg_ros" / "checkpoints" / "tabletop.safetensors"


# ---- fixtures --------------------------------------------------------------------------------------

def _broken_onnxruntime(tmp_path_factory) -> Path:
    """A directory whose ``onnxruntime`` package fails to import, as a half-installed wheel would."""
    root = tmp_path_factory.mktemp("broken_ort")
    (root / "onnxruntime").mkdir()
    (root / "onnxruntime" / "__init__.py").write_text(
        'raise ImportError("onnxruntime_pybind11_state: cannot open shared object file")\n')
    return root


@pytest.fixture(scope="module")
def nodes(checkpoint, ros_env, tmp_path_factory):
    """Start every node process at once (their start-up dominates), stop them all at the end."""
    corrupt = tmp_path_factory.mktemp("corrupt") / "corrupt.safetensors"
    shutil.copy(checkpoint, corrupt)
    shutil.copy(checkpoint.with_suffix(".json"), corrupt.with_suffix(".json"))
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    # found_threshold 0: random weights find nothing at the default threshold, and a result that is
    # not found carries no box, mask or position (test_not_found_node.py checks that case)
    common = ["-p", "num_threads:=1", "-p", "warn_throttle_sec:=2.0", "-p", "found_threshold:=0.0"]
    procs = {
        "main": NodeProcess(["--params-file", str(PARAMS_FILE), "-p", f"checkpoint:={checkpoint}",
                             "-p", "use_depth:=true", "-p", "max_rate_hz:=10.0", *common], env=ros_env),
        "managed": NodeProcess(["--params-file", str(PARAMS_FILE), "-r", "__ns:=/managed",
                                "-p", "autostart:=false", "-p", f"checkpoint:={corrupt}",
                                "-p", "use_compressed:=true", "-p", "image_reliability:=reliable", *common],
                               env=ros_env),
        "missing": NodeProcess(["-r", "__ns:=/missing", "-p", "checkpoint:=/nonexistent/model.safetensors",
                                "-p", "device:=cuda"], env=ros_env),
        # backend auto with an onnxruntime that is installed but broken: the node must still come up
        "broken_ort": NodeProcess(["--params-file", str(PARAMS_FILE), "-r", "__ns:=/broken_ort",
                                   "-p", f"checkpoint:={checkpoint}", "-p", "int8:=true", *common],
                                  env={**ros_env, "PYTHONPATH": os.pathsep.join(
                                      filter(None, [str(_broken_onnxruntime(tmp_path_factory)),
                                                    ros_env.get("PYTHONPATH", "")]))}),
    }
    procs["corrupt_path"] = corrupt
    procs["good_path"] = checkpoint
    yield procs
    for key, p in procs.items():
        if isinstance(p, NodeProcess):
            p.stop()


@pytest.fixture(scope="module")
def main_node(nodes):
    node = nodes["main"]
    if not node.wait_for(r"active: listening on", STARTUP_TIMEOUT):
        pytest.fail(f"refseg_node did not become active:\n{node.log()[-4000:]}")
    return node


@pytest.fixture(scope="module")
def client(main_node):
    c = Client()
    c.wait_connected()
    yield c
    c.close()


# ---- tests on the main node --------------------------------------------------------------------------

def test_results_have_structure_and_source_headers(client, main_node, frames):
    import cv2

    from refseg_ros.ros.images import imgmsg_to_numpy

    text = "Could you grab the duck and the blue cube?"
    client.command(text, main_node, expect=r"-> \['the duck', 'the blue cube'\]")
    small = [cv2.resize(f, (400, 300)) for f in frames]  # not the model's input size: masks are mapped back
    t0 = time.monotonic()
    assert client.stream_until(small, lambda: len(client.results_for(text, t0)) >= 3, timeout=60), \
        main_node.log()[-3000:]
    for _, arr in client.results_for(text, t0):
        assert arr.header.frame_id == FRAME_ID
        assert stamp_ns(arr.header.stamp) in client.sent  # exactly a stamp we sent
        assert arr.processing_time > 0
        assert [g.expression for g in arr.results] == ["the duck", "the blue cube"]
        for g in arr.results:
            assert g.header == arr.header
            assert 0.0 <= g.score <= 1.0 and g.found
            assert 0 <= g.x_min < g.x_max <= 400 and 0 <= g.y_min < g.y_max <= 300
            assert (g.mask.height, g.mask.width, g.mask.encoding) == (300, 400, "mono8")
            assert set(np.unique(imgmsg_to_numpy(g.mask))) <= {0, 255}
            assert g.mask.header == arr.header
            assert not g.has_position  # no depth sent in this test
    # Visual outputs carry the same headers as the results they belong to.
    assert client.spin_until(lambda: client.received["overlay"] and client.received["mask"], 10)
    headers = {(a.header.frame_id, stamp_ns(a.header.stamp)) for _, a in client.received["groundings"]}
    for key, encoding in (("overlay", "bgr8"), ("mask", "mono8")):
        _, msg = client.received[key][-1]
        assert msg.encoding == encoding and (msg.height, msg.width) == (300, 400)
        assert (msg.header.frame_id, stamp_ns(msg.header.stamp)) in headers


def test_30hz_stream_is_grounded_at_the_node_rate_without_falling_behind(client, main_node, frames):
    text = "pick up the red mug on the left"
    client.command(text, main_node, expect=r"-> \['the red mug on the left'\]")
    client.spin(0.5)
    rate, duration = 30.0, 6.0
    published: list[tuple[float, int]] = []  # (time, stamp) of every frame
    t_start = time.monotonic()
    next_t = t_start
    i = 0
    while time.monotonic() - t_start < duration:
        header = client.publish_image(frames[i % len(frames)])
        published.append((time.monotonic(), stamp_ns(header.stamp)))
        i += 1
        next_t += 1.0 / rate
        while time.monotonic() < next_t:
            client.executor.spin_once(timeout_sec=max(0.0, next_t - time.monotonic()))
    t_end = time.monotonic()
    client.spin(3.0)  # let the last result arrive; a backlog would keep them coming
    results = client.results_for(text, t_start)
    assert len(results) >= 5, main_node.log()[-3000:]

    pub_times = np.array([t for t, _ in published])
    pub_stamps = np.array([s for _, s in published])
    recv, lags, excess, latencies = [], [], [], []
    for t_recv, arr in results:
        s = stamp_ns(arr.header.stamp)
        if t_recv > t_end:
            continue  # after the stream the newest frame no longer moves on
        lag = (pub_stamps[pub_times <= t_recv].max() - s) / 1e9  # how far behind the camera
        recv.append(t_recv - t_start)
        lags.append(lag)
        excess.append(lag - arr.processing_time)  # beyond the node's own processing time
        latencies.append(t_recv - client.sent[s])
    excess = np.array(excess)
    # Within one processing time of the newest image: what remains is the wait for the next frame
    # (1/30 s), DDS transport both ways and, on this shared CPU, scheduling delays.
    assert np.median(excess) <= 2.0 / rate + 0.25, f"median lag beyond processing {np.median(excess):.3f} s"
    # (not the maximum: on this shared CPU a single frame can be delayed by a load spike)
    assert np.percentile(excess, 90) <= 0.6, f"p90 lag beyond processing {np.percentile(excess, 90):.3f} s"
    # No backlog: a queue would make the lag grow steadily (by ~0.7 s per s at 30 Hz in, 10 Hz out).
    slope = np.polyfit(recv, lags, 1)[0]
    assert slope < 0.1, f"lag grows {slope:.2f} s per s: a backlog"
    out_rate = len(recv) / (t_end - t_start)
    assert out_rate <= 10.0 * 1.25, f"published {out_rate:.1f} Hz with max_rate_hz 10"
    assert len(results) < len(published) / 2  # frames were dropped, not queued
    # A backlog would keep results coming after the stream, for older and older frames. Without one,
    # at most two frames are left when the stream stops: the one being processed and the newest
    # waiting one, both from the stream's last moments. Their results can still arrive late (clean-
    # clone runs saw one, and once two together, 1.7 s after the stream: a stalled delivery).
    settle = max(a.processing_time for _, a in results) + 1.0
    late = [(t - t_end, stamp_ns(a.header.stamp)) for t, a in results if t - t_end >= settle]
    recent = {s for t, s in published if t >= t_end - settle}
    assert len(late) <= 2 and all(s in recent for _, s in late), f"backlog after the stream: {late}"
    print(f"\n30 Hz 640x480 stream: {len(published)} frames, {len(results)} results ({out_rate:.1f} Hz), "
          f"image->result latency p50 {np.median(latencies) * 1000:.0f} ms p95 "
          f"{np.percentile(latencies, 95) * 1000:.0f} ms, lag p95 {np.percentile(lags, 95) * 1000:.0f} ms "
          f"(beyond processing: p50 {np.median(excess) * 1000:.0f} ms, max {excess.max() * 1000:.0f} ms), "
          f"node processing p50 {np.median([a.processing_time for _, a in results]) * 1000:.0f} ms")

    # The node counts the frames it dropped.
    assert client.spin_until(lambda: diag(client, "/refseg_node") is not None, 5)
    values = diag(client, "/refseg_node")
    assert int(values["frames_dropped"]) > 0 and int(values["frames_processed"]) >= len(results)
    for key in ("latency_p50_ms", "latency_p95_ms", "model", "device"):
        assert values[key] and values[key] != "n/a", key
    assert values["device"] == "cpu" and "random_tabletop" in values["model"]


def test_depth_gives_3d_positions_markers_and_target(client, main_node, frames):
    import cv2

    depth, k = box_scene()
    rgb = [cv2.resize(f, (320, 240)) for f in frames]
    # Random weights give arbitrary masks; a zero mask threshold makes every mask the whole image,
    # so the expected point is known: the image centre at the object's depth (it covers most pixels).
    results = client.set_params(mask_threshold=0.0, found_threshold=0.0)
    assert all(r.successful for r in results), results
    try:
        text = "the blue cube"
        client.command(text, main_node, expect=r"-> \['the blue cube'\]")
        t0 = time.monotonic()
        ok = client.stream_until(rgb, lambda: any(g.has_position for _, a in client.results_for(text, t0)
                                                  for g in a.results), timeout=60, depth=(depth, k))
        assert ok, main_node.log()[-3000:]
        arr = next(a for _, a in client.results_for(text, t0) if a.results[0].has_position)
        g = arr.results[0]
        assert g.found
        point = np.array([g.position.x, g.position.y, g.position.z])
        assert np.linalg.norm(point - [0.0, 0.0, 0.6]) < 0.03, point
        assert client.spin_until(lambda: client.received["target"] and client.received["markers"], 10)
        _, target = client.received["target"][-1]
        assert target.header.frame_id == FRAME_ID and target.point.z == pytest.approx(0.6, abs=0.03)
        _, markers = client.received["markers"][-1]
        assert markers.markers[0].action == 3  # DELETEALL, then one sphere + label per object
        spheres = [m for m in markers.markers if m.type == 2]
        assert spheres and spheres[0].header.frame_id == FRAME_ID
        assert spheres[0].pose.position.z == pytest.approx(0.6, abs=0.03)
    finally:
        client.set_params(mask_threshold=-1.0, found_threshold=0.0)


def test_missing_depth_under_the_mask_gives_no_position_and_a_warning(client, main_node, frames):
    import cv2

    depth, k = box_scene()
    depth[:] = 0  # no valid depth anywhere
    rgb = [cv2.resize(f, (320, 240)) for f in frames]
    client.set_params(mask_threshold=0.0, found_threshold=0.0)
    try:
        text = "the duck"
        mark = main_node.mark()
        client.command(text, main_node, expect=r"-> \['the duck'\]")
        t0 = time.monotonic()
        assert client.stream_until(rgb, lambda: len(client.results_for(text, t0)) >= 3, 60, depth=(depth, k))
        # (the first result may be for the newest frame of the previous test, which had depth)
        fresh = [a for _, a in client.results_for(text, t0) if client.sent[stamp_ns(a.header.stamp)] >= t0]
        assert fresh and all(not g.has_position and g.position.z == 0.0 for a in fresh for g in a.results)
        assert main_node.wait_for(r"WARN.*no 3D position for 'the duck'.*valid depth", 10, since=mark)
    finally:
        client.set_params(mask_threshold=-1.0, found_threshold=0.0)


def test_bad_inputs_warn_and_the_node_keeps_working(client, main_node, frames):
    from sensor_msgs.msg import Image

    client.command("the red mug", main_node, expect=r"-> \['the red mug'\]")
    mark = main_node.mark()

    def bad_image(**fields):
        msg = Image()
        msg.header.frame_id = FRAME_ID
        msg.header.stamp = client.next_stamp()
        for k, v in fields.items():
            setattr(msg, k, v)
        client.image_pub.publish(msg)
        client.spin(0.3)

    bad_image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32))
    bad_image(height=0, width=0, encoding="bgr8", step=0, data=b"")
    bad_image(height=10, width=10, encoding="bgr8", step=30, data=bytes(100))  # needs 300 bytes
    bad_image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16))  # a depth image on `image`
    for text in ("", "   ", " ".join(["mug"] * 2000), "\u8d64\u3044\u30de\u30b0\u30ab\u30c3\u30d7",
                 "\x00\x1b[2J\x07", "pick it up"):
        client.command(text)
        client.spin(0.2)
    expected = [r"unsupported image encoding 'yuv422'", r"empty image", r"data holds 100 bytes",
                r"encoding '32FC1' is not a colour or mono image",
                r"ignoring command '': empty command", r"command too long \(\d+ characters, 2000 words",
                r"removed non-ASCII characters", r"no words left", r"'it' does not say which object"]
    for pattern in expected:
        assert main_node.wait_for(r"\[WARN\].*" + pattern, 10, since=mark), \
            f"no warning matching {pattern!r}:\n{main_node.since(mark)}"
    assert main_node.proc.poll() is None
    assert "Traceback" not in main_node.since(mark)
    # The active command survived the bad ones, and a valid request still works.
    text = "the red mug, please"
    client.command(text, main_node, expect=r"-> \['the red mug'\]")
    t0 = time.monotonic()
    assert client.stream_until(frames, lambda: client.results_for(text, t0), 30)


def test_ground_service(client, main_node, frames):
    import cv2

    from refseg_ros.ros.images import numpy_to_imgmsg
    from refseg_ros.srv import Ground

    assert client.ground.wait_for_service(timeout_sec=30)

    def call(req):
        future = client.ground.call_async(req)
        assert client.spin_until(future.done, 60)
        return future.result()

    depth, k = box_scene()
    req = Ground.Request()
    req.image = numpy_to_imgmsg(cv2.cvtColor(cv2.resize(frames[0], (320, 240)), cv2.COLOR_RGB2BGR), "bgr8")
    req.image.header.frame_id = FRAME_ID
    req.image.header.stamp.sec, req.image.header.stamp.nanosec = 1234, 5678
    req.command = "grab the duck and the red mug"
    req.depth = numpy_to_imgmsg(depth, "16UC1")
    req.camera_info.k = [float(v) for v in k.reshape(-1)]
    req.camera_info.width, req.camera_info.height = 320, 240
    res = call(req)
    assert res.success and res.message == ""
    arr = res.groundings
    assert arr.header.frame_id == FRAME_ID and (arr.header.stamp.sec, arr.header.stamp.nanosec) == (1234, 5678)
    assert arr.command == req.command and [g.expression for g in arr.results] == ["the duck", "the red mug"]
    for g in arr.results:
        assert (g.mask.height, g.mask.width) == (240, 320)
        assert 0 <= g.x_min < g.x_max <= 320 and 0 <= g.y_min < g.y_max <= 240

    bad = Ground.Request()
    bad.image.height, bad.image.width, bad.image.encoding, bad.image.step = 10, 10, "bgr8", 30
    bad.image.data = bytes(5)
    bad.command = "the duck"
    res = call(bad)
    assert not res.success and "bad image" in res.message and "data holds 5 bytes" in res.message
    empty = Ground.Request()
    empty.image = req.image
    empty.command = "  "
    res = call(empty)
    assert not res.success and "empty command" in res.message
    stop = Ground.Request()
    stop.image = req.image
    stop.command = "stop"
    res = call(stop)
    assert not res.success and "stop" in res.message
    nointr = Ground.Request()
    nointr.image, nointr.depth, nointr.command = req.image, req.depth, "the duck"
    res = call(nointr)
    assert not res.success and "camera_info" in res.message


def test_parameters_change_at_run_time_with_ranges(client, main_node):
    from rcl_interfaces.msg import ParameterType

    ok = client.set_params(found_threshold=0.8, max_rate_hz=5.0, continuous=True)
    assert all(r.successful for r in ok)
    bad = client.set_params(found_threshold=1.5)
    assert not bad[0].successful and bad[0].reason
    bad = client.set_params(max_rate_hz=-1.0)
    assert not bad[0].successful
    bad = client.set_params(max_command_chars=0)
    assert not bad[0].successful
    static = client.set_params(device="cuda")
    assert not static[0].successful and "configure" in static[0].reason
    future = client.params.describe_parameters(["found_threshold", "max_command_chars", "device"])
    assert client.spin_until(future.done, 30)
    d_found, d_chars, d_device = future.result().descriptors
    assert d_found.type == ParameterType.PARAMETER_DOUBLE and d_found.description
    # negative = the checkpoint's own threshold
    assert (d_found.floating_point_range[0].from_value, d_found.floating_point_range[0].to_value) == (-1.0, 1.0)
    assert d_chars.integer_range[0].from_value == 1
    assert "cuda" in d_device.additional_constraints
    future = client.params.get_parameters(["found_threshold", "max_rate_hz"])
    assert client.spin_until(future.done, 30)
    assert [v.double_value for v in future.result().values] == [0.8, 5.0]
    assert all(r.successful for r in client.set_params(found_threshold=-1.0))
    assert all(r.successful for r in client.set_params(found_threshold=0.0, max_rate_hz=10.0))


def test_single_shot_mode_and_stop(client, main_node, frames):
    assert all(r.successful for r in client.set_params(continuous=False))
    try:
        t0 = time.monotonic()
        for text, expr in (("the blue cube please", "the blue cube"), ("and now the duck", "the duck")):
            mark = main_node.mark()
            client.command(text, main_node, expect=rf"-> \['{expr}'\]")
            # one frame per command: the first result comes (however loaded the CPU), no second
            assert client.stream_until(frames, lambda: client.results_for(text, t0), 60), main_node.since(mark)
            client.stream_until(frames, lambda: False, timeout=2.0)
            assert len(client.results_for(text, t0)) == 1, main_node.since(mark)
    finally:
        assert all(r.successful for r in client.set_params(continuous=True))
    text = "grab the duck"
    client.command(text, main_node, expect=r"-> \['the duck'\]")
    t0 = time.monotonic()
    assert client.stream_until(frames, lambda: len(client.results_for(text, t0)) >= 2, 60)
    client.command("okay robot, stop", main_node, expect=r"cleared the active command")
    t1 = time.monotonic()
    client.stream_until(frames, lambda: False, timeout=2.0)
    client.spin(1.0)
    after_stop = [m for _, m in client.received["groundings"] if client.sent.get(stamp_ns(m.header.stamp), 0) > t1]
    assert not after_stop, "frames sent after stop were grounded"


def test_diagnostics(client, main_node):
    assert client.spin_until(lambda: diag(client, "/refseg_node") is not None, 5)
    values = diag(client, "/refseg_node")
    for key in ("lifecycle_state", "model", "device", "frames_received", "frames_processed", "frames_dropped",
                "latency_p50_ms", "latency_p95_ms", "rate_hz"):
        assert key in values
    assert values["lifecycle_state"] == "active"


# ---- lifecycle, start-up failures ------------------------------------------------------------------

def test_lifecycle_managed_node(nodes, client, frames):
    from lifecycle_msgs.msg import Transition

    from refseg_ros.ros.images import numpy_to_compressed

    node = nodes["managed"]
    assert node.wait_for(r"waiting for a lifecycle manager", STARTUP_TIMEOUT), node.log()
    name = "/managed/refseg_node"
    assert get_state(client, name) == "unconfigured"

    # A corrupt checkpoint: configure fails with the reason, the node stays unconfigured.
    mark = node.mark()
    assert not change_state(client, name, Transition.TRANSITION_CONFIGURE)
    assert node.wait_for(r"ERROR.*configure failed: .*sha256", 10, since=mark), node.since(mark)
    assert get_state(client, name) == "unconfigured"
    assert "Traceback" not in node.log()

    managed = Client("/managed")
    try:
        # Static parameters can change while unconfigured.
        assert managed.set_params(checkpoint=str(nodes["good_path"]))[0].successful
        assert change_state(client, name, Transition.TRANSITION_CONFIGURE)
        assert get_state(client, name) == "inactive"
        assert not managed.set_params(device="cpu")[0].successful  # now it would not take effect

        # Inactive: no subscriptions, so no results.
        from std_msgs.msg import String

        def send_frames(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                msg = numpy_to_compressed(frames[0], "rgb8", "jpeg")
                msg.header.frame_id = FRAME_ID
                msg.header.stamp = managed.next_stamp()
                managed.sent[stamp_ns(msg.header.stamp)] = time.monotonic()
                managed.compressed_pub.publish(msg)
                managed.spin(0.1)

        managed.command_pub.publish(String(data="the duck"))
        send_frames(1.5)
        assert not managed.received["groundings"]

        assert change_state(client, name, Transition.TRANSITION_ACTIVATE)
        assert get_state(client, name) == "active"
        assert managed.spin_until(lambda: managed.command_pub.get_subscription_count() > 0, 30)
        managed.command_pub.publish(String(data="grab the duck"))
        end = time.monotonic() + 60
        while time.monotonic() < end and not managed.received["groundings"]:
            send_frames(0.3)
        assert managed.received["groundings"], node.log()[-3000:]
        _, arr = managed.received["groundings"][-1]
        assert arr.header.frame_id == FRAME_ID and [g.expression for g in arr.results] == ["the duck"]
        assert (arr.results[0].mask.height, arr.results[0].mask.width) == frames[0].shape[:2]

        assert change_state(client, name, Transition.TRANSITION_DEACTIVATE)
        t_off = time.monotonic()
        assert get_state(client, name) == "inactive"
        send_frames(1.5)
        managed.spin(0.5)
        assert not [m for _, m in managed.received["groundings"]
                    if managed.sent.get(stamp_ns(m.header.stamp), 0) > t_off], "grounded while inactive"
        assert change_state(client, name, Transition.TRANSITION_CLEANUP)
        assert get_state(client, name) == "unconfigured"
    finally:
        managed.close()
    assert node.proc.poll() is None
    assert node.stop() == 0  # Ctrl-C: a clean exit


def test_backend_auto_uses_onnxruntime_and_falls_back_to_torch_when_it_is_broken(nodes):
    main, broken = nodes["main"], nodes["broken_ort"]
    assert main.wait_for(r"model loaded in .* \(backend onnxruntime", STARTUP_TIMEOUT), main.log()
    assert broken.wait_for(r"active: listening on", STARTUP_TIMEOUT), broken.log()
    log = broken.log()
    assert re.search(r"WARN.*onnxruntime backend unavailable \(ImportError: .*cannot open shared object", log), log
    assert re.search(r"model loaded in .* \(backend torch,", log), log  # int8:=true is a graph option
    assert "Traceback" not in log


def test_missing_checkpoint_exits_nonzero_with_a_clear_message_and_cuda_falls_back(nodes):
    node = nodes["missing"]
    try:
        node.proc.wait(timeout=STARTUP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"node with a missing checkpoint did not exit:\n{node.log()}")
    node.stop()
    assert node.proc.returncode != 0
    log = node.log()
    assert re.search(r"ERROR.*configure failed: checkpoint '/nonexistent/model.safetensors' does not exist", log), log
    assert "Traceback" not in log
    # (this machine has no GPU) cuda falls back to cpu with a clear line
    assert re.search(r"WARN.*device 'cuda' requested but CUDA is not available.*falling back to cpu", log), log


# ---- accuracy (needs the trained, shipped checkpoint) -----------------------------------------------

@pytest.mark.skipif(not SHIPPED.is_file(),
                    reason="no shipped checkpoint at refseg_ros/checkpoints/tabletop.safetensors")
@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_shipped_model_grounds_tabletop_objects_in_3d(ros_env, int8):
    from refseg_ros.data import render_scene
    from refseg_ros.ros.geometry import Intrinsics, object_position
    from refseg_ros.ros.images import numpy_to_imgmsg
    from refseg_ros.srv import Ground

    node = NodeProcess(["--params-file", str(PARAMS_FILE), "-r", "__ns:=/shipped", "-p", "num_threads:=2",
                        "-p", f"int8:={str(int8).lower()}"], env=ros_env)
    c = None
    try:
        assert node.wait_for(r"active: listening on", STARTUP_TIMEOUT), node.log()
        backend = "onnxruntime int8" if int8 else "onnxruntime"
        assert re.search(rf"model loaded in .* \(backend {backend},", node.log()), node.log()
        c = Client("/shipped")
        assert c.ground.wait_for_service(timeout_sec=30)
        hits, total, errors = 0, 0, []
        for seed in range(100, 110):
            scene = render_scene(seed, 640, 480)
            k = np.asarray(scene.camera_info["K"], dtype=np.float64)
            for obj_index, sentences in scene.expressions.items():
                if not sentences:
                    continue
                req = Ground.Request()
                req.image = numpy_to_imgmsg(scene.image, "rgb8")
                req.image.header.frame_id = FRAME_ID
                req.command = sentences[0]["sent"]
                req.depth = numpy_to_imgmsg(scene.depth_mm, "16UC1")
                req.camera_info.k = [float(v) for v in k.reshape(-1)]
                future = c.ground.call_async(req)
                assert c.spin_until(future.done, 60)
                res = future.result()
                assert res.success, res.message
                g = res.groundings.results[0]
                x0, y0, x1, y1 = scene.objects[obj_index]["bbox"]
                ix = max(0.0, min(x1, g.x_max) - max(x0, g.x_min)) * max(0.0, min(y1, g.y_max) - max(y0, g.y_min))
                union = (x1 - x0) * (y1 - y0) + (g.x_max - g.x_min) * (g.y_max - g.y_min) - ix
                total += 1
                if g.found and ix / union >= 0.5:
                    hits += 1
                    true = object_position(scene.mask(obj_index).astype(bool),
                                           np.where(scene.depth > 0, scene.depth, np.nan), Intrinsics.from_k(k))
                    if g.has_position and true.point is not None:
                        errors.append(np.linalg.norm(np.array([g.position.x, g.position.y, g.position.z])
                                                     - true.point))
        assert hits / total >= 0.7, f"{hits}/{total} expressions grounded (box IoU >= 0.5)"
        assert errors and np.median(errors) < 0.03, f"median 3D error {np.median(errors):.3f} m"
    finally:
        if c is not None:
            c.close()
        node.stop()
