"""Grammatical number of a command: does it ask for every matching object or for one?

The post-processing keeps every connected part of the mask for an expression that asks for all of
its matches ("all the red cubes", "both mugs", "the bowls that aren't white") and only the largest
part otherwise, where a second blob is usually a distractor of the same kind. The node then
publishes one result per object found, at most as many as the command says ("both mugs": two).
Pure text rules, no model.

What counts is the *head* of the expression, the object it names: "the mug next to both ducks" asks
for one mug, so plural words inside a landmark ("next to both ducks", "of the two mugs", "other
than red ones") are removed before the rules are applied.
"""
from __future__ import annotations

import functools
import re

__all__ = ["asks_for_many", "stated_count"]

#: Quantifiers and counts that ask for more than one object ("any" as in "any cube you can see").
_MANY = re.compile(r"\b(all|both|every|each|everything|whatever|anything|any|two|three|four|five|six|"
                   r"several|pair|[2-9])\b")
#: Phrases that contain such a word and still ask for one object.
_NOT_QUANTIFIERS = re.compile(r"\b(all the way|all right|any one of|anyone|each other)\b")
#: "the thing that isn't a mug": the generic head excludes one kind and keeps every other object.
_GENERIC_NOT = re.compile(r"\b(thing|things|object|objects|stuff)\s+(that|which)\s+(is not|isn't|isnt|are not|"
                          r"aren't|arent)\b")
#: "the ... that are/aren't": a relative clause agreeing with a plural head.
_PLURAL_VERB = re.compile(r"\b(that|which|who)\s+(are|aren't|arent|were)\b")
#: A landmark or comparison after the head: the quantifiers in it describe another object.
_LANDMARK = re.compile(r"\b(of|to|from|between|near|beside|behind|than|by|with|among|amongst|next to|left of|"
                       r"right of|in front of|in back of|closest to|nearest to|farthest from|furthest from)\s+"
                       r"(all|both|the two|the three|the [2-9]|every|each|any|everything|anything)\b")
#: Where the head noun phrase ends: a relative clause, a place or relation phrase, "of", a comparison.
_HEAD_END = re.compile(r"\b(that|which|who|whose|on|in|at|of|to|from|by|with|near|next|beside|besides|behind|"
                       r"between|under|below|above|over|left|right|closest|nearest|farthest|furthest|except|"
                       r"but|other|than|counting|starting|sitting|placed|hidden|just|alongside|way|you)\b")
#: Nouns that end like plurals and name one object ("the flowers" in a vase, "the scissors").
_SINGULAR_S = {"flowers", "utensils", "scissors", "pliers", "tongs", "glasses", "headphones", "tweezers",
               "binoculars", "pants", "jeans", "shorts", "trousers", "goggles", "chopsticks", "clothes",
               "cards", "dice", "series", "species", "news", "lens", "chess", "mess", "press", "this", "its",
               "is", "was", "has", "us", "yes", "his", "hers", "ours", "yours", "theirs", "whereas", "thus"}


def _plural_head(text: str) -> bool:
    """The head noun (the last word before the head phrase ends) looks plural: "the red mugs"."""
    head = _HEAD_END.split(text, maxsplit=1)[0].split()
    if not head:
        return False
    noun = head[-1]
    if noun in _SINGULAR_S or len(noun) < 4 or not noun.endswith("s"):
        return False
    return not noun.endswith(("ss", "us", "is", "'s"))


#: Words that say how many objects the head names ("both mugs", "the two red cubes", "3 cups").
_COUNT_WORDS = {"both": 2, "two": 2, "pair": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                **{str(k): k for k in range(2, 10)}}
_COUNT = re.compile(r"\b(" + "|".join(_COUNT_WORDS) + r")\b(?!\s*(cm|mm|m|in|inch|inches|kg|g|percent|%)\b)")


def _normalised(text: str) -> str:
    """Lower case, words only, phrases that are not quantifiers and quantifiers of landmarks gone."""
    t = " " + re.sub(r"[^a-z0-9' ]+", " ", str(text).lower()) + " "
    t = _NOT_QUANTIFIERS.sub(" ", t)
    return _LANDMARK.sub(lambda m: f" {m.group(1)} ", t)  # the preposition stays: it ends the head


# PostProcess asks once per expression per frame; the answer depends on the text alone
@functools.lru_cache(maxsize=4096)
def asks_for_many(text: str) -> bool:
    """True when ``text`` refers to every object it matches (``all``/``both``/``every``/counts, a
    plural head or relative clause, "the thing that isn't a ..."), False for a single referent.
    Landmarks do not count: "the mug between both ducks" asks for one mug."""
    t = _normalised(text)
    return bool(_MANY.search(t) or _PLURAL_VERB.search(t) or _GENERIC_NOT.search(t) or _plural_head(t))


@functools.lru_cache(maxsize=4096)
def stated_count(text: str) -> int | None:
    """How many objects ``text`` says its head names ("both mugs", "the two red cubes", "pick up
    3 cups": 2, 2, 3), or None when it says no number. Numbers of landmarks do not count: "the mug
    next to both ducks" and "the second of the two mugs" say none."""
    found = _COUNT.search(_normalised(text))
    return _COUNT_WORDS[found.group(1)] if found else None
