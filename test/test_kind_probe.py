"""tools/kind_probe.py: the object-kind probe on the frozen CNN features (mask pooling on the
letterbox grid, the classifier, the command line on a rendered v2 split)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers.paths import TOOLS, load_tool

TOOL = TOOLS / "kind_probe.py"


def _tool():
    return load_tool("kind_probe")


def test_mask_weights_follow_the_letterbox():
    kp = _tool()
    # a 100x200 image letterboxed into a 240x320 canvas: resized to 320x160 at the top left
    mask = np.zeros((100, 200), bool)
    mask[:50, 100:] = True                      # the image's top-right quarter
    w = kp.mask_weights(mask, (320, 160), (240, 320), (15, 20)).numpy()
    # image rows 0-49 -> canvas rows 0-79 (cells 0-4), columns 100-199 -> 160-319 (cells 10-19)
    assert np.allclose(w[:5, 10:], 1.0) and np.allclose(w[:5, :10], 0.0) and np.allclose(w[5:], 0.0)
    assert w.sum() == pytest.approx(50.0)


def test_classifier_scores_separable_kinds_and_counts_unseen_kinds_wrong():
    kp = _tool()
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 16))
    y = [f"k{i % 4}" for i in range(400)]
    x = np.stack([centres[i % 4] + rng.normal(0, 1, 16) for i in range(400)])
    ok = kp.fit_and_score(x[:300], y[:300], x[300:], y[300:], "linear", steps=200)
    assert ok.mean() > 0.95
    ok = kp.fit_and_score(x[:300], y[:300], x[300:], ["never seen"] * 100, "mlp", steps=50)
    assert not ok.any()
    # noise labels: no better than chance on the scored half
    shuffled = list(rng.permutation(y))
    ok = kp.fit_and_score(x[:300], shuffled[:300], x[300:], shuffled[300:], "linear", steps=200)
    assert ok.mean() < 0.45
    assert kp.by_size(np.array([True, False, True]), np.array([10.0, 25.0, 40.0])) == {
        "<20": {"objects": 1, "accuracy": 100.0}, "20-35": {"objects": 1, "accuracy": 0.0},
        ">=35": {"objects": 1, "accuracy": 100.0}}


@pytest.mark.slow
def test_command_line_on_a_rendered_split(tmp_path):
    from refseg_ros.cli.main import main

    root = tmp_path / "v2"
    for split, seed in (("test", 7), ("val", 8)):
        assert main(["data", "tabletop-v2", "--out", str(root), "--split", split, "--scenes", "2",
                     "--seed", str(seed), "--workers", "1", "--long-side", "160", "--no-progress"]) == 0
    out = tmp_path / "probe.json"
    run = subprocess.run([sys.executable, str(TOOL), "--data", str(root), "--max-images", "2", "2",
                          "--cnn-scale", "1", "2", "--threads", "1", "--no-progress", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    index = {s: json.loads((root / f"{s}.json").read_text()) for s in ("test", "val")}
    assert set(report["scales"]) == {"1", "2"}
    for scale in report["scales"].values():
        assert scale["objects_fit"] == len(index["test"]["annotations"])
        assert scale["objects_scored"] == len(index["val"]["annotations"])
        for row in scale["features"].values():
            assert 0.0 <= row["accuracy"] <= 100.0
            assert sum(b["objects"] for b in row["by_size"].values()) == scale["objects_scored"]
    # the probe is seeded: the same scale twice gives the same report
    again = subprocess.run([sys.executable, str(TOOL), "--data", str(root), "--max-images", "2", "2",
                            "--cnn-scale", "1", "--threads", "1", "--no-progress", "--json", str(tmp_path / "b.json")],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "b.json").read_text())["scales"]["1"] == report["scales"]["1"]
    missing = subprocess.run([sys.executable, str(TOOL), "--data", str(tmp_path / "nothing")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not found" in missing.stderr
