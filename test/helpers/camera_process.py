"""A camera driver, or a one-shot command publisher, in its own process: fault tests kill it
(SIGKILL, no goodbye on DDS) and start a new one, as a crashing driver does on a robot.

    python camera_process.py --ns /rel --rate 15            # bgr8 frames until killed
    python camera_process.py --ns /rel --command "the duck"  # publish one command, then exit
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns", default="")
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--frame-id", default="fake_camera")
    parser.add_argument("--command", default=None)
    args = parser.parse_args()
    prefix = f"{args.ns}/" if args.ns else ""
    rclpy.init()
    node = rclpy.create_node("fake_camera" if args.command is None else "fake_commander")
    try:
        if args.command is not None:
            pub = node.create_publisher(String, prefix + "command", 10)
            end = time.monotonic() + 30
            while pub.get_subscription_count() == 0 and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            pub.publish(String(data=args.command))
            pub.wait_for_all_acked(rclpy.duration.Duration(seconds=5))
            print("published", flush=True)
            return 0
        pub = node.create_publisher(Image, prefix + "image", qos_profile_sensor_data)
        rng = np.random.default_rng(0)
        img = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
        img[args.height // 3:args.height // 2, args.width // 4:args.width // 2] = (30, 30, 200)
        msg = Image()
        msg.height, msg.width, msg.encoding, msg.step = args.height, args.width, "bgr8", args.width * 3
        msg.data = img.tobytes()
        msg.header.frame_id = args.frame_id
        print("streaming", flush=True)
        while True:
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            time.sleep(1.0 / args.rate)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
