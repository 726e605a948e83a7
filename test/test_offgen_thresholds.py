"""tools/offgen_thresholds.py: the found-threshold sweep over off-generator records, on hand-made cases."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.paths import TOOLS, load_tool

TOOL = TOOLS / "offgen_thresholds.py"


def _tool():
    return load_tool("offgen_thresholds")


GT = [10.0, 10.0, 30.0, 30.0]


def _present(score, box, light="dim"):
    # "found" and "box_iou" as the check wrote them at its own threshold (0.7): the sweep must
    # not use them, only the score and the boxes
    return {"target": 0, "score": score, "pred_box": box, "gt_box": GT, "found": score >= 0.7,
            "box_iou": 0.0, "correct": False, "light": light}


def _absent(score, light="dim"):
    return {"target": None, "score": score, "pred_box": [0.0, 0.0, 5.0, 5.0], "found": score >= 0.7,
            "box_iou": None, "correct": score < 0.7, "light": light}


RECORDS = [
    _present(0.9, GT),                          # right box, confident
    _present(0.4, [11.0, 11.0, 30.0, 30.0]),    # right box (IoU 0.90), doubtful
    _present(0.8, [50.0, 50.0, 70.0, 70.0]),    # wrong object, confident
    _present(0.2, [], light="warm"),            # no box at all
    _absent(0.1), _absent(0.5), _absent(0.95, light="warm"),
]


def test_sweep_replays_the_decision_at_each_threshold():
    s = _tool().sweep(RECORDS, (0.0, 0.3, 0.5, 0.85, 1.0))
    assert (s["n_single"], s["n_absent"], s["ceiling"]) == (4, 3, 50.0)
    rows = {r["threshold"]: r for r in s["rows"]}
    # at 0 every expression is answered: the ceiling, and no absent object is refused
    assert rows[0.0] == {"threshold": 0.0, "single": 50.0, "answered": 100.0, "precision": 50.0,
                         "absent": 0.0}
    # 0.3: the doubtful right box still answered; the no-box answer and one absent one refused
    assert rows[0.3] == {"threshold": 0.3, "single": 50.0, "answered": 75.0, "precision": 66.7,
                         "absent": 33.3}
    # 0.5: the doubtful right box is lost; the confident wrong one stays; a score of exactly
    # 0.5 is found, as in the predictor (score >= found_threshold)
    assert rows[0.5] == {"threshold": 0.5, "single": 25.0, "answered": 50.0, "precision": 50.0,
                         "absent": 33.3}
    assert rows[0.85]["single"] == 25.0 and rows[0.85]["precision"] == 100.0
    # nothing answered: no precision to report, every absent object refused
    assert rows[1.0]["answered"] == 0.0 and rows[1.0]["precision"] is None and rows[1.0]["absent"] == 100.0


def test_sweep_without_absent_or_present_records():
    t = _tool()
    only_absent = t.sweep([_absent(0.2)], (0.5,))
    assert only_absent["n_single"] == 0 and only_absent["ceiling"] is None
    assert only_absent["rows"][0]["single"] is None and only_absent["rows"][0]["absent"] == 100.0
    only_present = t.sweep([_present(0.9, GT)], (0.5,))
    assert only_present["rows"][0]["absent"] is None and only_present["rows"][0]["single"] == 100.0


def _run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_command_line_by_condition(tmp_path):
    check = tmp_path / "check.json"
    check.write_text(json.dumps({"config": {}, "summary": {}, "records": RECORDS}))
    out = tmp_path / "sweep.json"
    p = _run(check, "--thresholds", "0.3,0.5", "--by", "light", "--out-json", out)
    assert p.returncode == 0, p.stderr
    assert "box right whatever the score 50.0 %" in p.stdout and "light=warm" in p.stdout
    result = json.loads(out.read_text())[str(check)]
    assert [r["threshold"] for r in result["overall"]["rows"]] == [0.3, 0.5]
    assert result["light"]["warm"]["n_single"] == 1 and result["light"]["warm"]["n_absent"] == 1
    assert result["light"]["dim"]["ceiling"] == pytest.approx(100 * 2 / 3, abs=0.05)


@pytest.mark.parametrize("args, message", [
    (["--thresholds", "0.3,x"], "not a comma-separated list"),
    (["--thresholds", "1.5"], "numbers in [0, 1]"),
    (["--by", "colour"], "no such field"),
])
def test_command_line_refuses_bad_arguments(tmp_path, args, message):
    check = tmp_path / "check.json"
    check.write_text(json.dumps({"records": RECORDS}))
    p = _run(check, *args)
    assert p.returncode == 2 and message in p.stderr


def test_command_line_refuses_a_file_that_is_not_a_check(tmp_path):
    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps({"rec_prec@0.5": 70.0}))
    p = _run(bad)
    assert p.returncode == 2 and "not an offgen_check.py --json file" in p.stderr
    p = _run(tmp_path / "missing.json")
    assert p.returncode == 2 and "cannot read" in p.stderr
