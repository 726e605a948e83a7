"""The tests' side of DDS when they talk to a running refseg_node: publishers for its inputs,
subscribers for its outputs, its diagnostics and its lifecycle services. Needs rclpy."""
from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data

from node_process import NodeProcess

from refseg_ros.bench.ros_client import Spinning, stamp_ns

#: the frame id the client stamps on the images it publishes
FRAME_ID = "camera_color_optical_frame"


class Client(Spinning):
    """The test's side of DDS: publishers for the node's inputs, subscribers for its outputs."""

    def __init__(self, ns: str = "", reliable_images: bool = False, visuals: bool = True):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped
        from rclpy.parameter_client import AsyncParameterClient
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from std_msgs.msg import String
        from visualization_msgs.msg import MarkerArray

        from refseg_ros.msg import GroundingArray
        from refseg_ros.srv import Ground

        self.ctx = rclpy.context.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("refseg_test_client" + ns.replace("/", "_"), context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {k: [] for k in
                                          ("groundings", "mask", "overlay", "markers", "target", "diagnostics")}
        n = self.node

        def keep(key):
            return lambda msg: self.received[key].append((time.monotonic(), msg))

        p = self.prefix = f"{ns}/" if ns else ""
        n.create_subscription(GroundingArray, p + "groundings", keep("groundings"), 50)
        if visuals:  # the node only draws and encodes these for subscribers
            n.create_subscription(Image, p + "mask", keep("mask"), 10)
            n.create_subscription(Image, p + "overlay", keep("overlay"), 10)
            n.create_subscription(MarkerArray, p + "markers", keep("markers"), 10)
        n.create_subscription(PointStamped, p + "target", keep("target"), 10)
        n.create_subscription(DiagnosticArray, "/diagnostics", keep("diagnostics"), 10)
        self.image_pub = n.create_publisher(Image, p + "image", 10 if reliable_images else qos_profile_sensor_data)
        self.compressed_pub = n.create_publisher(CompressedImage, p + "image/compressed", 10)
        self.depth_pub = n.create_publisher(Image, p + "depth", qos_profile_sensor_data)
        self.info_pub = n.create_publisher(CameraInfo, p + "camera_info", 10)
        self.command_pub = n.create_publisher(String, p + "command", 10)
        self.ground = n.create_client(Ground, p + "ground")
        self.params = AsyncParameterClient(n, f"{ns}/refseg_node")
        self.sent: dict[int, float] = {}  # image stamp (ns) -> time published
        self._built: dict = {}
        self._stamp = 1_700_000_000 * 10**9

    def new_stream(self) -> None:
        """Jump the stamps ahead, so no depth frame of an earlier stream is within any slop."""
        self._stamp += 10**9

    def next_stamp(self):
        from builtin_interfaces.msg import Time

        self._stamp += 33_333_333
        return Time(sec=self._stamp // 10**9, nanosec=self._stamp % 10**9)

    def wait_connected(self, timeout: float = 60) -> None:
        ok = self.spin_until(lambda: self.image_pub.get_subscription_count() > 0
                             and self.command_pub.get_subscription_count() > 0
                             and self.node.count_publishers(self.prefix + "groundings") > 0, timeout)
        assert ok, "node's topics not discovered over DDS"

    def command(self, text: str, node: NodeProcess | None = None, expect: str | None = None) -> None:
        from std_msgs.msg import String

        mark = node.mark() if node else 0
        self.command_pub.publish(String(data=text))
        if node is not None and expect is not None:
            assert node.wait_for(expect, 30, since=mark), f"node did not log {expect!r}:\n{node.since(mark)}"

    def publish_image(self, rgb: np.ndarray, stamp=None, encoding: str = "bgr8", frame_id: str = FRAME_ID):
        import cv2

        from refseg_ros.ros.images import numpy_to_imgmsg

        key = (id(rgb), encoding)
        cached = self._built.get(key)  # convert each frame once: a 30 Hz stream must not load this process
        if cached is not None and cached[0] is rgb:  # (holding rgb keeps its id from being reused)
            msg = cached[1]
        else:
            arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if encoding == "bgr8" else rgb
            msg = numpy_to_imgmsg(arr, encoding)
            self._built[key] = (rgb, msg)
        msg.header.frame_id = frame_id
        msg.header.stamp = stamp or self.next_stamp()
        self.sent[stamp_ns(msg.header.stamp)] = time.monotonic()
        self.image_pub.publish(msg)
        return msg.header

    def publish_depth(self, depth_mm: np.ndarray, k, header) -> None:
        from sensor_msgs.msg import CameraInfo

        from refseg_ros.ros.images import numpy_to_imgmsg

        self.depth_pub.publish(numpy_to_imgmsg(depth_mm, "16UC1", header))
        info = CameraInfo()
        info.header = header
        info.height, info.width = depth_mm.shape
        info.k = [float(v) for v in np.asarray(k, dtype=np.float64).reshape(-1)]
        info.distortion_model = "plumb_bob"
        self.info_pub.publish(info)

    def results_for(self, command: str, since: float = 0.0) -> list:
        return [(t, m) for t, m in self.received["groundings"] if m.command == command and t >= since]

    def stream_until(self, frames, predicate, timeout: float, rate_hz: float = 10.0, depth=None) -> bool:
        """Publish ``frames`` (cycled) at ``rate_hz`` until ``predicate()`` or timeout."""
        self.new_stream()
        end = time.monotonic() + timeout
        i = 0
        while time.monotonic() < end:
            header = self.publish_image(frames[i % len(frames)])
            if depth is not None:
                self.publish_depth(depth[0], depth[1], header)
            i += 1
            self.spin(1.0 / rate_hz)
            if predicate():
                return True
        return bool(predicate())

    def set_params(self, **values):
        from rclpy.parameter import Parameter

        assert self.params.wait_for_services(timeout_sec=30), "parameter services not discovered"
        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        assert self.spin_until(future.done, 30), "set_parameters timed out"
        return future.result().results

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def diag(client: Client, node_name: str) -> dict | None:
    """The key/values of ``node_name``'s newest diagnostics status the client received, or None."""
    for _, arr in reversed(client.received["diagnostics"]):
        for status in arr.status:
            if status.name.startswith(node_name + ":"):
                return {kv.key: kv.value for kv in status.values}
    return None


def change_state(client: Client, ns_node: str, transition_id: int) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    cli = client.node.create_client(ChangeState, f"{ns_node}/change_state")
    try:
        assert cli.wait_for_service(timeout_sec=30)
        future = cli.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        assert client.spin_until(future.done, 120), "change_state timed out"
        return future.result().success
    finally:
        client.node.destroy_client(cli)


def get_state(client: Client, ns_node: str) -> str:
    from lifecycle_msgs.srv import GetState

    cli = client.node.create_client(GetState, f"{ns_node}/get_state")
    try:
        assert cli.wait_for_service(timeout_sec=30)
        future = cli.call_async(GetState.Request())
        assert client.spin_until(future.done, 30)
        return future.result().current_state.label
    finally:
        client.node.destroy_client(cli)
