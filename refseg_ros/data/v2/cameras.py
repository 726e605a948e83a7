"""Tabletop v2 cameras: a physical lens per scene (the camera never zooms with distance).

A camera is drawn as a lens (horizontal field of view), an image shape (4:3, 16:9 or portrait
3:4) and a pose around a point on the table (distance, pitch below the horizontal, yaw around the
table's vertical axis, roll around the optical axis). ``TRAIN_RANGES`` is what train, val, test
and the other held-out splits use; the ``cameras`` split draws at least one of hfov, distance,
pitch or roll from the bands outside them (``HELD_OUT_BANDS``), so together they cover
``FULL_RANGES``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseg_ros.data import geometry

#: (width, height) per aspect at long side 1; scaled by the requested long side
ASPECTS = {"4:3": (4, 3), "16:9": (16, 9), "3:4": (3, 4)}
FULL_RANGES = {"hfov_deg": (55.0, 90.0), "distance_m": (0.3, 2.0), "pitch_deg": (20.0, 88.0),
               "roll_deg": (0.0, 25.0)}
TRAIN_RANGES = {"hfov_deg": (55.0, 82.0), "distance_m": (0.3, 1.6), "pitch_deg": (25.0, 80.0),
                "roll_deg": (0.0, 18.0)}
HELD_OUT_BANDS = {"hfov_deg": (82.0, 90.0), "distance_m": (1.6, 2.0), "pitch_deg": (80.0, 88.0),
                  "roll_deg": (18.0, 25.0)}
YAW_DEG = (-50.0, 50.0)


@dataclass
class Camera:
    """A sampled camera: image size, intrinsics and pose (optical frame in the table frame)."""

    width: int
    height: int
    aspect: str
    hfov_deg: float
    distance_m: float
    pitch_deg: float
    yaw_deg: float
    roll_deg: float  # signed
    target: np.ndarray  # the table point the optical axis passes through
    T_table_camera: np.ndarray

    @property
    def K(self) -> np.ndarray:
        return intrinsics_hfov(self.width, self.height, self.hfov_deg)

    @property
    def vfov_deg(self) -> float:
        return float(np.degrees(2 * np.arctan((self.height / 2.0) / self.K[1, 1])))

    def meta(self) -> dict:
        return {"aspect": self.aspect, "hfov_deg": round(self.hfov_deg, 4),
                "vfov_deg": round(self.vfov_deg, 4), "distance_m": round(self.distance_m, 5),
                "pitch_deg": round(self.pitch_deg, 4), "yaw_deg": round(self.yaw_deg, 4),
                "roll_deg": round(self.roll_deg, 4),
                "target_table": [round(float(v), 5) for v in self.target]}


def image_size(aspect: str, long_side: int) -> tuple[int, int]:
    aw, ah = ASPECTS[aspect]
    if aw >= ah:
        return int(long_side), int(round(long_side * ah / aw))
    return int(round(long_side * aw / ah)), int(long_side)


def intrinsics_hfov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """K for a horizontal field of view, square pixels, principal point where TinyRenderer puts
    it (see :func:`refseg_ros.data.geometry.intrinsics`)."""
    f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0 - 1.0], [0.0, 0.0, 1.0]])


def hfov_from_K(K: np.ndarray, width: int) -> float:
    return float(np.degrees(2 * np.arctan((width / 2.0) / np.asarray(K)[0, 0])))


def _draw(rng, name: str, held_out: set[str]) -> float:
    lo, hi = (HELD_OUT_BANDS if name in held_out else TRAIN_RANGES)[name]
    return float(rng.uniform(lo, hi))


def sample_camera(rng: np.random.Generator, long_side: int = 320, held_out: bool = False,
                  aspect_p=(0.5, 0.3, 0.2)) -> Camera:
    """A camera for one scene. ``held_out``: at least one parameter outside the train ranges."""
    aspect = list(ASPECTS)[int(rng.choice(len(ASPECTS), p=np.asarray(aspect_p)))]
    width, height = image_size(aspect, long_side)
    out: set[str] = set()
    if held_out:
        names = list(HELD_OUT_BANDS)
        out.add(names[int(rng.integers(len(names)))])
        for n in names:
            if rng.random() < 0.25:
                out.add(n)
    hfov = _draw(rng, "hfov_deg", out)
    distance = _draw(rng, "distance_m", out)
    pitch = _draw(rng, "pitch_deg", out)
    roll = _draw(rng, "roll_deg", out) * (1 if rng.random() < 0.5 else -1)
    yaw = float(rng.uniform(*YAW_DEG))
    target = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.15), 0.0])
    T = pose(target, distance, pitch, yaw, roll)
    return Camera(width, height, aspect, hfov, distance, pitch, yaw, roll, target, T)


def pose(target, distance: float, pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Optical frame in the table frame: from the near (-y) side, looking at ``target``."""
    pitch, yaw = np.radians(pitch_deg), np.radians(yaw_deg)
    heading = -np.pi / 2 + yaw
    eye = np.asarray(target, float) + distance * np.array(
        [np.cos(pitch) * np.cos(heading), np.cos(pitch) * np.sin(heading), np.sin(pitch)])
    T = geometry.look_at(eye, target)
    r = np.radians(roll_deg)
    Rz = np.array([[np.cos(r), -np.sin(r), 0.0], [np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]])
    T[:3, :3] = T[:3, :3] @ Rz
    return T


def in_ranges(meta: dict, ranges: dict) -> bool:
    """Whether a stored camera (``meta()``) lies inside ``ranges`` (roll by magnitude)."""
    for name, (lo, hi) in ranges.items():
        v = abs(meta[name]) if name == "roll_deg" else meta[name]
        if not lo - 1e-6 <= v <= hi + 1e-6:
            return False
    return True
