"""The field's grounding metrics, accumulated per expression.

Single-target expressions (every expression of v1 and REFER data):

- REC: Prec@0.5 — share of expressions whose predicted box has IoU >= 0.5 with the ground truth.
- RES: mIoU (mean of per-expression mask IoU), oIoU (total intersection / total union over the
  split), and Prec@X for X in {0.5, ..., 0.9} (share with mask IoU >= X).

Here a prediction and a ground truth that are both empty count as IoU 1 (nothing to find, nothing
found); one empty and one not, IoU 0. These use the predicted mask and box whatever the found flag.

Every expression, with zero, one or several targets (generalised referring expression
segmentation, as GRES defines it), where an answer of "none" is a result whose ``found`` is False
and stands for an empty mask:

- ``n_acc``: share of no-target expressions answered "none".
- ``t_acc``: share of expressions with targets answered with something (found).
- ``giou``: mean per-expression IoU of the answer against the union of the targets' masks. A
  no-target expression scores 1 when answered "none" and 0 otherwise; an expression with targets
  answered "none" scores 0.
- ``ciou``: cumulative intersection over cumulative union of those same answers (a no-target
  expression answered with a mask adds that mask to the union); 1 when the union is empty.

All figures are reported in percent, overall and per expression type; a figure whose denominator
is empty is left out (``n_acc`` without no-target expressions, for instance).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from refseg_ros.model import box_ops

MASK_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def box_iou_xyxy(a, b) -> float:
    """IoU of one pair of (x_min, y_min, x_max, y_max) boxes (via ``model.box_ops``)."""
    return float(box_ops.box_iou(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)))


def mask_intersection_union(pred, gt) -> tuple[int, int]:
    pred = torch.as_tensor(np.asarray(pred)).bool()
    gt = torch.as_tensor(np.asarray(gt)).bool()
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {tuple(pred.shape)}, ground truth {tuple(gt.shape)}")
    inter, union = box_ops.mask_intersection_union(pred[None], gt[None])
    return int(inter), int(union)


def answer_intersection_union(pred_mask, found: bool, gt_mask, n_targets: int) -> tuple[int, int, float]:
    """``(intersection, union, IoU)`` of one answer under the GRES rules (module docstring):
    the answer is ``pred_mask`` when ``found``, "none" (empty) otherwise; ``gt_mask`` is the union
    of the ``n_targets`` targets' masks."""
    if not found:
        gt_pixels = int(np.count_nonzero(np.asarray(gt_mask)))
        return 0, gt_pixels, 1.0 if n_targets == 0 else 0.0
    inter, union = mask_intersection_union(pred_mask, gt_mask)
    if n_targets == 0:
        return 0, union, 0.0
    return inter, union, inter / union if union else 0.0


@dataclass
class _Tally:
    box_iou: list = field(default_factory=list)
    mask_iou: list = field(default_factory=list)
    inter: int = 0
    union: int = 0
    # every expression, GRES rules
    answer_iou: list = field(default_factory=list)
    answer_inter: int = 0
    answer_union: int = 0
    no_target: int = 0
    no_target_none: int = 0
    with_targets: int = 0
    with_targets_found: int = 0

    def summary(self) -> dict:
        out: dict = {"n": len(self.box_iou)}
        if self.box_iou:
            box = np.asarray(self.box_iou)
            miou = np.asarray(self.mask_iou)
            out.update({"rec_prec@0.5": 100.0 * float((box >= 0.5).mean()),
                        "res_miou": 100.0 * float(miou.mean()),
                        "res_oiou": 100.0 * (self.inter / self.union if self.union else 1.0)})
            for t in MASK_THRESHOLDS:
                out[f"res_prec@{t}"] = 100.0 * float((miou >= t).mean())
        if self.answer_iou:
            out["n_expressions"] = len(self.answer_iou)
            out["n_no_target"] = self.no_target
            out["n_with_targets"] = self.with_targets
            if self.no_target:
                out["n_acc"] = 100.0 * self.no_target_none / self.no_target
            if self.with_targets:
                out["t_acc"] = 100.0 * self.with_targets_found / self.with_targets
            out["giou"] = 100.0 * float(np.mean(self.answer_iou))
            out["ciou"] = 100.0 * (self.answer_inter / self.answer_union if self.answer_union else 1.0)
        return out


class GroundingMetrics:
    """Accumulate per-expression results; ``compute()`` returns the JSON-ready summary."""

    def __init__(self) -> None:
        self._all = _Tally()
        self._by_type: dict[str, _Tally] = defaultdict(_Tally)
        self._by_reason: dict[str, _Tally] = defaultdict(_Tally)

    def update(self, pred_box, gt_box, pred_mask, gt_mask, expr_type: str = "all", found: bool = True,
               n_targets: int = 1, reason: str | None = None) -> tuple[float, float]:
        """Add one expression: the predicted box, mask and found flag against the ground truth
        (for several targets, their union mask; for none, an empty mask and any box). ``reason``:
        why an expression has no target ("absent_category", ...), tallied in ``no_target_by_reason``.
        Returns its (box IoU, mask IoU) for a single target, else (nan, answer IoU)."""
        if n_targets < 0:
            raise ValueError(f"n_targets must be >= 0; got {n_targets}")
        a_inter, a_union, a_iou = answer_intersection_union(pred_mask, bool(found), gt_mask, n_targets)
        biou = float("nan")
        miou = a_iou
        if n_targets == 1:
            biou = box_iou_xyxy(pred_box, gt_box)
            inter, union = mask_intersection_union(pred_mask, gt_mask)
            miou = inter / union if union else 1.0
        tallies = [self._all, self._by_type[expr_type]]
        if n_targets == 0 and reason:
            tallies.append(self._by_reason[reason])
        for tally in tallies:
            if n_targets == 1:
                tally.box_iou.append(biou)
                tally.mask_iou.append(miou)
                tally.inter += inter
                tally.union += union
            tally.answer_iou.append(a_iou)
            tally.answer_inter += a_inter
            tally.answer_union += a_union
            if n_targets == 0:
                tally.no_target += 1
                tally.no_target_none += not found
            else:
                tally.with_targets += 1
                tally.with_targets_found += bool(found)
        return biou, miou

    def __len__(self) -> int:
        return len(self._all.answer_iou)

    def compute(self) -> dict:
        out = self._all.summary()
        out["by_type"] = {t: tally.summary() for t, tally in sorted(self._by_type.items())}
        if self._by_reason:
            out["no_target_by_reason"] = {r: {"n": tally.no_target, "n_acc": tally.summary()["n_acc"]}
                                          for r, tally in sorted(self._by_reason.items())}
        return out
