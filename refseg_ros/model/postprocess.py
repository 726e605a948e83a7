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

**Memory.** A mask is computed where it can be: a pixel passes the threshold only if one of the
(at most four) logit-map cells it is interpolated from does, so only the image region around those
cells is resampled, in strips of at most ``STRIP_PIXELS``, with exactly the values a resampling of
the whole image would give there. What a result costs at full resolution is its ``bool`` mask.

**Score.** With a presence head (``presence_head: true``, trained on expressions with no target):
the sigmoid of its logit, the probability that the expression has a referent in the image, and a
result below ``found_threshold`` carries an empty mask. Without one: the mean mask probability over
the returned mask's pixels (or, when no pixel passes the threshold, the highest probability
anywhere), "how sure is the model of the mask it returns"; such a model was only trained on
expressions whose object is there, so a low score hints at, but does not prove, that it is absent.

**Several referents.** An expression that asks for every match ("all the red cubes", "both mugs";
:func:`refseg_ros.language.number.asks_for_many`) keeps every connected part of its mask under
``mask_components="auto"`` (one :class:`Instance` per part); any other keeps the largest part.
One that says how many ("both mugs", "the two cubes":
:func:`refseg_ros.language.number.stated_count`) keeps at most that many parts: those with the
highest mean mask probability (on v2 val and test this keeps the right objects more often than
keeping the largest parts: docs/node.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

BOX_SOURCES = ("head", "mask")
#: Most image pixels resampled at once (float32 grid, logits, probabilities of one strip).
STRIP_PIXELS = 1 << 20
#: Slack on the probability of a logit-map cell when choosing where to resample: an interpolated
#: value exceeds its neighbours' by float rounding at most.
_CELL_SLACK = 1e-4
MASK_COMPONENTS = ("all", "largest", "auto")
#: Connected parts of a multi-referent mask smaller than this share of the largest part are specks,
#: not instances.
INSTANCE_MIN_SHARE = 0.08

Box = tuple[float, float, float, float]


@dataclass
class Instance:
    """One referent of a result: its box (as :class:`Grounding`'s), ``bool (H, W)`` mask and score."""

    box: Box
    mask: np.ndarray
    score: float


@dataclass
class Grounding:
    """One expression's result on one image, in that image's pixels.

    ``box``: ``(x_min, y_min, x_max, y_max)`` floats, pixel-edge coordinates inside the image;
    ``score`` in [0, 1] (see the module docstring); ``mask``: ``bool (H, W)`` at the image's size,
    the union of the instances; ``found``: ``score >= found_threshold`` of the post-processing that
    made it. ``instances``: one per referent (exactly one for a single-referent expression; none
    when not found); ``multi``: the expression asks for every match. A result that is not found
    has no instances, and with a presence head an empty mask: its ``box`` means nothing.
    """

    expression: str
    box: Box
    score: float
    mask: np.ndarray
    found: bool = True
    instances: list[Instance] = field(default_factory=list)
    multi: bool = False


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
        mask_components: ``"all"``, ``"largest"`` (keep the largest 8-connected component) or
            ``"auto"`` (all for expressions asking for every match, else the largest).
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
        """The post-processing a model config asks for (``mask_threshold``, ``found_threshold``,
        ``box_source``, ``mask_components``), with ``overrides`` applied; an override of None keeps the model's."""
        fields = dict(mask_threshold=float(cfg.mask_threshold), found_threshold=float(cfg.found_threshold),
                      box_source=cfg.box_source, mask_components=cfg.mask_components)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)

    def with_(self, **changes) -> "PostProcess":
        """A copy with ``changes`` (None values ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def __call__(self, boxes_cxcywh, mask_logits, letterbox, expressions: list[str],
                 presence=None) -> list[Grounding]:
        """``boxes_cxcywh (N, 4)`` normalised on the model input and ``mask_logits (N, 1, h, w)``
        covering it, for ``N`` expressions on the one image that ``letterbox`` describes;
        ``presence (N,)``: the presence head's logits (None: the model has none)."""
        from refseg_ros.language.number import asks_for_many, stated_count
        from refseg_ros.model.letterbox import boxes_to_image

        width, height = letterbox.image_size
        boxes = boxes_to_image(boxes_cxcywh, letterbox).cpu().numpy()
        sampler = _MaskSampler(mask_logits, letterbox)
        probability = None if presence is None else presence.float().sigmoid().cpu().numpy()
        results = []
        for n, (expr, head_box) in enumerate(zip(expressions, boxes)):
            multi = asks_for_many(expr)
            largest = self.mask_components == "largest" or (self.mask_components == "auto" and not multi)
            count = stated_count(expr) if multi else None
            mask, raw_score, prob = self._mask_and_score(sampler, n, largest, keep_probability=count is not None)
            box = sanitize_box((mask_box(mask) if self.box_source == "mask" else None) or tuple(head_box),
                               width, height, self.min_box_size)
            score = sanitize_score(raw_score if probability is None else probability[n])
            found = score >= self.found_threshold
            instances: list[Instance] = []
            if found and multi:
                instances = self._instances(mask, box, score, width, height, count, prob)
                if mask.any():  # the union of the instances: specks and parts over a stated count go
                    mask = np.logical_or.reduce([i.mask for i in instances])
                    if self.box_source == "mask":
                        box = sanitize_box(mask_box(mask) or box, width, height, self.min_box_size)
            elif found:
                instances = [Instance(box, mask, score)]
            elif probability is not None:
                mask = np.zeros_like(mask)
            results.append(Grounding(expr, box, score, mask, found=found, instances=instances, multi=multi))
        return results

    def _instances(self, mask: np.ndarray, box: Box, score: float, width: int, height: int,
                   count: int | None = None, probability: np.ndarray | None = None) -> list[Instance]:
        """One instance per connected part of ``mask`` (specks dropped), largest first; with
        ``count`` ("both mugs": 2), at most that many, the parts of highest mean ``probability``
        (``float32 (H, W)``, the mask's pixel probabilities; largest when None) in that order; the
        whole result when the mask is empty (the box head's box)."""
        import cv2

        if not mask.any():
            return [Instance(box, mask, score)]
        parts, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = [k + 1 for k in np.argsort(-areas, kind="stable") if areas[k] >= INSTANCE_MIN_SHARE * areas.max()]
        if count is not None and probability is not None and len(keep) > count:
            mean = np.bincount(labels.ravel(), probability.ravel(), minlength=parts)[1:] / np.maximum(areas, 1)
            keep = sorted(keep, key=lambda k: -mean[k - 1])
        keep = keep[:count]
        out = []
        for k in keep:
            part = labels == k
            out.append(Instance(sanitize_box(mask_box(part), width, height, self.min_box_size), part, score))
        return out

    def _mask_and_score(self, sampler: "_MaskSampler", n: int, largest: bool,
                        keep_probability: bool = False) -> tuple[np.ndarray, float, np.ndarray | None]:
        """Expression ``n``'s ``bool (H, W)`` mask (only its largest part if ``largest``), its mask
        score (see the module docstring) and, if ``keep_probability``, the ``float32 (H, W)`` pixel
        probabilities wherever the mask can be (zero elsewhere; else None)."""
        width, height = sampler.image_size
        mask = np.zeros((height, width), bool)
        probability = np.zeros((height, width), np.float32) if keep_probability else None
        threshold = self.mask_threshold
        region = sampler.region(n, sampler.cell_prob[n] > threshold - _CELL_SLACK)
        total = 0.0
        if region is not None:
            (y0, y1), (x0, x1) = region
            for ya, yb, prob in sampler.strips(n, y0, y1, x0, x1):
                strip = prob > threshold
                mask[ya:yb, x0:x1] = strip
                if probability is not None:
                    probability[ya:yb, x0:x1] = prob
                total += float(prob[strip].sum(dtype=np.float64))
            if largest:
                kept = largest_component(mask[y0:y1, x0:x1])
                if not np.array_equal(kept, mask[y0:y1, x0:x1]):
                    mask[y0:y1, x0:x1] = kept
                    total = sum(float(prob[mask[ya:yb, x0:x1]].sum(dtype=np.float64))
                                for ya, yb, prob in sampler.strips(n, y0, y1, x0, x1))
        area = int(np.count_nonzero(mask))
        if area:
            return mask, total / area, probability
        return mask, sampler.highest_probability(n), probability


