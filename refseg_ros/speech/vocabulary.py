"""The tabletop vocabulary the recogniser may be biased toward. No ROS.

The words come from the data catalogue and grammar (object nouns and their synonyms, colours,
sizes, spatial words), so they change with them. :func:`initial_prompt` turns them into a
Whisper prompt: text the decoder conditions on as if it had just been said, which makes "mug"
likelier than "mud" after "red". Whether that helps is measured, not assumed (README, "Talking to
the robot").
"""
from __future__ import annotations

from refseg_ros.data.catalog import CATEGORIES, COLOURS, SIZES
from refseg_ros.data.grammar import GENERIC_NOUNS, ORDINAL_WORDS

__all__ = ["object_nouns", "spatial_words", "keywords", "initial_prompt"]

_SPATIAL = ("left", "right", "front", "back", "behind", "next", "beside", "near", "closest", "nearest",
            "farthest", "furthest", "leftmost", "rightmost", "frontmost", "rearmost", "middle", "camera")


def object_nouns() -> list[str]:
    """Every noun (phrase) the grammar uses for an object, canonical ones first."""
    seen: dict[str, None] = {}
    for c in CATEGORIES:
        for noun in c.nouns:
            seen.setdefault(noun, None)
    return list(seen)


def spatial_words() -> list[str]:
    return list(_SPATIAL) + list(ORDINAL_WORDS.values())


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


def initial_prompt(style: str = "nouns", extra: str = "") -> str:
    """A short prompt naming the objects and colours (``style`` "nouns": canonical nouns;
    "command": those and a command without an object; "all": every synonym, sizes and spatial
    words too). No example command: Whisper copies
    prompt phrases into what it hears."""
    nouns = [c.nouns[0] for c in CATEGORIES] if style == "nouns" else object_nouns() + ["object"]
    text = f"Objects: {', '.join(nouns)}. Colours: {', '.join(COLOURS)}."
    if style == "command":  # the shape of a command, with no object in it to copy
        text += " Pick up the one on the left."
    if style == "all":
        sizes = [w for names in SIZES.values() for w in names]
        text += f" Sizes: {', '.join(sizes)}. Places: {', '.join(spatial_words())}."
    return f"{text} {extra.strip()}".strip()
