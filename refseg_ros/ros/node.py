"""refseg_node: ground spoken commands in camera frames; publish boxes, masks and 3D targets.

A lifecycle (managed) node, like yolo_ros: the model is loaded on *configure*, topics flow while
*active*; with ``autostart`` (default) it configures and activates itself. Topics, parameters and
the service are listed in docs/node.md::

    refseg_node --ros-args --params-file config/refseg.yaml -r image:=/camera/color/image_raw

This file holds parameters, lifecycle and wiring. A command is parsed once, in its callback
(``ros/commands.py``: the inbox, then :class:`~refseg_ros.ros.commands.CommandApplier`); the :class:`~refseg_ros.ros.scheduler.Scheduler` decides which frame the
worker thread grounds next (newest frame, latest command, rate); the predictor caches each command's
weights, and its :class:`~refseg_ros.model.postprocess.PostProcess` owns every box and mask
guarantee; ``ros/messages.py`` turns results into messages; ``ros/diagnostics.py`` reports.
"""
from __future__ import annotations

import ctypes
import gc
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleState, Node as LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from refseg_ros.msg import GroundingArray
from refseg_ros.ros import messages as M
from refseg_ros.ros import params as P
from refseg_ros.ros.commands import CommandApplier, CommandInbox, command_qos
from refseg_ros.ros.diagnostics import NodeStats, grounding_status
from refseg_ros.ros.runtime import run_node
from refseg_ros.ros.scheduler import MAX_FRAME_AGE_S, Scheduler
from refseg_ros.ros.services import QUEUE_CAPACITY, GroundService, service_qos
from refseg_ros.ros.worker import GroundingWorker
from refseg_ros.ros.stats import Throttle
from refseg_ros.ros.sync import ApproximateMatcher, stamp_to_ns
from refseg_ros.srv import Ground

NODE_NAME = "refseg_node"


