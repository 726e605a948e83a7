"""Just enough ROS to time the grounding node from outside: start it as a user does (its own
process, log read line by line), and a DDS client that publishes images and commands and records
when each ``GroundingArray`` arrives. Used by :mod:`refseg_ros.bench.latency`; the test suite has
its own, fuller client.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["BenchClient", "NodeProcess", "Spinning", "node_command", "stamp_ns"]


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def node_command(executable: str = "refseg_node") -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    exe = Path(sys.executable).with_name(executable)
    module = {"refseg_node": "refseg_ros.ros.node"}.get(executable, f"refseg_ros.ros.{executable}")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


class NodeProcess:
    """``<executable> --ros-args ...`` run as a user runs it (its own process group), with stdout
    and stderr collected line by line in a thread. The test suite starts its nodes with it too."""

    def __init__(self, ros_args: list[str], env: dict | None = None, name: str = "refseg_node",
                 executable: str = "refseg_node") -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(node_command(executable) + ["--ros-args", *ros_args],
                                     env=env or dict(os.environ), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace",
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{name}-log")
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """Position in the log; pass to ``wait_for``/``since`` to look only at later lines."""
        with self._lock:
            return len(self.lines)

    def since(self, mark: int) -> str:
        with self._lock:
            return "\n".join(self.lines[mark:])

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match | None:
        """First match of ``pattern`` in a log line after ``since``; None on timeout or exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            if exited:
                self._reader.join(timeout=2)  # the last lines
            with self._lock:
                for line in self.lines[since:]:
                    if m := rx.search(line):
                        return m
            if exited or time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> int:
        """SIGINT (as Ctrl-C), then SIGKILL if it does not exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        return self.proc.returncode


class Spinning:
    """Spinning helpers for a client that owns ``self.executor``."""

    executor = None

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.02, max(0.0, end - time.monotonic())))

    def spin_until(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(predicate())


class BenchClient(Spinning):
    """Publishers for the node's ``image`` and ``command``, a subscriber for its ``groundings``
    (and, with ``visuals``, for ``mask``, ``overlay`` and ``markers``, which the node only draws
    for subscribers, as rviz would be)."""

    def __init__(self, ns: str, reliable_images: bool = True, visuals: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from visualization_msgs.msg import MarkerArray

        from refseg_ros.msg import GroundingArray

        self._rclpy = rclpy
        self.ctx = rclpy.context.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("refseg_bench_client" + ns.replace("/", "_"), context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.prefix = f"{ns}/" if ns else ""
        self.groundings: list[tuple[float, object]] = []  # (time.monotonic() received, message)
        n, p = self.node, self.prefix
        n.create_subscription(GroundingArray, p + "groundings",
                              lambda msg: self.groundings.append((time.monotonic(), msg)), 50)
        if visuals:
            for topic, kind in (("mask", Image), ("overlay", Image), ("markers", MarkerArray)):
                n.create_subscription(kind, p + topic, lambda msg: None, 10)
        self.image_pub = n.create_publisher(Image, p + "image", 10 if reliable_images else qos_profile_sensor_data)
        self.command_pub = n.create_publisher(String, p + "command", 10)
        self.sent: dict[int, float] = {}  # image stamp (ns) -> time.monotonic() published
        self._built: dict[int, tuple[np.ndarray, object]] = {}
        self._stamp = 1_700_000_000 * 10**9

    def wait_connected(self, timeout: float = 60) -> None:
        ok = self.spin_until(lambda: self.image_pub.get_subscription_count() > 0
                             and self.command_pub.get_subscription_count() > 0
                             and self.node.count_publishers(self.prefix + "groundings") > 0, timeout)
        if not ok:
            raise RuntimeError("the node's topics were not discovered over DDS")

    def command(self, text: str, node: NodeProcess, expect: str, timeout: float = 30) -> None:
        """Publish a command and wait until the node's log shows ``expect`` (it was parsed)."""
        from std_msgs.msg import String

        mark = node.mark()
        self.command_pub.publish(String(data=text))
        if not node.wait_for(expect, timeout, since=mark):
            raise RuntimeError(f"node did not log {expect!r} for command {text!r}:\n{node.log()[-3000:]}")

    def publish_image(self, rgb: np.ndarray):
        """Publish ``rgb`` as bgr8 with the next stamp; returns its header."""
        import cv2
        from builtin_interfaces.msg import Time

        from refseg_ros.ros.images import numpy_to_imgmsg

        cached = self._built.get(id(rgb))  # convert each frame once (holding rgb keeps its id unique)
        if cached is not None and cached[0] is rgb:
            msg = cached[1]
        else:
            msg = numpy_to_imgmsg(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "bgr8")
            self._built[id(rgb)] = (rgb, msg)
        self._stamp += 33_333_333
        msg.header.frame_id = "camera_color_optical_frame"
        msg.header.stamp = Time(sec=self._stamp // 10**9, nanosec=self._stamp % 10**9)
        self.sent[stamp_ns(msg.header.stamp)] = time.monotonic()
        self.image_pub.publish(msg)
        return msg.header

    def close(self) -> None:
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.ctx)
