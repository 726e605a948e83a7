"""refseg_node: ground spoken commands in camera frames; publish boxes, masks and 3D targets.

A lifecycle (managed) node, like yolo_ros: the model is loaded on *configure*, topics flow while
*active*. With ``autostart`` (default) it configures and activates itself, so it also runs as a
plain node::

    refseg_node --ros-args --params-file config/refseg.yaml -r image:=/camera/color/image_raw

Topics (remap them; names are relative, so a namespace applies):

======================  =========================================  ============================
in                      type                                       notes
======================  =========================================  ============================
``image``               sensor_msgs/Image                          sensor-data QoS by default
``image/compressed``    sensor_msgs/CompressedImage                instead, when use_compressed
``command``             std_msgs/String                            "grab the duck and the cube"
``depth``               sensor_msgs/Image 16UC1 (mm) / 32FC1 (m)   when use_depth; registered
``camera_info``         sensor_msgs/CameraInfo                     when use_depth
======================  =========================================  ============================

Out: ``groundings`` (refseg_ros/GroundingArray, header of the source image), ``mask`` (mono8,
union of found objects), ``overlay`` (bgr8 for rviz), and with depth ``markers``
(visualization_msgs/MarkerArray) and ``target`` (geometry_msgs/PointStamped, the first found
object); ``/diagnostics``; service ``ground`` (refseg_ros/srv/Ground).

Frames: the image callback only stores the newest frame (one slot, replacing an unprocessed one
counts as a drop); a worker thread grounds whatever is newest when it is free, at most
``max_rate_hz``. So there is never a backlog: a result is at most one processing time behind the
camera. Commands are parsed (``command_parser``) and their text encoding and adaptive weights are
computed once (``GroundingPredictor.set_command``); per frame only the visual path runs.
"""
from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, Node as LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from refseg_ros.msg import Grounding, GroundingArray
from refseg_ros.ros import params as P
from refseg_ros.ros.command_parser import Action, parse_command
from refseg_ros.ros.geometry import Intrinsics, object_position
from refseg_ros.ros.images import (SUPPORTED_ENCODINGS, ImageConversionError, compressed_to_numpy, depth_to_metres,
                                   imgmsg_to_numpy, numpy_to_imgmsg, to_rgb8)
from refseg_ros.ros.runtime import run_node
from refseg_ros.ros.stats import LatencyWindow, RateLimit, Throttle
from refseg_ros.ros.sync import ApproximateMatcher, stamp_to_ns
from refseg_ros.srv import Ground

NODE_NAME = "refseg_node"
#: Commands closer together than this are a burst: only the newest is parsed (by the worker).
_COMMAND_BURST_S = 0.05
#: Encodings ``to_rgb8`` turns into the model's RGB input (depth encodings are not frames to ground).
_COLOUR_ENCODINGS = ("bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16", "8UC1", "8UC3", "8UC4")


@dataclass(frozen=True)
class _ActiveCommand:
    generation: int
    text: str
    expressions: tuple[str, ...]


@dataclass(frozen=True)
class _Frame:
    seq: int
    msg: object  # Image or CompressedImage
    received: float  # time.monotonic()


@dataclass
class _Depth:
    """Depth in metres and intrinsics matched to one colour frame, or why there are none."""
    depth_m: np.ndarray | None = None
    intrinsics: Intrinsics | None = None
    problem: str = ""


def resolve_device(requested: str) -> tuple[str, str]:
    """(device to use, log line or "") for the ``device`` parameter; cuda without a GPU -> cpu."""
    import torch

    requested = requested.strip().lower()
    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return ("cuda" if has_cuda else "cpu"), ""
    if requested.startswith("cuda"):
        if not has_cuda:
            return "cpu", (f"device '{requested}' requested but CUDA is not available "
                           f"(torch {torch.__version__}, no GPU visible); falling back to cpu")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            return "cuda:0", f"device '{requested}' does not exist ({torch.cuda.device_count()} GPU(s)); using cuda:0"
    return requested, ""