class GroundingNode(LifecycleNode):
    """The grounding node; see the module docstring for its interface."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._p = P.declare_all(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)

        self._state = "unconfigured"
        # Separate groups for a multi-threaded executor (a container may use one); ``main`` spins a
        # single-threaded one. Either way the model never runs on an executor thread.
        self._io_group = MutuallyExclusiveCallbackGroup()  # subscriptions + diagnostics: all quick
        self._srv_group = MutuallyExclusiveCallbackGroup()  # the ground service (its model work: services.py)
        self._throttle = Throttle(self._p["warn_throttle_sec"])
        self._stats = NodeStats()
        self._scheduler = Scheduler(self._p["max_rate_hz"], self._p["continuous"],
                                    max_frame_age_s=self._p.get("max_frame_age_s", MAX_FRAME_AGE_S))
        self._matcher = ApproximateMatcher(self._p["sync_slop"], self._p["sync_queue_size"])

        self._worker = GroundingWorker(self._scheduler, self._stats, self._matcher, self._p, self.get_logger(),
                                       self._warn, self.context.ok)
        self._model_desc, self._device = "not loaded", "none"
        self._subs: list = []
        self._input_topics: list[str] = []
        self._inbox = CommandInbox(self._p["command_max_age_s"])
        self._commands = CommandApplier(self._scheduler, self._stats, self._p, self.get_logger().info, self._warn,
                                        key=self._throttle.key, understood=self._worker.understood)
        self._command_subs: list = []  # from configure to cleanup: a command sent early is kept
        self._service = None
        self._ground_service = GroundService(self._worker, self._p, lambda: self._state, self._stats,
                                             lambda message: self._warn(message),
                                             capacity=self._p.get("service_queue_size", QUEUE_CAPACITY))

        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self._p["diagnostics_period"], self._publish_diagnostics,
                                             callback_group=self._io_group)
        self.get_logger().info(
            "refseg_node created (lifecycle state unconfigured); "
            + ("configuring and activating itself (autostart)" if self._p["autostart"]
               else "waiting for a lifecycle manager (autostart is false)"))

    def _warn(self, message: str, key: str | None = None) -> None:
        text = self._throttle.check(message, key)
        if text is not None:
            self.get_logger().warning(text)

    # ---- parameters --------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        reason = P.refuse_change([(p.name, p.value) for p in parameters], self._state, current=self._p)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        for param in parameters:
            if param.name not in P.SPECS:
                continue
            self._p[param.name] = param.value
            if param.name in ("sync_slop", "sync_queue_size"):
                self._matcher.configure(self._p["sync_slop"], self._p["sync_queue_size"])
            elif param.name == "warn_throttle_sec":
                self._throttle.period = float(param.value)
            elif param.name in ("mask_threshold", "found_threshold"):
                self._worker.update_post()
            elif param.name == "max_rate_hz":
                self._scheduler.set_rate(param.value)
            elif param.name == "continuous":
                self._scheduler.set_continuous(param.value)
            elif param.name == "command_max_age_s":
                self._inbox.max_age_s = float(param.value)
            elif param.name == "max_frame_age_s":
                self._scheduler.max_frame_age_s = float(param.value)
            self.get_logger().info(f"parameter {param.name} set to {param.value!r}")

    # ---- lifecycle ---------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load_model()
        except Exception as exc:  # noqa: BLE001 - any failure: a clear reason, not a traceback storm
            self.get_logger().error(f"configure failed: {exc}")
            self.get_logger().debug(traceback.format_exc())
            self._unload_model()
            return TransitionCallbackReturn.FAILURE
        self._create_outputs()
        # Commands are taken from configure on (held until active); durable publishers keep theirs
        # for us meanwhile. Not earlier: clients read a command subscriber as "the model is loaded".
        self._create_command_inputs()
        self._state = "inactive"
        self.get_logger().info(f"configured: {self._model_desc} on {self._device}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._create_inputs()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"activate failed: {exc}")
            self._destroy_inputs()
            return TransitionCallbackReturn.FAILURE
        self._state = "active"
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self._worker.start()
        if self._p["default_command"] and self._scheduler.command is None:
            self._commands.apply(self._p["default_command"], source="default_command")
        held = self._inbox.activate(time.time_ns())
        if held is not None:
            self._commands.deliver(held, self._state, self._inbox.max_age_s)
        self.get_logger().info(f"active: listening on {', '.join(self._input_topics)}")
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state = "inactive"
        self._inbox.deactivate()
        self._destroy_inputs()
        self._worker.pause()  # never waits for a running frame; that frame is not published
        self.get_logger().info("deactivated: not listening to images or commands")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_command_inputs()
        self._destroy_outputs()
        self._unload_model()
        self._state = "unconfigured"
        self.get_logger().info("cleaned up: model unloaded")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state = "finalized"
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in {state.label}; cleaning up to unconfigured")
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._inbox.deactivate()
        self._destroy_command_inputs()
        self._destroy_inputs()
        self._worker.pause()
        self._destroy_outputs()
        self._unload_model()

    @property
    def lifecycle_state(self) -> str:
        return self._state

    # ---- model -------------------------------------------------------------------------------------
    def _load_model(self) -> None:
        import torch

        from refseg_ros.model.predictor import DEFAULT_CHECKPOINT, backend_label, load_predictor

        if self._p["num_threads"] > 0:
            torch.set_num_threads(int(self._p["num_threads"]))
        path = self._p["checkpoint"].strip()
        where = Path(path).expanduser() if path else DEFAULT_CHECKPOINT
        self.get_logger().info(f"loading checkpoint {where}...")
        t0 = time.perf_counter()
        log = {"info": self.get_logger().info, "warning": self.get_logger().warning}
        predictor = load_predictor(path, self._p["device"], bool(self._p["half"]), self._p["backend"],
                                   bool(self._p["int8"]), log=lambda level, message: log[level](message),
                                   compose_negations=bool(self._p["compose_negations"]),
                                   check_relations=bool(self._p["check_relations"]),
                                   pick_instances=bool(self._p["pick_instances"]),
                                   fix_spelling=bool(self._p["fix_spelling"]))
        # One throwaway frame so the first real one does not pay for lazy initialisation.
        predictor.predict_once(np.zeros((48, 64, 3), np.uint8), ["the object"])
        self._worker.set_predictor(predictor)
        self._device = str(predictor.device)
        meta = getattr(predictor.model, "checkpoint_meta", {}) or {}
        self._model_desc = f"{where.name} (preset {meta.get('preset', predictor.model.preset)})"
        self.get_logger().info(f"model loaded in {time.perf_counter() - t0:.1f} s "
                               f"(backend {backend_label(predictor.backend, predictor.int8)}, "
                               f"torch threads {torch.get_num_threads()})")

    def _unload_model(self) -> None:
        self._worker.set_predictor(None)
        self._model_desc = "not loaded"
        _return_freed_memory()

    # ---- entities ----------------------------------------------------------------------------------
    def _create_outputs(self) -> None:
        pubs = {
            "groundings": self.create_lifecycle_publisher(GroundingArray, "groundings", 10),
            "mask": self.create_lifecycle_publisher(Image, "mask", 2),
            "overlay": self.create_lifecycle_publisher(Image, "overlay", 2),
        }
        if self._p["use_depth"]:
            pubs["markers"] = self.create_lifecycle_publisher(MarkerArray, "markers", 10)
            pubs["target"] = self.create_lifecycle_publisher(PointStamped, "target", 10)
        self._worker.pubs = pubs
        self._service = self.create_service(Ground, "ground", self._ground_service, callback_group=self._srv_group,
                                            qos_profile=service_qos())
        self._ground_service.deferred.attach(self._service)
        self._ground_service.deferred.capacity = int(self._p.get("service_queue_size", QUEUE_CAPACITY))

    def _destroy_outputs(self) -> None:
        pubs, self._worker.pubs = self._worker.pubs, {}
        for pub in pubs.values():
            self.destroy_lifecycle_publisher(pub)
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None

    def _create_inputs(self) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if self._p["image_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        # Depth 1: only the newest frame matters; older ones would be dropped anyway.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
        g = self._io_group
        if self._p["use_compressed"]:
            # image_transport convention: <image topic>/compressed, following any remap of `image`.
            topic = self.resolve_topic_name("image") + "/compressed"
            self._subs.append(self.create_subscription(CompressedImage, topic, self._on_image, qos, callback_group=g))
        else:
            topic = "image"
            self._subs.append(self.create_subscription(Image, topic, self._on_image, qos, callback_group=g))
        self._input_topics = [self.resolve_topic_name(topic), self.resolve_topic_name("command")]
        if self._p["use_depth"]:
            # camera_info: reliable-compatible either way (drivers publish it reliable).
            sync_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, self._p["sync_queue_size"]),
                                  reliability=reliability)
            self._subs.append(self.create_subscription(Image, "depth", self._on_depth, sync_qos, callback_group=g))
            self._subs.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, sync_qos,
                                                       callback_group=g))
            self._input_topics += [self.resolve_topic_name("depth"), self.resolve_topic_name("camera_info")]

    def _create_command_inputs(self) -> None:
        g = self._io_group
        # Volatile hears every publisher; durable also gets the newest command a durable publisher
        # sent before this subscription existed. The inbox drops the second copy of a message.
        self._command_subs = [
            self.create_subscription(String, "command", self._on_command, 10, callback_group=g),
            self.create_subscription(String, "command", self._on_command, command_qos(), callback_group=g,
                                     # a volatile publisher cannot match it; the volatile one hears it
                                     event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda _: None)),
        ]

    def _destroy_command_inputs(self) -> None:
        for sub in self._command_subs:
            self.destroy_subscription(sub)
        self._command_subs = []
        self._inbox.clear_held()

    def _destroy_inputs(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._matcher.clear()
        self._scheduler.clear()

    # ---- callbacks (io group: quick, never touch the model) ----------------------------------------
    def _on_image(self, msg) -> None:
        # Cheap checks here (sizes, encoding: views, no pixel copies), so a broken frame neither
        # replaces a good newest frame nor goes unreported when the worker is busy.
        problem = M.colour_problem(msg, max_pixels=self._max_pixels())
        if problem:
            self._stats.bad_image(problem)
            self._warn(f"dropping image: {problem}")
            return
        self._stats.count("received")
        if self._scheduler.put_frame(msg):
            self._stats.count("dropped")  # replaced before the worker could take it

    def _max_pixels(self) -> int:
        return int(self._p.get("max_image_pixels", M.MAX_IMAGE_PIXELS))

    def _on_depth(self, msg: Image) -> None:
        self._matcher.push("depth", stamp_to_ns(msg.header.stamp), msg)
        self._scheduler.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._matcher.push("camera_info", stamp_to_ns(msg.header.stamp), msg)

    def _on_command(self, msg: String, info) -> None:  # two arguments: rclpy passes the MessageInfo
        self._commands.deliver(self._inbox.receive(msg.data, info, time.time_ns()), self._state,
                               self._inbox.max_age_s)

    # ---- diagnostics -------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        frame = self._scheduler.newest_frame
        age = time.monotonic() - frame.received if frame is not None else float("inf")
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [grounding_status(self.get_fully_qualified_name(), self._state, self._model_desc, self._device,
                                         self._scheduler.command, self._stats, age, self._p["max_rate_hz"],
                                         self._p["continuous"], self._worker.health(),
                                         no_images_s=self._scheduler.max_frame_age_s)]
        self._diag_pub.publish(array)

    def close(self) -> None:
        """Stop the worker and release everything (called on exit, whatever the lifecycle state)."""
        self._destroy_command_inputs()
        self._destroy_inputs()
        self._worker.stop()
        self._ground_service.stop()


def _return_freed_memory() -> None:
    """Collect the unloaded model's cycles and hand freed heap back to the OS: glibc keeps it
    otherwise, and each configure/cleanup cycle would leave the process larger."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _autostart(node: GroundingNode) -> int | None:
    """Configure and activate at start (parameter ``autostart``); exit code 1 if either fails."""
    if not node._p["autostart"]:
        return None
    for name, trigger in (("configure", node.trigger_configure), ("activate", node.trigger_activate)):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().fatal(f"could not {name} (see the error above); exiting")
            return 1
    return None


def main(args: list[str] | None = None) -> int:
    # One executor thread: rclpy's MultiThreadedExecutor costs far more Python (and GIL) per
    # callback, and under a flood of images and commands that starved the model's worker
    # (docs/performance.md). The model runs in the worker thread and in the ground service's
    # thread (ros/services.py); the executor only stores, checks and hands over.
    return run_node("refseg_node", GroundingNode, threads=1, args=args, start=_autostart)


if __name__ == "__main__":
    sys.exit(main())
