"""sim_camera: a simulated RGB-D camera looking at a pybullet tabletop scene.

The scenes are the dataset generator's (:func:`refseg_ros.data.tabletop.render_scene`): scene
``i`` is the scene of seed ``seed + i``, the same table, objects, camera and lighting that
``refseg data tabletop --seed`` would write. So a newcomer without a robot can run the grounding
node on a live camera stream and score it against the truth::

    sim_camera --ros-args -p rate_hz:=10.0 -p motion_amplitude:=5.0
    refseg_node --ros-args -p use_depth:=true

Topics (relative names, remap them; the defaults match ``refseg_node``'s inputs):

================  ===================================  ===========================================
out               type                                 notes
================  ===================================  ===========================================
``image``         sensor_msgs/Image rgb8 (or bgr8)     parameter ``color_encoding``
``depth``         sensor_msgs/Image 16UC1 mm (32FC1 m)  registered to ``image`` (same pixels); 0 / NaN
                                                       = no depth; parameter ``depth_encoding``
``camera_info``   sensor_msgs/CameraInfo               plumb_bob, zero distortion
``ground_truth``  std_msgs/String (JSON)               per view: objects, boxes, 3D positions,
                                                       expressions, instance masks; transient local
================  ===================================  ===========================================

Service ``reshuffle`` (std_srvs/Trigger): render the next scene; it answers once the first frame
of the new scene is published, with the scene, seed and that frame's stamp in ``message``.
Parameter ``scene_period`` reshuffles on a timer instead.

**Frame.** Image, depth and camera_info of one frame carry the same stamp and ``frame_id``
(default ``camera_color_optical_frame``): the ROS optical convention, x right, y down, z forward.
Ground-truth positions are in that frame too (``position_cam``), and in the *table frame* (origin
at the centre of the table top, z up; ``position_table``); ``T_table_camera`` is the camera's
pose in the table frame. No TF is published (tf2 is not installable from pip); on a ROS install
``launch/demo.launch.py`` places ``camera_color_optical_frame`` under ``camera_link`` with
tf2_ros's static_transform_publisher (the usual optical rotation).

**Cost.** A scene or a new camera pose is rendered once, in a child process (pybullet holds the
GIL while rendering), and its messages are built once; the timer republishes them with fresh
stamps. With ``motion_amplitude`` > 0 the camera swings slowly around the table (a sine of
period ``motion_period``) and new views are rendered at most ``motion_render_hz`` times a second,
each frame repeating the newest view.
"""
from __future__ import annotations

import json
import math
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from refseg_ros.data.sim_scene import RenderProcess, ground_truth, orbit_pose
from refseg_ros.ros.images import numpy_to_imgmsg
from refseg_ros.ros.params import ParamSpec, descriptor, validate
from refseg_ros.ros.runtime import run_node
from refseg_ros.ros.stats import Throttle

NODE_NAME = "sim_camera"
DEFAULT_FRAME_ID = "camera_color_optical_frame"

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("rate_hz", 10.0, "Frames (image + depth + camera_info) published per second.",
              range=(0.1, 100.0), dynamic=True),
    ParamSpec("width", 640, "Image width in pixels.", range=(64, 1920)),
    ParamSpec("height", 480, "Image height in pixels.", range=(48, 1440)),
    ParamSpec("seed", 0, "Seed of the first scene; scene i is the tabletop scene of seed + i.",
              range=(0, 2**31 - 1)),
    ParamSpec("scene_period", 0.0, "Seconds between automatic reshuffles; 0 = only on the reshuffle service.",
              range=(0.0, 86400.0), dynamic=True),
    ParamSpec("motion_amplitude", 0.0,
              "Slow camera motion: degrees the camera swings around the table's vertical axis; 0 = static.",
              range=(0.0, 30.0), dynamic=True),
    ParamSpec("motion_period", 30.0, "Seconds for one full swing of the camera motion.",
              range=(1.0, 3600.0), dynamic=True),
    ParamSpec("motion_render_hz", 2.0, "Most new camera poses rendered per second while moving.",
              range=(0.1, 30.0), dynamic=True),
    ParamSpec("frame_id", DEFAULT_FRAME_ID, "frame_id of the image, depth and camera_info (an optical frame)."),
    ParamSpec("color_encoding", "rgb8", "Encoding of the image topic.", choices=("rgb8", "bgr8")),
    ParamSpec("depth_encoding", "16UC1", "Encoding of the depth topic: 16UC1 (mm, 0 = none) or 32FC1 (m, NaN = none).",
              choices=("16UC1", "32FC1")),
)
SPECS = {p.name: p for p in PARAMS}


