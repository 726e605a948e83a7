"""Referring expressions for tabletop scenes: structured forms, their semantics, text, parsing.

An expression has a *structured form* (a JSON-able dict) and a surface text realised from it by
templates with synonyms and varied word order. The semantics (:func:`select`) is a pure function
of the structured form and the scene's object records; the generator only emits an expression if
the semantics picks out its target and nothing else, and (:func:`ablate`) removing the part that
makes it unique leaves it ambiguous. :func:`parse` maps every text the templates produce back to
its structured form, so tests can check the text itself, not just what the generator intended.

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

import re
from typing import Callable, Sequence

import numpy as np

from refseg_ros.data.catalog import CATEGORIES, COLOURS, SIZES

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

_HEAD_KEYS = ("category", "colour", "size")
GENERIC_NOUNS = ("object", "one", "thing")
ORDINAL_WORDS = {2: "second", 3: "third"}

Objects = Sequence[dict]


# --------------------------------------------------------------------------- semantics
def make_head(category: str | None = None, colour: str | None = None, size: str | None = None
              ) -> dict:
    head = {"category": category, "colour": colour, "size": size}
    return {k: v for k, v in head.items() if v is not None}


def head_matches(head: dict, obj: dict) -> bool:
    return all(obj.get(k) == v for k, v in head.items())


def _matching(head: dict, objects: Objects, cache: dict | None = None) -> list[int]:
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
    cands = _matching(head, objects, cache)
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
        landmarks = _matching(rel["landmark"], objects, cache)
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
        landmarks = _matching(prox["landmark"], objects, cache)
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


def flip_objects(objects: Objects, width: int) -> list[dict]:
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


# --------------------------------------------------------------------------- text
_NOUNS: dict[str, tuple[str, ...]] = {c.name: c.nouns for c in CATEGORIES}

#: (kind, parameters, template). ``{np}`` is the head without article, ``{L}`` the landmark
#: with its article, ``{ord}`` an ordinal word.
TEMPLATES: tuple[tuple[str, dict, str], ...] = (
    ("head", {}, "the {np}"),
    ("location", {"location": "left"}, "the leftmost {np}"),
    ("location", {"location": "left"}, "the {np} on the left"),
    ("location", {"location": "left"}, "the {np} furthest to the left"),
    ("location", {"location": "left"}, "the {np} on the far left"),
    ("location", {"location": "right"}, "the rightmost {np}"),
    ("location", {"location": "right"}, "the {np} on the right"),
    ("location", {"location": "right"}, "the {np} furthest to the right"),
    ("location", {"location": "right"}, "the {np} on the far right"),
    ("location", {"location": "front"}, "the frontmost {np}"),
    ("location", {"location": "front"}, "the {np} in front"),
    ("location", {"location": "front"}, "the {np} at the front"),
    ("location", {"location": "front"}, "the {np} closest to the front"),
    ("location", {"location": "back"}, "the {np} at the back"),
    ("location", {"location": "back"}, "the {np} in the back"),
    ("location", {"location": "back"}, "the {np} furthest back"),
    ("location", {"location": "back"}, "the rearmost {np}"),
    ("ordinal", {"from": "left"}, "the {ord} {np} from the left"),
    ("ordinal", {"from": "left"}, "the {np} {ord} from the left"),
    ("ordinal", {"from": "right"}, "the {ord} {np} from the right"),
    ("ordinal", {"from": "right"}, "the {np} {ord} from the right"),
    ("relation", {"name": "left_of"}, "the {np} left of {L}"),
    ("relation", {"name": "left_of"}, "the {np} to the left of {L}"),
    ("relation", {"name": "left_of"}, "the {np} on the left of {L}"),
    ("relation", {"name": "right_of"}, "the {np} right of {L}"),
    ("relation", {"name": "right_of"}, "the {np} to the right of {L}"),
    ("relation", {"name": "right_of"}, "the {np} on the right of {L}"),
    ("relation", {"name": "in_front_of"}, "the {np} in front of {L}"),
    ("relation", {"name": "behind"}, "the {np} behind {L}"),
    ("relation", {"name": "next_to"}, "the {np} next to {L}"),
    ("relation", {"name": "next_to"}, "the {np} beside {L}"),
    ("relation", {"name": "next_to"}, "the {np} near {L}"),
    ("relation", {"name": "next_to"}, "the {np} by {L}"),
    ("proximity", {"extreme": "closest", "camera": True}, "the {np} closest to the camera"),
    ("proximity", {"extreme": "closest", "camera": True}, "the {np} nearest to the camera"),
    ("proximity", {"extreme": "closest", "camera": True}, "the {np} nearest the camera"),
    ("proximity", {"extreme": "farthest", "camera": True}, "the {np} farthest from the camera"),
    ("proximity", {"extreme": "farthest", "camera": True}, "the {np} furthest from the camera"),
    ("proximity", {"extreme": "closest", "camera": False}, "the {np} closest to {L}"),
    ("proximity", {"extreme": "closest", "camera": False}, "the {np} nearest to {L}"),
    ("proximity", {"extreme": "farthest", "camera": False}, "the {np} farthest from {L}"),
)


def realise_np(head: dict, rng: np.random.Generator, allow_clause: bool = False) -> str:
    """The head as a noun phrase without article: "[size] [colour] noun" (or "noun that is
    colour"), nouns and size words drawn from their synonyms."""
    category = head.get("category")
    noun = rng.choice(_NOUNS[category]) if category else rng.choice(GENERIC_NOUNS)
    if category is None and not head:
        noun = "object"  # "the leftmost one" alone reads oddly without an adjective
    colour, size = head.get("colour"), head.get("size")
    if allow_clause and colour and not size and category and rng.random() < 0.15:
        return f"{noun} that is {colour}"
    words = []
    if size:
        words.append(str(rng.choice(SIZES[size])))
    if colour:
        words.append(colour)
    words.append(str(noun))
    return " ".join(words)


def _template_matches(kind: str, params: dict, expr: dict) -> bool:
    if kind == "head":
        return expr["type"] in ("category", "attribute")
    if kind not in expr:
        return False
    part = expr[kind]
    if kind == "location":
        return part == params["location"]
    if kind == "ordinal":
        return part["from"] == params["from"]
    if kind == "relation":
        return part["name"] == params["name"]
    if kind == "proximity":
        return (part["extreme"] == params["extreme"]
                and (part.get("landmark") is None) == params["camera"])
    return False


def realise(expr: dict, rng: np.random.Generator) -> str:
    """A surface text for a structured form (random template and synonyms)."""
    kind = expr["type"] if expr["type"] not in ("category", "attribute") else "head"
    options = [t for k, p, t in TEMPLATES if k == kind and _template_matches(k, p, expr)]
    template = str(rng.choice(options))
    fills = {"np": realise_np(expr["head"], rng, allow_clause=(kind == "head"))}
    landmark = None
    if "relation" in expr:
        landmark = expr["relation"]["landmark"]
    elif "proximity" in expr:
        landmark = expr["proximity"].get("landmark")
    if landmark is not None:
        fills["L"] = "the " + realise_np(landmark, rng)
    if "ordinal" in expr:
        fills["ord"] = ORDINAL_WORDS[int(expr["ordinal"]["k"])]
    return template.format(**fills)


# --------------------------------------------------------------------------- parsing
def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_NOUN_TO_CATEGORY = {n: c for c, nouns in _NOUNS.items() for n in nouns}
_SIZE_TO_NAME = {w: s for s, words in SIZES.items() for w in words}
_NOUN_RE = _alternation(list(_NOUN_TO_CATEGORY) + list(GENERIC_NOUNS))
_NP_RE = re.compile(rf"^(?:(?P<size>{_alternation(_SIZE_TO_NAME)}) )?"
                    rf"(?:(?P<colour>{_alternation(COLOURS)}) )?(?P<noun>{_NOUN_RE})$")
_NP_CLAUSE_RE = re.compile(rf"^(?P<noun>{_NOUN_RE}) that is (?P<colour>{_alternation(COLOURS)})$")
_ORD_TO_K = {w: k for k, w in ORDINAL_WORDS.items()}


def parse_np(text: str) -> dict | None:
    m = _NP_RE.match(text) or _NP_CLAUSE_RE.match(text)
    if not m:
        return None
    g = m.groupdict()
    return make_head(_NOUN_TO_CATEGORY.get(g["noun"]), g.get("colour"),
                     _SIZE_TO_NAME.get(g.get("size")) if g.get("size") else None)


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{np\}|\{L\}|\{ord\})", template)
    out = []
    for part in parts:
        if part == "{np}":
            out.append(r"(?P<np>.+?)")
        elif part == "{L}":
            out.append(r"the (?P<L>.+?)")
        elif part == "{ord}":
            out.append(rf"(?P<ord>{_alternation(_ORD_TO_K)})")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


