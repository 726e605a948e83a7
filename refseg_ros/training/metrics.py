"""The field's grounding metrics, accumulated per expression.

REC: Prec@0.5 — share of expressions whose predicted box has IoU >= 0.5 with the ground truth.
RES: mIoU (mean of per-expression mask IoU), oIoU (total intersection / total union over the
split), and Prec@X for X in {0.5, ..., 0.9} (share with mask IoU >= X).
All figures are reported in percent, overall and per expression type.

A prediction and a ground truth that are both empty count as IoU 1 (nothing to find, nothing
found); one empty and one not, IoU 0.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

MASK_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def mask_intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def box_iou_xyxy(a, b) -> float:
    """IoU of two boxes (x_min, y_min, x_max, y_max); degenerate boxes have area 0."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Tally:
    box_iou: list = field(default_factory=list)
    mask_iou: list = field(default_factory=list)
    inter: int = 0
    union: int = 0

    def summary(self) -> dict:
        n = len(self.box_iou)
        if n == 0:
            return {"n": 0}
        box = np.asarray(self.box_iou)
        miou = np.asarray(self.mask_iou)
        out = {"n": n, "rec_prec@0.5": 100.0 * float((box >= 0.5).mean()),
               "res_miou": 100.0 * float(miou.mean()),
               "res_oiou": 100.0 * (self.inter / self.union if self.union else 1.0)}
        for t in MASK_THRESHOLDS:
            out[f"res_prec@{t}"] = 100.0 * float((miou >= t).mean())
        return out


class GroundingMetrics:
    """Accumulate per-expression results; ``compute()`` returns the JSON-ready summary."""

    def __init__(self) -> None:
        self._all = _Tally()
        self._by_type: dict[str, _Tally] = defaultdict(_Tally)

    def update(self, pred_box, gt_box, pred_mask, gt_mask, expr_type: str = "all") -> tuple[float, float]:
        """Add one expression; returns its (box IoU, mask IoU)."""
        biou = box_iou_xyxy(pred_box, gt_box)
        inter, union = mask_intersection_union(pred_mask, gt_mask)
        miou = inter / union if union else 1.0
        for tally in (self._all, self._by_type[expr_type]):
            tally.box_iou.append(biou)
            tally.mask_iou.append(miou)
            tally.inter += inter
            tally.union += union
        return biou, miou

    def __len__(self) -> int:
        return len(self._all.box_iou)

    def compute(self) -> dict:
        out = self._all.summary()
        out["by_type"] = {t: tally.summary() for t, tally in sorted(self._by_type.items())}
        return out
