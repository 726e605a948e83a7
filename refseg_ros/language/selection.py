"""Expressions that pick one of several like objects by position, split into what to ground.

"The second mug from the left" and "the mug closest to the duck" are where the model is weakest
(single-target REC about 56 % on tabletop v2 test against 73-78 % for the other kinds), yet it
grounds "all the mugs" and "the duck" well. So the predictor asks for those and picks the object
itself: the k-th of the head's objects from the named side, or the one whose centre is nearest to
(farthest from) the landmark's (:mod:`refseg_ros.model.compose`). This module finds the parts in
the text; no model, no ROS.

Recognised (case, punctuation, a request around the expression and one typo in "left", "right",
"closest", "nearest", "farthest", "furthest" do not matter):

* ordinals: "the second mug from the left", "the mug second from the right", "the third mug
  starting from the left", "counting from the right, the second mug" (up to "fifth");
* nearest to a landmark: "the mug closest to the duck", "the mug nearest (to) the duck", "the
  nearest mug to the duck", "the mug that is closest to the duck", "the mug farthest from the duck".

Not split: the nearest to the camera ("the nearest mug", "the mug closest to me": on v2 val a pick
by the lowest image row did 2.6 points better than the model on 114 of them, too little for a
guess about the camera's pose; a pick by the frame's depth did worse than the model, see
docs/model.md), "the leftmost mug" (the model does better alone: 72.2 against
69.1 % picked, on val's 414 locations), generic heads with a landmark ("the object closest to
the duck"), and anything with more in it. A generic ordinal ("the second object from the left")
is split: on v2 val, ordinal REC 58.5 % with it, 56.7 % without.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from refseg_ros.language.negation import all_of, close_to, head_words, words_of
from refseg_ros.language.relation import OTHER_FORMS, TAIL_WORDS, landmark_phrase, side_of

__all__ = ["Selection", "split_selection"]

_ORDINALS = {"second": 2, "third": 3, "fourth": 4, "fifth": 5}
_NEAREST = ("closest", "nearest")
_FARTHEST = ("farthest", "furthest")
#: Landmarks that are the viewer or a place, not an object on the table ("the mug furthest to the
#: right" is a location; "closest to the camera" the model grounds alone).
_VIEWER = {"camera", "me", "you", "us", "robot", "here", "viewer", "front", "back", "middle", "centre", "center",
           "edge", "side", "table"}
#: Of those, the ones also recognised with a typo ("camear"; not "table", one typo from "tablet").
_VIEWER_TYPO = ("camera", "front", "middle", "centre", "center")
_FILLER = {"that", "which", "is", "are", "that's", "thats", "one", "sitting", "placed", "standing"}
_NOT_IN_LANDMARK = {"and", "or", "not", "no", "but", "except", "than", "left", "right", "front", "back",
                    "behind", "next", "near", "beside", "by", "closest", "nearest", "farthest", "furthest",
                    "leftmost", "rightmost", "between", "that", "which", "is", "are", "all", "every", "each",
                    "both", "it", "this", "these", "those", "there", "here", "to", "from", "of"} | _VIEWER


@dataclass(frozen=True)
class Selection:
    """How to pick the referent among ``head``'s objects ("all the mugs"): ``kind`` "ordinal" (the
    ``k``-th from ``side``, "left" or "right") or "nearest"/"farthest" (centre distance to
    ``landmark``, "the duck")."""

    kind: str
    head: str
    k: int = 0
    side: str = ""
    landmark: str = ""


def _is(word: str, targets) -> bool:
    """``word`` is one of ``targets``, or one typo from one of at least 5 letters."""
    return word in targets or (len(word) >= 5 and close_to(word, [t for t in targets if len(t) >= 5], 1))


def _head(words: list[str]) -> list[str] | None:
    while words and words[-1] in _FILLER:
        words = words[:-1]
    head = head_words(words)
    return None if head is None or set(head) & set(_ORDINALS) or any("'" in w for w in head) else head


def _landmark(words: list[str]) -> str | None:
    if any(side_of(w) or w in _VIEWER or (len(w) >= 5 and close_to(w, _VIEWER_TYPO, 1)) for w in words):
        return None
    return landmark_phrase(words, _NOT_IN_LANDMARK)


def _ordinal(words: list[str]) -> Selection | None:
    at = [i for i, w in enumerate(words) if w in _ORDINALS]
    sides = [i for i, w in enumerate(words) if side_of(w)]
    if len(at) != 1 or len(sides) != 1:
        return None
    i, s = at[0], sides[0]
    start = s - 2 if words[s - 2:s] == ["from", "the"] else s - 1 if words[s - 1:s] == ["from"] else -1
    if start < 0 or (start == 0 and s > i):
        return None
    k, side = _ORDINALS[words[i]], side_of(words[s])
    if s == len(words) - 1 and i < s:
        before = words[:start - 1] if words[start - 1:start] == ["starting"] else words[:start]
        if i == len(before) - 1:  # "the mug second from the left"
            head = _head(before[:i])
        else:  # "the second mug from the left"
            head = _head(before[i + 1:])
    elif s < i and (start == 0 or words[start - 1] in ("counting", "count", "starting")):
        head = _head(words[i + 1:])  # "counting from the left, the second mug"
    else:
        return None
    return None if head is None else Selection(kind="ordinal", head=all_of(head), k=k, side=side)


def _proximity(words: list[str]) -> Selection | None:
    at = [i for i, w in enumerate(words) if _is(w, _NEAREST + _FARTHEST)]
    if len(at) != 1:
        return None
    i = at[0]
    kind = "nearest" if _is(words[i], _NEAREST) else "farthest"
    link = ("to",) if kind == "nearest" else ("from",)
    if i + 1 < len(words) and words[i + 1] in link:  # "the mug closest to the duck"
        head, rest = _head(words[:i]), words[i + 2:]
    elif kind == "nearest" and i + 1 < len(words) and words[i + 1] == "the":  # "the mug nearest the duck"
        head, rest = _head(words[:i]), words[i + 1:]
    else:  # "the nearest mug to the duck"
        to = [j for j in range(i + 1, len(words)) if words[j] in link]
        if len(to) != 1:
            return None
        before = words[:i - 1] if i > 0 and words[i - 1] in ("the", "a") else words[:i]
        head, rest = _head(before + words[i + 1:to[0]]), words[to[0] + 1:]
    landmark = _landmark(rest)
    if head is None or landmark is None or head[-1] in ("object", "objects"):
        return None
    return Selection(kind=kind, head=all_of(head), landmark=landmark)


@functools.lru_cache(maxsize=1024)
def split_selection(text: str) -> Selection | None:
    """How to pick the referent of ``text`` among like objects, or None when it is not an
    expression this module can split (see the module docstring)."""
    words = words_of(str(text))
    while words and words[-1] in TAIL_WORDS:
        words = words[:-1]
    if OTHER_FORMS & set(words):
        return None
    if any(w in _ORDINALS for w in words):
        return _ordinal(words)
    return _proximity(words)
