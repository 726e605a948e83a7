"""Camera frames and depth scenes to feed refseg_node in tests and drills (no ROS needed)."""
from __future__ import annotations

import numpy as np

from refseg_ros.bench.latency import synthetic_frame  # one drawing for the bench and the tests


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
