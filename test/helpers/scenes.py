"""Camera frames and depth scenes to feed refseg_node in tests and drills (no ROS needed)."""
from __future__ import annotations

import numpy as np


def synthetic_frame(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A rendered-looking tabletop: wooden table, soft shading, a red mug, a blue cube, a yellow duck."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 0.75 + 0.25 * (1 - y / h) * (1 - np.abs(x / w - 0.5))
    img = (np.array([181, 140, 99], np.float32)[None, None] * shade[..., None]).astype(np.uint8)
    s = w / 640
    cv2.rectangle(img, (int(120 * s), int(220 * s)), (int(190 * s), int(300 * s)), (200, 30, 30), -1)  # mug
    cv2.ellipse(img, (int(195 * s), int(260 * s)), (int(18 * s), int(25 * s)), 0, -90, 90, (200, 30, 30),
                max(1, int(8 * s)))
    cv2.rectangle(img, (int(300 * s), int(240 * s)), (int(360 * s), int(300 * s)), (40, 60, 200), -1)  # cube
    cv2.ellipse(img, (int(480 * s), int(270 * s)), (int(40 * s), int(30 * s)), 0, 0, 360, (240, 210, 40), -1)
    cv2.circle(img, (int(505 * s), int(235 * s)), int(18 * s), (240, 210, 40), -1)  # duck
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def tabletop_frames(seeds, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """RGB frames of the tabletop generator's scenes ``seeds``; synthetic frames where the
    generator cannot run here (the node tests check structure, not what the scene shows)."""
    try:
        from refseg_ros.data import render_scene

        return [render_scene(seed, width, height).image for seed in seeds]
    except Exception:  # noqa: BLE001 - the generator is optional for these structural tests
        return [synthetic_frame(height, width, seed=i) for i in range(len(seeds))]


def box_scene(h=240, w=320):
    """A box-shaped object at 0.60 m in front of a 1.20 m wall with sensor holes; fx = fy = 300."""
    k = np.array([[300.0, 0, (w - 1) / 2], [0, 300.0, (h - 1) / 2], [0, 0, 1]])
    depth = np.full((h, w), 1200, np.uint16)
    y0, y1, x0, x1 = int(h * 0.15), int(h * 0.85), int(w * 0.15), int(w * 0.85)
    depth[y0:y1, x0:x1] = 600
    rng = np.random.default_rng(1)
    depth[(rng.random((h, w)) < 0.2) & (depth == 1200)] = 0
    return depth, k