class GroundingNode(LifecycleNode):
    """The grounding node; see the module docstring for its interface."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for spec in P.PARAMS:
            default = spec.default
            self.declare_parameter(spec.name, default, P.descriptor(spec))
        self._p = {spec.name: self.get_parameter(spec.name).value for spec in P.PARAMS}
        for name, value in self._p.items():  # a params file can hold any value; check it like a set
            reason = P.validate(name, value)
            if reason:
                self.get_logger().error(f"parameter {reason}; using the default {P.SPECS[name].default!r}")
                self._p[name] = P.SPECS[name].default
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)

        self._state = "unconfigured"
        # Separate groups keep the service from blocking the topics in a multi-threaded executor
        # (a container may use one); ``main`` spins a single-threaded one.
        self._io_group = MutuallyExclusiveCallbackGroup()  # subscriptions + diagnostics: all quick
        self._srv_group = MutuallyExclusiveCallbackGroup()  # the ground service runs the model
        self._throttle = Throttle(self._p["warn_throttle_sec"])
        self._command_log = RateLimit(rate=5.0, burst=20)
        self._first_traceback_logged = False

        # Model and per-activation state.
        self._predictor = None
        self._model_lock = threading.Lock()
        self._model_expressions: tuple[str, ...] | None = None
        self._model_desc = "not loaded"
        self._device = "none"
        self._pubs: dict[str, object] = {}
        self._subs: list = []
        self._input_topics: list[str] = []
        self._service = None
        self._matcher = ApproximateMatcher(self._p["sync_slop"], self._p["sync_queue_size"])

        # Frame slot and worker (see the module docstring).
        self._cv = threading.Condition()
        self._frame: _Frame | None = None
        self._frame_seq = 0
        self._taken_seq = 0
        self._command: _ActiveCommand | None = None
        self._command_generation = 0
        self._command_seq = 0  # arrival order of commands; an older one never replaces a newer one
        self._applied_command_seq = 0
        self._pending_command: tuple[int, str] | None = None  # newest command of a burst, not yet parsed
        self._last_command_time = -1.0
        self._last_done: tuple[int, int] = (0, 0)  # (frame seq, command generation)
        self._last_done_generation = 0
        self._next_start = 0.0
        self._worker: threading.Thread | None = None
        self._stop_worker = threading.Event()

        # Counters for diagnostics.
        self._counts = dict(received=0, processed=0, dropped=0, bad_images=0, errors=0, commands=0,
                            bad_commands=0, superseded_commands=0, service_calls=0)
        self._latency = LatencyWindow(200)  # decode + model + publish
        self._age = LatencyWindow(200)  # frame received -> results published
        self._processed_times: list[float] = []

        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self._p["diagnostics_period"], self._publish_diagnostics,
                                             callback_group=self._io_group)
        self.get_logger().info(
            "refseg_node created (lifecycle state unconfigured); "
            + ("configuring and activating itself (autostart)" if self._p["autostart"]
               else "waiting for a lifecycle manager (autostart is false)"))

    # ---- logging -----------------------------------------------------------------------------------
    def _warn(self, message: str, key: str | None = None) -> None:
        text = self._throttle.check(message, key)
        if text is not None:
            self.get_logger().warning(text)

    # ---- parameters --------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for param in parameters:
            spec = P.SPECS.get(param.name)
            if spec is None:
                continue
            reason = P.validate(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if not spec.dynamic and self._state != "unconfigured":
                return SetParametersResult(
                    successful=False,
                    reason=f"{param.name} is applied on configure/activate; deactivate and clean up the node "
                           f"(lifecycle state now {self._state}) before changing it")
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        for param in parameters:
            if param.name not in P.SPECS:
                continue
            self._p[param.name] = param.value
            if param.name in ("sync_slop", "sync_queue_size"):
                self._matcher.configure(self._p["sync_slop"], self._p["sync_queue_size"])
            elif param.name == "warn_throttle_sec":
                self._throttle.period = float(param.value)
            elif param.name == "mask_threshold" and self._predictor is not None:
                self._apply_mask_threshold()
            self.get_logger().info(f"parameter {param.name} set to {param.value!r}")
        with self._cv:
            self._cv.notify_all()  # a new rate or mode may make work due now

    def _apply_mask_threshold(self) -> None:
        value = float(self._p["mask_threshold"])
        with self._model_lock:
            if value >= 0:
                self._predictor.mask_threshold = value
            else:
                self._predictor.mask_threshold = float(self._predictor.model.cfg.mask_threshold)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load_model()
        except Exception as exc:  # noqa: BLE001 - any failure: a clear reason, not a traceback storm
            self.get_logger().error(f"configure failed: {exc}")
            self.get_logger().debug(traceback.format_exc())
            self._predictor = None
            return TransitionCallbackReturn.FAILURE
        self._create_outputs()
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
        self._start_worker()
        if self._p["default_command"] and self._command is None:
            self._set_command_text(self._p["default_command"], source="default_command")
        topics = ", ".join(self._input_topics)
        self.get_logger().info(f"active: listening on {topics}")
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state = "inactive"
        self._destroy_inputs()
        self._stop_worker_thread()
        self.get_logger().info("deactivated: not listening to images or commands")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_outputs()
        self._unload_model()
        self._state = "unconfigured"
        self.get_logger().info("cleaned up: model unloaded")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state = "finalized"
        self._destroy_inputs()
        self._stop_worker_thread()
        self._destroy_outputs()
        self._unload_model()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in {state.label}; cleaning up to unconfigured")
        self._destroy_inputs()
        self._stop_worker_thread()
        self._destroy_outputs()
        self._unload_model()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    @property
    def lifecycle_state(self) -> str:
        return self._state

    # ---- model -------------------------------------------------------------------------------------
    def _load_model(self) -> None:
        import torch

        from refseg_ros.model.predictor import (DEFAULT_CHECKPOINT, GroundingPredictor, backend_label, load_model,
                                                resolve_backend)

        if self._p["num_threads"] > 0:
            torch.set_num_threads(int(self._p["num_threads"]))
        device, note = resolve_device(self._p["device"])
        if note:
            self.get_logger().warning(note)
        half = bool(self._p["half"])
        if half and not device.startswith("cuda"):
            self.get_logger().info("half is for CUDA; running float32 on cpu")
            half = False
        path = self._p["checkpoint"].strip()
        where = Path(path).expanduser() if path else DEFAULT_CHECKPOINT
        if path and not where.is_file():
            raise FileNotFoundError(f"checkpoint '{where}' does not exist (parameter checkpoint)")
        self.get_logger().info(f"loading checkpoint {where} on {device}...")
        t0 = time.perf_counter()
        backend = resolve_backend(self._p["backend"], device)
        if self._p["backend"] == "onnxruntime" and backend != "onnxruntime":
            self.get_logger().info(f"backend onnxruntime runs on the CPU; using torch on {device}")
        model = load_model(str(where) if path else None)
        int8 = bool(self._p["int8"]) and backend == "onnxruntime"  # a graph option: torch runs float32
        try:
            predictor = GroundingPredictor(model, device=device, half=half, backend=backend, int8=int8)
        except Exception as exc:  # noqa: BLE001 - any export/runtime failure of the optional backend
            if backend != "onnxruntime" or self._p["backend"] != "auto":
                raise
            # auto: an export problem (an operator, an onnx/onnxruntime version) costs speed, not the node
            self.get_logger().warning(f"onnxruntime backend unavailable ({type(exc).__name__}: {exc}); "
                                      "using torch (backend:=torch skips the attempt)")
            backend = "torch"
            predictor = GroundingPredictor(model, device=device, half=half, backend=backend)
        meta = getattr(predictor.model, "checkpoint_meta", {}) or {}
        self._predictor = predictor
        self._model_expressions = None
        self._apply_mask_threshold()
        self._device = device
        self._model_desc = f"{where.name} (preset {meta.get('preset', predictor.model.preset)})"
        # One throwaway frame so the first real one does not pay for lazy initialisation.
        with self._model_lock:
            predictor.set_command(["the object"])
            predictor.predict(np.zeros((48, 64, 3), np.uint8))
            self._model_expressions = ("the object",)
        self.get_logger().info(f"model loaded in {time.perf_counter() - t0:.1f} s "
                               f"(backend {backend_label(backend, predictor.int8)}, "
                               f"torch threads {torch.get_num_threads()})")

    def _unload_model(self) -> None:
        with self._model_lock:
            self._predictor = None
            self._model_expressions = None
        self._model_desc = "not loaded"

    def _ground(self, rgb: np.ndarray, expressions: tuple[str, ...]):
        with self._model_lock:
            predictor = self._predictor
            if predictor is None:
                raise RuntimeError("model is not loaded (node not configured)")
            if self._model_expressions != expressions:
                predictor.set_command(list(expressions))  # cached per expression by the predictor
                self._model_expressions = expressions
            return predictor.predict(rgb)

    # ---- entities ----------------------------------------------------------------------------------
    def _image_qos(self) -> QoSProfile:
        reliability = (ReliabilityPolicy.RELIABLE if self._p["image_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        # Depth 1: only the newest frame matters; older ones would be dropped anyway.
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)

    def _create_outputs(self) -> None:
        self._pubs = {
            "groundings": self.create_lifecycle_publisher(GroundingArray, "groundings", 10),
            "mask": self.create_lifecycle_publisher(Image, "mask", 2),
            "overlay": self.create_lifecycle_publisher(Image, "overlay", 2),
        }
        if self._p["use_depth"]:
            self._pubs["markers"] = self.create_lifecycle_publisher(MarkerArray, "markers", 10)
            self._pubs["target"] = self.create_lifecycle_publisher(PointStamped, "target", 10)
        self._service = self.create_service(Ground, "ground", self._on_ground, callback_group=self._srv_group)

    def _destroy_outputs(self) -> None:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None

    def _create_inputs(self) -> None:
        qos = self._image_qos()
        g = self._io_group
        self._input_topics = []
        if self._p["use_compressed"]:
            # image_transport convention: <image topic>/compressed, following any remap of `image`.
            topic = self.resolve_topic_name("image") + "/compressed"
            self._subs.append(self.create_subscription(CompressedImage, topic, self._on_image, qos, callback_group=g))
        else:
            topic = "image"
            self._subs.append(self.create_subscription(Image, topic, self._on_image, qos, callback_group=g))
        self._input_topics.append(self.resolve_topic_name(topic))
        self._subs.append(self.create_subscription(String, "command", self._on_command, 10, callback_group=g))
        self._input_topics.append(self.resolve_topic_name("command"))
        if self._p["use_depth"]:
            depth_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, self._p["sync_queue_size"]),
                                   reliability=qos.reliability)
            self._subs.append(self.create_subscription(Image, "depth", self._on_depth, depth_qos, callback_group=g))
            # camera_info: reliable-compatible either way (drivers publish it reliable).
            info_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, self._p["sync_queue_size"]),
                                  reliability=qos.reliability)
            self._subs.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, info_qos,
                                                       callback_group=g))
            self._input_topics += [self.resolve_topic_name("depth"), self.resolve_topic_name("camera_info")]

    def _destroy_inputs(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._matcher.clear()
        with self._cv:
            self._frame = None
            self._pending_command = None

    # ---- callbacks (io group: quick, never touch the model) ----------------------------------------
    def _on_image(self, msg) -> None:
        # Cheap checks here (sizes, encoding: views, no pixel copies), so a broken frame neither
        # replaces a good newest frame nor goes unreported when the worker is busy.
        problem = self._check_colour(msg)
        if problem:
            self._counts["bad_images"] += 1
            self._warn(f"dropping image: {problem}")
            return
        with self._cv:
            self._counts["received"] += 1
            old = self._frame
            if old is not None and old.seq > self._taken_seq and self._has_work_locked(old):
                self._counts["dropped"] += 1  # replaced before the worker could take it
            self._frame_seq += 1
            self._frame = _Frame(self._frame_seq, msg, time.monotonic())
            self._cv.notify_all()

    def _on_depth(self, msg: Image) -> None:
        self._matcher.push("depth", stamp_to_ns(msg.header.stamp), msg)
        with self._cv:
            self._cv.notify_all()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._matcher.push("camera_info", stamp_to_ns(msg.header.stamp), msg)

    def _on_command(self, msg: String) -> None:
        # Latest wins. A human sends a command every few seconds: parse it now, so its log line and
        # any warning follow at once. A burst (another driver's loop, a flood) costs ~1 ms of parsing
        # per message on this path; then only the newest is kept and the worker parses it when it
        # looks for work, and the ones it replaced are counted (superseded_commands).
        now = time.monotonic()
        with self._cv:
            self._command_seq += 1
            seq = self._command_seq
            burst = now - self._last_command_time < _COMMAND_BURST_S
            self._last_command_time = now
            if burst or self._pending_command is not None:
                if self._pending_command is not None:
                    self._counts["superseded_commands"] += 1
                self._pending_command = (seq, msg.data)
                self._cv.notify_all()
                return
        self._set_command_text(msg.data, source="command", seq=seq)

    def _take_pending_command(self) -> None:
        with self._cv:
            pending, self._pending_command = self._pending_command, None
        if pending is not None:
            self._set_command_text(pending[1], source="command", seq=pending[0])

    def _set_command_text(self, text: str, source: str, seq: int | None = None) -> None:
        if seq is None:
            with self._cv:
                self._command_seq += 1
                seq = self._command_seq
        parsed = parse_command(text, max_chars=self._p["max_command_chars"],
                               max_expressions=self._p["max_expressions"])
        shown = text if len(text) <= 80 else text[:77] + "..."
        for note in parsed.notes:
            self._warn(f"{source} {shown!r}: {note}", key="note:" + self._throttle.key(note)[:60])
        if parsed.action is Action.INVALID:
            self._counts["bad_commands"] += 1
            keep = f"; keeping the active command {self._command.text!r}" if self._command else ""
            self._warn(f"ignoring {source} {shown!r}: {parsed.reason}{keep}",
                       key="badcmd:" + self._throttle.key(parsed.reason)[:60])
            return
        self._counts["commands"] += 1
        with self._cv:
            if seq < self._applied_command_seq:  # a newer command was applied meanwhile
                self._counts["superseded_commands"] += 1
                return
            self._applied_command_seq = seq
            self._command_generation += 1
            if parsed.action is Action.STOP:
                had = self._command
                self._command = None
            else:
                self._command = _ActiveCommand(self._command_generation, text, parsed.expressions)
            self._cv.notify_all()
        if not self._command_log.allow():  # a flood of commands: a few lines, not one per message
            return
        skipped = self._command_log.take_suppressed()
        more = f" ({skipped} earlier commands not logged: more than 5/s)" if skipped else ""
        if parsed.action is Action.STOP:
            self.get_logger().info(f"{source} {shown!r}: cleared the active command"
                                   + (f" {had.text!r}" if had else "") + more)
        else:
            self.get_logger().info(f"{source} {shown!r} -> {list(parsed.expressions)}{more}")

    # ---- worker ------------------------------------------------------------------------------------
    def _has_work_locked(self, frame: _Frame) -> bool:
        cmd = self._command
        if cmd is None:
            return False
        fresh = (frame.seq, cmd.generation) != self._last_done
        if not self._p["continuous"]:
            return fresh and self._last_done_generation != cmd.generation
        return fresh

    def _start_worker(self) -> None:
        self._stop_worker.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="refseg_worker", daemon=True)
        self._worker.start()

    def _stop_worker_thread(self) -> None:
        self._stop_worker.set()
        with self._cv:
            self._cv.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10)
        self._worker = None

    def _next_job_locked(self) -> tuple[_Frame, _ActiveCommand] | float | None:
        """A job, or seconds to wait before one may be due (rate limit), or None (wait for news)."""
        frame, cmd = self._frame, self._command
        if frame is None or cmd is None or not self._has_work_locked(frame):
            return None
        wait = self._next_start - time.monotonic()
        if wait > 0:
            return wait
        rate = float(self._p["max_rate_hz"])
        self._next_start = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
        self._taken_seq = frame.seq
        return frame, cmd

    def _worker_loop(self) -> None:
        while not self._stop_worker.is_set():
            self._take_pending_command()
            with self._cv:
                if self._pending_command is not None:
                    continue  # arrived just now: parse it before choosing work
                job = self._next_job_locked()
                if not isinstance(job, tuple):
                    self._cv.wait(timeout=job if isinstance(job, float) else 0.5)
                    continue
            frame, cmd = job
            grounded = False
            try:
                grounded = self._process(frame, cmd)
            except Exception as exc:  # noqa: BLE001 - keep serving; log the first traceback once
                if self._stop_worker.is_set() or not self.context.ok():
                    break  # shutting down: publishers are gone, nothing to report
                self._counts["errors"] += 1
                if not self._first_traceback_logged:
                    self._first_traceback_logged = True
                    self.get_logger().error(f"grounding failed: {exc!r}\n{traceback.format_exc()}")
                else:
                    self._warn(f"grounding failed: {exc!r}", key=f"err:{type(exc).__name__}")
            finally:
                with self._cv:
                    self._last_done = (frame.seq, cmd.generation)  # never retry the same frame
                    if grounded:  # single-shot: an undecodable frame does not use up the command
                        self._last_done_generation = cmd.generation

    @staticmethod
    def _check_colour(msg) -> str:
        """Why ``msg`` cannot be a colour frame ("" if it may be; JPEG/PNG data is checked on decode)."""
        if isinstance(msg, CompressedImage):
            return "" if len(msg.data) else f"empty CompressedImage (format {msg.format!r})"
        if msg.encoding not in _COLOUR_ENCODINGS:
            return (f"image encoding {msg.encoding!r} is not a colour or mono image "
                    f"(use one of {', '.join(_COLOUR_ENCODINGS)})") if msg.encoding in SUPPORTED_ENCODINGS \
                else f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(_COLOUR_ENCODINGS)}"
        try:
            imgmsg_to_numpy(msg)
        except ImageConversionError as exc:
            return str(exc)
        return ""

    def _decode_colour(self, msg) -> np.ndarray:
        if isinstance(msg, CompressedImage):
            arr, encoding = compressed_to_numpy(msg)
        else:
            arr, encoding = imgmsg_to_numpy(msg), msg.encoding
        return to_rgb8(arr, encoding)

    def _match_depth(self, stamp_ns: int) -> _Depth:
        # The depth frame usually lands within milliseconds of the colour one. Until a depth frame
        # stamped at or after the colour frame has arrived, its partner may still be in flight, and
        # an older frame within the slop would be a worse match: wait a little for it.
        deadline = time.monotonic() + min(0.1, float(self._p["sync_slop"]))
        while (self._matcher.may_still_arrive("depth", stamp_ns)
               and time.monotonic() < deadline and not self._stop_worker.is_set()):
            with self._cv:
                self._cv.wait(timeout=0.005)
        depth_msg = self._matcher.match("depth", stamp_ns)
        if depth_msg is None:
            return _Depth(problem=f"no depth image within sync_slop={self._p['sync_slop']} s of the colour image")
        info = self._matcher.match("camera_info", stamp_ns) or self._matcher.latest("camera_info")
        if info is None:
            return _Depth(problem="no camera_info received (needed to back-project depth)")
        try:
            depth = depth_to_metres(imgmsg_to_numpy(depth_msg), depth_msg.encoding)
        except ImageConversionError as exc:
            return _Depth(problem=f"bad depth image: {exc}")
        intrinsics = Intrinsics.from_k(info.k, info.width, info.height)
        if not intrinsics.valid:
            return _Depth(problem="camera_info has no intrinsics (K is zero)")
        return _Depth(depth, intrinsics)

    def _process(self, frame: _Frame, cmd: _ActiveCommand) -> bool:
        """Ground one frame and publish; False if the frame could not be used (nothing published)."""
        t0 = time.perf_counter()
        msg = frame.msg
        header = msg.header
        try:
            rgb = self._decode_colour(msg)
        except ImageConversionError as exc:
            self._counts["bad_images"] += 1
            self._warn(f"dropping image: {exc}")
            return False
        depth = _Depth()
        if self._p["use_depth"]:
            depth = self._match_depth(stamp_to_ns(header.stamp))
            if depth.problem:
                self._warn(f"3D positions unavailable: {depth.problem}")
        results = self._ground(rgb, cmd.expressions)
        array, found_masks, positions = self._to_message(header, cmd.text, results, rgb.shape[:2], depth)
        array.processing_time = float(time.perf_counter() - t0)
        pubs = self._pubs
        if not pubs:
            return False  # cleaned up meanwhile
        pubs["groundings"].publish(array)
        self._publish_extras(header, rgb, results, array, found_masks, positions)
        elapsed = time.perf_counter() - t0
        self._latency.add(elapsed)
        self._age.add(time.monotonic() - frame.received)
        with self._cv:
            self._counts["processed"] += 1
            now = time.monotonic()
            self._processed_times = [t for t in self._processed_times if now - t < 5.0] + [now]
        return True

    def _to_message(self, header, text: str, results, shape, depth: _Depth, for_service: bool = False):
        h, w = shape
        threshold = float(self._p["found_threshold"])
        # Encoding masks costs ~1 ms each at 640x480: skip it when no one reads the topic (the
        # service always fills them).
        fill_masks = self._p["publish_masks"] and (
            for_service or ("groundings" in self._pubs and self._pubs["groundings"].get_subscription_count() > 0))
        array = GroundingArray()
        array.header = header
        array.command = text
        found_masks, positions = [], []
        for r in results:
            g = Grounding()
            g.header = header
            g.expression = r.expression
            score = float(r.score) if math.isfinite(r.score) else 0.0
            g.score = min(1.0, max(0.0, score))
            g.found = g.score >= threshold
            x0, y0, x1, y1 = (float(v) if math.isfinite(v) else 0.0 for v in r.box)
            x0, x1 = min(max(x0, 0.0), float(w)), min(max(x1, 0.0), float(w))
            y0, y1 = min(max(y0, 0.0), float(h)), min(max(y1, 0.0), float(h))
            if x1 - x0 < 1.0:  # keep x_min < x_max inside the image, as the message promises
                x0, x1 = (x0, x0 + 1.0) if x0 + 1.0 <= w else (w - 1.0, float(w))
            if y1 - y0 < 1.0:
                y0, y1 = (y0, y0 + 1.0) if y0 + 1.0 <= h else (h - 1.0, float(h))
            g.x_min, g.y_min, g.x_max, g.y_max = x0, y0, x1, y1
            mask = np.asarray(r.mask, dtype=bool)
            if mask.shape != (h, w):
                import cv2

                mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            if fill_masks:
                g.mask = numpy_to_imgmsg(mask.astype(np.uint8) * 255, "mono8", header)
            point = None
            if depth.depth_m is not None:
                pos = object_position(mask, depth.depth_m, depth.intrinsics,
                                      min_valid_pixels=int(self._p["depth_min_valid_pixels"]),
                                      min_depth=float(self._p["depth_min"]), max_depth=float(self._p["depth_max"]))
                if pos.point is not None:
                    point = pos.point
                    g.has_position = True
                    g.position.x, g.position.y, g.position.z = (float(v) for v in point)
                elif g.found:
                    self._warn(f"no 3D position for {r.expression!r}: {pos.reason}",
                               key=f"nodepth:{pos.reason.split(' ')[-1]}")
            if g.found:
                found_masks.append(mask)
            positions.append(point)
            array.results.append(g)
        return array, found_masks, positions

    def _publish_extras(self, header, rgb, results, array, found_masks, positions) -> None:
        pubs = self._pubs
        # Drawing and encoding cost real time at 640x480: only for someone listening.
        if pubs["mask"].get_subscription_count() > 0:
            union = np.zeros(rgb.shape[:2], np.uint8)
            for m in found_masks:
                union[m] = 255
            pubs["mask"].publish(numpy_to_imgmsg(union, "mono8", header))
        if pubs["overlay"].get_subscription_count() > 0:
            import cv2

            from refseg_ros.utils.overlay import draw_groundings

            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            drawn = draw_groundings(bgr, results, found_threshold=float(self._p["found_threshold"]),
                                    alpha=float(self._p["overlay_alpha"]), channel_order="bgr", copy=False)
            pubs["overlay"].publish(numpy_to_imgmsg(drawn, "bgr8", header))
        if "target" in pubs:
            first = next((g for g in array.results if g.found), None)
            if first is not None and first.has_position:
                target = PointStamped()
                target.header = header
                target.point = first.position
                pubs["target"].publish(target)
        if "markers" in pubs and pubs["markers"].get_subscription_count() > 0:
            pubs["markers"].publish(self._markers(header, array))

    def _markers(self, header, array: GroundingArray) -> MarkerArray:
        from refseg_ros.utils.overlay import color_for

        out = MarkerArray()
        clear = Marker()
        clear.header = header
        clear.ns = "refseg"
        clear.action = Marker.DELETEALL
        out.markers.append(clear)
        scale = float(self._p["marker_scale"])
        for i, g in enumerate(array.results):
            if not (g.found and g.has_position):
                continue
            r, gr, b = (c / 255.0 for c in color_for(i))
            sphere = Marker()
            sphere.header = header
            sphere.ns, sphere.id, sphere.type, sphere.action = "refseg", 2 * i, Marker.SPHERE, Marker.ADD
            sphere.pose.position = g.position
            sphere.pose.orientation.w = 1.0
            sphere.scale.x = sphere.scale.y = sphere.scale.z = scale
            sphere.color.r, sphere.color.g, sphere.color.b, sphere.color.a = r, gr, b, 0.9
            label = Marker()
            label.header = header
            label.ns, label.id, label.type, label.action = "refseg", 2 * i + 1, Marker.TEXT_VIEW_FACING, Marker.ADD
            label.pose.position.x, label.pose.position.z = g.position.x, g.position.z
            label.pose.position.y = g.position.y - 1.5 * scale  # above it: y points down in optical frames
            label.pose.orientation.w = 1.0
            label.scale.z = max(0.02, scale * 0.8)
            label.color.r = label.color.g = label.color.b = label.color.a = 1.0
            label.text = f"{g.expression} {g.score:.2f}"
            out.markers.append(sphere)
            out.markers.append(label)
        return out

    # ---- service -----------------------------------------------------------------------------------
    def _on_ground(self, request: Ground.Request, response: Ground.Response) -> Ground.Response:
        self._counts["service_calls"] += 1
        response.groundings.header = request.image.header
        response.groundings.command = request.command

        def fail(message: str) -> Ground.Response:
            response.success = False
            response.message = message
            self._warn(f"ground service: {message}")
            return response

        if self._state != "active":
            return fail(f"node is {self._state}, not active")
        t0 = time.perf_counter()
        parsed = parse_command(request.command, max_chars=self._p["max_command_chars"],
                               max_expressions=self._p["max_expressions"])
        if parsed.action is Action.STOP:
            return fail(f"{request.command!r} is a stop command; the ground service needs an object description")
        if parsed.action is Action.INVALID:
            return fail(f"bad command: {parsed.reason}")
        try:
            rgb = self._decode_colour(request.image)
        except ImageConversionError as exc:
            return fail(f"bad image: {exc}")
        depth = _Depth()
        if request.depth.height > 0 or request.depth.width > 0 or len(request.depth.data):
            try:
                depth_m = depth_to_metres(imgmsg_to_numpy(request.depth), request.depth.encoding)
            except ImageConversionError as exc:
                return fail(f"bad depth image: {exc}")
            info = request.camera_info
            intrinsics = Intrinsics.from_k(info.k, info.width, info.height)
            if not intrinsics.valid:
                return fail("depth given without camera_info intrinsics (camera_info.k is zero)")
            depth = _Depth(depth_m, intrinsics)
        try:
            results = self._ground(rgb, parsed.expressions)
        except Exception as exc:  # noqa: BLE001
            return fail(f"grounding failed: {exc}")
        array, _, _ = self._to_message(request.image.header, request.command, results, rgb.shape[:2], depth,
                                       for_service=True)
        array.processing_time = float(time.perf_counter() - t0)
        response.groundings = array
        response.success = True
        response.message = ""
        return response

    # ---- diagnostics -------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: grounding"
        status.hardware_id = self._device
        with self._cv:
            counts = dict(self._counts)
            cmd = self._command
            now = time.monotonic()
            rate = len([t for t in self._processed_times if now - t < 5.0]) / 5.0
            last_frame_age = now - self._frame.received if self._frame is not None else float("inf")

        def ms(value: float) -> str:
            return "n/a" if math.isnan(value) else f"{value * 1000:.1f}"

        values = {
            "lifecycle_state": self._state,
            "model": self._model_desc,
            "device": self._device,
            "command": cmd.text if cmd else "",
            "expressions": "; ".join(cmd.expressions) if cmd else "",
            "frames_received": counts["received"],
            "frames_processed": counts["processed"],
            "frames_dropped": counts["dropped"],
            "bad_images": counts["bad_images"],
            "errors": counts["errors"],
            "commands": counts["commands"],
            "bad_commands": counts["bad_commands"],
            "superseded_commands": counts["superseded_commands"],
            "service_calls": counts["service_calls"],
            "rate_hz": f"{rate:.2f}",
            "latency_p50_ms": ms(self._latency.percentile(50)),
            "latency_p95_ms": ms(self._latency.percentile(95)),
            "receive_to_publish_p50_ms": ms(self._age.percentile(50)),
            "receive_to_publish_p95_ms": ms(self._age.percentile(95)),
            "max_rate_hz": self._p["max_rate_hz"],
            "continuous": self._p["continuous"],
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        if self._state != "active":
            status.level, status.message = DiagnosticStatus.WARN, f"{self._state}: not grounding"
        elif counts["errors"] and not counts["processed"]:
            status.level, status.message = DiagnosticStatus.ERROR, "grounding fails on every frame"
        elif cmd is not None and last_frame_age > 2.0:
            status.level, status.message = DiagnosticStatus.WARN, "command active but no images arriving"
        elif cmd is None:
            status.level, status.message = DiagnosticStatus.OK, "idle: waiting for a command"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"grounding at {rate:.1f} Hz"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diag_pub.publish(array)

    # ---- shutdown ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker and release everything (called on exit, whatever the lifecycle state)."""
        self._destroy_inputs()
        self._stop_worker_thread()


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
    # callback, and under a flood (100 images + 500 commands/s) that starved the model's worker:
    # 7.6 of 9.8 Hz kept with 4 executor threads against 9.6 with one (issue 10 note). The model
    # runs in the worker thread; only a Ground service call holds the executor while it runs.
    return run_node("refseg_node", GroundingNode, threads=1, args=args, start=_autostart)


if __name__ == "__main__":
    sys.exit(main())
