"""Draw grounding results on an image: tinted masks, boxes, expression and score. numpy + OpenCV only.

Shared by the ROS node's ``overlay`` topic, ``refseg predict`` and the demo. Results are taken by
duck typing: anything with ``expression``, ``box`` (x_min, y_min, x_max, y_max in pixels),
``score`` and ``mask`` (bool (H, W) or None) works, e.g. ``refseg_ros.model.postprocess.Grounding``;
``found``, ``multi`` and ``instances`` are read when present.

:func:`answers` is what a result means to someone acting on it, and every output (messages,
overlay, ``refseg predict``'s JSON) is built from it: a result that was not found is one answer
with no box and no mask (drawn as a "not found: <expression>" line, never as a box: the model's
best guess would be read as a detection); an expression asking for every match ("all the red
cubes") found is one answer per object.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np

__all__ = ["PALETTE_RGB", "Answer", "answers", "color_for", "draw_groundings", "tint_mask"]

#: Distinct, colour-blind-friendly colours (Okabe-Ito), RGB.
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
    (204, 121, 167), (255, 255, 255),
)
_NOT_FOUND_RGB = (150, 150, 150)


@dataclass(frozen=True)
class Answer:
    """One object found for an expression, or the expression's "not found".

    ``index``: the expression's place in the command (its colour); ``instance``/``of``: which of the
    expression's objects this is (0 of 1 for a single-target expression); ``box`` and ``mask`` are
    None when not found.
    """

    expression: str
    index: int
    found: bool
    score: float
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None
    instance: int = 0
    of: int = 1


def _is_found(result, found_threshold: float) -> bool:
    found = getattr(result, "found", None)
    return float(result.score) >= found_threshold if found is None else bool(found)


def answers(results: Iterable, found_threshold: float = 0.0) -> list[Answer]:
    """The answers of ``results`` (one per expression, in command order), flattened. Consecutive
    results with the same expression (the objects of one, decoded from messages) share its index.

    Not found: one answer without box or mask. Found, for an expression that asks for every match
    (``multi``) with ``instances``: one answer per instance, each with its own box, mask and score.
    Otherwise one answer with the result's box, mask and score. ``found_threshold`` decides for
    results without a ``found`` flag.
    """
    out: list[Answer] = []
    i, previous = -1, None
    for r in results:
        if r.expression != previous or i < 0:  # results of one expression in a row share its colour
            i, previous = i + 1, r.expression
        score = float(r.score)
        if not _is_found(r, found_threshold):
            out.append(Answer(r.expression, i, False, score))
            continue
        instances = list(getattr(r, "instances", None) or ()) if getattr(r, "multi", False) else []
        if not instances:
            mask = getattr(r, "mask", None)
            out.append(Answer(r.expression, i, True, score, tuple(float(v) for v in r.box), mask))
            continue
        for k, inst in enumerate(instances):
            out.append(Answer(r.expression, i, True, float(inst.score), tuple(float(v) for v in inst.box),
                              inst.mask, k, len(instances)))
    return out


def color_for(index: int, channel_order: str = "rgb") -> tuple[int, int, int]:
    c = PALETTE_RGB[index % len(PALETTE_RGB)]
    return c[::-1] if channel_order == "bgr" else c


def tint_mask(image: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float = 0.45) -> np.ndarray:
    """Blend ``color`` into ``image`` where ``mask`` is set (in place) and outline the mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2] or not mask.any():
        return image
    region = image[mask].astype(np.float32)
    image[mask] = (region * (1.0 - alpha) + np.asarray(color, np.float32) * alpha).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, tuple(int(c) for c in color), 1, cv2.LINE_AA)
    return image


def _label(image: np.ndarray, text: str, x: int, y: int, color: Sequence[int], scale: float) -> None:
    # cv2's Hershey fonts draw only ASCII; anything else would appear as '?'.
    text = text.encode("ascii", "replace").decode("ascii")
    thickness = max(1, int(round(scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    h, w = image.shape[:2]
    x = int(np.clip(x, 0, max(0, w - tw - 2)))
    y = int(y - th - base - 2 if y - th - base - 2 >= 0 else min(h - th - base - 2, y + 2))
    y = max(0, y)
    cv2.rectangle(image, (x, y), (x + tw + 2, y + th + base + 2), tuple(int(c) for c in color), -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 1, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness, cv2.LINE_AA)


def draw_groundings(image: np.ndarray, groundings: Iterable, *, found_threshold: float = 0.0,
                    alpha: float = 0.45, channel_order: str = "rgb", copy: bool = True) -> np.ndarray:
    """Return ``image`` (H, W, 3 uint8) with every grounding drawn on it.

    Args:
        groundings: results in command order (see :func:`answers`); the i-th expression gets
            palette colour i, every object found for it included. An expression not found gets
            no box and no mask, only a grey "not found: <expression>" line at the top left.
        found_threshold: for results without a ``found`` flag: those scoring below it are not found.
        alpha: mask tint opacity.
        channel_order: "rgb" or "bgr", the order of ``image``'s channels.
        copy: draw on a copy (default) or on ``image`` itself.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', not {channel_order!r}")
    out = np.ascontiguousarray(image.copy() if copy else image)
    h, w = out.shape[:2]
    scale = float(np.clip(min(h, w) / 900.0, 0.35, 1.2))
    labels = []
    missing = []
    for a in answers(groundings, found_threshold):
        if not a.found:
            missing.append(f"not found: {a.expression}")
            continue
        color = color_for(a.index, channel_order)
        if a.mask is not None and np.size(a.mask):
            tint_mask(out, a.mask, color, alpha)
        box = np.asarray(a.box, dtype=np.float64).reshape(-1)
        if box.size != 4 or not np.isfinite(box).all():
            continue
        x0, y0 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
        x1, y1 = int(np.clip(np.ceil(box[2]) - 1, 0, w - 1)), int(np.clip(np.ceil(box[3]) - 1, 0, h - 1))
        cv2.rectangle(out, (x0, y0), (x1, y1), color, 2, cv2.LINE_AA)
        which = f" ({a.instance + 1} of {a.of})" if a.of > 1 else ""
        labels.append((f"{a.expression}{which} {a.score:.2f}", x0, y0, color))
    for text, x, y, color in labels:  # labels last so masks and boxes never cover them
        _label(out, text, x, y, color, scale)
    line_h = int(round(30 * scale)) + 4
    for k, text in enumerate(missing):
        _label(out, text, 2, (k + 1) * line_h + 2, _NOT_FOUND_RGB, scale)
    return out