_PARSERS = [(kind, params, _template_regex(t)) for kind, params, t in TEMPLATES]


def parse(text: str) -> dict:
    """The structured form of a text the templates can produce; ``ValueError`` otherwise, or if
    two readings disagree (the grammar would be ambiguous)."""
    readings = []
    for kind, params, regex in _PARSERS:
        m = regex.match(text.strip().lower())
        if not m:
            continue
        head = parse_np(m.group("np"))
        if head is None:
            continue
        g = m.groupdict()
        landmark = None
        if g.get("L") is not None:
            landmark = parse_np(g["L"])
            if landmark is None:
                continue
        expr = _structure(kind, params, head, landmark, g.get("ord"))
        if expr not in readings:
            readings.append(expr)
    if not readings:
        raise ValueError(f"not an expression of this grammar: {text!r}")
    if len(readings) > 1:
        raise ValueError(f"ambiguous parse of {text!r}: {readings}")
    return readings[0]


def _structure(kind: str, params: dict, head: dict, landmark: dict | None, ord_word: str | None
               ) -> dict:
    if kind == "head":
        only_category = list(head) == ["category"]
        return {"type": "category" if only_category else "attribute", "head": head}
    expr: dict = {"type": kind, "head": head}
    if kind == "location":
        expr["location"] = params["location"]
    elif kind == "ordinal":
        expr["ordinal"] = {"k": _ORD_TO_K[ord_word], "from": params["from"]}
    elif kind == "relation":
        expr["relation"] = {"name": params["name"], "landmark": landmark}
    elif kind == "proximity":
        expr["proximity"] = {"extreme": params["extreme"],
                             "landmark": None if params["camera"] else landmark}
    return expr


