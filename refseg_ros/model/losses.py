"""VG-LAW losses: L = w_l1 * L1 + w_giou * GIoU loss + w_focal * focal + w_dice * Dice (1, 1, 4, 4),
plus an optional auxiliary w_attn * attention loss (:func:`attention_loss`, not in the paper) and,
for models with a presence head, w_presence * binary cross-entropy of "the expression has a referent".

Expressions without a referent (an empty target mask) train only what they can: the mask to be
empty (focal) and the presence logit; their box, Dice and attention terms are left out. For an
expression with several referents the target mask is their union and the box their union box.

Targets live in the model-input frame (the letterboxed canvas): boxes as normalised ``cxcywh``
(see :mod:`refseg_ros.model.letterbox` for the conversion), masks as ``(B, h, w)`` {0, 1} at any
resolution (the logits are resized to it: full input size as published, or stride 4 to save time).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refseg_ros.model.box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from refseg_ros.model.heads import GroundingOutput


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), mean over pixels then samples: ``(B, ...) -> (B,)``."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(1).mean(1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per sample: ``(B, ...) -> (B,)``."""
    prob = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    inter = (prob * targets).sum(1)
    return 1 - (2 * inter + smooth) / (prob.sum(1) + targets.sum(1) + smooth)


def attention_loss(attention: torch.Tensor, grid_hw: tuple[int, int], masks: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the LAP attention ``(B, h*w)`` against the target mask's share of each grid cell.

    ``masks (B, H, W)`` in the model-input frame are area-pooled to ``grid_hw`` and normalised to sum
    to 1; samples whose mask is empty (nothing visible) do not count. Returns ``(B,)``.
    """
    target = F.adaptive_avg_pool2d(masks[:, None].float(), grid_hw).flatten(1)
    total = target.sum(1, keepdim=True)
    valid = (total[:, 0] > 0).to(attention.dtype)
    target = target / total.clamp(min=1e-12)
    ce = -(target * attention.float().clamp(min=1e-8).log()).sum(1)
    return ce * valid


class GroundingLoss(nn.Module):
    """The weighted sum of the four terms; returns every term (unweighted) plus ``loss``."""

    def __init__(self, l1: float = 1.0, giou: float = 1.0, focal: float = 4.0, dice: float = 4.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, attn: float = 0.0,
                 presence: float = 0.0) -> None:
        super().__init__()
        self.weights = {"l1": l1, "giou": giou, "focal": focal, "dice": dice}
        if attn > 0:
            self.weights["attn"] = attn
        if presence > 0:
            self.weights["presence"] = presence
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    @classmethod
    def from_config(cls, cfg) -> "GroundingLoss":
        return cls(cfg.loss_l1, cfg.loss_giou, cfg.loss_focal, cfg.loss_dice,
                   cfg.focal_alpha, cfg.focal_gamma, cfg.loss_attn,
                   cfg.loss_presence if cfg.presence_head else 0.0)

    def forward(self, out: GroundingOutput, boxes: torch.Tensor,
                masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """``boxes (B, 4)`` normalised cxcywh, ``masks (B, h, w)`` -> dict of scalar losses."""
        pred = out.box.float()
        boxes = boxes.to(pred)
        present = (masks.flatten(1) > 0).any(1)
        weight = present.to(pred.dtype)
        count = weight.sum().clamp(min=1)

        def over_present(per_sample: torch.Tensor) -> torch.Tensor:
            return (per_sample * weight).sum() / count

        # a no-target sample's zero box would give a degenerate GIoU; it is weighted out below
        safe_boxes = torch.where(present[:, None], boxes, boxes.new_tensor([0.5, 0.5, 0.1, 0.1]))
        terms = {
            "l1": over_present(F.l1_loss(pred, safe_boxes, reduction="none").sum(1)),
            "giou": over_present(1 - generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(safe_boxes))),
        }
        logits = out.mask_logits_at(tuple(masks.shape[-2:]))
        target = masks.to(logits.dtype)
        terms["focal"] = sigmoid_focal_loss(logits, target, self.focal_alpha, self.focal_gamma).mean()
        terms["dice"] = over_present(dice_loss(logits, target))
        if "attn" in self.weights:
            terms["attn"] = over_present(attention_loss(out.attention, out.grid_hw, masks.to(logits.dtype)))
        if "presence" in self.weights:
            if out.presence is None:
                raise ValueError("loss_presence is on but the model has no presence head")
            terms["presence"] = F.binary_cross_entropy_with_logits(out.presence.float(), present.float())
        terms["loss"] = sum(self.weights[k] * terms[k] for k in self.weights)
        return terms
