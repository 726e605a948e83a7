"""`refseg predict` says "not found" (``found: false``, ``box: null``) and lists every object of a
multi-target expression, as a user runs it (a process, an image file, JSON on stdout).

The random-weight checkpoint of the node tests: ``--found-threshold`` decides found or not, so the
same image and expressions give both answers.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _predict(checkpoint: Path, image: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    refseg = Path(sys.executable).with_name("refseg")
    cmd = [str(refseg)] if refseg.exists() else [sys.executable, "-m", "refseg_ros.cli.main"]
    return subprocess.run(cmd + ["predict", "--checkpoint", str(checkpoint), "--image", str(image), "--device", "cpu",
                                 "--threads", "1", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def image(tmp_path_factory, frames) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("predict") / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(frames[0], (320, 240)), cv2.COLOR_RGB2BGR))
    return path


def test_predict_prints_not_found_with_no_box(checkpoint, image, ros_env, tmp_path):
    mask_png = tmp_path / "mask.png"
    run = _predict(checkpoint, image, ros_env, "--expr", "the blue cube", "--expr", "all the cubes", "--json",
                   "--found-threshold", "1.0", "--mask-out", str(mask_png), "--out", str(tmp_path / "overlay.png"))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout)["results"]
    assert [(r["expression"], r["found"], r["box"], r["mask_pixels"], r["instances"]) for r in rows] == \
        [("the blue cube", False, None, 0, 0), ("all the cubes", False, None, 0, 0)]
    import cv2

    assert cv2.imread(str(mask_png), cv2.IMREAD_GRAYSCALE).max() == 0  # no best guess in the mask file
    assert (tmp_path / "overlay.png").is_file()


def test_predict_lists_every_object_of_a_multi_target_expression(checkpoint, image, ros_env):
    run = _predict(checkpoint, image, ros_env, "--expr", "all the cubes", "--expr", "the duck", "--json",
                   "--found-threshold", "0.0")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout)["results"]
    assert rows[-1]["expression"] == "the duck" and rows[-1]["instances"] == 1
    cubes = rows[:-1]
    assert cubes and all(r["expression"] == "all the cubes" and r["found"] for r in cubes)
    assert [r["instance"] for r in cubes] == list(range(len(cubes)))
    assert all(r["instances"] == len(cubes) and len(r["box"]) == 4 for r in cubes)


def test_predict_refuses_a_threshold_outside_0_1(checkpoint, image, ros_env):
    run = _predict(checkpoint, image, ros_env, "--expr", "the duck", "--found-threshold", "1.5")
    assert run.returncode == 1 and "--found-threshold" in run.stderr


def _shipped_has_presence() -> bool:
    from refseg_ros.model.checkpoint import load_checkpoint
    from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

    return DEFAULT_CHECKPOINT.is_file() and bool(getattr(load_checkpoint(DEFAULT_CHECKPOINT).cfg, "presence_head", False))


def test_predict_with_the_shipped_checkpoint_says_an_absent_object_is_not_there(tmp_path, ros_env):
    """The issue's own example: an object that is not on the table, in rendered scenes, comes back
    not found, while an object that is there comes back found (most of the time: a model's rates,
    not a rule, so three of four each)."""
    import cv2
    import numpy as np

    from refseg_ros.data.sim_scene import ground_truth
    from refseg_ros.data.tabletop import render_scene
    from refseg_ros.demo.script import plan_absent
    from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

    if not _shipped_has_presence():
        pytest.skip("the shipped checkpoint has no no-target output")
    rng = np.random.default_rng(5)
    absent_ok = present_ok = 0
    for seed in (11, 12, 13, 14):
        scene = render_scene(seed, 320, 240)
        objects = ground_truth(scene, seed, 0, "f", (0, 0))["objects"]
        absent = plan_absent(objects, rng).phrases[0].expression
        present = next(f"the {o['colour']} {o['category']}" for o in objects if o["bbox"] is not None and sum(
            (p["category"], p["colour"]) == (o["category"], o["colour"]) for p in objects) == 1)
        image = tmp_path / f"scene_{seed}.png"
        cv2.imwrite(str(image), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        run = _predict(DEFAULT_CHECKPOINT, image, ros_env, "--expr", absent, "--expr", present, "--json")
        assert run.returncode == 0, run.stderr[-3000:]
        rows = json.loads(run.stdout)["results"]
        assert rows[0]["expression"] == absent and rows[-1]["expression"] == present
        if not rows[0]["found"]:
            assert rows[0]["box"] is None
            absent_ok += 1
        present_ok += rows[-1]["found"]
    assert absent_ok >= 3 and present_ok >= 3, (absent_ok, present_ok)
