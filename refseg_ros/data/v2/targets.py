"""Which objects a v2 expression refers to: none, one or many, checked exactly.

Single-target forms are v1's (:func:`refseg_ros.language.grammar.candidates`: unique, and the
distinguishing part is needed). v2 adds three kinds of structure:

* ``no_target``: ``{"type": "no_target", "reason", "form": <a v1 structure>}`` whose form the
  semantics cannot match with anything (neither definitely nor possibly): a present category in an
  absent colour, an absent category, a relation that holds for nothing;
* ``multi_target``: ``{"type": "multi_target", "head", "quantifier": "all" | "every" | "both" |
  "count", "count": n}``: every object the head matches (at least two; ``both`` exactly two);
* ``negation``: ``{"type": "negation", "head", "exclude": {"colour"} | {"category"}}``: the head's
  matches without the excluded ones (at least one left and at least one excluded).

:func:`evaluate` computes the target list of any stored structure from the stored objects, so a
test can check every expression (single: exactly one, no-target: none, multi: exactly its set).
An object whose colour (or size) is unknown (a multicoloured texture) makes every form that
mentions colour (or size) for objects like it unclear, and such forms are not emitted.
"""
from __future__ import annotations

import numpy as np

from refseg_ros.data.v2 import assets as A
from refseg_ros.data.v2 import wording
from refseg_ros.language import grammar
from refseg_ros.language.semantics import RELATIONS, head_matches, resolve, select

NEW_TYPES = ("no_target", "multi_target", "negation")
NO_TARGET_SHARE = 0.15
SINGLE_PER_TARGET = (1, 3)


def _definite(head: dict | None, objects) -> bool:
    """False if an attribute of ``head`` is unknown for an object the rest of the head matches."""
    if not head:
        return True
    for key in ("colour", "size"):
        if key in head:
            rest = {k: v for k, v in head.items() if k != key}
            if any(o.get(key) is None for o in objects if head_matches(rest, o)):
                return False
    return True


def _heads_of(structure: dict) -> list[dict]:
    heads = [structure.get("head") or {}]
    for part in ("relation", "proximity"):
        if structure.get(part) and structure[part].get("landmark") is not None:
            heads.append(structure[part]["landmark"])
    return heads


def definite(structure: dict, objects) -> bool:
    if structure["type"] == "no_target":
        return definite(structure["form"], objects)
    if structure["type"] == "negation" and "colour" in structure["exclude"]:
        if any(o.get("colour") is None for o in objects if head_matches(structure["head"], o)):
            return False
    return all(_definite(h, objects) for h in _heads_of(structure))


def evaluate(structure: dict, objects, width: int) -> list[int] | None:
    """The target indices of a structure (sorted), or None when it is not exact (ambiguous,
    or mentions an attribute that is unknown for a relevant object)."""
    if not definite(structure, objects):
        return None
    kind = structure["type"]
    if kind == "no_target":
        return [] if not select(structure["form"], objects, width) else None
    if kind == "multi_target":
        hits = [i for i, o in enumerate(objects) if head_matches(structure["head"], o)]
        if len(hits) < 2:
            return None
        q = structure["quantifier"]
        if (q == "both" and len(hits) != 2) or (q == "count" and len(hits) != structure["count"]):
            return None
        return hits
    if kind == "negation":
        matched = [i for i, o in enumerate(objects) if head_matches(structure["head"], o)]
        kept = [i for i in matched if not head_matches(structure["exclude"], objects[i])]
        if not kept or len(kept) == len(matched):
            return None
        return kept
    t = resolve(structure, objects, width)
    return None if t is None else [t]


# ------------------------------------------------------------------------------ generating
def _singles(records, width, rng) -> list[tuple[dict, list[int]]]:
    out = []
    for t in range(len(records)):
        cands = grammar.candidates(t, records, width)
        forms = [f for kind in cands for f in cands[kind] if definite(f, records)]
        if not forms:
            continue
        weights = np.array([grammar.TYPE_WEIGHTS[f["type"]] * (1.0 if f["head"] else 0.35)
                            for f in forms])
        k = min(len(forms), int(rng.integers(SINGLE_PER_TARGET[0], SINGLE_PER_TARGET[1] + 1)))
        for i in rng.choice(len(forms), k, replace=False, p=weights / weights.sum()):
            out.append((forms[int(i)], [t]))
    return out


