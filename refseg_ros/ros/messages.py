"""ROS messages in and out of the grounding node: colour frames and depth in; results out as a
``GroundingArray``, the union mask, the rviz overlay, markers and the target point.

Every box and mask guarantee is made before this module (``model/postprocess.PostProcess``): here
results are only copied into messages, with 3D positions added from depth.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CompressedImage
from visualization_msgs.msg import Marker, MarkerArray

from refseg_ros.msg import Grounding, GroundingArray
from refseg_ros.ros.geometry import Intrinsics, object_position
from refseg_ros.ros.images import (MAX_IMAGE_PIXELS, SUPPORTED_ENCODINGS, ImageConversionError, check_pixels,
                                   compressed_dimensions, compressed_to_numpy, depth_to_metres, imgmsg_to_numpy,
                                   numpy_to_imgmsg, to_rgb8)

#: Encodings ``to_rgb8`` turns into the model's RGB input (depth encodings are not frames to ground).
COLOUR_ENCODINGS = ("bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16", "8UC1", "8UC3", "8UC4")
#: Bytes of a CompressedImage read for its size in the subscription callback (a JPEG whose frame
#: header lies further in is checked when the worker decodes it).
_HEADER_BYTES = 1 << 16


# ---- in ----------------------------------------------------------------------------------------------
def colour_problem(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    """Why ``msg`` cannot be a colour frame ("" if it may be; JPEG/PNG data is checked on decode).
    Cheap: sizes and encoding only, no pixel copies (a JPEG/PNG header is read for its size)."""
    if isinstance(msg, CompressedImage):
        if not len(msg.data):
            return f"empty CompressedImage (format {msg.format!r})"
        if "compresseddepth" in str(msg.format).lower():
            return f"CompressedImage format {msg.format!r} is depth, not a colour image"
        try:
            kind, width, height = compressed_dimensions(bytes(msg.data[:_HEADER_BYTES]))
            check_pixels(width, height, max_pixels, f"compressed {kind}")
        except ImageConversionError as exc:
            if "without a readable frame header" not in str(exc):  # a header past the first bytes: decode checks
                return str(exc)
        return ""
    if msg.encoding not in COLOUR_ENCODINGS:
        if msg.encoding in SUPPORTED_ENCODINGS:
            return (f"image encoding {msg.encoding!r} is not a colour or mono image "
                    f"(use one of {', '.join(COLOUR_ENCODINGS)})")
        return f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(COLOUR_ENCODINGS)}"
    try:
        imgmsg_to_numpy(msg, max_pixels)
    except ImageConversionError as exc:
        return str(exc)
    return ""


def decode_colour(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An Image or CompressedImage as ``uint8 (H, W, 3)`` RGB; raises ``ImageConversionError``
    (also for images over ``max_pixels``, refused before decoding)."""
    if isinstance(msg, CompressedImage):
        arr, encoding = compressed_to_numpy(msg, max_pixels)
    else:
        arr, encoding = imgmsg_to_numpy(msg, max_pixels), msg.encoding
    return to_rgb8(arr, encoding)


@dataclass
class DepthView:
    """Depth in metres and intrinsics for one colour frame, or why there are none."""

    depth_m: np.ndarray | None = None
    intrinsics: Intrinsics | None = None
    problem: str = ""

    @classmethod
    def from_messages(cls, depth_msg, info, max_pixels: int = MAX_IMAGE_PIXELS) -> "DepthView":
        """From a depth Image (16UC1 mm / 32FC1 m) and a CameraInfo; problems are reported, not raised."""
        try:
            depth = depth_to_metres(imgmsg_to_numpy(depth_msg, max_pixels), depth_msg.encoding)
        except ImageConversionError as exc:
            return cls(problem=f"bad depth image: {exc}")
        intrinsics = Intrinsics.from_k(info.k, info.width, info.height)
        if not intrinsics.valid:
            return cls(problem="camera_info has no intrinsics (K is zero)")
        problem = intrinsics.problem()
        if problem:
            return cls(problem=f"camera_info: {problem}")
        return cls(depth, intrinsics)

    def frame(self):
        """The depth as the predictor takes it (``model.ground_plane.DepthFrame``: intrinsics of the
        depth image's own size), or None without depth."""
        from refseg_ros.model.ground_plane import DepthFrame

        if self.depth_m is None or self.intrinsics is None or self.depth_m.ndim != 2 or self.depth_m.size == 0:
            return None
        h, w = self.depth_m.shape
        k = self.intrinsics.scaled_to(w, h)
        return DepthFrame(self.depth_m, k.fx, k.fy, k.cx, k.cy)


