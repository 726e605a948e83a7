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


def front_behind_relations(seed: int, width: int = 640, height: int = 480, clear_m: float = 0.08):
    """Rendered tabletop scene ``seed`` and its "the <kind> in front of / behind the <kind>"
    expressions (landmark: a kind of which there is one) whose truth is clear: every object of the
    head farther than ``clear_m`` metres on the other side of the landmark along the table (the
    generator's ground distance from the camera), or one nearer than that on the named side.
    Returns ``(scene, false_ones, true_ones)``; only kinds in view."""
    from refseg_ros.data.sim_scene import ground_truth
    from refseg_ros.data.tabletop import render_scene

    scene = render_scene(seed, width, height)
    camera = np.asarray(scene.T_table_camera)[:2, 3]
    visible = {o["category"] for o in ground_truth(scene, seed, 0, "f", (0, 0))["objects"] if o["bbox"] is not None}
    kinds: dict[str, list[float]] = {}
    for o in scene.objects:
        if o["category"] in visible:
            kinds.setdefault(o["category"], []).append(float(np.hypot(*(np.asarray(o["position_table"][:2]) - camera))))
    said: dict[str, list[str]] = {"false": [], "true": []}
    for kind, dists in sorted(kinds.items()):
        for landmark, (ld,) in sorted((k, v) for k, v in kinds.items() if k != kind and len(v) == 1):
            for relation, side in (("in front of", 1), ("behind", -1)):
                d = [side * (ld - x) for x in dists]
                truth = "false" if max(d) < -clear_m else "true" if max(d) > clear_m else None
                if truth:
                    said[truth].append(f"the {kind} {relation} the {landmark}")
    return scene, said["false"], said["true"]
