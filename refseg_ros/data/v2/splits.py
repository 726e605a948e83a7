"""Tabletop v2 splits: what each split may contain.

* ``train``, ``val``, ``test`` (and any other name): every category except the held-out ones,
  cameras in the train ranges, train wording, no held-out colour-category pair;
* ``wording``: as ``test`` but said only with held-out templates, wrappers and nouns;
* ``categories``: every scene holds a held-out category and every expression names one;
* ``cameras``: lenses and poses with at least one parameter outside the train ranges;
* ``compositional``: v1's held-out colour-category pairs (recoloured primitives) as targets.
"""
from __future__ import annotations

from refseg_ros.data.v2 import assets as A
from refseg_ros.data.v2.scene import SplitRules

#: categories never seen (as objects or words) outside the ``categories`` split
HELD_OUT_CATEGORIES = ("bunny", "capsule", "frying pan", "pudding", "ramekin")
HELD_OUT_SPLITS = ("wording", "categories", "cameras", "compositional")
STANDARD_SPLITS = ("train", "val", "test") + HELD_OUT_SPLITS


def available_categories() -> tuple[str, ...]:
    return tuple(sorted({a.category for a in A.available_assets()}))


def rules_for(split: str) -> SplitRules:
    every = available_categories()
    seen = tuple(c for c in every if c not in HELD_OUT_CATEGORIES)
    if split == "categories":
        held = tuple(c for c in HELD_OUT_CATEGORIES if c in every)
        return SplitRules(split, every, must_include=held, target_categories=held)
    if split == "wording":
        return SplitRules(split, seen, held_out_wording=True)
    if split == "cameras":
        return SplitRules(split, seen, held_out_cameras=True)
    if split == "compositional":
        return SplitRules(split, seen, compositional=True)
    return SplitRules(split, seen)