# --------------------------------------------------------------------------- generation
#: how often each type is preferred when a target has several (spatial types are the hard ones)
TYPE_WEIGHTS = {"category": 0.6, "attribute": 1.0, "location": 1.3, "ordinal": 0.8,
                "relation": 1.3, "proximity": 0.8}
#: relative weight of a bare-head form ("the leftmost object") among a type's candidates
GENERIC_HEAD_WEIGHT = 0.35


def _describe(obj: dict, objects: Objects, both_sizes: set[str]) -> list[dict]:
    """Heads that match ``obj``, most general first (sizes only where the category has both)."""
    c, col, s = obj["category"], obj["colour"], obj["size"]
    heads = [make_head(), make_head(c), make_head(c, col)]
    if c in both_sizes:
        heads += [make_head(c, size=s), make_head(c, col, s)]
    heads.append(make_head(colour=col))
    return heads


def _landmark_head(l: int, objects: Objects, both_sizes: set[str], cache: dict) -> dict | None:
    o = objects[l]
    options = [make_head(o["category"]), make_head(o["category"], o["colour"])]
    if o["category"] in both_sizes:
        options += [make_head(o["category"], size=o["size"]),
                    make_head(o["category"], o["colour"], o["size"])]
    for head in options:
        if _matching(head, objects, cache) == [l]:
            return head
    return None


