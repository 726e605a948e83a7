"""From the model's raw output to the box, mask, score and found flag a user gets (DETR-style).

:class:`PostProcess` is the one place that owns every guarantee of a result: boxes and masks mapped
from the letterboxed model input back to the camera image, boxes finite, clipped to the image and at
least ``min_box_size`` pixels wide and high, masks ``bool`` at the image's size, scores finite in
[0, 1], and the found decision. The predictor, the node, ``refseg predict`` and ``refseg eval``
all go through it; thresholds are its fields, passed in, never attributes poked from outside.

VG-LAW predicts the box and the mask with separate heads. On the tabletop data the mask head learns
the right object sooner than the box regression does, so ``box_source="mask"`` takes the box from
the predicted mask; stray blobs are usually on a second object of the same kind, so
``mask_components="largest"`` keeps the largest connected component (docs/training.md has the
comparison).

**Score.** The mean mask probability over the returned mask's pixels (or, when no pixel passes the
threshold, the highest probability anywhere, which is then below the threshold). It reads as "how
sure is the model of the mask it returns". It is not calibrated, and the training data always
contains the referred object, so a low score hints at, but does not prove, that it is absent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

BOX_SOURCES = ("head", "mask")
MASK_COMPONENTS = ("all", "largest")

Box = tuple[float, float, float, float]


@dataclass
class Grounding:
    """One expression's result on one image, in that image's pixels.

    ``box``: ``(x_min, y_min, x_max, y_max)`` floats, pixel-edge coordinates inside the image;
    ``score`` in [0, 1] (see the module docstring); ``mask``: ``bool (H, W)`` at the image's size;
    ``found``: ``score >= found_threshold`` of the post-processing that made it.
    """

    expression: str
    box: Box
    score: float
    mask: np.ndarray
    found: bool = True


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The 8-connected component of a bool ``(H, W)`` mask with the most pixels (a copy).

    Labelled on the crop to the mask's bounding box (the same components, in the same raster
    order, so the same answer on ties): an object covers a small part of a frame, and labelling
    the whole frame would dominate the per-expression post-processing time.
    """
    import cv2

    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return mask.copy()
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask[r0:r1, c0:c1].astype(np.uint8), connectivity=8)
    if count <= 2:  # one component already
        return mask.copy()
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out = np.zeros_like(mask, dtype=bool)
    out[r0:r1, c0:c1] = labels == keep
    return out


def mask_box(mask: np.ndarray) -> Box | None:
    """``(x_min, y_min, x_max, y_max)`` in pixel-edge coordinates (x_max = last column + 1) of a
    bool mask, the convention of the dataset's boxes; None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def sanitize_box(box, width: int, height: int, min_size: float = 1.0) -> Box:
    """``box`` made finite (non-finite coordinates become 0), clipped to a ``width`` x ``height``
    image and at least ``min_size`` wide and high while staying inside it (``x_min < x_max``)."""
    x0, y0, x1, y1 = (float(v) if math.isfinite(float(v)) else 0.0 for v in box)
    w, h = float(width), float(height)
    x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
    y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    mw, mh = min(min_size, w), min(min_size, h)
    if x1 - x0 < mw:
        x0, x1 = (x0, x0 + mw) if x0 + mw <= w else (w - mw, w)
    if y1 - y0 < mh:
        y0, y1 = (y0, y0 + mh) if y0 + mh <= h else (h - mh, h)
    return x0, y0, x1, y1


def sanitize_score(score: float) -> float:
    """A finite score in [0, 1] (NaN becomes 0)."""
    score = float(score)
    return min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0


@dataclass(frozen=True)
class PostProcess:
    """Turns the model's output for one image into :class:`Grounding` results in its pixels.

    Args:
        mask_threshold: probability above which a pixel belongs to the object, in [0, 1].
        found_threshold: score at or above which a result is found, in [0, 1].
        box_source: ``"head"`` (the box head) or ``"mask"`` (the returned mask's box, the head's
            when the mask is empty).
        mask_components: ``"all"`` or ``"largest"`` (keep the largest 8-connected component).
        min_box_size: smallest box width and height in image pixels.
    """

    mask_threshold: float = 0.35
    found_threshold: float = 0.5
    box_source: str = "head"
    mask_components: str = "all"
    min_box_size: float = 1.0

    def __post_init__(self) -> None:
        if self.box_source not in BOX_SOURCES or self.mask_components not in MASK_COMPONENTS:
            raise ValueError(f"box_source must be one of {BOX_SOURCES} and mask_components one of "
                             f"{MASK_COMPONENTS}; got {self.box_source!r}, {self.mask_components!r}")
        for name in ("mask_threshold", "found_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
        if not (math.isfinite(self.min_box_size) and self.min_box_size >= 0):
            raise ValueError(f"min_box_size must be >= 0; got {self.min_box_size!r}")

    @classmethod
    def for_model(cls, cfg, **overrides) -> "PostProcess":
        """The post-processing a model config asks for (``mask_threshold``, ``box_source``,
        ``mask_components``), with ``overrides`` applied; an override of None keeps the model's."""
        fields = dict(mask_threshold=float(cfg.mask_threshold), box_source=cfg.box_source,
                      mask_components=cfg.mask_components)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)

    def with_(self, **changes) -> "PostProcess":
        """A copy with ``changes`` (None values ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def __call__(self, boxes_cxcywh, mask_logits, letterbox, expressions: list[str]) -> list[Grounding]:
        """``boxes_cxcywh (N, 4)`` normalised on the model input and ``mask_logits (N, 1, h, w)``
        covering it, for ``N`` expressions on the one image that ``letterbox`` describes."""
        import torch

        from refseg_ros.model.letterbox import boxes_to_image, mask_logits_to_image

        width, height = letterbox.image_size
        boxes = boxes_to_image(boxes_cxcywh, letterbox).cpu().numpy()
        prob = mask_logits_to_image(mask_logits, letterbox).sigmoid_()
        prob = torch.nan_to_num_(prob, nan=0.0)
        masks = prob > self.mask_threshold
        if self.mask_components == "largest":
            masks = torch.from_numpy(np.stack([largest_component(m) for m in masks.cpu().numpy()])).to(prob.device)
        area = masks.flatten(1).sum(1)
        inside = (prob * masks).flatten(1).sum(1) / area.clamp(min=1)
        scores = torch.where(area > 0, inside, prob.flatten(1).amax(1)).cpu().numpy()
        masks = masks.cpu().numpy()
        results = []
        for expr, head_box, raw_score, mask in zip(expressions, boxes, scores, masks):
            box = (mask_box(mask) if self.box_source == "mask" else None) or tuple(head_box)
            score = sanitize_score(raw_score)
            results.append(Grounding(expr, sanitize_box(box, width, height, self.min_box_size), score, mask,
                                     found=score >= self.found_threshold))
        return results
