"""Referring expressions as text: the templates that say a structured form, reading such a text
back, and the choice of forms that describe an object.

A structured form (:mod:`refseg_ros.language.semantics`) is realised as text by templates with
synonyms and varied word order (:func:`realise`). :func:`parse` maps every text the templates
produce back to its structured form, so tests can check the text itself, not just what the
generator intended; commands as people say them go through :mod:`refseg_ros.language.parser`.
:func:`candidates` lists the forms that pick out one object and need their distinguishing part;
:func:`generate` draws a few of them per target and says them.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from refseg_ros.language.semantics import (LOCATIONS, RELATIONS, TYPES, Objects, ablate, make_head,
                                           matching, resolve, select)
from refseg_ros.language.vocabulary import COLOURS, GENERIC_NOUNS, NOUNS, ORDINAL_WORDS, SIZES


# --------------------------------------------------------------------------- text
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
    noun = rng.choice(NOUNS[category]) if category else rng.choice(GENERIC_NOUNS)
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


_NOUN_TO_CATEGORY = {n: c for c, nouns in NOUNS.items() for n in nouns}
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
        if matching(head, objects, cache) == [l]:
            return head
    return None


def candidates(t: int, objects: Objects, width: int) -> dict[str, list[dict]]:
    """Every structured form of each type that uniquely picks out object ``t`` and whose
    distinguishing part is necessary (its :func:`ablate` forms are ambiguous). Relations to a
    landmark also need the head to match two objects besides the landmark."""
    cache: dict = {}

    def n(head: dict) -> int:
        return len(matching(head, objects, cache))

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
            if len([i for i in matching(head, objects, cache) if i != l]) < 2:
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
