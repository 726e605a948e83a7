"""Negated expressions split into what to keep and what to take away, for composition in the model.

Trained end to end, the model reads "the mug that is not red" as "the red mug": on tabletop v2 test
its single-target REC Prec@0.5 on negations is 11.5 % (docs/model.md). So the predictor does not ask the model
for a negation: it asks for every object the head names ("all the mugs") and for every object the
exclusion names ("all the red mugs"), and keeps the first mask where the second is not
(:mod:`refseg_ros.model.compose`). This module finds the two parts in the text; no model, no ROS.

Recognised (case, punctuation and a request around the expression do not matter):

* a relative clause: "the mug that is not red", "the mugs which aren't red", "the object that
  isn't a duck", "everything that is not a mug", "all the objects that aren't mugs";
* "other than" / "except": "the mug other than red ones", "every cup except blue ones";
* "anything but ducks", "whatever is not a duck".

The exclusion is either a description of the head (one or two words: "red", "big red") or another
kind of object ("a duck", "ducks"). Anything else ("the mug that is not on the left", "not the
duck", a typo in "not" or "isn't") is not split: the model reads it whole, as before. Typos in
"that", "object", "thing" and "everything" are tolerated (the generator's typing noise makes them).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from refseg_ros.language.spelling import edits
from refseg_ros.language.vocabulary import COLOUR_WORDS, SIZES

__all__ = ["Negation", "all_of", "close_to", "head_words", "split_negation", "words_of"]

#: Nouns that name no kind of object: "the thing that isn't a mug" keeps every object but mugs.
_GENERIC = ("object", "objects", "thing", "things", "one", "ones", "item", "items", "stuff")
_EVERYTHING = ("everything", "anything", "whatever")
#: Words after which the head noun phrase starts ("could you hand me the ...", "grab all ...").
_BEFORE_HEAD = {"the", "a", "an", "all", "every", "each", "any", "both", "those", "these", "this",
                "me", "up", "get", "grab", "find", "need", "give", "pass", "show", "fetch", "bring",
                "over", "like", "have", "want", "take", "is", "at", "for", "please"}
#: Words that cannot be in a head or in an exclusion that describes the head.
_NOT_ADJECTIVE = {"on", "in", "at", "to", "of", "from", "near", "next", "by", "behind", "left", "right",
                  "front", "back", "the", "a", "an", "closest", "nearest", "farthest", "furthest",
                  "leftmost", "rightmost", "between", "there", "here", "it", "that", "this", "and"}
_TAIL = {"please", "thanks", "now"}
#: Words of the negation itself: never part of what it keeps or drops ("except all every").
_NOT_NOUN = {"not", "no", "but", "except", "than", "other", "which", "is", "are", "isn't", "aren't", "isnt",
             "arent"} | set(_EVERYTHING)
#: Words that describe an object rather than name a kind (for "the object that is not red").
_DESCRIBING = set(COLOUR_WORDS) | {w for words in SIZES.values() for w in words}


def close_to(word: str, targets, most: int = 2) -> bool:
    """``word`` is one of ``targets`` up to ``most`` one-character edits (typos: "thta", "objcet")."""
    return any(edits(word, t) <= most for t in targets if abs(len(word) - len(t)) <= most)


@dataclass(frozen=True)
class Negation:
    """The two expressions a negation is composed of: ``keep`` names every object of the head,
    ``drop`` every object to take away."""

    keep: str
    drop: str


def words_of(text: str) -> list[str]:
    text = re.sub(r"[^a-z' ]+", " ", text.lower().replace("\u2019", "'"))
    return [w for w in text.split() if w]


def _plural(word: str) -> bool:
    return len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is"))


def _split_at_negation(words: list[str]) -> tuple[list[str], list[str]] | None:
    """(words before, words after) the negation: "is not", "isn't", "are not", "aren't", "other
    than", "except (for)", "but"; a relative pronoun before it ("that", "which", or a typo of
    "that") is dropped."""
    for i, w in enumerate(words):
        if w in ("is", "are") and i + 1 < len(words) and words[i + 1] == "not":
            pre, post = words[:i], words[i + 2:]
        elif w in ("isn't", "aren't", "isnt", "arent"):
            pre, post = words[:i], words[i + 1:]
        else:
            continue
        if len(pre) >= 2 and (pre[-1] == "which" or close_to(pre[-1], ("that",), 2)):
            pre = pre[:-1]
        elif not (pre and close_to(pre[-1], _EVERYTHING, 2)):
            return None  # "the mug is not red": a statement, or a clause this module does not know
        return pre, post
    for i, w in enumerate(words):
        if w == "other" and i + 1 < len(words) and words[i + 1] == "than":
            return words[:i], words[i + 2:]
        if w in ("except", "but"):
            post = words[i + 1:]
            return words[:i], post[1:] if post[:1] == ["for"] else post
    return None


def head_words(words: list[str]) -> list[str] | None:
    """The head noun phrase before the negation: the words after the request and determiner
    ("could you hand me the big mug" -> big mug); "everything"/"anything" -> objects; None: none."""
    if words and close_to(words[-1], _EVERYTHING, 2):
        return ["objects"]
    cut = [i for i, w in enumerate(words) if w in _BEFORE_HEAD]
    head = words[cut[-1] + 1:] if cut else words
    if (not head or len(head) > 4 or set(head) & ((_NOT_ADJECTIVE - {"of", "and"}) | _NOT_NOUN)
            or head[0] in ("of", "and") or head[-1] in ("of", "and")):
        return None
    noun = head[-1]
    if noun in _GENERIC or close_to(noun, ("object", "objects"), 2) or close_to(noun, ("thing", "things"), 1):
        head = head[:-1] + ["objects" if noun.endswith("s") else "object"]
    return head


def _exclusion(words: list[str], generic: bool) -> tuple[str, list[str]] | None:
    """("kind", noun words) for "a duck" / "ducks" / "cans of soup", ("describe", adjectives) for
    "red" / "big red" / "red ones"; None for anything else ("on the left")."""
    while words and words[-1] in _TAIL:
        words = words[:-1]
    article = bool(words) and words[0] in ("a", "an", "the", "any")
    if article:
        words = words[1:]
    if not words or len(words) > 4 or set(words) & (_BEFORE_HEAD | _NOT_NOUN):
        return None  # "except all every", "not not red": no description or kind this module knows
    if words[-1] in ("one", "ones") and not article:
        words = words[:-1]
        ok = 1 <= len(words) <= 2 and not set(words) & _NOT_ADJECTIVE
        return ("describe", words) if ok else None
    if article or (generic and not set(words) <= _DESCRIBING) or (not generic and _plural(words[-1])):
        joined = words[0] in ("of", "and") or words[-1] in ("of", "and")  # "of soup", "mugs and"
        return ("kind", words) if not joined and not set(words) & (_NOT_ADJECTIVE - {"of", "and"}) else None
    return ("describe", words) if len(words) <= 2 and not set(words) & _NOT_ADJECTIVE else None


def _plural_of(noun: str) -> str:
    if _plural(noun):
        return noun
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if len(noun) > 2 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def all_of(np_words: list[str]) -> str:
    """"all the mugs", "all the big red cans of soup": every object the noun phrase names, in the
    plural (the multi-target form the model was trained on most; "every mug" grounds worse: single-
    target REC of v2 test's negations 44.9 with "every", 50.0 with "all the")."""
    end = np_words.index("of", 1) if "of" in np_words[1:] else len(np_words)
    return "all the " + " ".join(np_words[:end - 1] + [_plural_of(np_words[end - 1])] + np_words[end:])


@functools.lru_cache(maxsize=1024)
def split_negation(text: str) -> Negation | None:
    """The keep/drop parts of a negated expression, or None when ``text`` is not one this module
    can split (see the module docstring)."""
    parts = _split_at_negation(words_of(str(text)))
    if parts is None:
        return None
    head = head_words(parts[0])
    if head is None:
        return None
    generic = head[-1] in ("object", "objects")
    ex = _exclusion(parts[1], generic)
    if ex is None:
        return None
    kind, ex_words = ex
    if kind == "describe":  # before the whole head, which may be a noun like "small pot" or "orange juice"
        return Negation(keep=all_of(head), drop=all_of(ex_words + head))
    if not generic:
        return None  # "the mug that isn't a cup": the exclusion names nothing the head does
    return Negation(keep=all_of(head), drop=all_of(ex_words))