def _multis(records, rng) -> list[tuple[dict, list[int]]]:
    heads = []
    for o in records:
        heads.append({"category": o["category"]})
        if o.get("colour"):
            heads.append({"category": o["category"], "colour": o["colour"]})
            heads.append({"colour": o["colour"]})
    out, seen = [], set()
    for head in heads:
        key = tuple(sorted(head.items()))
        if key in seen:
            continue
        seen.add(key)
        hits = [i for i, o in enumerate(records) if head_matches(head, o)]
        if len(hits) < 2 or len(hits) == len(records) and "category" not in head:
            continue
        if len(hits) == 2:
            q = str(rng.choice(["both", "all", "count"], p=[0.5, 0.25, 0.25]))
        else:
            q = str(rng.choice(["all", "every", "count"], p=[0.5, 0.25, 0.25]))
        s = {"type": "multi_target", "head": head, "quantifier": q}
        if q == "count":
            s["count"] = len(hits)
        if evaluate(s, records, 0) == hits:
            out.append((s, hits))
    return out


def _negations(records, rng) -> list[tuple[dict, list[int]]]:
    out = []
    cats = sorted({o["category"] for o in records})
    for c in cats:
        colours = {o["colour"] for o in records if o["category"] == c}
        for col in sorted(x for x in colours if x):
            out.append({"type": "negation", "head": {"category": c}, "exclude": {"colour": col}})
    if len(cats) >= 2:
        for c in cats:
            out.append({"type": "negation", "head": {}, "exclude": {"category": c}})
    result = []
    for s in out:
        hits = evaluate(s, records, 0)
        if hits:
            result.append((s, hits))
    return result


def _no_targets(records, width, rng, allowed_categories, n: int) -> list[tuple[dict, list[int]]]:
    present = sorted({o["category"] for o in records})
    absent = [c for c in allowed_categories if c not in present]
    out = []
    for _ in range(8 * n):
        if len(out) >= n:
            break
        kind = str(rng.choice(["absent_colour", "absent_category", "relation"], p=[0.45, 0.3, 0.25]))
        if kind == "absent_colour":
            c = present[int(rng.integers(len(present)))]
            have = {o["colour"] for o in records if o["category"] == c}
            choices = [k for k in A.V2_COLOURS if k not in have]
            form = {"type": "attribute",
                    "head": {"category": c, "colour": choices[int(rng.integers(len(choices)))]}}
        elif kind == "absent_category" and absent:
            form = {"type": "category", "head": {"category": absent[int(rng.integers(len(absent)))]}}
        else:
            c = present[int(rng.integers(len(present)))]
            lm = [o for o in records if sum(p["category"] == o["category"] for p in records) == 1
                  and o["category"] != c]
            if not lm:
                continue
            landmark = {"category": lm[int(rng.integers(len(lm)))]["category"]}
            name = RELATIONS[int(rng.integers(len(RELATIONS)))]
            form = {"type": "relation", "head": {"category": c},
                    "relation": {"name": name, "landmark": landmark}}
            kind = "relation"
        s = {"type": "no_target", "reason": kind, "form": form}
        if evaluate(s, records, width) == [] and s not in [x for x, _ in out]:
            out.append((s, []))
    return out


def _names_category(structure: dict, categories) -> bool:
    if structure["type"] == "no_target":
        return _names_category(structure["form"], categories)
    cats = {h.get("category") for h in _heads_of(structure)}
    cats.add(structure.get("exclude", {}).get("category"))
    return bool(cats & set(categories))


def generate(records, width: int, rng: np.random.Generator, rules) -> list[dict]:
    """The scene's expressions: ``[{"sent", "clean", "type", "structure", "targets",
    "wording"}]`` (targets: object indices, possibly empty)."""
    found = _singles(records, width, rng)
    multis, negs = _multis(records, rng), _negations(records, rng)
    for pool, k in ((multis, int(rng.integers(1, 3))), (negs, int(rng.integers(0, 2)))):
        for i in rng.permutation(len(pool))[:k]:
            found.append(pool[int(i)])
    if rules.target_categories:
        found = [(s, t) for s, t in found if _names_category(s, rules.target_categories)]
    if rules.compositional:
        found = [(s, t) for s, t in found
                 if all(records[i]["held_out_pair"] for i in t)]
    want = NO_TARGET_SHARE / (1 - NO_TARGET_SHARE) * len(found)
    n_none = int(want) + int(rng.random() < want - int(want))
    allowed = rules.categories or tuple(sorted({a.category for a in A.available_assets()}))
    nones = _no_targets(records, width, rng, allowed, n_none)
    if rules.target_categories:
        nones = [(s, t) for s, t in nones if _names_category(s, rules.target_categories)]
    out = []
    for s, t in found + nones:
        text = wording.say(s, records, rng, held_out=rules.held_out_wording)
        out.append({**text, "type": s["type"], "structure": s, "targets": [int(i) for i in t]})
    seen, unique = set(), []
    for e in out:
        if e["sent"] not in seen:
            seen.add(e["sent"])
            unique.append(e)
    return unique