def match_depth(matcher, stamp_ns: int, slop_s: float, wait, stopped, max_pixels: int = MAX_IMAGE_PIXELS) -> DepthView:
    """The depth (and camera_info) for the colour frame stamped ``stamp_ns``, from ``matcher``.

    The depth frame usually lands within milliseconds of the colour one. Until a depth frame
    stamped at or after the colour frame has arrived, its partner may still be in flight, and an
    older frame within the slop would be a worse match: wait (``wait(seconds)``) a little for it,
    unless ``stopped()``.
    """
    deadline = time.monotonic() + min(0.1, slop_s)
    while matcher.may_still_arrive("depth", stamp_ns) and time.monotonic() < deadline and not stopped():
        wait(0.005)
    depth_msg = matcher.match("depth", stamp_ns)
    if depth_msg is None:
        return DepthView(problem=f"no depth image within sync_slop={slop_s} s of the colour image")
    info = matcher.match("camera_info", stamp_ns) or matcher.latest("camera_info")
    if info is None:
        return DepthView(problem="no camera_info received (needed to back-project depth)")
    return DepthView.from_messages(depth_msg, info, max_pixels)


@dataclass(frozen=True)
class DepthLimits:
    min_depth: float = 0.05
    max_depth: float = 10.0
    min_valid_pixels: int = 10


# ---- out ---------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One frame's results as messages, plus what the other outputs need."""

    array: GroundingArray
    found_masks: list = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (warning, throttle key)
    not_found: int = 0  # expressions answered "not found"


def grounding_array(header, text: str, results, depth: DepthView | None = None, fill_masks: bool = True,
                    limits: DepthLimits = DepthLimits()) -> Outcome:
    """``GroundingArray`` for one frame from post-processed results (``model.postprocess.Grounding``).

    One ``Grounding`` per answer (``utils.overlay.answers``), in command order: an expression not
    found gives one with ``found`` false, a zero box, an empty mask and no position, since a robot
    must not act on the model's best guess; one found that asks for every match ("all the red
    cubes") gives one per object, adjacent and with the same expression text.
    """
    from refseg_ros.utils.overlay import answers

    array = GroundingArray()
    array.header = header
    array.command = text
    out = Outcome(array)
    for a in answers(results):
        g = Grounding()
        g.header = header
        g.expression = a.expression
        g.score = float(a.score)
        g.found = a.found
        array.results.append(g)
        if not a.found:
            out.not_found += 1
            continue
        g.x_min, g.y_min, g.x_max, g.y_max = a.box
        if fill_masks:
            g.mask = numpy_to_imgmsg(mono8(a.mask), "mono8", header)
        if depth is not None and depth.depth_m is not None:
            pos = object_position(a.mask, depth.depth_m, depth.intrinsics, min_valid_pixels=limits.min_valid_pixels,
                                  min_depth=limits.min_depth, max_depth=limits.max_depth)
            if pos.point is not None:
                g.has_position = True
                g.position.x, g.position.y, g.position.z = (float(v) for v in pos.point)
            else:
                out.notes.append((f"no 3D position for {a.expression!r}: {pos.reason}",
                                  f"nodepth:{pos.reason.split(' ')[-1]}"))
        out.found_masks.append(a.mask)
    return out


def mono8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as mono8 (255 = object), with one image-sized temporary."""
    return np.multiply(np.asarray(mask, dtype=bool).view(np.uint8), np.uint8(255))


def union_mask(header, shape: tuple[int, int], masks) -> object:
    """mono8 Image: 255 where any of ``masks`` is set."""
    union = np.zeros(shape, np.uint8)
    for m in masks:
        union[m] = 255
    return numpy_to_imgmsg(union, "mono8", header)


def overlay(header, rgb: np.ndarray, results, alpha: float) -> object:
    """bgr8 Image of ``rgb`` with the results drawn (masks for the found ones, "not found: ..." lines)."""
    import cv2

    from refseg_ros.utils.overlay import draw_groundings

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    drawn = draw_groundings(bgr, results, alpha=alpha, channel_order="bgr", copy=False)
    return numpy_to_imgmsg(drawn, "bgr8", header)


def target(header, array: GroundingArray) -> PointStamped | None:
    """The first found result's 3D position, or None when it has none."""
    first = next((g for g in array.results if g.found), None)
    if first is None or not first.has_position:
        return None
    point = PointStamped()
    point.header = header
    point.point = first.position
    return point


def markers(header, array: GroundingArray, scale: float) -> MarkerArray:
    """A sphere and a text label per found result with a 3D position (after a DELETEALL); the
    objects of one expression share its colour."""
    from refseg_ros.utils.overlay import color_for

    out = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.ns = "refseg"
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    colour_of: dict[str, int] = {}
    for i, g in enumerate(array.results):
        index = colour_of.setdefault(g.expression, len(colour_of))
        if not (g.found and g.has_position):
            continue
        r, gr, b = (c / 255.0 for c in color_for(index))
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