class _View:
    """One rendered view and its messages, built once and republished with fresh stamps."""

    def __init__(self, scene, scene_index: int, view_index: int, p: dict) -> None:
        frame_id = p["frame_id"]
        self.scene_index, self.view_index, self.seed = scene_index, view_index, int(scene.seed)
        image = scene.image if p["color_encoding"] == "rgb8" else np.ascontiguousarray(scene.image[:, :, ::-1])
        self.image = numpy_to_imgmsg(image, p["color_encoding"])
        if p["depth_encoding"] == "16UC1":
            self.depth = numpy_to_imgmsg(scene.depth_mm, "16UC1")
        else:
            depth = scene.depth.astype(np.float32, copy=True)
            depth[depth <= 0] = np.nan  # REP 118: no return = NaN
            self.depth = numpy_to_imgmsg(depth, "32FC1")
        info = CameraInfo()
        ci = scene.camera_info
        info.width, info.height, info.distortion_model = int(ci["width"]), int(ci["height"]), ci["distortion_model"]
        info.d, info.k, info.r, info.p = list(ci["D"]), list(ci["K"]), list(ci["R"]), list(ci["P"])
        self.info = info
        for msg in (self.image, self.depth, self.info):
            msg.header.frame_id = frame_id
        self.truth = ground_truth(scene, scene_index, view_index, frame_id, (0, 0))
        self.n_objects = len(scene.objects)
        self.T_table_camera = np.asarray(scene.T_table_camera)
        self.first_stamp = None  # set when first published


