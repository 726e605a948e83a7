"""Draw grounding results on an image: tinted masks, boxes, expression and score. numpy + OpenCV only.

Shared by the ROS node's ``overlay`` topic and the ``refseg predict`` command. Results are taken
by duck typing: anything with ``expression``, ``box`` (x_min, y_min, x_max, y_max in pixels),
``score`` and ``mask`` (bool (H, W) or None) works, e.g. ``refseg_ros.model.predictor.Grounding``.
Objects below ``found_threshold`` are drawn with a thin grey box and no mask, so a viewer sees
the model's best guess without mistaking it for a detection.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

__all__ = ["PALETTE_RGB", "color_for", "draw_groundings", "tint_mask"]

#: Distinct, colour-blind-friendly colours (Okabe-Ito), RGB.
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
    (204, 121, 167), (255, 255, 255),
)
_NOT_FOUND_RGB = (150, 150, 150)


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
        groundings: results in command order; the i-th gets palette colour i.
        found_threshold: for results without a ``found`` flag: those scoring below it are drawn as
            "not found" (grey box, no mask). A result's own ``found`` wins.
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
    items = list(groundings)
    labels = []
    for i, g in enumerate(items):
        found = getattr(g, "found", None)
        found = float(g.score) >= found_threshold if found is None else bool(found)
        color = color_for(i, channel_order) if found else _NOT_FOUND_RGB
        mask = getattr(g, "mask", None)
        if found and mask is not None and np.size(mask):
            tint_mask(out, mask, color, alpha)
        box = np.asarray(g.box, dtype=np.float64).reshape(-1)
        if box.size != 4 or not np.isfinite(box).all():
            continue
        x0, y0 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
        x1, y1 = int(np.clip(np.ceil(box[2]) - 1, 0, w - 1)), int(np.clip(np.ceil(box[3]) - 1, 0, h - 1))
        cv2.rectangle(out, (x0, y0), (x1, y1), color, 2 if found else 1, cv2.LINE_AA)
        text = f"{g.expression} {float(g.score):.2f}" + ("" if found else " (not found)")
        labels.append((text, x0, y0, color))
    for text, x, y, color in labels:  # labels last so masks and boxes never cover them
        _label(out, text, x, y, color, scale)
    return out