def candidates(t: int, objects: Objects, width: int) -> dict[str, list[dict]]:
    """Every structured form of each type that uniquely picks out object ``t`` and whose
    distinguishing part is necessary (its :func:`ablate` forms are ambiguous). Relations to a
    landmark also need the head to match two objects besides the landmark."""
    cache: dict = {}

    def n(head: dict) -> int:
        return len(_matching(head, objects, cache))

    by_cat_sizes: dict[str, set[str]] = {}
    for o in objects:
        by_cat_sizes.setdefault(o["category"], set()).add(o["size"])
    both_sizes = {c for c, s in by_cat_sizes.items() if len(s) == 2}
    obj = objects[t]
    out: dict[str, list[dict]] = {k: [] for k in TYPES}

    def add(expr: dict) -> None:
        if resolve(expr, objects, width, cache) != t:
            return
        if any(len(select(a, objects, width, cache)) < 2 for a in ablate(expr)):
            return
        out[expr["type"]].append(expr)

    heads = _describe(obj, objects, both_sizes)
    for head in heads[1:]:
        kind = "category" if list(head) == ["category"] else "attribute"
        add({"type": kind, "head": head})
    spatial_heads = [h for h in heads[:3] if n(h) > 1]
    for head in spatial_heads:
        for loc in LOCATIONS:
            add({"type": "location", "head": head, "location": loc})
        if n(head) >= 3:
            for side in ("left", "right"):
                for k in ORDINAL_WORDS:
                    if k < n(head):
                        add({"type": "ordinal", "head": head, "ordinal": {"k": k, "from": side}})
        for extreme in ("closest", "farthest"):
            add({"type": "proximity", "head": head,
                 "proximity": {"extreme": extreme, "landmark": None}})
    landmarks = {}
    for l in range(len(objects)):
        if l != t:
            lh = _landmark_head(l, objects, both_sizes, cache)
            if lh is not None:
                landmarks[l] = lh
    for head in spatial_heads:
        for l, lh in landmarks.items():
            if len([i for i in _matching(head, objects, cache) if i != l]) < 2:
                continue  # "the mug left of the red mug" with two mugs just means "the other mug"
            for name in RELATIONS:
                add({"type": "relation", "head": head, "relation": {"name": name, "landmark": lh}})
            if head:
                add({"type": "proximity", "head": head,
                     "proximity": {"extreme": "closest", "landmark": lh}})
    return out


def generate(objects: Objects, width: int, rng: np.random.Generator,
             targets: Sequence[int] | None = None, min_per_target: int = 2,
             max_per_target: int = 4) -> dict[int, list[dict]]:
    """2-4 expressions per target: ``{target: [{"sent", "type", "structure"}, ...]}``.

    Types are drawn without replacement (weighted by :data:`TYPE_WEIGHTS`) before any repeats;
    a target with a single unique form gets it in two different wordings where possible.
    Targets without any unique expression are left out.
    """
    result: dict[int, list[dict]] = {}
    for t in (range(len(objects)) if targets is None else targets):
        cands = candidates(t, objects, width)
        types = [k for k in TYPES if cands[k]]
        if not types:
            continue
        want = int(rng.integers(min_per_target, max_per_target + 1))
        weights = np.array([TYPE_WEIGHTS[k] for k in types])
        order = list(rng.choice(types, size=len(types), replace=False, p=weights / weights.sum()))
        chosen: list[dict] = []
        pool = {k: list(v) for k, v in cands.items()}
        attempts = 0
        while len(chosen) < want and attempts < 4 * want + 8:
            attempts += 1
            kind = order[len(chosen) % len(order)] if len(chosen) < len(order) else str(
                rng.choice(types))
            if not pool[kind]:
                pool[kind] = list(cands[kind])  # repeat a form in another wording
            # forms with a bare head ("the object ...") are valid but say less; draw them less
            w = np.array([1.0 if e["head"] else GENERIC_HEAD_WEIGHT for e in pool[kind]])
            expr = pool[kind].pop(int(rng.choice(len(w), p=w / w.sum())))
            text = realise(expr, rng)
            if any(c["sent"] == text for c in chosen):
                continue
            chosen.append({"sent": text, "type": expr["type"], "structure": expr})
        result[t] = chosen
    return result
