"""Constrained correction of a transcript toward the tabletop vocabulary. No ROS, no recogniser.

Whisper tiny hears "sphere" as "steer" and "left" as "lift": a near-miss of a word the command
language has, on a word the recogniser itself was unsure of. :class:`VocabularyCorrector` rewrites
such a word to the vocabulary word it sounds most like, and only such a word:

* the word is not already a vocabulary word, not a common function or command word
  (:data:`PROTECTED`), and at least ``min_letters`` long;
* the recogniser's probability for it is below ``max_probability`` (a confident word is never
  rewritten, whatever it sounds like);
* a vocabulary word sounds like it: :func:`similarity` (edit distance on a rough phonetic spelling,
  :func:`sound_key`) at least ``min_similarity``, and clearly closer than the next candidate.

Two neighbouring words may merge into one vocabulary word: exactly when their letters spell it
("left most" -> "leftmost"), or when they sound like it and the recogniser was unsure of both
("go nut" -> "donut"). Probabilities are per word as the recogniser reports them (faster-whisper's
word probabilities); :func:`tokens_from_words` turns its word list into the spans this works on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

__all__ = ["Token", "Correction", "PROTECTED", "sound_key", "similarity", "tokens_from_words",
           "VocabularyCorrector"]

#: Words that are never rewritten: function words and the verbs of a request. A near-miss of a
#: vocabulary word among them ("on" for "one", "to" for "two") is far likelier to be meant.
PROTECTED = frozenset("""
a an the this that these those it its them one's some any all both each other another
i me my you your we us our he she they him her his their
and or but then also too so not no yes
to of in on at by for from with into onto off up down over under out about than as
is are was were be been am do does did have has had will would could can may might shall should must
please pick grab take bring get give hand reach want need put move go fetch show point find lift hold
let now just there here what which where how very more most less least much many
""".split())

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")

# Spelling -> rough sound, in order; then doubled letters and vowel runs collapse to one letter.
_SOUNDS = (("ough", "o"), ("augh", "af"), ("igh", "i"), ("tch", "ch"), ("dge", "j"), ("ph", "f"),
           ("ck", "k"), ("qu", "kw"), ("wh", "w"), ("wr", "r"), ("kn", "n"), ("gn", "n"), ("mb", "m"),
           ("x", "ks"), ("z", "s"), ("ce", "se"), ("ci", "si"), ("cy", "sy"), ("c", "k"), ("q", "k"),
           ("ge", "je"), ("gi", "ji"), ("dj", "j"), ("y", "i"))
_VOWELS = frozenset("aeiou")
# Sounds a recogniser confuses with each other: one group each (stops, fricatives, nasals, liquids).
_GROUPS = {ch: g for g, letters in enumerate(("pbtdkg", "fvsjh", "mn", "lr", "w")) for ch in letters}


@dataclass(frozen=True)
class Token:
    """One word of a transcript: where it is (character span) and how sure the recogniser was."""
    start: int
    end: int
    probability: float


@dataclass(frozen=True)
class Correction:
    heard: str          # what the transcript said (one word, or two merged)
    word: str           # the vocabulary word that replaced it
    probability: float  # the recogniser's (lowest) probability for what it heard
    similarity: float


@lru_cache(maxsize=4096)
def sound_key(word: str) -> str:
    """A rough phonetic spelling: "sphere" and "sfeer" get the same key, "cube" and "kube" too."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if w.endswith("e") and len(w) > 3 and w[-2] not in _VOWELS:  # silent final e: "tube", "sphere"
        w = w[:-1]
    for spelling, sound in _SOUNDS:
        w = w.replace(spelling, sound)
    w = re.sub(r"(.)\1+", r"\1", w)
    return re.sub(r"([aeiou])[aeiou]+", r"\1", w)


def _substitution(x: str, y: str) -> float:
    if x == y:
        return 0.0
    if x in _VOWELS and y in _VOWELS:
        return 0.4  # vowels are what a recogniser (and an accent) gets wrong most
    if _GROUPS.get(x, -1) == _GROUPS.get(y, -2):
        return 0.5
    return 1.0


def _distance(a: str, b: str) -> float:
    """Edit distance with cheaper vowel changes and confusions within a sound group."""
    def gap(ch: str) -> float:
        return 0.6 if ch in _VOWELS else 1.0

    prev = [0.0]
    for y in b:
        prev.append(prev[-1] + gap(y))
    for x in a:
        cur = [prev[0] + gap(x)]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + gap(x), cur[j - 1] + gap(y), prev[j - 1] + _substitution(x, y)))
        prev = cur
    return prev[-1]


