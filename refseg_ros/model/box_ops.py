"""Box and mask geometry shared by the model, training and evaluation (the one place for it).

Boxes are ``(..., 4)`` tensors, either ``xyxy`` (x_min, y_min, x_max, y_max) or ``cxcywh``
(centre x, centre y, width, height), in any consistent unit (pixels or normalised). IoU helpers
compare *matched pairs* elementwise (one prediction per expression, as VG-LAW makes), not all pairs.
"""
from __future__ import annotations

import torch

_EPS = 1e-7


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) * 0.5, (y0 + y1) * 0.5, x1 - x0, y1 - y0), dim=-1)


def box_area(boxes_xyxy: torch.Tensor) -> torch.Tensor:
    wh = (boxes_xyxy[..., 2:] - boxes_xyxy[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def clip_boxes(boxes_xyxy: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Clamp ``xyxy`` boxes to the image ``[0, width] x [0, height]``."""
    x0, y0, x1, y1 = boxes_xyxy.unbind(-1)
    return torch.stack((x0.clamp(0, width), y0.clamp(0, height),
                        x1.clamp(0, width), y1.clamp(0, height)), dim=-1)


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(a) + box_area(b) - inter


def box_iou(a_xyxy: torch.Tensor, b_xyxy: torch.Tensor) -> torch.Tensor:
    """IoU of matched box pairs: ``(..., 4), (..., 4) -> (...)``."""
    inter, union = _inter_union(a_xyxy, b_xyxy)
    return inter / union.clamp(min=_EPS)


def generalized_box_iou(a_xyxy: torch.Tensor, b_xyxy: torch.Tensor) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al. 2019) of matched pairs, in [-1, 1]."""
    inter, union = _inter_union(a_xyxy, b_xyxy)
    iou = inter / union.clamp(min=_EPS)
    lt = torch.minimum(a_xyxy[..., :2], b_xyxy[..., :2])
    rb = torch.maximum(a_xyxy[..., 2:], b_xyxy[..., 2:])
    wh = (rb - lt).clamp(min=0)
    hull = wh[..., 0] * wh[..., 1]
    return iou - (hull - union) / hull.clamp(min=_EPS)


def mask_intersection_union(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel counts of matched mask pairs ``(N, H, W)`` (bool or {0, 1}) -> ``(N,), (N,)``.

    Kept separate from :func:`mask_iou` because oIoU sums these over a whole split.
    """
    pred = pred.bool().flatten(1)
    target = target.bool().flatten(1)
    inter = (pred & target).sum(1)
    union = (pred | target).sum(1)
    return inter, union


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of matched mask pairs ``(N, H, W)``; two empty masks count as IoU 1."""
    inter, union = mask_intersection_union(pred, target)
    iou = inter.float() / union.clamp(min=1).float()
    return torch.where(union > 0, iou, torch.ones_like(iou))


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight ``xyxy`` pixel boxes (``x_max`` exclusive) of ``(N, H, W)`` masks; empty -> zeros."""
    n, h, w = masks.shape
    m = masks.bool()
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    rows, cols = m.any(2), m.any(1)
    big = torch.iinfo(torch.long).max
    y0 = torch.where(rows, ys, big).amin(1)
    y1 = torch.where(rows, ys, -1).amax(1) + 1
    x0 = torch.where(cols, xs, big).amin(1)
    x1 = torch.where(cols, xs, -1).amax(1) + 1
    boxes = torch.stack((x0, y0, x1, y1), dim=1).float()
    return torch.where(m.flatten(1).any(1, keepdim=True), boxes, torch.zeros_like(boxes)).reshape(n, 4)
