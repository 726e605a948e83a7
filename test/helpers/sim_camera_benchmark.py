"""Frame rate and gaps of sim_camera as a subscriber sees them (a benchmark: prints, asserts nothing).

    .venv/bin/python test/helpers/sim_camera_benchmark.py --seconds 15 --motion 5.0

Starts sim_camera in its own process (640x480 by default), subscribes to ``image`` (reliable) and
``ground_truth``, and prints the received rate, the largest and 95th-percentile gap between frames,
and how many distinct views (ground-truth records) arrived.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--motion", type=float, default=0.0, help="motion_amplitude in degrees")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    args = ap.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    exe = Path(sys.executable).with_name("sim_camera")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "refseg_ros.ros.sim_camera"]
    proc = subprocess.Popen(cmd + ["--ros-args", "-p", f"rate_hz:={args.rate}", "-p", f"motion_amplitude:={args.motion}",
                                   "-p", f"width:={args.width}", "-p", f"height:={args.height}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rclpy.init()
    node = Node("sim_camera_benchmark")
    frames, views = [], []
    node.create_subscription(Image, "image", lambda m: frames.append(time.monotonic()),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(String, "ground_truth", lambda m: views.append(time.monotonic()),
                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    try:
        t_start = time.monotonic()
        while not frames and time.monotonic() - t_start < 300:
            rclpy.spin_once(node, timeout_sec=0.05)
        first = time.monotonic() - t_start
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        node.destroy_node()
        rclpy.try_shutdown()
    ts = np.array([t for t in frames if t >= t0])
    gaps = np.diff(ts)
    print(f"{args.width}x{args.height} at {args.rate} Hz, motion {args.motion} deg: first frame after {first:.1f} s; "
          f"received {len(ts) / args.seconds:.2f} Hz, gap max {gaps.max() * 1000:.0f} ms / p95 "
          f"{np.percentile(gaps, 95) * 1000:.0f} ms, {len([v for v in views if v >= t0])} new views in {args.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
