"""3D position of a grounded object from its mask, a depth image and pinhole intrinsics. No ROS.

The point is the mask's centroid pixel back-projected at the *median* depth of the masked pixels
that have a valid depth: depth sensors leave holes (0 or NaN) on dark, shiny and thin objects, and
masks that spill over the object's edge pick up background depth; the median ignores both as long
as most of the mask lies on the object. The result is in the camera's optical frame (x right,
y down, z forward), in metres, like ``Grounding.position``.

Distortion is ignored: use rectified images, or registered depth from a driver that aligns depth
to the colour camera (``K`` of the colour ``camera_info``).

``camera_info`` comes from the network, so its camera model is checked against physical ranges
before anything is back-projected: focal lengths ``fx, fy`` in [``MIN_FOCAL_PX``, ``MAX_FOCAL_PX``]
pixels (a sub-pixel focal length turns any offset into kilometres, a denormal one into infinity),
and the principal point at most ``PRINCIPAL_POINT_MARGIN`` image widths (heights) outside the
image (a cropped or shifted sensor keeps it near; 1e308 is no camera). Out of range: no position,
with a reason. A point that is not finite, or whose ray leaves the optical axis at more than
``MAX_RAY_SLOPE`` (lateral offset per metre of depth, about 89.4 degrees: no rectified image sees
that far sideways), is never returned; its depth lies within the depth limits by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Intrinsics", "PositionResult", "mask_centroid", "object_position", "MIN_FOCAL_PX", "MAX_FOCAL_PX",
           "PRINCIPAL_POINT_MARGIN", "MAX_RAY_SLOPE"]

MIN_FOCAL_PX = 1.0
MAX_FOCAL_PX = 1e5
PRINCIPAL_POINT_MARGIN = 2.0
MAX_RAY_SLOPE = 100.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics; ``width``/``height`` are the image size they belong to (0 = unknown)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0
    height: int = 0

    @classmethod
    def from_k(cls, k, width: int = 0, height: int = 0) -> "Intrinsics":
        """From a row-major 3x3 camera matrix (``sensor_msgs/CameraInfo.k``)."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise ValueError(f"camera matrix needs 9 values, got {k.size}")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height))

    @property
    def valid(self) -> bool:
        """Intrinsics are present (finite, positive focal lengths); see :meth:`problem` for plausible."""
        return bool(np.isfinite([self.fx, self.fy, self.cx, self.cy]).all() and self.fx > 0 and self.fy > 0)

    def problem(self, width: int = 0, height: int = 0) -> str:
        """Why these are not a physical camera's intrinsics for a ``width`` x ``height`` image
        (default: their own size; 0 = unknown, the principal point is then not checked), or ""."""
        if not self.valid:
            return "camera intrinsics are missing or invalid (K has fx or fy <= 0, or a non-finite value)"
        width, height = width or self.width, height or self.height
        bad = [f"{name}={value:.6g}" for name, value in (("fx", self.fx), ("fy", self.fy))
               if not MIN_FOCAL_PX <= value <= MAX_FOCAL_PX]
        m = PRINCIPAL_POINT_MARGIN
        if width and not -m * width <= self.cx <= (1 + m) * width:
            bad.append(f"cx={self.cx:.6g}")
        if height and not -m * height <= self.cy <= (1 + m) * height:
            bad.append(f"cy={self.cy:.6g}")
        if not bad:
            return ""
        return (f"camera intrinsics outside physical ranges ({', '.join(bad)}; fx, fy must lie in "
                f"[{MIN_FOCAL_PX:g}, {MAX_FOCAL_PX:g}] px, cx, cy within {m:g} image sizes of the image)")

    def scaled_to(self, width: int, height: int) -> "Intrinsics":
        """The same camera at another resolution (a driver publishing camera_info for a binned image)."""
        if not self.width or not self.height or (self.width, self.height) == (width, height):
            return self
        sx, sy = width / self.width, height / self.height
        # Pixel centres sit at integer coordinates, so the principal point scales about -0.5.
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                          width, height)


@dataclass(frozen=True)
class PositionResult:
    #: (x, y, z) in metres, or None when no position could be computed (see ``reason``).
    point: np.ndarray | None
    #: Masked pixels with a valid depth.
    valid_pixels: int
    #: Why ``point`` is None (empty when it is not).
    reason: str = ""


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Mean (u, v) pixel coordinate of the mask (pixel centres at integers), or None if empty.

    From the per-row and per-column pixel counts (exact integer sums), not from the coordinates of
    every pixel, which would cost 16 bytes per masked pixel."""
    cols = np.count_nonzero(mask, axis=0)
    count = int(cols.sum())
    if count == 0:
        return None
    rows = np.count_nonzero(mask, axis=1)
    return (float(int(np.dot(cols, np.arange(len(cols), dtype=np.int64))) / count),
            float(int(np.dot(rows, np.arange(len(rows), dtype=np.int64))) / count))


def object_position(mask: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics, *,
                    min_valid_pixels: int = 10, min_depth: float = 0.05,
                    max_depth: float = 20.0) -> PositionResult:
    """Back-project the mask's centroid at the median valid depth under the mask.

    Args:
        mask: bool (H, W), the object's pixels in the colour image.
        depth_m: float depth in metres registered to the colour image; NaN, inf, 0 and negative
            values are invalid. A different resolution is resampled (nearest) to the mask's.
        intrinsics: the colour camera's; rescaled if they were given for another resolution.
        min_valid_pixels: fewer valid depths than this under the mask gives no position.
        min_depth, max_depth: depths outside this range (metres) count as invalid.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    h, w = mask.shape
    if not intrinsics.valid:
        return PositionResult(None, 0, intrinsics.problem())
    k = intrinsics.scaled_to(w, h)
    problem = k.problem(w, h)
    if problem:
        return PositionResult(None, 0, problem)
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2 or depth.size == 0:
        return PositionResult(None, 0, f"depth image has shape {depth.shape}, expected (H, W)")
    if depth.shape != mask.shape:
        import cv2

        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
    centroid = mask_centroid(mask)
    if centroid is None:
        return PositionResult(None, 0, "mask is empty")
    values = depth[mask]
    with np.errstate(invalid="ignore"):
        values = values[np.isfinite(values) & (values >= min_depth) & (values <= max_depth)]
    if values.size < max(1, min_valid_pixels):
        return PositionResult(None, int(values.size),
                              f"{values.size} of {int(mask.sum())} masked pixels have a valid depth "
                              f"(need {max(1, min_valid_pixels)})")
    z = float(np.median(values))
    u, v = centroid
    point = np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], dtype=np.float64)
    if not np.isfinite(point).all():
        return PositionResult(None, int(values.size), "the back-projected point is not finite")
    if max(abs(point[0]), abs(point[1])) > MAX_RAY_SLOPE * z:
        return PositionResult(None, int(values.size), f"the back-projected point ({point[0]:.3g}, {point[1]:.3g}, "
                                                      f"{z:.3g}) m lies almost sideways of the camera")
    return PositionResult(point, int(values.size))
