"""The package's messages and service round-trip between two processes over real DDS."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from paths import HELPERS

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros


@pytest.fixture
def echo_server(ros_env):
    proc = subprocess.Popen([sys.executable, str(HELPERS / "ground_echo_server.py")], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_ground_service_and_grounding_array_between_processes(echo_server, rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from refseg_ros.msg import GroundingArray
    from refseg_ros.ros.images import imgmsg_to_numpy, numpy_to_imgmsg
    from refseg_ros.srv import Ground

    node = rclpy.create_node("test_client", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    received = []
    node.create_subscription(GroundingArray, "groundings", received.append, 10)
    client = node.create_client(Ground, "ground")
    assert client.wait_for_service(timeout_sec=30), "Ground service not discovered over DDS"

    image = np.zeros((48, 64, 3), np.uint8)
    image[10:20, 30:45] = 255
    depth = np.full((48, 64), 1234, np.uint16)
    req = Ground.Request()
    req.image = numpy_to_imgmsg(image, "bgr8")
    req.image.header.frame_id = "camera_color_optical_frame"
    req.image.header.stamp.sec, req.image.header.stamp.nanosec = 1700000000, 123456789
    req.command = "the white block, s'il vous plaît ✓"
    req.depth = numpy_to_imgmsg(depth, "16UC1")

    # The publisher may match our subscription a little after the service: call until both arrive.
    deadline = time.monotonic() + 30
    response = None
    while time.monotonic() < deadline and not (response and received):
        future = client.call_async(req)
        executor.spin_until_future_complete(future, timeout_sec=10)
        response = future.result()
        executor.spin_once(timeout_sec=0.2)
    assert response is not None and response.success
    arr = response.groundings
    assert arr.header.frame_id == "camera_color_optical_frame"
    assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (1700000000, 123456789)
    assert arr.command == req.command
    (g,) = arr.results
    assert g.found and g.expression == req.command and g.score == pytest.approx(0.75)
    assert (g.x_min, g.y_min, g.x_max, g.y_max) == (30, 10, 45, 20)
    mask = imgmsg_to_numpy(g.mask)
    assert mask.shape == (48, 64) and g.mask.encoding == "mono8"
    assert (mask[10:20, 30:45] == 255).all() and int(mask.sum()) == 255 * 150
    assert g.has_position and g.position.z == pytest.approx(1.234)
    assert received, "GroundingArray topic not received from the other process"
    assert received[-1].results[0].expression == req.command
    assert received[-1].header.frame_id == "camera_color_optical_frame"
    node.destroy_node()
