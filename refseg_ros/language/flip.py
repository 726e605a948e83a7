"""The same expression in the horizontally mirrored image: its structured form, the object
records and the text (left and right swap; nothing else changes)."""
from __future__ import annotations

import re
from typing import Sequence


def flip_structure(expr: dict) -> dict:
    """The structured form that means the same thing in the horizontally mirrored image."""
    swap = {"left": "right", "right": "left", "left_of": "right_of", "right_of": "left_of"}
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in expr.items()}
    if "location" in out:
        out["location"] = swap.get(out["location"], out["location"])
    if "ordinal" in out:
        out["ordinal"]["from"] = swap[out["ordinal"]["from"]]
    if "relation" in out:
        out["relation"]["name"] = swap.get(out["relation"]["name"], out["relation"]["name"])
    return out


def flip_objects(objects: Sequence[dict], width: int) -> list[dict]:
    """Object records as seen in the horizontally mirrored image (only image x changes)."""
    out = []
    for o in objects:
        o = dict(o)
        u, v = o["center_px"]
        o["center_px"] = [_mirror_u(u, width), v]
        out.append(o)
    return out


def _mirror_u(u: float, width: int) -> float:
    # pixel column c maps to width - 1 - c; u is in pixel-centre coordinates
    return float(width - 1 - u)


_LR_WORD = re.compile(r"\b(left|right)(most)?\b")


def flip_text(text: str) -> str:
    """Swap left and right words ("leftmost" <-> "rightmost", "left of" <-> "right of", ...)."""
    def swap(m: re.Match) -> str:
        return ("right" if m.group(1) == "left" else "left") + (m.group(2) or "")

    return _LR_WORD.sub(swap, text)
