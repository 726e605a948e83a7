"""Negations grounded by composition ("the mug that is not red" = the mugs where no red mug is),
left/right relations checked on the objects they name, and "the second mug from the left" / "the
mug closest to the duck" picked among every mug.

The model reads a negation as its opposite (docs/model.md, "Negations are composed"), but it
grounds "all the mugs" and "all the red mugs" well. :class:`Composition` replaces each negated
expression of a batch by its two parts (:func:`refseg_ros.language.negation.split_negation`), runs
them in the same batch, and combines the two outputs into the negation's row:

* mask logits: objects are dropped whole. Each connected part of the keep part's mask (cells with
  ``keep > t``, ``t`` the mask threshold's logit) that lies at least :data:`DROP_SHARE` in the drop
  part's mask (``drop > t``) is taken out (its cells get :data:`OUTSIDE_LOGIT`); every other part
  stays whole, with the keep part's logits (continuous for the post-processing's resampling);
* presence logit: ``min(keep's presence, the highest combined mask logit - t)``: there is a
  referent when the head's objects are there and some part of them is left;
* box: the box of the combined mask's cells above threshold (the keep part's box when none is).

Left/right relations ("the mug left of the duck") are checked the same way
(:func:`refseg_ros.language.relation.split_relation`): every object of the head ("all the mugs")
and the landmark ("the duck") are run in the same batch, and when the relation fails for each of
the head's objects and for the model's own answer (:func:`relation_fails`), the expression's
presence logit is set to :data:`NOT_THERE_LOGIT`, so it is answered "not found". When the
relation holds for some object but the model's answer lies on the wrong side of the landmark and
exactly one of the head's objects is on the named side, that object becomes the answer
(:func:`relation_part`; its mask and box, as a pick below). Otherwise the model's answer stands.
"In front of" and "behind" are checked and picked the same way when the frame comes with a depth
image (``Composition.of(..., depth=True)`` and a ``ground`` grid per expression in
:meth:`Composition.combine`): an object's place is its median distance along the table from the
camera (:mod:`refseg_ros.model.ground_plane`), in front = nearer by more than
:data:`FRONT_MARGIN_M`. Cells without depth say nothing: an object without any is taken to satisfy
the relation, so the model's answer stands.

Ordinals and nearest/farthest-to-a-landmark expressions
(:func:`refseg_ros.language.selection.split_selection`) are picked the same way: every object of
the head and the landmark are run in the batch, and the expression's mask and box become those of
the head's part that :func:`pick_part` chooses (the k-th centre from the named side; the centre
nearest to, or farthest from, the landmark's), its presence the model's own. When the model's own
answer is mostly that part, or there are fewer parts than asked for, or no landmark, the model's
answer stands.

Everything else (thresholds, instances, the found decision) is the post-processing's, on the
combined row, exactly as for any other expression. Other expressions, and those the text rules
cannot split, pass through unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from refseg_ros.language.negation import split_negation
from refseg_ros.language.relation import DEPTH_RELATIONS, RELATIONS, split_relation
from refseg_ros.language.selection import Selection, split_selection
from refseg_ros.model.heads import GroundingOutput
from refseg_ros.model.postprocess import INSTANCE_MIN_SHARE, largest_component, mask_box

#: How far (fraction of the mask grid's width) an object's centre must lie on the named side of the
#: landmark's centre for "left of"/"right of" to hold (0: any distance; chosen on v2 val, where
#: larger margins turned more correct answers into "not found" than they caught absent ones).
SIDE_MARGIN = 0.0
#: How much nearer the camera (metres, along the table) an object's median must be than the
#: landmark's for "in front of" to hold (and farther for "behind"); chosen on v2 val (docs/model.md).
FRONT_MARGIN_M = 0.0
#: The presence logit of an expression whose relation fails for every object (probability ~5e-5).
NOT_THERE_LOGIT = -10.0
#: The mask logit given to every cell outside a picked part.
OUTSIDE_LOGIT = -20.0
#: A part of a negation's keep mask ("all the mugs") that lies at least this share in its drop mask
#: ("all the red mugs") is taken out whole, any other part kept whole (chosen on v2 val among 0.3 to
#: 0.9, and against taking out the drop mask's cells one by one: docs/model.md).
DROP_SHARE = 0.7


@dataclass(frozen=True)
class Composition:
    """How ``expressions`` are run: ``model_expressions`` (the expressions with each split
    negation's keep part in its place, then the extra rows: drop parts, relations' heads and
    landmarks, picks' heads and landmarks), ``drop_rows[j]`` (the row of expression ``j``'s drop
    part, or -1), ``relation_rows[j]`` (its relation check, or None) and ``selection_rows[j]`` (its
    pick, or None)."""

    expressions: tuple[str, ...]
    model_expressions: tuple[str, ...]
    drop_rows: tuple[int, ...]
    #: per expression: (relation, row of the head's objects, row of the landmark), or None; "in
    #: front of"/"behind" only in a composition made for frames with depth
    relation_rows: tuple[tuple[str, int, int] | None, ...] = ()
    #: per extra row (after the expressions): the expression whose image it is about
    extra_sources: tuple[int, ...] = ()
    #: per expression: (selection, row of the head's objects, row of the landmark or -1), or None
    selection_rows: tuple[tuple[Selection, int, int] | None, ...] = ()

    @classmethod
    def of(cls, expressions, enabled: bool = True, relations: bool = True, pick: bool = True,
           depth: bool = False) -> "Composition":
        """``enabled``: compose negations; ``relations``: check left/right relations, and with
        ``depth`` (frames that come with a depth image) "in front of"/"behind" too; ``pick``: pick
        ordinals and nearest/farthest-to-a-landmark among the head's objects."""
        names = RELATIONS + DEPTH_RELATIONS if depth else RELATIONS
        expressions = tuple(str(e) for e in expressions)
        keep, extra, sources, drops, checks, picks = list(expressions), [], [], [], [], []
        n = len(expressions)

        def add(j: int, expression: str) -> int:
            extra.append(expression)
            sources.append(j)
            return n + len(extra) - 1

        for j, expr in enumerate(expressions):
            neg = split_negation(expr) if enabled else None
            rel = split_relation(expr, names) if relations and neg is None else None
            if neg is not None:
                keep[j] = neg.keep
            drops.append(add(j, neg.drop) if neg is not None else -1)
            checks.append((rel.name, add(j, rel.head), add(j, rel.landmark)) if rel is not None else None)
            sel = split_selection(expr) if pick and neg is None and rel is None else None
            picks.append((sel, add(j, sel.head), add(j, sel.landmark) if sel.landmark else -1)
                         if sel is not None else None)
        return cls(expressions, tuple(keep + extra), tuple(drops), tuple(checks), tuple(sources), tuple(picks))

    @property
    def composed(self) -> bool:
        return bool(self.extra_sources)

    def source_rows(self) -> list[int]:
        """``source_rows()[i]``: the expression whose image model row ``i`` belongs to."""
        return list(range(len(self.expressions))) + list(self.extra_sources)

    def combine(self, out: GroundingOutput, mask_threshold: float = 0.5, ground=None) -> GroundingOutput:
        """The model's output for ``model_expressions`` -> one row per expression; the masks are
        composed at ``mask_threshold`` (the post-processing's probability threshold). ``ground``:
        per expression, the distances along the table of its image's mask cells
        (:func:`refseg_ros.model.ground_plane.ground_distance_grid`, the mask grid's shape) or None;
        without one, "in front of"/"behind" are left to the model."""
        if not self.composed:
            return out
        p = min(max(float(mask_threshold), 1e-6), 1 - 1e-6)
        t = math.log(p / (1 - p))
        n = len(self.expressions)
        mask = out.mask_logits[:n].clone()
        box = out.box[:n].clone()
        presence = None if out.presence is None else out.presence[:n].clone()
        for j, r in enumerate(self.drop_rows):
            if r < 0:
                continue
            combined = _without_dropped(out.mask_logits[j], out.mask_logits[r], t)
            mask[j] = combined
            cells = (combined[0] > t).cpu().numpy()
            if cells.any():
                box[j] = _cells_box(cells, box)
            if presence is not None:
                presence[j] = torch.minimum(out.presence[j], (combined.amax() - t).to(presence.dtype))
        for j, check in enumerate(self.relation_rows):
            if check is None or presence is None:
                continue
            name, head, landmark = check
            grid = ground[j] if ground is not None else None
            if name in DEPTH_RELATIONS and grid is None:
                continue
            cells = (out.mask_logits[[j, head, landmark], 0] > t).cpu().numpy()
            if relation_fails(name, cells[1], cells[2], answer=cells[0], ground=grid):
                presence[j] = torch.minimum(presence[j], torch.tensor(NOT_THERE_LOGIT, dtype=presence.dtype,
                                                                        device=presence.device))
                continue
            part = relation_part(name, cells[1], cells[2], answer=cells[0], ground=grid)
            if part is not None:
                _take_part(mask, box, j, out.mask_logits[head], part, _grown(part))
        for j, chosen in enumerate(self.selection_rows):
            if chosen is None:
                continue
            sel, head, landmark = chosen
            rows = [head] if landmark < 0 else [head, landmark]
            cells = (out.mask_logits[rows, 0] > t).cpu().numpy()
            part = pick_part(sel, cells[0], cells[1] if landmark >= 0 else None)
            if part is None:
                continue
            grown = _grown(part)
            own = largest_component((out.mask_logits[j, 0] > t).cpu().numpy())
            if own.any() and (own & grown).sum() > 0.5 * own.sum():
                continue  # the model's own answer is that object: its mask is the sharper one
            _take_part(mask, box, j, out.mask_logits[head], part, grown)
        return replace(out, box=box, mask_logits=mask, presence=presence, attention=out.attention[:n])