def similarity(a: str, b: str) -> float:
    """0..1: how alike two words sound (1 = the same :func:`sound_key`)."""
    ka, kb = sound_key(a), sound_key(b)
    return max(0.0, 1.0 - _distance(ka, kb) / max(len(ka), len(kb), 1))


def tokens_from_words(words: Sequence[tuple[str, float]]) -> tuple[str, list[Token]]:
    """The transcript text and its word tokens from (word text, probability) pairs as the recogniser
    gives them (each word text with its leading space; "nut-clear" gives two tokens)."""
    text, tokens = "", []
    for word, probability in words:
        offset = len(text)
        text += word
        tokens += [Token(offset + m.start(), offset + m.end(), float(probability)) for m in _WORD.finditer(word)]
    stripped = len(text) - len(text.lstrip())
    return text.strip(), [Token(t.start - stripped, t.end - stripped, t.probability) for t in tokens]


def _match_case(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


class VocabularyCorrector:
    """Rewrites unsure near-misses of vocabulary words; see the module docstring."""

    def __init__(self, vocabulary: Iterable[str], max_probability: float = 0.5, min_similarity: float = 0.7,
                 margin: float = 0.1, min_letters: int = 3, protected: Iterable[str] = PROTECTED):
        self.vocabulary = sorted({w.lower() for w in vocabulary if w.isalpha() and len(w) >= 2})
        self.max_probability = float(max_probability)
        self.min_similarity = float(min_similarity)
        self.margin = float(margin)
        self.min_letters = int(min_letters)
        self.protected = frozenset(w.lower() for w in protected) - set(self.vocabulary)
        self._words = set(self.vocabulary)

    def nearest(self, heard: str) -> tuple[str, float]:
        """The vocabulary word most like ``heard`` and its similarity ("", 0) if none is clearly
        closest (the runner-up within ``margin``)."""
        scored = sorted(((similarity(heard, w), w) for w in self.vocabulary), reverse=True)
        if not scored:
            return "", 0.0
        best, word = scored[0]
        if len(scored) > 1 and best - scored[1][0] < self.margin:
            return "", 0.0
        return word, best

    def _rewritable(self, word: str, probability: float) -> bool:
        w = word.lower()
        return (w not in self._words and w not in self.protected and len(w) >= self.min_letters
                and probability < self.max_probability)

    def correct(self, text: str, tokens: Sequence[Token]) -> tuple[str, list[Correction]]:
        """``text`` with its unsure near-misses replaced, and what was replaced (in order)."""
        edits: list[tuple[int, int, str, Correction]] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            word = text[tok.start:tok.end]
            if i + 1 < len(tokens):
                merged = self._merge(text, tok, tokens[i + 1])
                if merged is not None:
                    edits.append(merged)
                    i += 2
                    continue
            if self._rewritable(word, tok.probability):
                target, sim = self.nearest(word)
                if target and sim >= self.min_similarity:
                    edits.append((tok.start, tok.end, _match_case(target, word),
                                  Correction(word, target, tok.probability, sim)))
            i += 1
        out = text
        for start, end, replacement, _ in reversed(edits):
            out = out[:start] + replacement + out[end:]
        return out, [e[3] for e in edits]

    def _merge(self, text: str, a: Token, b: Token):
        between = text[a.end:b.start]
        if between not in (" ", "-", ""):
            return None  # punctuation between them: separate words
        wa, wb = text[a.start:a.end], text[b.start:b.end]
        joined = (wa + wb).lower()
        probability = min(a.probability, b.probability)
        # Letters that spell a vocabulary word ("left most"), unless both halves are words of their own.
        exact = joined in self._words and not (wa.lower() in self._words and wb.lower() in self._words)
        if exact:
            return (a.start, b.end, _match_case(joined, wa), Correction(f"{wa} {wb}", joined, probability, 1.0))
        # A sound-alike merge only of two unsure words, neither a vocabulary or a protected word.
        if any(w.lower() in self._words or w.lower() in self.protected for w in (wa, wb)):
            return None
        if max(a.probability, b.probability) >= self.max_probability or len(joined) < 2 * self.min_letters:
            return None
        target, sim = self.nearest(joined)
        if target and sim >= self.min_similarity and len(target) >= 2 * self.min_letters - 1:
            return (a.start, b.end, _match_case(target, wa), Correction(f"{wa} {wb}", target, probability, sim))
        return None
