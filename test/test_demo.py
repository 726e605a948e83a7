"""The demo: its command script (from real scenes' ground truth), its scoring, and a short run of
``refseg demo`` as a user runs it (sim_camera + refseg_node processes over DDS, shipped checkpoint)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refseg_ros.data.sim_scene import ground_truth
from refseg_ros.data.tabletop import render_scene
from refseg_ros.demo import scoring
from refseg_ros.demo.driver import Result, group_by_expression
from refseg_ros.demo.script import MULTI_TARGET, NO_TARGET, plan_absent, plan_all_of, plan_scene
from refseg_ros.language import grammar
from refseg_ros.language.parser import Action, parse_command
from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

#: the shipped checkpoint's bar for the demo's mean mask IoU (its model card: mIoU >= 60 % on fresh scenes)
MEAN_IOU_BAR = 0.6


@pytest.fixture(scope="module")
def truths():
    return [ground_truth(render_scene(seed, 320, 240), seed, 0, "f", (0, 0)) for seed in range(4)]


def test_script_commands_name_their_targets_uniquely_and_parse_back(truths):
    covered = set()
    rng = np.random.default_rng(0)
    n_multi = 0
    for i, truth in enumerate(truths):
        order = [k for k in grammar.TYPES if k not in covered] + [k for k in grammar.TYPES if k in covered]
        commands = plan_scene(truth["objects"], truth["width"], rng, 4, order, multi=(i == 1))
        assert len(commands) >= 3
        for cmd in commands:
            parsed = parse_command(cmd.text)
            # what the node will ground is exactly the grammar's expressions
            assert parsed.action is Action.GROUND and list(parsed.expressions) == [p.expression for p in cmd.phrases]
            for p in cmd.phrases:
                structure = grammar.parse(p.expression)
                assert structure["type"] == p.type
                assert grammar.resolve(structure, truth["objects"], truth["width"]) == p.target, cmd.text
            covered |= {p.type for p in cmd.phrases}
            if len(cmd.phrases) == 2:
                n_multi += 1
                assert cmd.phrases[0].target != cmd.phrases[1].target
    assert covered == set(grammar.TYPES)
    assert n_multi == 1
    wrapped = [c.text for t in truths for c in plan_scene(t["objects"], t["width"], np.random.default_rng(1), 4)
               if c.text not in (c.phrases[0].expression,)]
    assert wrapped  # some commands are phrased the way people talk to a robot


def test_absent_and_every_object_commands_mean_what_they_say(truths):
    from refseg_ros.language.number import asks_for_many
    from refseg_ros.language.semantics import head_matches

    rng = np.random.default_rng(0)
    n_all = 0
    for truth in truths:
        objects = truth["objects"]
        absent = plan_absent(objects, rng)
        (p,) = absent.phrases
        assert p.type == NO_TARGET and p.targets == [] and p.target == -1
        assert not any(head_matches(p.structure["head"], o) for o in objects)  # nothing on the table is it
        assert list(parse_command(absent.text).expressions) == [p.expression] and not asks_for_many(p.expression)
        every = plan_all_of(objects, rng)
        if every is None:
            continue
        n_all += 1
        (p,) = every.phrases
        assert p.type == MULTI_TARGET and asks_for_many(p.expression)
        assert p.targets == [k for k, o in enumerate(objects) if head_matches(p.structure["head"], o)]
        assert 2 <= len(p.targets) <= 3 and all(objects[k]["bbox"] is not None for k in p.targets)
        assert p.expression.startswith("both " if len(p.targets) == 2 else "all the ")
        assert list(parse_command(every.text).expressions) == [p.expression]
    assert n_all >= 1  # the demo's scenes have two or three of a kind


def test_absent_and_every_object_answers_are_scored_as_such():
    instances = np.zeros((10, 10), np.uint8)
    instances[1:4, 1:4], instances[6:9, 6:9] = 1, 2  # objects 0 and 1

    def result(found, mask=None):
        return Result("e", (0.0, 0.0, 1.0, 1.0), 0.5, mask, found, None)

    objects = [{"bbox": [1, 1, 4, 4], "position_cam": [0, 0, 1]}, {"bbox": [6, 6, 9, 9], "position_cam": [0, 0, 1]}]
    right = scoring.score_answers(NO_TARGET, [], [result(False)], instances, objects)
    wrong = scoring.score_answers(NO_TARGET, [], [result(True, instances == 1)], instances, objects)
    assert (right["correct"], right["iou"]) == (True, 1.0) and (wrong["correct"], wrong["iou"]) == (False, 0.0)
    both = scoring.score_answers(MULTI_TARGET, [0, 1], [result(True, instances == 1), result(True, instances == 2)],
                                 instances, objects)
    assert both["iou"] == 1.0 and (both["n_found"], both["n_targets"]) == (2, 2)
    one = scoring.score_answers(MULTI_TARGET, [0, 1], [result(True, instances == 1)], instances, objects)
    assert one["iou"] == pytest.approx(0.5) and one["n_found"] == 1
    # a single-object expression answered "not found" scores 0, whatever the model's best guess was
    missed = scoring.score_answers("category", [0], [result(False)], instances, objects)
    assert missed["iou"] == 0.0 and missed["box_iou"] == 0.0 and not missed["found"]
    # the node's results group back into expressions in command order
    rs = [Result(e, (0, 0, 1, 1), 0.5, None, True, None) for e in ("all the cubes", "all the cubes", "the duck")]
    assert [(e, len(a)) for e, a in group_by_expression(rs)] == [("all the cubes", 2), ("the duck", 1)]
    records = [{"index": 1, "scene": 0, "text": "the green duck", "latency_s": 0.2,
                "phrases": [dict(right, expression="the green duck", type=NO_TARGET)]},
               {"index": 2, "scene": 0, "text": "both cubes", "latency_s": 0.2,
                "phrases": [dict(one, expression="both cubes", type=MULTI_TARGET)]},
               {"index": 3, "scene": 0, "text": "the duck", "latency_s": 0.2,
                "phrases": [dict(missed, expression="the duck", type="category")]}]
    summary = scoring.summarize(records)
    assert summary["no_target_accuracy"] == 1.0 and summary["multi_target_mean_iou"] == pytest.approx(0.5)
    assert summary["mean_iou"] == 0.0 and summary["n_expressions"] == 3  # single objects only in the mean
    table = scoring.format_table(summary)
    assert "not found (correct)" in table and "1 of 2 objects" in table and "'not found': 1 of 1" in table


def test_scoring_figures_and_summary_files(tmp_path):
    truth_mask = np.zeros((10, 10), bool)
    truth_mask[2:6, 2:6] = True
    pred = np.zeros((10, 10), bool)
    pred[2:6, 4:8] = True
    s = scoring.score_phrase(pred, (4, 2, 8, 6), (0.1, 0.0, 1.0), truth_mask,
                             {"bbox": [2, 2, 6, 6], "position_cam": [0.1, 0.0, 0.97]})
    assert s["iou"] == pytest.approx(8 / 24) and s["box_iou"] == pytest.approx(8 / 24)
    assert s["error_3d_m"] == pytest.approx(0.03)
    assert scoring.score_phrase(None, None, None, truth_mask, {"bbox": [2, 2, 6, 6], "position_cam": [0, 0, 1]}) \
        == {"iou": 0.0, "box_iou": 0.0, "error_3d_m": None}
    records = [
        {"index": 1, "scene": 0, "text": "grab the duck | now", "latency_s": 0.5,
         "phrases": [{"expression": "the duck", "type": "category", "iou": 0.8, "box_iou": 0.9, "error_3d_m": 0.02}]},
        {"index": 2, "scene": 0, "text": "the mug and the cube", "latency_s": 1.5,
         "phrases": [{"expression": "the mug", "type": "category", "iou": 0.6, "box_iou": 0.4, "error_3d_m": None},
                     {"expression": "the cube", "type": "attribute", "iou": 0.4, "box_iou": 0.7, "error_3d_m": 0.04}]},
    ]
    summary = scoring.summarize(records, stop={"text": "stop", "scene": 0, "results_after_stop": 0})
    assert summary["mean_iou"] == pytest.approx(0.6) and summary["prec_at_0.5"] == pytest.approx(2 / 3)
    assert summary["median_error_3d_m"] == pytest.approx(0.03) and summary["median_latency_s"] == pytest.approx(1.0)
    assert summary["by_type"]["category"] == {"n": 2, "mean_iou": pytest.approx(0.7)}
    md, js = scoring.write_summary(summary, tmp_path)
    text = md.read_text()
    assert "grab the duck \\| now" in text and "results after stop: 0" in text and "mean IoU 0.600" in text
    assert json.loads(js.read_text())["n_expressions"] == 3


@pytest.mark.ros
@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason=f"no shipped checkpoint at {DEFAULT_CHECKPOINT}")
def test_short_demo_run_scores_the_shipped_checkpoint(tmp_path, ros_env):
    out = tmp_path / "demo_out"
    refseg = Path(sys.executable).with_name("refseg")
    cmd = [str(refseg)] if refseg.exists() else [sys.executable, "-m", "refseg_ros.cli.main"]
    env = dict(ros_env, OMP_NUM_THREADS="1")
    run = subprocess.run(cmd + ["demo", "--out", str(out), "--scenes", "2", "--commands-per-scene", "3",
                                "--threads", "1", "--seed", "0"],
                         env=env, capture_output=True, text=True, timeout=900)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (out / "logs").glob("*.log")) \
        if (out / "logs").is_dir() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + logs
    summary = json.loads((out / "summary.json").read_text())
    n = summary["n_commands"]
    assert n >= 7 and summary["n_expressions"] == n + 1  # one command names two objects
    assert summary["stop"]["results_after_stop"] == 0
    assert summary["mean_iou"] > MEAN_IOU_BAR, (summary["mean_iou"], run.stdout[-3000:])
    for r in summary["commands"]:
        assert r["latency_s"] > 0 and len(r["expressions"]) == len(r["phrases"])
        for p in r["phrases"]:
            assert p["parsed_expression"] == p["expression"]
            assert 0.0 <= p["iou"] <= 1.0
    # an object that is not on the table, scored by whether the node said so
    absent = [p for r in summary["commands"] for p in r["phrases"] if p["type"] == "no_target"]
    assert len(absent) == 1 and isinstance(absent[0]["correct"], bool)
    assert summary["by_type"]["no_target"]["n"] == 1
    # 3D positions came from depth for the objects that were found
    assert any(p["error_3d_m"] is not None for r in summary["commands"] for p in r["phrases"])
    # every artefact, and the table printed
    import cv2
    from PIL import Image

    pngs = sorted(out.glob("cmd_*.png"))
    assert len(pngs) == n + 1  # one per command, "stop" included
    for png in pngs:
        image = cv2.imread(str(png))
        assert image is not None and image.shape[1] == 640 and image.shape[0] > 480
    with Image.open(out / "demo.gif") as gif:
        assert gif.n_frames == n + 1
    md = (out / "summary.md").read_text()
    assert "| # | scene | command |" in md and "mean IoU" in md
    assert "| # | scene | command |" in run.stdout and "mean IoU" in run.stdout
    assert (out / "logs" / "refseg_node.log").is_file() and (out / "logs" / "sim_camera.log").is_file()
    assert "Traceback" not in logs
