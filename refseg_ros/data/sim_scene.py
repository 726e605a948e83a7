"""What the simulated camera needs from the tabletop scenes, without ROS.

* :class:`RenderProcess`: :func:`~refseg_ros.data.tabletop.render_scene` and
  :func:`~refseg_ros.data.tabletop.render_view` in a child process. pybullet holds the GIL while
  it renders a whole view, so rendering in a thread of the camera node would stall its
  publishing timer; in a child process it only costs the pipe transfer.
* :func:`orbit_pose`: slow camera motion, the scene's camera swung around the vertical axis
  through the point it looks at.
* :func:`ground_truth` / :func:`decode_instances`: a scene as one JSON-able record (objects,
  boxes, 3D positions, expressions, instance masks as a PNG) that a scorer can use live.
"""
from __future__ import annotations

import base64
import multiprocessing as mp
from typing import Any

import numpy as np

from refseg_ros.data import geometry

__all__ = ["RenderProcess", "orbit_pose", "look_at_point", "ground_truth", "decode_instances",
           "GROUND_TRUTH_VERSION"]

GROUND_TRUTH_VERSION = 1
_OBJECT_KEYS = ("category", "colour", "size", "bbox", "area", "position_cam", "position_table", "center_px",
                "distance", "ground_distance", "radius", "dimensions")


# ---------------------------------------------------------------------------------- camera motion
def look_at_point(T_table_camera: np.ndarray) -> np.ndarray:
    """Where the optical axis meets the table top (z = 0 of the table frame)."""
    T = np.asarray(T_table_camera, dtype=np.float64)
    eye, forward = T[:3, 3], T[:3, 2]
    if forward[2] > -1e-6:
        raise ValueError("the camera does not look down at the table")
    return eye + (-eye[2] / forward[2]) * forward


def orbit_pose(T_table_camera: np.ndarray, yaw_deg: float) -> np.ndarray:
    """The camera pose swung by ``yaw_deg`` around the vertical axis through its look-at point.

    Distance, height and pitch stay the same, and the image keeps no roll (``look_at``).
    """
    T = np.asarray(T_table_camera, dtype=np.float64)
    target = look_at_point(T)
    a = np.radians(yaw_deg)
    Rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    eye = target + Rz @ (T[:3, 3] - target)
    return geometry.look_at(eye, target)


# ---------------------------------------------------------------------------------- ground truth
def _encode_png(image: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def decode_instances(record: dict) -> np.ndarray:
    """``uint8 (H, W)`` instance map of a :func:`ground_truth` record: 0 = none, k + 1 = object k."""
    import cv2

    buf = np.frombuffer(base64.b64decode(record["instances_png"]), np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.shape != (record["height"], record["width"]):
        raise ValueError("ground truth instances_png is not a valid instance map")
    return image


def ground_truth(scene, scene_index: int, view_index: int, frame_id: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """One JSON-able record of what is in the frames published from ``stamp`` on.

    ``objects[k]``: category, colour, size, ``bbox`` (x_min, y_min, x_max, y_max pixel edges, None
    if out of view), ``area`` (visible pixels), ``position_cam`` (object centre, metres, in the
    optical frame ``frame_id``), ``position_table`` (table frame: origin at the table top's centre,
    z up), pixel centre, distances, radius, dimensions. ``expressions``: ``{"k": [{"sent", "type",
    "structure"}]}`` from the grammar, for the first view of the scene. ``instances_png``: base64
    8-bit PNG of the instance map (object k = value k + 1).
    """
    from refseg_ros.data.tabletop import _plain

    objects = []
    for k, o in enumerate(scene.objects):
        rec = {key: _plain(o.get(key)) for key in _OBJECT_KEYS}
        rec["id"] = k
        objects.append(rec)
    return {
        "version": GROUND_TRUTH_VERSION,
        "scene": int(scene_index),
        "view": int(view_index),
        "seed": int(scene.seed),
        "frame_id": frame_id,
        "stamp": {"sec": int(stamp[0]), "nanosec": int(stamp[1])},
        "width": scene.width,
        "height": scene.height,
        "K": [float(v) for v in np.asarray(scene.K).reshape(-1)],
        "T_table_camera": np.asarray(scene.T_table_camera, dtype=float).tolist(),
        "objects": objects,
        "expressions": {str(k): _plain(v) for k, v in scene.expressions.items()},
        "instances_png": _encode_png(scene.instances),
    }


# ---------------------------------------------------------------------------------- rendering
def _serve(conn) -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from refseg_ros.data.tabletop import render_scene, render_view

    last = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if request is None:
            return
        kind, args = request
        try:
            if kind == "scene":
                last = render_scene(*args)
                reply = ("ok", last)
            elif kind == "view":
                if last is None:
                    raise ValueError("no scene rendered yet")
                reply = ("ok", render_view(last, args[0]))
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:  # noqa: BLE001 - sent back and raised in the parent
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class RenderProcess:
    """Tabletop rendering in a child process (``spawn``: safe next to rclpy's threads).

    Not thread-safe: call it from one thread. ``close()`` (or the context manager) ends the child.
    """

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), name="refseg-render", daemon=True)
        self._proc.start()
        child.close()

    def _call(self, kind: str, *args):
        if not self._proc.is_alive():
            raise RuntimeError(f"the render process has exited (code {self._proc.exitcode})")
        try:
            self._conn.send((kind, args))
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._proc.join(timeout=5)
            raise RuntimeError(f"the render process died ({exc!r}, exit code {self._proc.exitcode})") from exc
        if status != "ok":
            raise RuntimeError(value)
        return value

    def scene(self, seed: int, width: int, height: int):
        """The tabletop scene of ``seed`` (see :func:`~refseg_ros.data.tabletop.render_scene`)."""
        return self._call("scene", int(seed), int(width), int(height))

    def view(self, T_table_camera: np.ndarray):
        """The last scene from another camera pose (see :meth:`TabletopRenderer.render_view`)."""
        return self._call("view", np.asarray(T_table_camera, dtype=np.float64))

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5)
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