def _without_dropped(keep: torch.Tensor, drop: torch.Tensor, t: float) -> torch.Tensor:
    """The ``(1, h, w)`` keep logits with every connected part of ``keep > t`` that lies at least
    :data:`DROP_SHARE` in ``drop > t`` set to :data:`OUTSIDE_LOGIT`, and every part too small to
    be one of the keep part's objects (under :data:`INSTANCE_MIN_SHARE` of its largest part, as
    the post-processing's instances): a speck left over must not become the answer."""
    import cv2

    count, labels = cv2.connectedComponents((keep[0] > t).cpu().numpy().astype(np.uint8), connectivity=8)
    cells = np.bincount(labels.ravel(), minlength=count)
    inside = np.bincount(labels[(drop[0] > t).cpu().numpy()], minlength=count)
    gone = inside >= DROP_SHARE * cells
    if count > 1:
        gone |= cells < INSTANCE_MIN_SHARE * cells[1:].max()
    gone[0] = False  # label 0: the cells outside every part
    where = torch.from_numpy(gone[labels]).to(keep.device)
    return torch.where(where, torch.full_like(keep, OUTSIDE_LOGIT), keep)


def _take_part(mask: torch.Tensor, box: torch.Tensor, j: int, head_logits: torch.Tensor, part: np.ndarray,
               grown: np.ndarray) -> None:
    """Row ``j`` answers with one part of the head's objects: its mask the head's logits inside
    ``grown`` (the part and a cell more: the edge's soft logits), :data:`OUTSIDE_LOGIT` elsewhere;
    its box the part's cells'."""
    keep = torch.from_numpy(grown).to(mask.device)
    mask[j] = torch.where(keep, head_logits, torch.full_like(head_logits, OUTSIDE_LOGIT))
    box[j] = _cells_box(part, box)


