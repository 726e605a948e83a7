"""Negations grounded by composition: "the mug that is not red" = the mugs where no red mug is.

The model reads a negation as its opposite (docs/model.md, "Negations are composed"), but it
grounds "all the mugs" and "all the red mugs" well. :class:`Composition` replaces each negated
expression of a batch by its two parts (:func:`refseg_ros.language.negation.split_negation`), runs
them in the same batch, and combines the two outputs into the negation's row:

* mask logits: ``min(keep, 2t - drop)`` per cell, ``t`` the mask threshold's logit: a cell is in
  the result exactly when it is in the keep part's mask (``keep > t``) and not in the drop part's
  (``drop <= t``), and the logits stay continuous for the post-processing's resampling;
* presence logit: ``min(keep's presence, the highest combined mask logit - t)``: there is a
  referent when the head's objects are there and some part of them is left;
* box: the box of the combined mask's cells above threshold (the keep part's box when none is).

Everything else (thresholds, instances, the found decision) is the post-processing's, on the
combined row, exactly as for any other expression. Expressions that are not negations, and
negations the text rules cannot split, pass through unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from refseg_ros.language.negation import split_negation
from refseg_ros.model.heads import GroundingOutput
from refseg_ros.model.postprocess import mask_box


@dataclass(frozen=True)
class Composition:
    """How ``expressions`` are run: ``model_expressions`` (the expressions with each split
    negation's keep part in its place, then the drop parts) and ``drop_rows[j]`` (the row of
    expression ``j``'s drop part, or -1)."""

    expressions: tuple[str, ...]
    model_expressions: tuple[str, ...]
    drop_rows: tuple[int, ...]

    @classmethod
    def of(cls, expressions, enabled: bool = True) -> "Composition":
        expressions = tuple(str(e) for e in expressions)
        keep, drops, rows = list(expressions), [], []
        for j, expr in enumerate(expressions):
            neg = split_negation(expr) if enabled else None
            if neg is None:
                rows.append(-1)
                continue
            keep[j] = neg.keep
            rows.append(len(expressions) + len(drops))
            drops.append(neg.drop)
        return cls(expressions, tuple(keep + drops), tuple(rows))

    @property
    def composed(self) -> bool:
        return any(r >= 0 for r in self.drop_rows)

    def source_rows(self) -> list[int]:
        """``source_rows()[i]``: the expression whose image model row ``i`` belongs to."""
        return list(range(len(self.expressions))) + [j for j, r in enumerate(self.drop_rows) if r >= 0]

    def combine(self, out: GroundingOutput, mask_threshold: float = 0.5) -> GroundingOutput:
        """The model's output for ``model_expressions`` -> one row per expression; the masks are
        composed at ``mask_threshold`` (the post-processing's probability threshold)."""
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
            combined = torch.minimum(out.mask_logits[j], 2 * t - out.mask_logits[r])
            mask[j] = combined
            edges = mask_box((combined[0] > t).cpu().numpy())  # in cells, pixel-edge convention
            if edges is not None:
                h, w = combined.shape[-2:]
                x0, y0, x1, y1 = edges
                box[j] = torch.tensor([(x0 + x1) / (2 * w), (y0 + y1) / (2 * h), (x1 - x0) / w, (y1 - y0) / h],
                                      dtype=box.dtype, device=box.device)
            if presence is not None:
                presence[j] = torch.minimum(out.presence[j], (combined.amax() - t).to(presence.dtype))
        return replace(out, box=box, mask_logits=mask, presence=presence, attention=out.attention[:n])

