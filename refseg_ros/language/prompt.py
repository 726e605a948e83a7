"""The recogniser prompt: the tabletop vocabulary as text Whisper conditions on. No ROS.

:func:`initial_prompt` turns the words of :mod:`~refseg_ros.language.vocabulary` into a Whisper
prompt: text the decoder conditions on as if it had just been said, which makes "mug" likelier
than "mud" after "red". Whether that helps is measured, not assumed (docs/speech.md, "Vocabulary
prompt").
"""
from __future__ import annotations

from refseg_ros.language.vocabulary import COLOURS, NOUNS, SIZES, object_nouns, spatial_words

__all__ = ["initial_prompt"]


def initial_prompt(style: str = "nouns", extra: str = "") -> str:
    """A short prompt naming the objects and colours (``style`` "nouns": canonical nouns;
    "command": those and a command without an object; "all": every synonym, sizes and spatial
    words too). No example command: Whisper copies
    prompt phrases into what it hears."""
    nouns = [n[0] for n in NOUNS.values()] if style == "nouns" else object_nouns() + ["object"]
    text = f"Objects: {', '.join(nouns)}. Colours: {', '.join(COLOURS)}."
    if style == "command":  # the shape of a command, with no object in it to copy
        text += " Pick up the one on the left."
    if style == "all":
        sizes = [w for names in SIZES.values() for w in names]
        text += f" Sizes: {', '.join(sizes)}. Places: {', '.join(spatial_words())}."
    return f"{text} {extra.strip()}".strip()
