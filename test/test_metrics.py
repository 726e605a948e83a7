"""Metric functions against hand-computed cases."""
import numpy as np
import pytest

from refseg_ros.training.metrics import GroundingMetrics, box_iou_xyxy, mask_intersection_union


def test_box_iou_hand_computed():
    assert box_iou_xyxy([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert box_iou_xyxy([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou_xyxy([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou_xyxy([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # degenerate


def test_mask_iou_and_shape_check():
    a = np.zeros((4, 4), bool); a[:2] = True          # 8 pixels
    b = np.zeros((4, 4), bool); b[1:3] = True         # 8 pixels, 4 shared
    assert mask_intersection_union(a, b) == (4, 12)
    with pytest.raises(ValueError, match="shapes differ"):
        mask_intersection_union(a, np.zeros((3, 4), bool))


def test_summary_hand_computed_with_types_and_empty_masks():
    m = GroundingMetrics()
    full = np.ones((2, 5), bool)
    empty = np.zeros((2, 5), bool)
    half = full.copy(); half[:, :3] = False            # 4 of 10 pixels
    m.update([0, 0, 10, 10], [0, 0, 10, 10], full, full, "attribute")      # box 1.0, mask 1.0
    m.update([0, 0, 10, 10], [5, 0, 15, 10], half, full, "attribute")      # box 1/3, mask 0.4
    m.update([0, 0, 1, 1], [0, 0, 1, 1], empty, empty, "location")        # both empty: IoU 1
    m.update([0, 0, 1, 1], [5, 5, 6, 6], empty, full, "location")         # box 0, mask 0
    s = m.compute()
    assert s["n"] == 4
    assert s["rec_prec@0.5"] == pytest.approx(50.0)
    assert s["res_miou"] == pytest.approx(100 * (1 + 0.4 + 1 + 0) / 4)
    assert s["res_oiou"] == pytest.approx(100 * (10 + 4 + 0 + 0) / (10 + 10 + 0 + 10))
    assert s["res_prec@0.5"] == pytest.approx(50.0) and s["res_prec@0.9"] == pytest.approx(50.0)
    assert s["by_type"]["attribute"]["rec_prec@0.5"] == pytest.approx(50.0)
    assert s["by_type"]["attribute"]["res_miou"] == pytest.approx(70.0)
    assert s["by_type"]["location"]["res_oiou"] == pytest.approx(0.0)


def test_perfect_predictions_score_100():
    m = GroundingMetrics()
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = rng.random((6, 7)) > 0.5
        m.update([1, 2, 5, 6], [1, 2, 5, 6], mask, mask, "x")
    s = m.compute()
    counts = ("n", "n_expressions", "n_no_target", "n_with_targets", "by_type")
    assert all(s[k] == pytest.approx(100.0) for k in s if k not in counts)
    assert s["t_acc"] == pytest.approx(100.0) and s["giou"] == pytest.approx(100.0)


def test_single_target_data_keeps_its_keys_and_gains_the_answer_metrics():
    """v1 and REFER samples: one target each, the found flag only touches the new keys."""
    m = GroundingMetrics()
    gt = np.zeros((2, 5), bool); gt[:, :2] = True          # 4 pixels
    pred = np.zeros((2, 5), bool); pred[:, :4] = True      # 8 pixels, 4 shared
    m.update([0, 0, 10, 10], [0, 0, 10, 10], pred, gt, "location")
    m.update([0, 0, 10, 10], [0, 0, 10, 10], gt, gt, "location", found=False)
    s = m.compute()
    assert s["n"] == 2 and s["res_miou"] == pytest.approx(75.0) and s["rec_prec@0.5"] == pytest.approx(100.0)
    assert s["t_acc"] == pytest.approx(50.0) and "n_acc" not in s
    assert s["giou"] == pytest.approx(25.0) and s["ciou"] == pytest.approx(100 * 4 / 12)
