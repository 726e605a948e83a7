"""Typed commands with typos: "the hambuger", "the yellzw mug", "pick up the jar behnd the bowl".

The text encoder splits a misspelt word into word pieces that mean little, and the grounding
degrades with it: on v2 test the expressions with one typo score REC 55 % against 74 % without
(docs/model.md, "Typos are fixed"). :class:`SpellingFixer` replaces a word that is no English word
and lies one edit (a letter changed, dropped, added, or two neighbours swapped) from exactly one
word of the grounding vocabulary (:func:`grounding_words`) by that word, in the case it was typed
in. English is :func:`english_words` (the dictionary of ``pyspellchecker``) and the text encoder's
own whole words: "saucer" or "plait" stay, although one edit from "sauce" and "plant", and so do
regular plurals of those, words of the vocabulary, and a word near two vocabulary words ("bal":
"ball" or "bar"?). Speech needs none of this (a recogniser only writes words); ``speech_node``
has its own correction.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

__all__ = ["SpellingFixer", "edits", "english_words", "grounding_words", "one_edit"]

_WORD = re.compile(r"[A-Za-z]+")
#: Words shorter than this are never changed (too many near neighbours), nor proposed.
MIN_LENGTH = 3
#: Words of commands besides the object, colour, size and place words (vocabulary.keywords):
#: requests, quantifiers, negations and the words that join them. A typo in one of them changes
#: the grounding less than in a noun, but the text encoder reads it as noise all the same.
COMMAND_WORDS = (
    "please", "pick", "grab", "bring", "give", "hand", "pass", "show", "find", "fetch", "take", "where",
    "could", "would", "need", "want", "that", "which", "with", "from", "there", "this", "those", "these",
    "every", "both", "each", "three", "four", "except", "other", "than", "without",
    "between", "side", "table", "edge", "corner", "furthest", "farthest", "most", "next", "towards",
)


def edits(a: str, b: str) -> int:
    """Levenshtein distance between ``a`` and ``b``, with a swap of two neighbours as one edit."""
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def one_edit(a: str, b: str) -> bool:
    """``edits(a, b) == 1``, in one pass."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k, (x, y) in enumerate(zip(short, long)) if x != y), len(short))
    return short[i:] == long[i + 1:]


@lru_cache(maxsize=1)
def grounding_words() -> frozenset[str]:
    """Every single word the grounding vocabulary has: the object nouns of both tabletop
    catalogues (v1's primitives and v2's household objects, the names the shipped checkpoint was
    trained on) and their plurals, colours, sizes, places, ordinals and :data:`COMMAND_WORDS`."""
    from refseg_ros.data.v2.assets import CATEGORIES_V2, plural
    from refseg_ros.language.vocabulary import COLOUR_WORDS, keywords, object_nouns

    words = set(keywords()) | set(COLOUR_WORDS) | set(COMMAND_WORDS)
    nouns = [(noun, None) for noun in object_nouns()]
    nouns += [(noun, c.name) for c in CATEGORIES_V2 for noun in (c.name, *c.nouns)]
    for noun, category in nouns:
        words.update(_WORD.findall(noun.lower()))
        words.update(_WORD.findall(plural(noun, category).lower()))
    return frozenset(w for w in words if len(w) >= MIN_LENGTH)


def _plural_of(word: str, known) -> bool:
    """``word`` is a regular plural of a known word ("footballs", "boxes", "bunnies")."""
    return word.endswith("s") and (word[:-1] in known or (word.endswith("ies") and word[:-3] + "y" in known)
                                   or (re.search(r"(s|x|z|ch|sh|o)es$", word) is not None and word[:-2] in known))


@lru_cache(maxsize=1)
def english_words() -> frozenset[str] | None:
    """The English words of ``pyspellchecker``'s dictionary (about 160,000, 0.2 s to load), or
    None when the package is not installed."""
    try:
        from spellchecker import SpellChecker
    except ImportError:
        return None
    return frozenset(SpellChecker(distance=1).word_frequency.dictionary.keys())


class SpellingFixer:
    """``fixer(text)``: ``text`` with each misspelt vocabulary word replaced (see the module).

    Args:
        known: words never changed, lower case: English (:func:`english_words`) and the words
            the text encoder knows whole (its tokenizer's vocabulary).
        vocabulary: the words a typo may be turned into (default: :func:`grounding_words`).
    """

    def __init__(self, known: Iterable[str], vocabulary: Iterable[str] | None = None) -> None:
        self.vocabulary = frozenset(w.lower() for w in (grounding_words() if vocabulary is None else vocabulary))
        self.known = frozenset(known) | self.vocabulary
        self._by_length: dict[int, list[str]] = {}
        for w in sorted(self.vocabulary):
            self._by_length.setdefault(len(w), []).append(w)
        self.word = lru_cache(maxsize=4096)(self._word)

    def _word(self, word: str) -> str | None:
        """The vocabulary word ``word`` (lower case) is a typo of, or None."""
        if len(word) < MIN_LENGTH or word in self.known or _plural_of(word, self.known):
            return None
        near = [w for n in (len(word) - 1, len(word), len(word) + 1) for w in self._by_length.get(n, ())
                if one_edit(word, w)]
        return near[0] if len(near) == 1 else None

    def __call__(self, text: str) -> str:
        def fix(m: re.Match) -> str:
            typed = m.group(0)
            right = self.word(typed.lower())
            if right is None:
                return typed
            if typed.isupper() and len(typed) > 1:
                return right.upper()
            return right.capitalize() if typed[0].isupper() else right

        return _WORD.sub(fix, text)
