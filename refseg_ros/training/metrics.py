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