class _MaskSampler:
    """Bilinear resampling of one image's logit maps onto parts of the image, value for value what
    ``letterbox.mask_logits_to_image`` gives for the whole image (the same grid coordinates, the
    same ``grid_sample``), plus which image pixels each logit-map cell can reach."""

    def __init__(self, mask_logits, letterbox) -> None:
        import torch

        self.logits = mask_logits.float()
        self.image_size = letterbox.image_size
        width, height = letterbox.image_size
        iw, ih = letterbox.input_size
        sx, sy = letterbox.scale_xy
        dev = self.logits.device
        # image pixel centre -> input coordinate -> [-1, 1] over the logit map (align_corners=False)
        self.gx = (torch.arange(width, device=dev, dtype=torch.float32) + 0.5) * sx / iw * 2 - 1
        self.gy = (torch.arange(height, device=dev, dtype=torch.float32) + 0.5) * sy / ih * 2 - 1
        map_h, map_w = self.logits.shape[-2:]
        # the logit-map cells interpolated for each image column / row (grid_sample's border padding)
        self.col_cells = self._cells(self.gx, map_w)
        self.row_cells = self._cells(self.gy, map_h)
        self.cell_prob = torch.nan_to_num(self.logits[:, 0].sigmoid(), nan=-1.0)

    @staticmethod
    def _cells(g, size: int) -> tuple[np.ndarray, np.ndarray]:
        u = np.clip(((g.double().cpu().numpy() + 1) * size - 1) / 2, 0, size - 1)
        first = np.floor(u).astype(np.int64)
        # one cell of slack each way: the float32 grid_sample may round across a cell edge
        return np.maximum(first - 1, 0), np.minimum(first + 2, size - 1)

    def region(self, n: int, cells) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """Image rows ``(y0, y1)`` and columns ``(x0, x1)`` whose values can involve a True ``cells``
        (a bool logit-map tensor), or None."""
        cells = cells.cpu().numpy()
        rows, cols = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
        if len(rows) == 0:
            return None
        ys = _reaching(self.row_cells, rows[0], rows[-1])
        xs = _reaching(self.col_cells, cols[0], cols[-1])
        return (ys, xs) if ys and xs else None

    def strips(self, n: int, y0: int, y1: int, x0: int, x1: int):
        """``(ya, yb, prob)``: probabilities (float32 numpy, NaN as 0) of rows ``ya:yb`` and columns
        ``x0:x1``, strip by strip."""
        import torch
        import torch.nn.functional as F

        rows = max(1, STRIP_PIXELS // max(1, x1 - x0))
        gx = self.gx[x0:x1]
        for ya in range(y0, y1, rows):
            yb = min(y1, ya + rows)
            grid = torch.stack(torch.meshgrid(self.gy[ya:yb], gx, indexing="ij")[::-1], dim=-1).unsqueeze(0)
            out = F.grid_sample(self.logits[n:n + 1], grid, mode="bilinear", padding_mode="border",
                                align_corners=False)[0, 0]
            yield ya, yb, torch.nan_to_num_(out.sigmoid_(), nan=0.0).cpu().numpy()

    def highest_probability(self, n: int) -> float:
        """The highest probability over the image's pixels, from the few cells that can give it."""
        first = self.region(n, self._best_cell(n))
        if first is None:
            return 0.0
        (y0, y1), (x0, x1) = first
        best = max(float(prob.max()) for _, _, prob in self.strips(n, y0, y1, x0, x1))
        region = self.region(n, self.cell_prob[n] >= best - _CELL_SLACK)
        if region is not None:
            (y0, y1), (x0, x1) = region
            best = max([best] + [float(prob.max()) for _, _, prob in self.strips(n, y0, y1, x0, x1)])
        return best

    def _best_cell(self, n: int):
        """A bool map with the single most probable cell that some image pixel reaches."""
        import torch

        r0, r1 = int(self.row_cells[0].min()), int(self.row_cells[1].max())
        c0, c1 = int(self.col_cells[0].min()), int(self.col_cells[1].max())
        reach = self.cell_prob[n][r0:r1 + 1, c0:c1 + 1]
        k = int(torch.argmax(reach))
        cells = torch.zeros_like(self.cell_prob[n], dtype=torch.bool)
        cells[r0 + k // reach.shape[1], c0 + k % reach.shape[1]] = True
        return cells


def _reaching(cells: tuple[np.ndarray, np.ndarray], lo: int, hi: int) -> tuple[int, int] | None:
    """The contiguous pixel range ``(a, b)`` whose cell spans overlap cells ``lo..hi`` (spans grow
    with the pixel index), or None."""
    first, last = cells
    hit = np.flatnonzero((last >= lo) & (first <= hi))
    return (int(hit[0]), int(hit[-1]) + 1) if len(hit) else None
