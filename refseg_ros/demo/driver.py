"""The demo's own ROS node, and the GroundingArray decoded to numpy for scoring and drawing.

rclpy and the message packages are imported when a driver is made, so the rest of the demo
imports without ROS.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from refseg_ros.demo.config import DemoError

__all__ = ["DemoDriver", "Result", "decode_results", "group_by_expression", "stamp_ns"]


class DemoDriver:
    """The demo's own ROS node: speaks commands, listens to results, ground truth and frames."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from refseg_ros.msg import GroundingArray
        from refseg_ros.ros.commands import command_qos

        self._rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, args=[])
        self.node = Node("refseg_demo", context=self.context)
        self._cv = threading.Condition()
        self.truths: list[dict] = []
        self.results: list[tuple[float, object]] = []  # (time received, GroundingArray)
        self.frames: OrderedDict[tuple[int, int], object] = OrderedDict()  # stamp -> Image
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(String, "ground_truth", self._on_truth, latched)
        self.node.create_subscription(GroundingArray, "groundings", self._on_result, 50)
        self.node.create_subscription(Image, "image", self._on_image,
                                      QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                                                 reliability=ReliabilityPolicy.RELIABLE))
        # Durable like every command publisher: a command is not lost if the node subscribes late.
        self.command_pub = self.node.create_publisher(String, "command", command_qos())
        self.reshuffle = self.node.create_client(Trigger, "reshuffle")
        self._Trigger, self._String = Trigger, String
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="refseg_demo_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutting down
            pass

    def _on_truth(self, msg) -> None:
        with self._cv:
            self.truths.append(json.loads(msg.data))
            self._cv.notify_all()

    def _on_result(self, msg) -> None:
        with self._cv:
            self.results.append((time.monotonic(), msg))
            self._cv.notify_all()

    def _on_image(self, msg) -> None:
        with self._cv:
            self.frames[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
            while len(self.frames) > 60:
                self.frames.popitem(last=False)

    def wait(self, predicate, timeout: float, check=None):
        """Wait until ``predicate()`` (called under the lock) returns a truthy value."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(timeout=min(left, 0.5))
                if check is not None:
                    self._cv.release()
                    try:
                        check()
                    finally:
                        self._cv.acquire()

    def say(self, text: str) -> float:
        self.command_pub.publish(self._String(data=text))
        return time.monotonic()

    def call_reshuffle(self, timeout: float) -> str:
        if not self.reshuffle.wait_for_service(timeout_sec=timeout):
            raise DemoError("the sim_camera reshuffle service is not available")
        future = self.reshuffle.call_async(self._Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            raise DemoError(f"reshuffle did not answer within {timeout:.0f} s")
        result = future.result()
        if not result.success:
            raise DemoError(f"reshuffle failed: {result.message}")
        return result.message

    def frame_for(self, stamp) -> object | None:
        with self._cv:
            return self.frames.get((stamp.sec, stamp.nanosec))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)


def stamp_ns(stamp) -> int:
    """A header stamp (message or its JSON dict) in nanoseconds."""
    if isinstance(stamp, dict):
        return int(stamp["sec"]) * 1_000_000_000 + int(stamp["nanosec"])
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class Result:
    """A GroundingArray's results in numpy, duck-typed for ``draw_groundings``."""

    expression: str
    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None
    found: bool
    position: tuple[float, float, float] | None


def decode_results(array) -> list[Result]:
    from refseg_ros.ros.images import imgmsg_to_numpy

    out = []
    for g in array.results:
        mask = imgmsg_to_numpy(g.mask) > 0 if g.mask.width and g.mask.height else None
        if mask is not None and mask.ndim == 3:
            mask = mask[:, :, 0]
        pos = (g.position.x, g.position.y, g.position.z) if g.has_position else None
        out.append(Result(g.expression, (g.x_min, g.y_min, g.x_max, g.y_max), float(g.score), mask,
                          bool(g.found), pos))
    return out


def group_by_expression(results: list[Result]) -> list[tuple[str, list[Result]]]:
    """The answers of each expression, in command order: the node publishes one result per
    expression, or one per object for an expression asking for every match (adjacent, same text)."""
    groups: list[tuple[str, list[Result]]] = []
    for r in results:
        if groups and groups[-1][0] == r.expression:
            groups[-1][1].append(r)
        else:
            groups.append((r.expression, [r]))
    return groups
