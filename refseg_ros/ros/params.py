"""The grounding node's parameters: one table, read by the node, its tests and config/refseg.yaml.

Kept free of ROS imports (descriptors are built lazily) so the table can be checked without rclpy.
``dynamic`` parameters take effect while the node runs; the others are read on configure (or
activate, for subscriptions) and can only be changed while the node is unconfigured, so a
running node never ends up in a state its parameters do not describe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refseg_ros.utils.device import CUDA_NAME

__all__ = ["ParamSpec", "PARAMS", "SPECS", "DEVICE_CHOICES", "RELIABILITY_CHOICES", "DEFAULT_MAX_IMAGE_PIXELS",
           "validate", "check_values", "descriptor", "declare_all", "refuse_change"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # and "cuda:N"
RELIABILITY_CHOICES = ("best_effort", "reliable")
#: 4096 x 4096: above a 4K UHD frame and a 12-megapixel still; docs/reliability.md has the memory
#: this bounds. ``refseg predict --max-image-pixels`` has the same default.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive
    choices: tuple[str, ...] | None = None
    dynamic: bool = False


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True,
              "Configure and activate at start-up (unmanaged use). False: wait for a lifecycle manager."),
    ParamSpec("checkpoint", "",
              "Model checkpoint (.safetensors with its .json sidecar); empty = the shipped tabletop checkpoint."),
    ParamSpec("device", "auto",
              "auto, cpu, cuda or cuda:N. auto picks CUDA when available; cuda without a GPU falls back to cpu.",
              choices=DEVICE_CHOICES),
    ParamSpec("half", False, "Run the model in float16 (CUDA only; ignored with a log line on cpu)."),
    ParamSpec("num_threads", 0,
              "Torch CPU threads; 0 keeps torch's default (one per core). On a CPU busy with other work, "
              "1 can be faster than more.", range=(0, 256)),
    ParamSpec("backend", "auto",
              "Per-frame inference: torch, or onnxruntime (CPU only; the frame path is exported to ONNX on "
              "configure, a few seconds; less CPU per frame than torch). auto = onnxruntime on the CPU when it "
              "is installed (torch if the export fails), torch on CUDA.",
              choices=("auto", "torch", "onnxruntime")),
    ParamSpec("int8", True,
              "onnxruntime backend: int8 weights for the transformer's matmuls (dynamic quantization): less "
              "time per frame at about the float32 graph's accuracy (docs/performance.md). False: the float32 "
              "graph. Ignored on the torch backend."),
    ParamSpec("found_threshold", -1.0,
              "Score at or above which a result is marked found (and drawn, masked, targeted); negative = "
              "the checkpoint's own (model config found_threshold, chosen on validation data). Off the "
              "generator's renders a lower value answers more present objects and catches fewer absent ones "
              "(0.5: 85 % / 74 % against 77 % / 88 % at 0.7; docs/offgen-check.md).",
              range=(-1.0, 1.0), dynamic=True),
    ParamSpec("mask_threshold", -1.0,
              "Mask probability above which a pixel belongs to the object; negative = the checkpoint's own "
              "(model config mask_threshold).", range=(-1.0, 1.0), dynamic=True),
    ParamSpec("compose_negations", True,
              "Ground a negation ('the mug that is not red', 'everything that isn't a duck') as every object of "
              "its head without the ones it excludes, from two model runs (docs/model.md); False: the model "
              "reads it whole."),
    ParamSpec("check_relations", True,
              "Answer 'not found' for 'the X left/right of the Y' when no X is on that side of the Y, and the "
              "one X on that side when the model's answer is on the other (every X and the Y from two more "
              "model runs, docs/model.md); with use_depth the same for 'in front of'/'behind', along the "
              "table; False: the model's answer alone."),
    ParamSpec("pick_instances", True,
              "Ground 'the second X from the left' and 'the X closest to the Y' by picking among every X by "
              "position (every X, and the Y, from one or two more model runs, docs/model.md); False: the model "
              "reads them whole."),
    ParamSpec("fix_spelling", True,
              "Read a typed word that is no English word and one edit from a word the model knows as that word "
              "('the hambuger' -> 'the hamburger', docs/model.md); results keep the text as sent. Needs "
              "pyspellchecker (off, with a warning, without it)."),
    ParamSpec("continuous", True,
              "True: ground every new frame for the active command (up to max_rate_hz). "
              "False: ground one frame per command.", dynamic=True),
    ParamSpec("max_rate_hz", 10.0, "Most frames grounded per second; 0 = as fast as the model runs.",
              range=(0.0, 1000.0), dynamic=True),
    ParamSpec("default_command", "",
              "Command active from activation on (e.g. 'the red mug'); empty = wait for the command topic."),
    ParamSpec("command_max_age_s", 30.0,
              "Commands older than this (s since the publisher sent them) when the node could act on them are "
              "dropped with a log line. A command sent before the node was active is grounded once it is, if "
              "still this fresh; 0 = any age.", range=(0.0, 86400.0), dynamic=True),
    ParamSpec("max_frame_age_s", 2.0,
              "Frames received longer ago than this (s) are not grounded: after the camera falls silent a new "
              "command waits for a new frame instead of being answered on an old one. Diagnostics warn "
              "'no images arriving' past the same age. 0 = any age.", range=(0.0, 3600.0), dynamic=True),
    ParamSpec("max_command_chars", 300, "Longer commands are rejected with a warning.",
              range=(1, 100000), dynamic=True),
    ParamSpec("max_expressions", 5, "Most objects grounded from one command; extra ones are dropped with a warning.",
              range=(1, 64), dynamic=True),
    ParamSpec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS,
              "Largest colour or depth image (width x height) grounded; larger ones (raw, or compressed: read "
              "from the PNG/JPEG header before decoding) are dropped with a warning. Bounds the node's memory "
              "(docs/reliability.md).", range=(1, 268_435_456)),
    ParamSpec("use_compressed", False,
              "Subscribe to <image>/compressed (sensor_msgs/CompressedImage) instead of <image>."),
    ParamSpec("image_reliability", "best_effort",
              "QoS reliability of the image (and depth) subscriptions: best_effort (sensor data) or reliable.",
              choices=RELIABILITY_CHOICES),
    ParamSpec("use_depth", False,
              "Subscribe to depth (16UC1 mm or 32FC1 m, registered to the colour image) and camera_info "
              "and publish 3D positions, markers and target; 'in front of'/'behind' relations are then "
              "checked along the table (with check_relations)."),
    ParamSpec("sync_slop", 0.05, "Largest stamp difference (s) between a colour image and its depth/camera_info.",
              range=(0.0, 5.0), dynamic=True),
    ParamSpec("sync_queue_size", 10, "Depth and camera_info messages buffered for synchronisation.",
              range=(1, 1000), dynamic=True),
    ParamSpec("depth_min", 0.05, "Depths below this (m) are invalid.", range=(0.0, 1000.0), dynamic=True),
    ParamSpec("depth_max", 10.0, "Depths above this (m) are invalid.", range=(0.0, 1000.0), dynamic=True),
    ParamSpec("depth_min_valid_pixels", 10,
              "Fewest masked pixels with a valid depth for a 3D position.", range=(1, 10_000_000), dynamic=True),
    ParamSpec("publish_masks", True,
              "Fill Grounding.mask (mono8 at image size); false leaves it empty to save bandwidth.", dynamic=True),
    ParamSpec("overlay_alpha", 0.45, "Opacity of the mask tint on the overlay image.", range=(0.0, 1.0), dynamic=True),
    ParamSpec("marker_scale", 0.05, "Diameter (m) of the rviz sphere marking each object.",
              range=(0.001, 10.0), dynamic=True),
    ParamSpec("service_queue_size", 4,
              "ground service calls waiting or running at once; more are answered at once with success false and "
              "message 'busy' (counted as service_busy in diagnostics).", range=(1, 64)),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.05, 3600.0)),
    ParamSpec("warn_throttle_sec", 5.0, "The same warning is logged at most once per this many seconds.",
              range=(0.0, 3600.0), dynamic=True),
)

SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def validate(name: str, value: Any, specs: dict[str, ParamSpec] | None = None) -> str | None:
    """A reason to reject ``value`` for ``name`` beyond its declared type and range, or None.

    ``specs``: another node's table (default: the grounding node's :data:`SPECS`).
    """
    spec = (SPECS if specs is None else specs).get(name)
    if spec is None:
        return None
    if name == "device":
        v = str(value)
        if v in DEVICE_CHOICES or CUDA_NAME.fullmatch(v):
            return None
        return f"device must be one of auto, cpu, cuda, cuda:N (got {v!r})"
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)} (got {value!r})"
    if spec.range is not None and not (spec.range[0] <= value <= spec.range[1]):
        return f"{name} must be in [{spec.range[0]}, {spec.range[1]}] (got {value})"
    return None


#: Pairs of parameters that must be ordered ``(low, high)``: each is checked on its own range by
#: ``validate``, and a change of either is checked against the other's current value.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (("depth_min", "depth_max"),)


def check_values(values: dict[str, Any]) -> str | None:
    """A reason ``values`` (name -> value, a whole table or part of it) disagree with each other, or None."""
    for low, high in ORDERED_PAIRS:
        if low in values and high in values and not values[low] < values[high]:
            return f"{low} ({values[low]}) must be below {high} ({values[high]})"
    return None


def descriptor(spec: ParamSpec):
    """The rcl_interfaces ParameterDescriptor for ``spec`` (description, range, read-only hint)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = spec.description
    if not spec.dynamic:
        text += " (applied on configure/activate; change it while the node is unconfigured)"
    d = ParameterDescriptor(description=text)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices) + (
            ", cuda:N" if spec.name == "device" else "")
    if spec.range is not None:
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                         to_value=float(spec.range[1]), step=0.0)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    return d


