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