class SimCamera(Node):
    """The simulated camera; see the module docstring for its interface."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for spec in PARAMS:
            d = descriptor(spec)
            d.description = spec.description + ("" if spec.dynamic else " (read at start-up)")
            self.declare_parameter(spec.name, spec.default, d)
        self._p = {s.name: self.get_parameter(s.name).value for s in PARAMS}
        for name, value in self._p.items():
            reason = validate(name, value, SPECS)
            if reason:
                self.get_logger().error(f"parameter {reason}; using the default {SPECS[name].default!r}")
                self._p[name] = SPECS[name].default
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._lock = threading.Condition()
        self._view: _View | None = None
        self._published_view: _View | None = None
        self._reshuffles_requested = 1  # the first scene
        self._scenes_rendered = 0
        self._last_scene_time = time.monotonic()
        self._motion_t0 = time.monotonic()
        self._render_error = ""
        self._stop = threading.Event()
        self._frames = 0
        self._throttle = Throttle(5.0)

        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._image_pub = self.create_publisher(Image, "image", reliable)
        self._depth_pub = self.create_publisher(Image, "depth", reliable)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", reliable)
        self._truth_pub = self.create_publisher(String, "ground_truth", latched)
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._timer = self.create_timer(1.0 / self._p["rate_hz"], self._publish, callback_group=self._timer_group)
        self._service = self.create_service(Trigger, "reshuffle", self._on_reshuffle,
                                            callback_group=self._service_group)

        self._renderer = RenderProcess()
        self._thread = threading.Thread(target=self._render_loop, name="sim_camera_render", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"sim_camera: {self._p['width']}x{self._p['height']} at {self._p['rate_hz']} Hz in frame "
            f"'{self._p['frame_id']}', first scene seed {self._p['seed']}; topics "
            + ", ".join(self.resolve_topic_name(t) for t in ("image", "depth", "camera_info", "ground_truth"))
            + f"; service {self.resolve_service_name('reshuffle')}")

    # ---- parameters --------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for param in parameters:
            spec = SPECS.get(param.name)
            if spec is None:
                continue
            reason = validate(param.name, param.value, SPECS)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if not spec.dynamic:
                return SetParametersResult(successful=False, reason=f"{param.name} is read at start-up only")
        for param in parameters:
            if param.name in SPECS:
                self._p[param.name] = param.value
                if param.name == "rate_hz":
                    self._timer.timer_period_ns = int(1e9 / float(param.value))
                    self._timer.reset()
                if param.name == "motion_amplitude":
                    self._motion_t0 = time.monotonic()
        with self._lock:
            self._lock.notify_all()
        return SetParametersResult(successful=True)

    # ---- rendering (its own thread; pybullet runs in a child process) ------------------------------
    def _due_locked(self) -> str | None:
        if self._reshuffles_requested > self._scenes_rendered:
            return "scene"
        period = float(self._p["scene_period"])
        if period > 0 and time.monotonic() - self._last_scene_time >= period:
            self._reshuffles_requested += 1
            return "scene"
        if self._p["motion_amplitude"] > 0 and self._view is not None:
            return "view"
        return None

    def _render_loop(self) -> None:
        base_T = None
        view_index = 0
        while not self._stop.is_set():
            with self._lock:
                due = self._due_locked()
                if due is None:
                    self._lock.wait(timeout=0.1)
                    continue
                scene_index = self._scenes_rendered
            t0 = time.monotonic()
            try:
                if due == "scene":
                    scene = self._renderer.scene(self._p["seed"] + scene_index, self._p["width"], self._p["height"])
                    base_T, view_index = scene.T_table_camera, 0
                    self._motion_t0 = time.monotonic()
                else:
                    phase = 2 * math.pi * (time.monotonic() - self._motion_t0) / float(self._p["motion_period"])
                    yaw = float(self._p["motion_amplitude"]) * math.sin(phase)
                    scene = self._renderer.view(orbit_pose(base_T, yaw))
                    view_index += 1
                view = _View(scene, scene_index if due == "scene" else scene_index - 1, view_index, self._p)
            except Exception as exc:  # noqa: BLE001 - report and keep the last good view
                if self._stop.is_set():
                    return
                self._render_error = str(exc)
                text = self._throttle.check(f"rendering failed: {exc}")
                if text is not None:
                    self.get_logger().error(text)
                with self._lock:
                    if due == "scene":
                        self._scenes_rendered += 1  # skip this seed: do not retry it forever
                    self._lock.notify_all()
                time.sleep(0.5)
                continue
            with self._lock:
                self._view = view
                if due == "scene":
                    self._scenes_rendered += 1
                    self._last_scene_time = time.monotonic()
                self._lock.notify_all()
            if due == "scene":
                self.get_logger().info(f"scene {view.scene_index} (seed {view.seed}): {view.n_objects} objects, "
                                       f"rendered in {time.monotonic() - t0:.2f} s")
            else:  # motion: pace the renders
                wait = 1.0 / float(self._p["motion_render_hz"]) - (time.monotonic() - t0)
                if wait > 0:
                    self._stop.wait(wait)

    # ---- publishing --------------------------------------------------------------------------------
    def _publish(self) -> None:
        with self._lock:
            view = self._view
        if view is None:
            return
        stamp = self.get_clock().now().to_msg()
        if view is not self._published_view:
            truth = dict(view.truth)
            truth["stamp"] = {"sec": int(stamp.sec), "nanosec": int(stamp.nanosec)}
            self._truth_pub.publish(String(data=json.dumps(truth)))
        for msg in (view.image, view.depth, view.info):
            msg.header.stamp = stamp
        self._image_pub.publish(view.image)
        self._depth_pub.publish(view.depth)
        self._info_pub.publish(view.info)
        self._frames += 1
        if view is not self._published_view:
            with self._lock:
                view.first_stamp = stamp
                self._published_view = view
                self._lock.notify_all()

    def _on_reshuffle(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._reshuffles_requested += 1
            wanted = self._reshuffles_requested
            self._lock.notify_all()
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline and not self._stop.is_set():
                view = self._published_view
                if self._scenes_rendered >= wanted and view is not None and view.scene_index >= wanted - 1:
                    break
                self._lock.wait(timeout=0.1)
            else:
                response.success = False
                response.message = f"no new scene within 60 s ({self._render_error or 'still rendering'})"
                return response
        s = view.first_stamp
        response.success = True
        response.message = (f"scene {view.scene_index} (seed {view.seed}): {view.n_objects} objects; "
                            f"first frame stamp {s.sec}.{s.nanosec:09d}")
        self.get_logger().info(f"reshuffled: {response.message}")
        return response

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._renderer.close()
        self._thread.join(timeout=10)


def main(args: list[str] | None = None) -> int:
    return run_node("sim_camera", SimCamera, threads=2, args=args)


if __name__ == "__main__":
    sys.exit(main())
