""""In front of" and "behind" checked with a depth image: the text split (``language/relation.py``;
every generated front/behind template: test_relation.py),
the table's plane and distances along it (``model/ground_plane.py``), the check on mask grids
(``model/compose.py``), and the predictor on rendered scenes with their depth and the shipped weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from refseg_ros.language.relation import DEPTH_RELATIONS, RELATIONS, RelationCheck, split_relation
from refseg_ros.model.compose import NOT_THERE_LOGIT, Composition, relation_fails, relation_part
from refseg_ros.model.ground_plane import DepthFrame, ground_distance_grid, table_normal
from refseg_ros.model.heads import GroundingOutput

BOTH = RELATIONS + DEPTH_RELATIONS


@pytest.mark.parametrize("text, name, head, landmark", [
    ("the mug in front of the duck", "in_front_of", "all the mugs", "the duck"),
    ("the red cup just behind the jar, please", "behind", "all the red cups", "the jar"),
    ("the bowl in back of the bottle of wine", "behind", "all the bowls", "the bottle of wine"),
    ("Could you hand me the box that is in front of the mac and cheese?", "in_front_of", "all the boxes",
     "the mac and cheese"),
    ("the mug left of the duck", "left_of", "all the mugs", "the duck"),
])
def test_front_and_behind_split_when_asked_for(text, name, head, landmark):
    assert split_relation(text, BOTH) == RelationCheck(name=name, head=head, landmark=landmark)
    if name in DEPTH_RELATIONS:
        assert split_relation(text) is None  # not without depth


@pytest.mark.parametrize("text", [
    "the mug in front of", "in front of the duck", "the mug in front of the duck behind the cup",
    "the mug left of the duck behind the cup", "the object behind the duck", "the front mug",
    "the mug in the front", "the mug that is not behind the duck", "all the mugs behind the duck",
])
def test_other_expressions_are_not_split_even_with_depth(text):
    assert split_relation(text, BOTH) is None


def _camera(pitch_deg: float = 55.0, height: float = 0.8):
    """Rotation (camera -> table) and position of a camera ``height`` above the table, looking down
    at ``pitch_deg`` below the horizon along the table's +y."""
    p = math.radians(pitch_deg)
    forward = np.array([0.0, math.cos(p), -math.sin(p)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1), np.array([0.0, 0.0, height])


def _table_depth(w: int = 160, h: int = 120, f: float = 140.0, boxes=()):
    """A depth image of the table plane z = 0 seen by :func:`_camera`, with upright boxes
    ``(x, y, half size, height)`` (table frame, metres) drawn as their camera-facing side."""
    R, c = _camera()
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack(((u - w / 2) / f, (v - h / 2) / f, np.ones_like(u)), axis=-1)  # camera frame, z = 1
    world = rays @ R.T
    t = -c[2] / world[..., 2]  # hits the table where the ray goes down
    z = np.where(world[..., 2] < 0, t, 0.0)
    for x, y, s, top in boxes:  # the side facing the camera: the plane y = y0 - s
        t_side = (y - s - c[1]) / world[..., 1]
        hit = c + t_side[..., None] * world
        on = (t_side > 0) & (np.abs(hit[..., 0] - x) <= s) & (hit[..., 2] >= 0) & (hit[..., 2] <= top)
        z = np.where(on & ((t_side < z) | (z == 0)), t_side, z)
    return DepthFrame(z.astype(np.float32), f, f, w / 2, h / 2), R, c


def test_table_normal_is_the_plane_under_the_objects_facing_the_camera():
    frame, R, c = _table_depth(boxes=[(0.0, 0.8, 0.05, 0.15), (0.2, 1.0, 0.04, 0.3)])
    d = frame.depth_m
    v, u = np.nonzero(d > 0)
    pts = np.stack(((u + 0.5 - frame.cx) / frame.fx * d[v, u], (v + 0.5 - frame.cy) / frame.fy * d[v, u], d[v, u]), 1)
    n = table_normal(pts)
    up = R.T @ np.array([0.0, 0.0, 1.0])  # the table's up in the camera frame
    assert n is not None and float(n @ up) > math.cos(math.radians(1.0))
    assert table_normal(pts[:10]) is None  # too few points
    rng = np.random.default_rng(0)
    assert table_normal(rng.uniform(-1, 1, (2000, 3))) is None  # no plane holds a fifth of a cloud


def test_ground_distance_grid_measures_along_the_table_and_knows_where_it_cannot():
    frame, R, c = _table_depth()
    # a 4:3 image letterboxed into a 4:3 input, grid 30 x 40; the true distance along the table of
    # every cell's point on the table
    grid = ground_distance_grid(frame, (160, 120), (320, 240), (320, 240), (30, 40))
    assert grid.shape == (30, 40)
    u = (np.arange(40) + 0.5) * 4
    v = (np.arange(30) + 0.5) * 4
    uu, vv = np.meshgrid(np.floor(u) + 0.5, np.floor(v) + 0.5)
    rays = np.stack(((uu - 80) / 140, (vv - 60) / 140, np.ones_like(uu)), -1) @ R.T
    hit = c + (-c[2] / rays[..., 2])[..., None] * rays
    truth = np.hypot(hit[..., 0] - c[0], hit[..., 1] - c[1])
    ok = np.isfinite(grid)
    assert ok.mean() > 0.5 and np.allclose(grid[ok], truth[ok], atol=1e-3)
    # the same view from a depth image of half the size (intrinsics of that image)
    half = DepthFrame(frame.depth_m[::2, ::2].copy(), 70.0, 70.0, 40.0, 30.0)
    g2 = ground_distance_grid(half, (160, 120), (320, 240), (320, 240), (30, 40))
    both = ok & np.isfinite(g2)
    assert both.mean() > 0.5 and np.allclose(g2[both], grid[both], atol=0.02)
    # letterboxed: the input's padding below the image has no distance
    g3 = ground_distance_grid(frame, (160, 120), (320, 320), (320, 240), (40, 40))
    assert np.isnan(g3[31:]).all() and np.isfinite(g3[:30]).mean() > 0.5
    # no readings at all: no plane
    assert ground_distance_grid(DepthFrame(np.zeros((120, 160), np.float32), 140, 140, 80, 60),
                                (160, 120), (320, 240), (320, 240), (30, 40)) is None


def test_depth_frame_refuses_what_is_no_depth_image():
    with pytest.raises(ValueError):
        DepthFrame(np.zeros((0, 4), np.float32), 1, 1, 0, 0)
    with pytest.raises(ValueError):
        DepthFrame(np.zeros((4, 4, 3), np.float32), 1, 1, 0, 0)
    with pytest.raises(ValueError):
        DepthFrame(np.zeros((4, 4), np.float32), 0, 1, 0, 0)
    with pytest.raises(ValueError):
        DepthFrame.from_k(np.zeros((4, 4), np.float32), [1, 2, 3])


def _rows_ground(h: int = 10, w: int = 20) -> np.ndarray:
    """Distances along the table growing with the row from the bottom: row 9 is 1.0 m, row 0 1.9 m."""
    return np.repeat((1.0 + 0.1 * (h - 1 - np.arange(h)))[:, None], w, axis=1).astype(np.float32)


def _part(h=10, w=20, rows=(0, 1), cols=(0, 1)) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[rows[0]:rows[1], cols[0]:cols[1]] = True
    return m


def test_front_and_behind_fail_only_when_no_object_is_on_the_named_side():
    g = _rows_ground()
    duck = _part(rows=(4, 6), cols=(8, 11))            # 1.45 m
    far_mugs = _part(rows=(0, 2), cols=(2, 4)) | _part(rows=(1, 3), cols=(14, 16))  # 1.85, 1.75 m
    near_mug = _part(rows=(7, 9), cols=(2, 4))         # 1.15 m
    assert relation_fails("in_front_of", far_mugs, duck, ground=g)
    assert not relation_fails("behind", far_mugs, duck, ground=g)
    assert not relation_fails("in_front_of", far_mugs | near_mug, duck, ground=g)
    assert relation_fails("behind", near_mug, duck, ground=g)
    # the model's own answer in front keeps the relation even when "all the mugs" missed it
    assert not relation_fails("in_front_of", far_mugs, duck, answer=near_mug, ground=g)
    # no depth on an object: nothing known about it, the relation may hold
    blind = g.copy()
    blind[0:2, 2:4] = np.nan
    assert not relation_fails("in_front_of", far_mugs, duck, ground=blind)
    blind = g.copy()
    blind[duck] = np.nan
    assert not relation_fails("in_front_of", far_mugs, duck, ground=blind)
    with pytest.raises(ValueError):
        relation_fails("in_front_of", far_mugs, duck)  # along the table needs distances


def test_front_and_behind_move_a_wrong_answer_to_the_one_object_on_that_side():
    g = _rows_ground()
    duck = _part(rows=(4, 6), cols=(8, 11))
    far = _part(rows=(0, 2), cols=(2, 4))
    near = _part(rows=(7, 9), cols=(2, 4))
    assert np.array_equal(relation_part("in_front_of", far | near, duck, far, ground=g), near)
    assert relation_part("in_front_of", far | near, duck, near, ground=g) is None  # already right
    assert np.array_equal(relation_part("behind", far | near, duck, near, ground=g), far)
    blind = g.copy()
    blind[far] = np.nan
    assert relation_part("in_front_of", far | near, duck, far, ground=blind) is None  # answer not placed


def _output(maps, presence):
    logits = [np.where(m, 4.0, -4.0) for m in maps]
    n = len(maps)
    return GroundingOutput(box=torch.full((n, 4), 0.5), mask_logits=torch.tensor(np.stack(logits), dtype=torch.float32)
                           .unsqueeze(1), attention=torch.zeros(n, 6), grid_hw=(2, 3),
                           presence=torch.tensor(presence, dtype=torch.float32))


def test_composition_checks_front_and_behind_only_with_a_ground_grid():
    texts = ["the mug in front of the duck", "the duck"]
    assert Composition.of(texts).model_expressions == tuple(texts)  # without depth: the model alone
    comp = Composition.of(texts, depth=True)
    assert comp.model_expressions == ("the mug in front of the duck", "the duck", "all the mugs", "the duck")
    assert comp.relation_rows == (("in_front_of", 2, 3), None)
    duck = _part(rows=(4, 6), cols=(8, 11))
    far = _part(rows=(0, 2), cols=(2, 4))
    out = _output([far, duck, far, duck], [3.0, 2.0, 1.0, 1.0])
    g = _rows_ground()
    assert float(comp.combine(out, ground=[g, g]).presence[0]) == NOT_THERE_LOGIT
    assert float(comp.combine(out, ground=[None, None]).presence[0]) == 3.0  # no depth for this frame
    assert float(comp.combine(out).presence[0]) == 3.0
    near = _part(rows=(7, 9), cols=(2, 4))
    out = _output([far, duck, far | near, duck], [3.0, 2.0, 1.0, 1.0])
    combined = comp.combine(out, ground=[g, g])
    assert float(combined.presence[0]) == 3.0 and np.array_equal((combined.mask_logits[0, 0] > 0).numpy(), near)


@pytest.mark.slow
def test_shipped_weights_with_depth_say_not_found_when_nothing_is_in_front():
    """Rendered tabletop scenes with their depth, every "the <kind> in front of / behind the <unique
    kind>" whose truth is clear from the objects' distances along the table (8 cm): with the
    frame's depth the false ones are answered "not found" far more often than without, and the
    true ones still found."""
    from scenes import front_behind_relations

    from refseg_ros.model.predictor import DEFAULT_CHECKPOINT, GroundingPredictor

    torch.set_num_threads(2)
    predictor = GroundingPredictor.from_checkpoint(DEFAULT_CHECKPOINT)
    found: dict[str, list[tuple[bool, bool]]] = {"false": [], "true": []}
    for seed in range(8):
        scene, false_ones, true_ones = front_behind_relations(seed)
        depth = DepthFrame.from_k(scene.depth, scene.camera_info["K"])
        for truth, texts in (("false", false_ones), ("true", true_ones)):
            for text in texts:
                with_depth = predictor.predict_once(scene.image, [text], depth=depth)[0]
                without = predictor.predict_once(scene.image, [text])[0]
                found[truth].append((with_depth.found, without.found))
    false, true = np.array(found["false"]), np.array(found["true"])
    assert len(false) >= 8 and len(true) >= 8, (len(false), len(true))
    print(f"\nfalse front/behind relations found: {false[:, 1].mean():.2f} without depth, {false[:, 0].mean():.2f} "
          f"with; true ones: {true[:, 1].mean():.2f} / {true[:, 0].mean():.2f} (n {len(false)}, {len(true)})")
    assert false[:, 0].mean() <= 0.5 * false[:, 1].mean()
    assert true[:, 0].sum() >= true[:, 1].sum() - max(1, len(true) // 10)


@pytest.mark.slow
def test_predict_cli_takes_the_depth_image(tmp_path):
    """`refseg predict --depth D.png --camera-k ...` as a user runs it: a false "in front of" is not
    found with the depth image and found without; a depth image it cannot use is refused."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import cv2
    from scenes import front_behind_relations

    scene, false_ones, _ = next(c for c in map(front_behind_relations, range(12)) if c[1])
    image, depth = tmp_path / "scene.png", tmp_path / "depth.png"
    cv2.imwrite(str(image), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(depth), scene.depth_mm)
    k = np.asarray(scene.camera_info["K"], dtype=float).reshape(-1)
    camera_k = f"{k[0]},{k[4]},{k[2]},{k[5]}"
    refseg = Path(sys.executable).with_name("refseg")
    cmd = ([str(refseg)] if refseg.exists() else [sys.executable, "-m", "refseg_ros.cli.main"]) + [
        "predict", "--image", str(image), "--expr", false_ones[0], "--json", "--threads", "2", "--device", "cpu"]

    def run(*extra):
        return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=300)
    with_depth, without = run("--depth", str(depth), "--camera-k", camera_k), run()
    assert with_depth.returncode == 0 and without.returncode == 0, with_depth.stderr[-2000:] + without.stderr[-2000:]
    assert not json.loads(with_depth.stdout)["results"][0]["found"]
    assert json.loads(without.stdout)["results"][0]["found"]
    eight_bit = tmp_path / "depth8.png"
    cv2.imwrite(str(eight_bit), (scene.depth_mm // 16).astype(np.uint8))
    for extra, says in ((("--depth", str(depth)), "--camera-k"), (("--depth", str(eight_bit), "--camera-k", camera_k),
                                                                  "16-bit"),
                        (("--depth", str(depth), "--camera-k", "0,0,1,1"), "--camera-k")):
        refused = run(*extra)
        assert refused.returncode == 1 and says in refused.stderr, (extra, refused.stderr[-2000:])
