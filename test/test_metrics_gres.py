"""Generalised grounding metrics (n_acc, t_acc, gIoU, cIoU) on hand-made answers, and
`refseg eval --format tabletop-v2` end to end on a tiny rendered v2 split."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from refseg_ros.language.semantics import RELATIONS
from refseg_ros.training.metrics import GroundingMetrics, answer_intersection_union

H, W = 4, 4
BOX = [0, 0, 4, 1]


def _mask(rows, cols):
    m = np.zeros((H, W), bool)
    m[rows, cols] = True
    return m


EMPTY = np.zeros((H, W), bool)


def test_answer_rules_one_by_one():
    gt = _mask(slice(0, 1), slice(0, 4))                   # 4 pixels
    # no target: "none" is right (IoU 1, adds nothing); any mask is wrong and adds its pixels
    assert answer_intersection_union(_mask(0, 0), False, EMPTY, 0) == (0, 0, 1.0)
    assert answer_intersection_union(_mask(slice(0, 1), slice(0, 3)), True, EMPTY, 0) == (0, 3, 0.0)
    # a found answer with an empty mask still answered something
    assert answer_intersection_union(EMPTY, True, EMPTY, 0) == (0, 0, 0.0)
    # with a target: "none" scores 0 whatever mask came with it, the target's pixels join the union
    assert answer_intersection_union(gt, False, gt, 1) == (0, 4, 0.0)
    assert answer_intersection_union(_mask(slice(0, 2), slice(0, 4)), True, gt, 1) == (4, 8, 0.5)


def test_mixed_split_exact_values_overall_and_per_type():
    m = GroundingMetrics()
    gt_c = _mask(slice(0, 1), slice(0, 4))                                    # 4 px
    gt_e = _mask(slice(2, 4), slice(0, 2)) | _mask(slice(2, 4), slice(3, 4))  # two targets, 6 px
    # A: no target, answered none                      -> IoU 1, I 0, U 0
    m.update(BOX, np.zeros(4), _mask(0, 0), EMPTY, "no_target", found=False, n_targets=0,
             reason="absent_colour")
    # B: no target, answered with 3 pixels             -> IoU 0, I 0, U 3
    m.update(BOX, np.zeros(4), _mask(slice(3, 4), slice(0, 3)), EMPTY, "no_target", found=True, n_targets=0,
             reason="relation:next_to")
    # C: one target, found, twice its size             -> IoU 0.5, I 4, U 8; box exact
    m.update(BOX, BOX, _mask(slice(0, 2), slice(0, 4)), gt_c, "attribute", found=True, n_targets=1)
    # D: one target, exact mask but not found          -> IoU 0, I 0, U 4; REC/RES still see the mask
    m.update([0, 0, 1, 1], BOX, gt_c, gt_c, "attribute", found=False, n_targets=1)
    # E: two targets, found, 8 px covering both        -> IoU 0.75, I 6, U 8
    m.update([0, 2, 4, 4], [0, 2, 4, 4], _mask(slice(2, 4), slice(0, 4)), gt_e, "multi_target",
             found=True, n_targets=2)
    s = m.compute()
    assert (s["n_expressions"], s["n_no_target"], s["n_with_targets"], s["n"]) == (5, 2, 3, 2)
    assert s["n_acc"] == pytest.approx(50.0)
    assert s["t_acc"] == pytest.approx(100 * 2 / 3)
    assert s["giou"] == pytest.approx(100 * (1 + 0 + 0.5 + 0 + 0.75) / 5)
    assert s["ciou"] == pytest.approx(100 * (0 + 0 + 4 + 0 + 6) / (0 + 3 + 8 + 4 + 8))
    # REC/RES: the two single-target expressions only, found or not
    assert s["rec_prec@0.5"] == pytest.approx(50.0)            # C's box exact, D's IoU 1/4
    assert s["res_miou"] == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert s["res_oiou"] == pytest.approx(100 * (4 + 4) / (8 + 4))

    nt, attr, multi = (s["by_type"][t] for t in ("no_target", "attribute", "multi_target"))
    assert nt["n"] == 0 and "rec_prec@0.5" not in nt and "t_acc" not in nt
    assert nt["n_acc"] == pytest.approx(50.0) and nt["giou"] == pytest.approx(50.0)
    assert nt["ciou"] == pytest.approx(0.0)
    assert "n_acc" not in attr and attr["t_acc"] == pytest.approx(50.0)
    assert attr["giou"] == pytest.approx(25.0) and attr["ciou"] == pytest.approx(100 * 4 / 12)
    assert multi["n"] == 0 and "res_miou" not in multi and "n_acc" not in multi
    assert multi["t_acc"] == pytest.approx(100.0)
    assert multi["giou"] == pytest.approx(75.0) and multi["ciou"] == pytest.approx(75.0)
    # no-target expressions by why nothing is meant
    assert s["no_target_by_reason"] == {"absent_colour": {"n": 1, "n_acc": 100.0},
                                        "relation:next_to": {"n": 1, "n_acc": 0.0}}


def test_all_empty_answers():
    right = GroundingMetrics()                      # nothing to find, nothing found
    for _ in range(3):
        right.update(BOX, np.zeros(4), _mask(1, 1), EMPTY, "no_target", found=False, n_targets=0)
    s = right.compute()
    assert s["n_acc"] == pytest.approx(100.0) and s["giou"] == pytest.approx(100.0)
    assert s["ciou"] == pytest.approx(100.0)        # empty cumulative union
    assert "t_acc" not in s and "rec_prec@0.5" not in s and s["n"] == 0

    wrong = GroundingMetrics()                      # every target missed
    gt = _mask(slice(0, 2), slice(0, 2))
    for kind, k in (("category", 1), ("multi_target", 2), ("negation", 3)):
        wrong.update(BOX, BOX, EMPTY, gt, kind, found=False, n_targets=k)
    s = wrong.compute()
    assert s["t_acc"] == 0.0 and s["giou"] == 0.0 and s["ciou"] == 0.0 and "n_acc" not in s
    assert s["n"] == 1 and s["res_miou"] == 0.0
    assert s["by_type"]["negation"]["t_acc"] == 0.0 and s["by_type"]["negation"]["n"] == 0


def test_negation_single_target_keeps_rec_res_and_bad_counts_are_refused():
    m = GroundingMetrics()
    gt = _mask(slice(0, 1), slice(0, 4))
    m.update(BOX, BOX, gt, gt, "negation", found=True, n_targets=1)
    m.update(BOX, BOX, gt | _mask(1, 0), gt | _mask(1, 0), "negation", found=True, n_targets=2)
    neg = m.compute()["by_type"]["negation"]
    assert neg["n"] == 1 and neg["rec_prec@0.5"] == pytest.approx(100.0)
    assert neg["n_with_targets"] == 2 and neg["giou"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="n_targets"):
        m.update(BOX, BOX, gt, gt, "negation", n_targets=-1)


@pytest.mark.slow
def test_refseg_eval_tabletop_v2_end_to_end(tmp_path):
    """Eval on every expression of a rendered v2 split: every count matches the index, the
    single-target v1-type expressions are the ones the v1 reader scores, the figures are in range."""
    from refseg_ros.cli.main import main
    from refseg_ros.data.dataset import TabletopRefDataset

    root = str(tmp_path / "v2")
    assert main(["data", "tabletop-v2", "--out", root, "--split", "test", "--scenes", "2",
                 "--seed", "7", "--workers", "1", "--long-side", "160", "--no-progress"]) == 0
    with open(os.path.join(root, "test.json")) as f:
        index = json.load(f)
    counts = [len(e["target_ann_ids"]) for e in index["expressions"]]
    single = [e["type"] for e in index["expressions"] if len(e["target_ann_ids"]) == 1]

    out = tmp_path / "v2.json"
    common = ["--data", root, "--split", "test", "--batch-size", "64", "--no-progress", "--threads", "2"]
    assert main(["eval", "--format", "tabletop-v2", *common, "--json", str(out)]) == 0
    v2 = json.loads(out.read_text())
    assert v2["n_expressions"] == len(counts) and v2["n"] == len(single)
    assert v2["n_no_target"] == counts.count(0) and v2["n_with_targets"] == len(counts) - counts.count(0)
    for key in ("t_acc", "giou", "ciou", "rec_prec@0.5", "res_miou"):
        assert 0.0 <= v2[key] <= 100.0
    if counts.count(0):
        assert 0.0 <= v2["n_acc"] <= 100.0 and "n_acc" in v2["by_type"]["no_target"]
        by_reason = v2["no_target_by_reason"]
        assert sum(r["n"] for r in by_reason.values()) == counts.count(0)
        assert set(by_reason) <= {"absent_category", "absent_colour"} | {f"relation:{n}" for n in RELATIONS}
    assert v2["format"] == "tabletop-v2" and 0.0 <= v2["found_threshold"] <= 1.0
    v1_types = TabletopRefDataset(root, "test").types
    for kind in set(v1_types):
        assert v2["by_type"][kind]["n"] == v1_types.count(kind) == single.count(kind)

    assert main(["eval", "--format", "tabletop-v2", *common, "--found-threshold", "2"]) == 1

    # with each image's depth: the same expressions; only relations (checked along the table) may differ
    deep = tmp_path / "depth.json"
    assert main(["eval", "--format", "tabletop-v2", *common, "--depth", "--json", str(deep)]) == 0
    deep = json.loads(deep.read_text())
    assert deep["depth"] is True and v2["depth"] is False and deep["n_expressions"] == v2["n_expressions"]
    for kind in set(v2["by_type"]) - {"relation", "no_target"}:
        assert deep["by_type"][kind] == v2["by_type"][kind], kind
    # data without depth images: refused with the reason
    assert main(["eval", "--format", "tabletop", *common, "--depth"]) == 1

    # a resolution study: the same expressions at twice the input, bucketed at the trained input or at its own
    assert v2["input_size"] == v2["size_reference"] == [320, 240]
    at, own = tmp_path / "at640.json", tmp_path / "own640.json"
    assert main(["eval", "--format", "tabletop-v2", *common, "--input-size", "640x480", "--size-reference",
                 "320x240", "--json", str(at)]) == 0
    assert main(["eval", "--format", "tabletop-v2", *common, "--input-size", "640x480", "--json", str(own)]) == 0
    at, own = json.loads(at.read_text()), json.loads(own.read_text())
    assert at["input_size"] == own["input_size"] == own["size_reference"] == [640, 480]
    assert at["size_reference"] == [320, 240] and at["n"] == own["n"] == v2["n"]
    counts = {name: [r["by_target_size"][name]["expressions"] for r in (v2, at, own)] for name in v2["by_target_size"]}
    assert all(a == b for a, b, _ in counts.values()), counts  # same objects, same reference
    assert counts["<15"][2] <= counts["<15"][0] and counts[">=45"][2] >= counts[">=45"][0]  # twice the pixels
    assert sum(c[2] for c in counts.values()) == v2["n"]
    with pytest.raises(SystemExit):
        main(["eval", *common, "--input-size", "650x480"])
