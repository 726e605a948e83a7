"""Distances along the table from a depth image: what "in front of" and "behind" are measured in.

"The mug in front of the duck" means the mug is nearer the camera than the duck, along the table:
the tabletop generator's truth is the horizontal distance from the camera to each object's centre
(``refseg_ros.language.semantics``). The colour image alone gets this wrong often enough that the
check was not worth it (docs/model.md); with a depth image it is measured. This module turns one
depth frame into a grid of such distances, one per cell of the model's mask grid, so that the
composition (:mod:`refseg_ros.model.compose`) can compare the objects it already has as masks.

The table's normal comes from the depth itself: the plane most depth points lie on (RANSAC over
the grid's points), oriented towards the camera. A cell's distance is the length of the part of
its 3D point (camera frame, metres) that lies in that plane. Measured on v2 val with ground-truth
masks (the objects' visible points, their median): the depth check agrees with the generator's
truth as well as the true table pose does (docs/model.md, "In front of and behind are measured").

Pure numpy; no model, no ROS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DepthFrame", "ground_distance_grid", "table_normal"]

#: A point within this distance (metres) of a candidate plane counts for it.
PLANE_TOLERANCE_M = 0.01
#: Least share of the valid points on the plane for it to be taken as the table.
MIN_PLANE_SHARE = 0.2
#: Least number of valid depth points in the grid to fit a plane at all.
MIN_POINTS = 50
#: Candidate planes tried (a fixed seed: the same frame always gives the same plane).
RANSAC_TRIES = 96
#: Points a candidate is scored on (a random subset of the grid's; the chosen plane is refitted on all).
SCORE_POINTS = 1000


@dataclass(frozen=True)
class DepthFrame:
    """A depth image in metres (``float32 (H, W)``, 0 or non-finite = no reading) with the pinhole
    intrinsics of that image (pixels). It may have another size than the colour image it goes with,
    provided it covers the same view (a depth image registered to the colour camera)."""

    depth_m: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        d = self.depth_m
        if not isinstance(d, np.ndarray) or d.ndim != 2 or d.size == 0:
            raise ValueError(f"depth must be a non-empty (H, W) array; got {getattr(d, 'shape', type(d))}")
        if not (np.isfinite([self.fx, self.fy, self.cx, self.cy]).all() and self.fx > 0 and self.fy > 0):
            raise ValueError(f"invalid intrinsics fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}")

    @classmethod
    def from_k(cls, depth_m: np.ndarray, k) -> "DepthFrame":
        """From a row-major 3x3 camera matrix (``sensor_msgs/CameraInfo.k``)."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise ValueError(f"camera matrix needs 9 values, got {k.size}")
        return cls(np.asarray(depth_m, dtype=np.float32), float(k[0]), float(k[4]), float(k[2]), float(k[5]))


def table_normal(points: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Unit normal of the plane most of ``points`` (``(N, 3)``, camera frame) lie on, pointing to
    the camera's side; None when there are too few points or no plane holds
    :data:`MIN_PLANE_SHARE` of them."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < MIN_POINTS:
        return None
    rng = np.random.default_rng(seed)
    # every candidate at once, scored on at most SCORE_POINTS of the points
    sample = points[rng.choice(len(points), SCORE_POINTS, replace=False)] if len(points) > SCORE_POINTS else points
    a, b, c = (points[rng.integers(0, len(points), RANSAC_TRIES)] for _ in range(3))
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    if not ok.any():
        return None
    normals, a = normals[ok] / norms[ok, None], a[ok]
    counts = (np.abs(sample @ normals.T - (a * normals).sum(1)) < PLANE_TOLERANCE_M).sum(0)
    k = int(np.argmax(counts))
    if counts[k] < MIN_PLANE_SHARE * len(sample):
        return None
    n, a = normals[k], a[k]
    inliers = points[np.abs((points - a) @ n) < PLANE_TOLERANCE_M]
    if len(inliers) < 3:
        return None
    centred = inliers - inliers.mean(0)
    n = np.linalg.svd(centred, full_matrices=False)[2][-1]  # least-squares refit on the inliers
    if float(inliers.mean(0) @ n) > 0:  # the camera (the origin) on the positive side
        n = -n
    return n


def ground_distance_grid(frame: DepthFrame, image_size: tuple[int, int], input_size: tuple[int, int],
                         resized_size: tuple[int, int], grid_size: tuple[int, int]) -> np.ndarray | None:
    """Per cell of a ``grid_size`` ``(h, w)`` mask grid over the model input: the distance along the
    table (metres) from the camera to the cell's 3D point; NaN where the cell lies outside the
    image or has no depth. None when no table plane is found.

    ``image_size``, ``input_size``, ``resized_size``: ``(width, height)`` of the colour image, of
    the model input and of the image inside it (``model.letterbox.Letterbox``: the image fills
    ``[0, resized_w) x [0, resized_h)`` of the input).
    """
    gh, gw = grid_size
    (w, h), (iw, ih), (rw, rh) = image_size, input_size, resized_size
    dh, dw = frame.depth_m.shape
    # cell centres -> model input -> colour image -> depth image pixels
    x_in = (np.arange(gw) + 0.5) * iw / gw
    y_in = (np.arange(gh) + 0.5) * ih / gh
    u = x_in * (w / rw) * (dw / w)
    v = y_in * (h / rh) * (dh / h)
    inside_u, inside_v = u < dw, v < dh
    ui = np.clip(u.astype(np.int64), 0, dw - 1)
    vi = np.clip(v.astype(np.int64), 0, dh - 1)
    z = frame.depth_m[np.ix_(vi, ui)].astype(np.float64)
    valid = np.isfinite(z) & (z > 0) & inside_v[:, None] & inside_u[None, :]
    uu, vv = np.meshgrid(ui + 0.5, vi + 0.5)
    points = np.stack(((uu - frame.cx) / frame.fx * z, (vv - frame.cy) / frame.fy * z, z), axis=-1)
    n = table_normal(points[valid])
    if n is None:
        return None
    along = points - (points @ n)[..., None] * n
    out = np.linalg.norm(along, axis=-1).astype(np.float32)
    out[~valid] = np.nan
    return out
