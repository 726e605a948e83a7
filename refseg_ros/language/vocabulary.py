"""The words of the command language, in one place; objects and colours are named by the catalog.

:mod:`refseg_ros.data.catalog` owns what a scene can contain, so it keeps the words that are part
of a scene's record: a category's nouns sit with its mesh and go to disk as COCO synonyms, a colour
name sits with its RGB. Everything else said about objects (size words, generic nouns, ordinals,
words of place) lives here, and every other module of :mod:`refseg_ros.language` reads its words
from this one: the grammar realises and parses expressions with them, and the recogniser prompt
and the keyword word error rate are built from them, so all three change together. No ROS.
"""
from __future__ import annotations

from refseg_ros.data.catalog import CATEGORIES, COLOURS as _COLOUR_RGB

import re

__all__ = ["NOUNS", "COLOURS", "COLOUR_WORDS", "SIZES", "GENERIC_NOUNS", "ORDINAL_WORDS", "object_nouns",
           "spatial_words", "keywords", "names_colour"]

#: Canonical category name -> the nouns that may name it, canonical noun first.
NOUNS: dict[str, tuple[str, ...]] = {c.name: c.nouns for c in CATEGORIES}
#: Colour words, in the catalog's order.
COLOURS: tuple[str, ...] = tuple(_COLOUR_RGB)
#: Every colour word an expression may say: the catalog's, and brown and grey, which tabletop v2
#: names from its textures.
COLOUR_WORDS: frozenset[str] = frozenset(COLOURS) | {"brown", "grey", "gray"}
#: Size names (as written to disk) and the words that may say them.
SIZES: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "large": ("large", "big")}
#: Nouns that name no category ("the leftmost object", "the red one").
GENERIC_NOUNS = ("object", "one", "thing")
#: k -> the word for the k-th ("the second cube from the left").
ORDINAL_WORDS = {2: "second", 3: "third"}

_SPATIAL = ("left", "right", "front", "back", "behind", "next", "beside", "near", "closest", "nearest",
            "farthest", "furthest", "leftmost", "rightmost", "frontmost", "rearmost", "middle", "camera")


def object_nouns() -> list[str]:
    """Every noun (phrase) the grammar uses for an object, canonical ones first."""
    seen: dict[str, None] = {}
    for nouns in NOUNS.values():
        for noun in nouns:
            seen.setdefault(noun, None)
    return list(seen)


def spatial_words() -> list[str]:
    return list(_SPATIAL) + list(ORDINAL_WORDS.values())


def names_colour(text: str) -> bool:
    """``text`` says a colour word ("the red mug", "the one that is grey")."""
    return any(w in COLOUR_WORDS for w in re.findall(r"[a-z]+", text.lower()))


def keywords() -> set[str]:
    """Single lower-case words scored by the keyword WER: object, colour, size and spatial words."""
    words: set[str] = set()
    for noun in object_nouns() + list(GENERIC_NOUNS):
        words.update(noun.split())
    words.update(COLOURS)
    for names in SIZES.values():
        words.update(names)
    words.update(spatial_words())
    return words
