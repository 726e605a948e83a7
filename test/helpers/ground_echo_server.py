"""Test peer (separate process): serves refseg_ros/srv/Ground and publishes GroundingArray.

It does no grounding: it finds the bright pixels of the request image and reports their box and
mask, so the test can check every message field after a real DDS round trip between processes.
"""
import sys

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from refseg_ros.msg import Grounding, GroundingArray
from refseg_ros.ros.images import imgmsg_to_numpy, numpy_to_imgmsg, to_rgb8
from refseg_ros.srv import Ground


class EchoServer(Node):
    def __init__(self):
        super().__init__("ground_echo_server")
        self.pub = self.create_publisher(GroundingArray, "groundings", 10)
        self.srv = self.create_service(Ground, "ground", self.on_ground)
        self.get_logger().info("ready")

    def on_ground(self, request, response):
        rgb = to_rgb8(imgmsg_to_numpy(request.image), request.image.encoding)
        mask = rgb.max(axis=2) > 127
        ys, xs = np.nonzero(mask)
        result = Grounding()
        result.header = request.image.header
        result.expression = request.command
        result.found = bool(xs.size)
        result.score = 0.75
        if xs.size:
            result.x_min, result.y_min = float(xs.min()), float(ys.min())
            result.x_max, result.y_max = float(xs.max() + 1), float(ys.max() + 1)
        result.mask = numpy_to_imgmsg(mask.astype(np.uint8) * 255, "mono8", request.image.header)
        result.has_position = request.depth.height > 0
        if result.has_position:
            depth = imgmsg_to_numpy(request.depth)
            result.position.z = float(np.median(depth[mask])) * 1e-3
        response.groundings.header = request.image.header
        response.groundings.command = request.command
        response.groundings.results = [result]
        response.groundings.processing_time = 0.001
        response.success = True
        self.pub.publish(response.groundings)
        return response


def main():
    rclpy.init()
    node = EchoServer()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