def _grown(part: np.ndarray) -> np.ndarray:
    """A bool map grown by one cell (8-neighbourhood)."""
    import cv2

    return cv2.dilate(part.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _cells_box(cells: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Normalised ``cxcywh`` of the cells set in a bool ``(h, w)`` map (pixel-edge convention)."""
    h, w = cells.shape
    x0, y0, x1, y1 = mask_box(cells)
    return torch.tensor([(x0 + x1) / (2 * w), (y0 + y1) / (2 * h), (x1 - x0) / w, (y1 - y0) / h],
                        dtype=like.dtype, device=like.device)


def pick_part(sel: Selection, head: np.ndarray, landmark: np.ndarray | None = None) -> np.ndarray | None:
    """The part of the bool ``(h, w)`` map of every object of the head that ``sel`` names: the k-th
    centre from its side, or the centre nearest to (farthest from) the landmark's largest part's
    (whose own cells are not one of the head's objects). None when there are fewer parts than
    ``k``, or no landmark, or no part: then nothing is picked."""
    lm = None
    if sel.kind != "ordinal":
        if landmark is None or not landmark.any():
            return None
        lm = largest_component(landmark)
        head = head & ~lm
    parts = _parts(head)
    if not parts:
        return None
    if sel.kind == "ordinal":
        if len(parts) < sel.k:
            return None
        return sorted(parts, key=lambda p: _centre(p) if sel.side == "left" else -_centre(p))[sel.k - 1]
    centre = np.argwhere(lm).mean(axis=0)
    sign = 1.0 if sel.kind == "nearest" else -1.0
    return min(parts, key=lambda p: sign * float(np.linalg.norm(np.argwhere(p).mean(axis=0) - centre)))


def _parts(cells: np.ndarray) -> list[np.ndarray]:
    """The 8-connected parts of a bool ``(h, w)`` map, specks (under ``INSTANCE_MIN_SHARE`` of the
    largest part, as for instances) dropped."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(cells.astype(np.uint8), connectivity=8)
    if count <= 1:
        return []
    areas = stats[1:, cv2.CC_STAT_AREA]
    return [labels == k + 1 for k in range(count - 1) if areas[k] >= INSTANCE_MIN_SHARE * areas.max()]


def _centre(part: np.ndarray) -> float:
    """Centre column of a part, in cells."""
    return float(np.nonzero(part)[1].mean()) + 0.5


def _beyond(name: str, part: np.ndarray, landmark: np.ndarray, ground: np.ndarray | None) -> float:
    """How far ``part`` lies on the named side of ``landmark`` (cells of the mask grid for left/right,
    metres along the table for front/behind; negative: the other side; NaN: no depth on either)."""
    if name in ("left_of", "right_of"):
        side = 1.0 if name == "left_of" else -1.0  # left of: the landmark's centre is right of the object's
        return side * (_centre(landmark) - _centre(part))
    if ground is None:
        raise ValueError(f"{name!r} is checked along the table: it needs a ground grid")
    part_d, landmark_d = _distance(ground, part), _distance(ground, landmark)
    return landmark_d - part_d if name == "in_front_of" else part_d - landmark_d


def _distance(ground: np.ndarray, part: np.ndarray) -> float:
    """Median distance along the table of a part's cells that have one (NaN when none has)."""
    values = ground[part]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def _margin(name: str, width: int, side_margin: float) -> float:
    return FRONT_MARGIN_M if name in DEPTH_RELATIONS else side_margin * width


def relation_part(name: str, head: np.ndarray, landmark: np.ndarray, answer: np.ndarray,
                  ground: np.ndarray | None = None) -> np.ndarray | None:
    """For "<head> <name> <landmark>" whose model ``answer`` (its largest part, the landmark's cells
    left out) is not on the named side of the landmark: the head's object that is, when exactly
    one is (bool ``(h, w)`` maps and ``ground`` as :func:`relation_fails`). None when the answer
    already is on that side (or cannot be placed), or no object or several are: then the model's
    answer stands."""
    if name not in RELATIONS + DEPTH_RELATIONS:
        raise ValueError(f"unknown relation {name!r}")
    lm = largest_component(landmark)
    if not lm.any():
        return None
    own = largest_component(answer & ~lm)
    if own.any() and not _beyond(name, own, lm, ground) <= 0:  # on the named side, or not placed
        return None
    parts = [p for p in _parts(head & ~lm) if _beyond(name, p, lm, ground) > 0]
    return parts[0] if len(parts) == 1 else None


def relation_fails(name: str, head: np.ndarray, landmark: np.ndarray, answer: np.ndarray | None = None,
                   side_margin: float = SIDE_MARGIN, ground: np.ndarray | None = None) -> bool:
    """True when "<head> <name> <landmark>" fails for every object of ``head`` and for the model's
    own ``answer`` (its largest part), from bool ``(h, w)`` maps of every object of the head and of
    the landmark (its largest part). False when the head or the landmark map is empty: then
    nothing is known, and the model's answer stands. "In front of"/"behind" need ``ground`` (the
    cells' distances along the table, NaN without depth); an object without depth satisfies them."""
    if name not in RELATIONS + DEPTH_RELATIONS:
        raise ValueError(f"unknown relation {name!r}")
    lm = largest_component(landmark)
    objects = _parts(head & ~lm) if lm.any() else []
    if not objects:
        return False
    if answer is not None and (answer & ~lm).any():
        objects.append(largest_component(answer & ~lm))
    margin = _margin(name, head.shape[1], side_margin)
    return all(_beyond(name, part, lm, ground) < margin for part in objects)
