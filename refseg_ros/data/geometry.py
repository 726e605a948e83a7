"""Camera geometry shared by the renderer, the on-disk format and the tests (numpy only).

Conventions:

* The camera frame is the ROS *optical* frame: x right, y down, z forward, metres.
* ``T_world_cam`` is the 4x4 pose of that frame in the world (p_world = T @ p_cam).
* Intrinsics follow ``sensor_msgs/CameraInfo``: pixel (u, v) = (column, row) with (0, 0) the
  centre of the top-left pixel, u = fx * x / z + cx, v = fy * y / z + cy.
* pybullet's TinyRenderer samples the image so that the optical axis lands on
  (cx, cy) = (W / 2, H / 2 - 1) in those coordinates (measured with spheres on and off the axis),
  not on the geometric centre ((W - 1) / 2, (H - 1) / 2); :func:`intrinsics` encodes that.
"""
from __future__ import annotations

import numpy as np

#: depth PNGs hold millimetres; 0 means "no valid depth"
DEPTH_SCALE_MM = 1000.0


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Pose (4x4) of an optical frame at ``eye`` looking at ``target``; image up towards ``up``."""
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def intrinsics(width: int, height: int, vfov_deg: float) -> np.ndarray:
    """3x3 K of the renderer's pinhole camera (square pixels) for a vertical field of view."""
    f = (height / 2.0) / np.tan(np.radians(vfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0 - 1.0], [0.0, 0.0, 1.0]])


def camera_info(width: int, height: int, K: np.ndarray, frame_id: str = "camera_color_optical_frame"
                ) -> dict:
    """The fields of a ``sensor_msgs/CameraInfo`` (no distortion: plumb_bob with zero D)."""
    K = np.asarray(K, dtype=np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return {
        "frame_id": frame_id,
        "width": int(width),
        "height": int(height),
        "distortion_model": "plumb_bob",
        "D": [0.0, 0.0, 0.0, 0.0, 0.0],
        "K": [float(v) for v in K.reshape(-1)],
        "R": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "P": [float(v) for v in P.reshape(-1)],
    }


def K_from_camera_info(info: dict) -> np.ndarray:
    return np.asarray(info["K"], dtype=np.float64).reshape(3, 3)


def pybullet_view_projection(T_world_cam: np.ndarray, width: int, height: int, vfov_deg: float,
                             near: float, far: float) -> tuple[list[float], list[float]]:
    """The column-major OpenGL view and projection matrices pybullet's getCameraImage expects.

    The OpenGL camera frame is the optical frame with y and z negated.
    """
    gl_from_optical = np.diag([1.0, -1.0, -1.0, 1.0])
    T_world_gl = T_world_cam @ gl_from_optical
    view = np.linalg.inv(T_world_gl)
    t = np.tan(np.radians(vfov_deg) / 2.0)
    aspect = width / height
    proj = np.zeros((4, 4))
    proj[0, 0] = 1.0 / (aspect * t)
    proj[1, 1] = 1.0 / t
    proj[2, 2] = (near + far) / (near - far)
    proj[2, 3] = 2.0 * near * far / (near - far)
    proj[3, 2] = -1.0
    return view.T.reshape(-1).tolist(), proj.T.reshape(-1).tolist()


def depth_buffer_to_metres(buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Turn the renderer's non-linear z-buffer into z (metres along the optical axis); 0 = none."""
    buffer = np.asarray(buffer, dtype=np.float64)
    z = far * near / (far - (far - near) * buffer)
    z[buffer >= 1.0 - 1e-7] = 0.0
    return z.astype(np.float32)


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres (0 = invalid) to the uint16 millimetres stored in depth PNGs (out of range -> 0)."""
    mm = np.round(np.asarray(depth_m, dtype=np.float64) * DEPTH_SCALE_MM)
    mm[(mm <= 0) | (mm > 65535)] = 0
    return mm.astype(np.uint16)


def mm_to_depth(depth_mm: np.ndarray) -> np.ndarray:
    return np.asarray(depth_mm, dtype=np.float32) / DEPTH_SCALE_MM


def quaternion_matrix(q) -> np.ndarray:
    """3x3 rotation of a unit quaternion ``(x, y, z, w)`` (pybullet's order)."""
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ T[:3, :3].T + T[:3, 3]


def project(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """(N, 3) optical-frame points to (N, 2) pixel coordinates (u, v)."""
    p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    uv = p[:, :2] / p[:, 2:3]
    return np.stack([K[0, 0] * uv[:, 0] + K[0, 2], K[1, 1] * uv[:, 1] + K[1, 2]], axis=1)


def backproject(depth_m: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Optical-frame points (N, 3) of the pixels with valid depth (inside ``mask`` if given)."""
    valid = depth_m > 0
    if mask is not None:
        valid &= mask.astype(bool)
    v, u = np.nonzero(valid)
    z = depth_m[v, u].astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1)
