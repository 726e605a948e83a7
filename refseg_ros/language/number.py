"""Grammatical number of a command: does it ask for every matching object or for one?

The post-processing keeps every connected part of the mask for an expression that asks for all of
its matches ("all the red cubes", "both mugs") and only the largest part otherwise, where a second
blob is usually a distractor of the same kind. Pure text rules, no model.
"""
from __future__ import annotations

import re

#: Quantifiers and counts that ask for more than one object.
_MANY = re.compile(r"\b(all|both|every|each|everything|everyone|two|three|four|five|several|them|[2-9])\b")
#: "the thing that isn't a mug": the generic head excludes one kind and keeps every other object.
_GENERIC_NOT = re.compile(r"\b(thing|things|object|objects|stuff)\s+(that|which)\s+(is not|isn't|isnt|are not|aren't)\b")
#: "the ... that are/aren't": a relative clause agreeing with a plural head.
_PLURAL_VERB = re.compile(r"\b(that|which|who)\s+(are|aren't|arent|were)\b")
#: Phrases where a plural word sits inside a landmark, not the head ("next to both ducks" still asks for one).
_LANDMARK = re.compile(r"\b(of|to|from|between|near|beside|behind|than|next to|left of|right of|"
                       r"in front of|closest to|nearest to|farthest from|furthest from)\s+(all|both|the two|"
                       r"the three|every|each)\b")


def asks_for_many(text: str) -> bool:
    """True when ``text`` refers to every object it matches (``all``/``both``/``every``/counts, a
    plural relative clause, "the thing that isn't a ..."), False for a single referent. Landmarks do not count: "the mug between
    both ducks" asks for one mug."""
    t = " " + re.sub(r"[^a-z0-9' ]+", " ", str(text).lower()) + " "
    t = _LANDMARK.sub(" ", t)
    return bool(_MANY.search(t) or _PLURAL_VERB.search(t) or _GENERIC_NOT.search(t))