def refuse_change(changes: list[tuple[str, Any]], state: str, specs: dict[str, ParamSpec] | None = None,
                  current: dict[str, Any] | None = None) -> str | None:
    """Why a node in lifecycle ``state`` refuses the ``(name, value)`` changes, or None to accept them.

    Values are checked like :func:`validate`; a parameter that is not ``dynamic`` can only change
    while the node is unconfigured, so a running node never disagrees with its parameters.
    ``current``: the node's values now, so that the changes are checked against the parameters
    they must agree with (:func:`check_values`).
    """
    specs = SPECS if specs is None else specs
    for name, value in changes:
        spec = specs.get(name)
        if spec is None:
            continue
        reason = validate(name, value, specs)
        if reason:
            return reason
        if not spec.dynamic and state != "unconfigured":
            return (f"{name} is applied on configure/activate; deactivate and clean up the node "
                    f"(lifecycle state now {state}) before changing it")
    if current is not None:
        return check_values({**current, **dict(changes)})
    return None


def declare_all(node, specs: tuple[ParamSpec, ...] = PARAMS) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` and return their values; an invalid value from a params file
    is logged as an error and replaced by the default."""
    values = {}
    for spec in specs:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))
        value = node.get_parameter(spec.name).value
        reason = validate(spec.name, value, {p.name: p for p in specs})
        if reason:
            node.get_logger().error(f"parameter {reason}; using the default {spec.default!r}")
            value = spec.default
        values[spec.name] = value
    for low, high in ORDERED_PAIRS:
        reason = check_values({k: values[k] for k in (low, high) if k in values})
        if reason:
            node.get_logger().error(f"parameter {reason}; using the defaults of both")
            values.update({k: p.default for p in specs for k in (low, high) if p.name == k})
    return values
