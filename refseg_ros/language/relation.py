"""Relations split into the objects to check: "the mug left of the duck" -> every mug, the duck.

The model grounds "the mug left of the duck" well when there is such a mug (single-target REC
73 % on tabletop v2 test), but when every mug is on the duck's right it still answers with a
mug: it says "not there" for 3 of the 67 such expressions of v2 test (docs/model.md). So the predictor also
asks for every object the head names ("all the mugs") and for the landmark ("the duck"), and
says "not found" when the relation fails for each of the head's objects and for its own answer,
or answers the one object on the named side when its own answer is on the other
(:mod:`refseg_ros.model.compose`). This module finds the parts in the text; no model, no ROS.

Recognised (case, punctuation, a request around the expression and one typo in "left"/"right"
do not matter): "left of", "to the left of", "on the left of", "to left of", "on the duck's left",
and the same with "right". Words between the head and the relation that describe neither
("sitting", "just", "that is") are skipped.

"In front of" and "behind" ("in front of", "behind", "in back of") are split only when asked for
(``names`` with :data:`DEPTH_RELATIONS`): they are checked with a depth image, along the table
(:mod:`refseg_ros.model.ground_plane`); from the colour image alone (the rows where the objects
stand) they cost more correct answers than they saved (docs/model.md). "Next to" needs distances
between objects on the table and is not split. Nor is anything split whose head or landmark is
more than a short noun phrase ("the mug on the left left of the duck", "left of the duck and the
cup"), or whose head is "object"/"thing": the model reads those whole, as before.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from refseg_ros.language.negation import all_of, close_to, head_words, words_of

__all__ = ["DEPTH_RELATIONS", "OTHER_FORMS", "RELATIONS", "RelationCheck", "TAIL_WORDS", "landmark_phrase", "side_of",
           "split_relation"]

#: The relations this module splits by default (``refseg_ros.language.semantics.RELATIONS`` names).
RELATIONS = ("left_of", "right_of")
#: The relations it splits when asked to: checked along the table, with a depth image.
DEPTH_RELATIONS = ("in_front_of", "behind")

#: Word sequences of a relation, longest first where one contains another.
_PHRASES = (
    (("to", "the", "left", "of"), "left_of"), (("on", "the", "left", "of"), "left_of"),
    (("to", "the", "right", "of"), "right_of"), (("on", "the", "right", "of"), "right_of"),
    (("to", "left", "of"), "left_of"), (("to", "right", "of"), "right_of"),
    (("left", "of"), "left_of"), (("right", "of"), "right_of"),
    (("in", "front", "of"), "in_front_of"), (("in", "back", "of"), "behind"), (("behind",), "behind"),
)
#: Words of a phrase matched up to one typo (the short ones must be exact), except words one typo
#: away from them that mean something else ("the light of the lamp", "the eight of hearts").
_LOOSE = {"left", "right"}
#: "left" and "right" as heard or typed: "write" is what speech recognisers make of "right".
SIDE_WORDS = {"write": "right"}
_REAL_WORDS = {"light", "night", "tight", "sight", "eight", "fight", "might", "bight", "wight", "lift", "loft",
               "let", "lot", "felt", "belt", "melt", "kept", "deft", "heft", "weft", "lent", "lefts", "rights"}
#: Words between the head and the relation that say nothing about either ("the mug sitting left
#: of", "the cup that is just to the right of").
_FILLER = {"that", "which", "is", "are", "that's", "thats", "sitting", "standing", "placed", "lying",
           "located", "hidden", "just", "somewhere", "right", "directly", "immediately", "a", "bit",
           "little"}
#: Words after an expression that are not part of it ("the duck please").
TAIL_WORDS = frozenset({"please", "thanks", "now", "there"})
#: Words of a negation or a quantity: such expressions have their own handling (or the model's).
OTHER_FORMS = frozenset({"not", "isn't", "aren't", "isnt", "arent", "except", "than", "all", "every", "each", "both"})
#: Words that make a landmark more than a short noun phrase.
_NOT_IN_LANDMARK = {"and", "or", "not", "no", "but", "except", "than", "left", "right", "front", "back",
                    "behind", "of", "next", "near", "beside", "by", "closest", "nearest", "farthest",
                    "furthest", "leftmost", "rightmost", "between", "that", "which", "is", "are", "all",
                    "every", "each", "both", "it", "this", "these", "those", "there", "here", "me", "you"}


def side_of(word: str) -> str:
    """"left" or "right" for a word that says it (one typo allowed, "write" for "right"); ""."""
    if word in ("left", "right"):
        return word
    if word in SIDE_WORDS:
        return SIDE_WORDS[word]
    if len(word) >= 3 and word not in _REAL_WORDS:
        for side in ("left", "right"):
            if close_to(word, (side,), 1):
                return side
    return ""


@dataclass(frozen=True)
class RelationCheck:
    """What to ground to check "<head> <name> <landmark>": ``head`` names every object of the head
    ("all the mugs"), ``landmark`` the one it is placed against ("the duck")."""

    name: str
    head: str
    landmark: str


def _find(words: list[str]) -> tuple[int, int, str] | None:
    """(start, end, relation) of the one relation phrase in ``words``; None for none or several."""
    found = []
    i = 0
    while i < len(words):
        for phrase, name in _PHRASES:
            if len(words) - i >= len(phrase) and all(
                    w == p or (p in _LOOSE and side_of(w) == p)
                    for w, p in zip(words[i:i + len(phrase)], phrase)):
                found.append((i, i + len(phrase), name))
                i += len(phrase) - 1
                break
        i += 1
    return found[0] if len(found) == 1 else None


def _possessive(words: list[str]) -> tuple[list[str], str, list[str]] | None:
    """"... on the duck's left" -> (words before "on", "left_of", landmark words)."""
    if len(words) < 4 or words[-1] not in ("left", "right") or not words[-2].endswith(("'s", "s'")):
        return None
    for i in range(len(words) - 2, -1, -1):
        if words[i] == "on":
            owner = words[i + 1:-1]
            owner[-1] = owner[-1][:-2] if owner[-1].endswith("'s") else owner[-1][:-1]
            return words[:i], "left_of" if words[-1] == "left" else "right_of", owner
    return None


def landmark_phrase(words: list[str], not_in=frozenset(_NOT_IN_LANDMARK)) -> str | None:
    """"the duck" for the words after a relation ("the duck please", "duck"); "of"/"and" only
    inside one name ("the bottle of wine", "the mac and cheese"); None for more than a short noun
    phrase or any word of ``not_in``."""
    while words and words[-1] in TAIL_WORDS:
        words = words[:-1]
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    # "of" and "and" only inside one name ("the bottle of wine", "the mac and cheese"), not
    # joining two ("the duck and the cup")
    inner = {w for i, w in enumerate(words) if w in ("of", "and") and 0 < i < len(words) - 1
             and words[i + 1] not in ("the", "a", "an")}
    if (not words or len(words) > 4 or (set(words) - inner) & not_in
            or any("'" in w for w in words)):
        return None
    return "the " + " ".join(words)


@functools.lru_cache(maxsize=1024)
def split_relation(text: str, names: tuple[str, ...] = RELATIONS) -> RelationCheck | None:
    """The parts of "<head> <relation> <landmark>" to ground, or None when ``text`` is not one this
    module can split or its relation is not one of ``names`` (see the module docstring)."""
    words = words_of(str(text))
    while words and words[-1] in TAIL_WORDS:
        words = words[:-1]
    if OTHER_FORMS & set(words):
        return None  # negations and quantities have their own handling; the model reads the rest
    possessive = _possessive(words)
    if possessive is not None:
        before, name, after = possessive
    else:
        found = _find(words)
        if found is None:
            return None
        start, end, name = found
        before, after = words[:start], words[end:]
    if name not in names:
        return None
    while before and before[-1] in _FILLER:
        before = before[:-1]
    head = head_words(before)
    landmark = landmark_phrase(after)
    if head is None or landmark is None or head[-1] in ("object", "objects") or any("'" in w for w in head):
        return None
    return RelationCheck(name=name, head=all_of(head), landmark=landmark)
