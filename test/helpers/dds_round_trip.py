#!/usr/bin/env python3
"""The ROS transport floor: an image to an echo process and a GroundingArray back, no model.

``refseg bench`` compares the node's end-to-end latency with ``predict`` alone; this measures the
part of the difference the node cannot change: rclpy + the RMW moving one camera frame out and one
result (with its full-size mask) back between two processes. Run it with and without a DDS profile:

    python test/helpers/dds_round_trip.py                      # 640x480 rgb8, 50 round trips
    FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_frames.xml python test/helpers/dds_round_trip.py
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def _qos():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)


def serve(width: int, height: int) -> int:
    """Echo: every image becomes a GroundingArray with one result and a full-size mono8 mask."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from refseg_ros.msg import Grounding, GroundingArray
    from refseg_ros.ros.runtime import run_node

    mask = np.zeros((height, width), np.uint8).tobytes()

    class Echo(Node):
        def __init__(self) -> None:
            super().__init__("dds_round_trip_echo")
            self.pub = self.create_publisher(GroundingArray, "dds_rt/out", 10)
            self.create_subscription(Image, "dds_rt/in", self.on_image, _qos())

        def on_image(self, msg: Image) -> None:
            out = GroundingArray(header=msg.header)
            g = Grounding(header=msg.header)
            g.mask.height, g.mask.width, g.mask.encoding, g.mask.step = height, width, "mono8", width
            g.mask.data = mask
            out.results.append(g)
            self.pub.publish(out)

    return run_node("dds_round_trip_echo", Echo, args=[])


def measure(width: int, height: int, n: int) -> list[float]:
    import rclpy
    from sensor_msgs.msg import Image

    from refseg_ros.msg import GroundingArray

    rclpy.init()
    node = rclpy.create_node("dds_round_trip_client")
    pub = node.create_publisher(Image, "dds_rt/in", _qos())
    got: dict[int, float] = {}
    node.create_subscription(GroundingArray, "dds_rt/out",
                             lambda m: got.__setitem__(m.header.stamp.nanosec, time.perf_counter()), 10)
    img = Image(height=height, width=width, encoding="rgb8", step=3 * width)
    img.data = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8).tobytes()
    deadline = time.monotonic() + 30
    while (pub.get_subscription_count() == 0 or node.count_publishers("dds_rt/out") == 0) \
            and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    times = []
    for i in range(n + 5):
        img.header.stamp.nanosec = i
        t0 = time.perf_counter()
        pub.publish(img)
        end = t0 + 5
        while i not in got and time.perf_counter() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
        if i in got and i >= 5:  # the first ones warm up
            times.append(got[i] - t0)
        time.sleep(0.05)
    node.destroy_node()
    rclpy.try_shutdown()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.width, args.height)
    os.environ.setdefault("ROS_DOMAIN_ID", str(120 + os.getpid() % 50))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--width", str(args.width),
                               "--height", str(args.height)], env=dict(os.environ))
    try:
        times = np.array(measure(args.width, args.height, args.n))
    finally:
        server.terminate()
        server.wait(10)
    if not times.size:
        print("no round trip completed", file=sys.stderr)
        return 1
    print(f"{args.width}x{args.height} rgb8 -> GroundingArray with a mono8 mask, "
          f"profile {os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') or 'default'}: "
          f"p50 {np.median(times) * 1000:.1f} ms, p95 {np.percentile(times, 95) * 1000:.1f} ms (n={times.size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
