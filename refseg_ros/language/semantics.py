"""What a referring expression means in a tabletop scene: structured forms and their semantics.

An expression has a *structured form* (a JSON-able dict); its surface text is the grammar's concern
(:mod:`refseg_ros.language.grammar`). The semantics (:func:`select`) is a pure function of the
structured form and the scene's object records; the generator only emits an expression if the
semantics picks out its target and nothing else, and (:func:`ablate`) removing the part that makes
it unique leaves it ambiguous.

Structured form::

    {"type": "category" | "attribute" | "location" | "ordinal" | "relation" | "proximity",
     "head": {"category"?: str, "colour"?: str, "size"?: str},    # {} = "object"/"one"/"thing"
     # at most one of:
     "location": "left" | "right" | "front" | "back",                 # the extreme head match
     "ordinal": {"k": 2 | 3, "from": "left" | "right"},               # k-th head match
     "relation": {"name": "left_of" | "right_of" | "in_front_of" | "behind" | "next_to",
                  "landmark": head},
     "proximity": {"extreme": "closest" | "farthest", "landmark": head | None}}  # None = camera

Object records (as stored per annotation) need ``category``, ``colour``, ``size``,
``center_px`` (u, v of the projected 3D centre), ``ground_distance`` (metres, along the table
from the camera), ``distance`` (metres, camera centre to object centre), ``position_table``
(x, y, z in the table frame) and ``radius`` (metres, footprint bounding circle).

Spatial meaning (margins make near-ties ambiguous rather than arbitrary):

* left/right: image x (``center_px[0]``) as seen in the image; a difference counts when it is at
  least ``LR_MARGIN * image width``.
* front/back: ``ground_distance``, the horizontal distance on the table from the camera to the
  object's centre; "in front" = nearer the camera. For a camera without roll this is the image y
  of the object's footprint (lower in the image = in front). Margin ``FB_MARGIN`` metres.
* closest/farthest to the camera: ``distance``; to a landmark: centre distance on the table.
  Margin ``DIST_MARGIN`` metres.
* next to: the gap between the two footprints (centre distance minus both radii) is at most
  ``NEXT_TO_GAP``; beyond ``NOT_NEXT_TO_GAP`` it is false; in between, unclear.

Relations are three-valued (true, false, unclear). :func:`select` returns every object the
expression may refer to (true or unclear); :func:`resolve` returns the target only when it is the
single such object and the expression is definitely true of it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

TYPES = ("category", "attribute", "location", "ordinal", "relation", "proximity")
LOCATIONS = ("left", "right", "front", "back")
RELATIONS = ("left_of", "right_of", "in_front_of", "behind", "next_to")

LR_MARGIN = 0.05  # fraction of image width
FB_MARGIN = 0.04  # metres
DIST_MARGIN = 0.03  # metres
NEXT_TO_GAP = 0.06  # metres
NOT_NEXT_TO_GAP = 0.10  # metres
#: a directional relation is false (not merely unclear) below this fraction of its margin
FALSE_FRACTION = 1.0 / 3.0

Objects = Sequence[dict]


def make_head(category: str | None = None, colour: str | None = None, size: str | None = None
              ) -> dict:
    head = {"category": category, "colour": colour, "size": size}
    return {k: v for k, v in head.items() if v is not None}


def head_matches(head: dict, obj: dict) -> bool:
    return all(obj.get(k) == v for k, v in head.items())


def matching(head: dict, objects: Objects, cache: dict | None = None) -> list[int]:
    """Indices of the objects ``head`` matches (``cache``: see :func:`select`)."""
    if cache is None:
        return [i for i, o in enumerate(objects) if head_matches(head, o)]
    key = tuple(sorted(head.items()))
    if key not in cache:
        cache[key] = [i for i, o in enumerate(objects) if head_matches(head, o)]
    return cache[key]


def _u(obj: dict) -> float:
    return float(obj["center_px"][0])


def _table_distance(a: dict, b: dict) -> float:
    pa, pb = a["position_table"], b["position_table"]
    return float(np.hypot(pa[0] - pb[0], pa[1] - pb[1]))


def _directional(diff: float, margin: float) -> bool | None:
    if diff >= margin:
        return True
    if diff < margin * FALSE_FRACTION:
        return False
    return None


def relation_holds(name: str, t: dict, l: dict, width: int) -> bool | None:
    """Three-valued truth of "t <name> l" (True, False, or None = unclear)."""
    if name == "left_of":
        return _directional(_u(l) - _u(t), LR_MARGIN * width)
    if name == "right_of":
        return _directional(_u(t) - _u(l), LR_MARGIN * width)
    if name == "in_front_of":
        return _directional(l["ground_distance"] - t["ground_distance"], FB_MARGIN)
    if name == "behind":
        return _directional(t["ground_distance"] - l["ground_distance"], FB_MARGIN)
    if name == "next_to":
        gap = _table_distance(t, l) - t["radius"] - l["radius"]
        if gap <= NEXT_TO_GAP:
            return True
        if gap > NOT_NEXT_TO_GAP:
            return False
        return None
    raise ValueError(f"unknown relation {name!r}")


def _location_key(location: str, width: int) -> tuple[Callable[[dict], float], float]:
    if location == "left":
        return _u, LR_MARGIN * width
    if location == "right":
        return (lambda o: -_u(o)), LR_MARGIN * width
    if location == "front":
        return (lambda o: float(o["ground_distance"])), FB_MARGIN
    if location == "back":
        return (lambda o: -float(o["ground_distance"])), FB_MARGIN
    raise ValueError(f"unknown location {location!r}")


def _extreme(cands: list[int], key: Callable[[int], float], margin: float) -> dict[int, bool]:
    """Candidates whose key is within ``margin`` of the minimum (definite only if alone)."""
    if not cands:
        return {}
    best = min(key(i) for i in cands)
    chosen = [i for i in cands if key(i) - best < margin]
    return {i: len(chosen) == 1 for i in chosen}


def _evaluate(expr: dict, objects: Objects, width: int, cache: dict | None = None
              ) -> dict[int, bool]:
    """Object index -> definitely referred to (True) or possibly (False).

    ``cache`` (any dict, reused only for the same ``objects``) memoises head matches.
    """
    head = expr.get("head", {})
    cands = matching(head, objects, cache)
    if "location" in expr:
        key, margin = _location_key(expr["location"], width)
        return _extreme(cands, lambda i: key(objects[i]), margin)
    if "ordinal" in expr:
        k, side = int(expr["ordinal"]["k"]), expr["ordinal"]["from"]
        key, margin = _location_key(side, width)
        ordered = sorted(cands, key=lambda i: key(objects[i]))
        if len(ordered) < k:
            return {}
        pivot = key(objects[ordered[k - 1]])
        chosen = [i for i in cands if abs(key(objects[i]) - pivot) < margin]
        return {i: len(chosen) == 1 for i in chosen}
    if "relation" in expr:
        rel = expr["relation"]
        out: dict[int, bool] = {}
        landmarks = matching(rel["landmark"], objects, cache)
        for l in landmarks:
            for t in cands:
                if t == l:
                    continue
                holds = relation_holds(rel["name"], objects[t], objects[l], width)
                if holds is not False:
                    out[t] = out.get(t, False) or bool(holds)
        if len(landmarks) != 1:  # an ambiguous landmark makes every reading only possible
            out = {i: False for i in out}
        return out
    if "proximity" in expr:
        prox = expr["proximity"]
        sign = 1.0 if prox["extreme"] == "closest" else -1.0
        if prox.get("landmark") is None:
            return _extreme(cands, lambda i: sign * float(objects[i]["distance"]), DIST_MARGIN)
        landmarks = matching(prox["landmark"], objects, cache)
        out = {}
        for l in landmarks:
            others = [i for i in cands if i != l]
            for i, definite in _extreme(
                    others, lambda i: sign * _table_distance(objects[i], objects[l]),
                    DIST_MARGIN).items():
                out[i] = out.get(i, False) or (definite and len(landmarks) == 1)
        return out
    return {i: len(cands) == 1 for i in cands}


def select(expr: dict, objects: Objects, width: int, cache: dict | None = None) -> list[int]:
    """Indices of every object the expression may refer to under the grammar's semantics."""
    return sorted(_evaluate(expr, objects, width, cache))


def resolve(expr: dict, objects: Objects, width: int, cache: dict | None = None) -> int | None:
    """The one object the expression definitely and uniquely refers to, else ``None``."""
    result = _evaluate(expr, objects, width, cache)
    if len(result) == 1:
        (i, definite), = result.items()
        if definite:
            return i
    return None


def ablate(expr: dict) -> list[dict]:
    """The expression with its distinguishing part removed (one form per removable word).

    category: the category noun -> "the object"; attribute: each attribute word in turn;
    location / ordinal / relation / proximity: the spatial phrase (the bare head remains).
    """
    head = dict(expr.get("head", {}))
    kind = expr["type"]
    if kind == "category":
        return [{"type": "attribute", "head": {}}]
    if kind == "attribute":
        outs = []
        for key in ("colour", "size"):
            if key in head:
                reduced = {k: v for k, v in head.items() if k != key}
                outs.append({"type": "attribute", "head": reduced})
        return outs
    return [{"type": "attribute", "head": head}]
