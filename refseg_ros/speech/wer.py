"""Word error rate, overall and on the words that decide what gets grounded. No ROS.

``wer`` is the usual (substitutions + deletions + insertions) / reference words after
normalisation (lower case, punctuation dropped, "left-hand" -> "left hand"). ``keyword_wer`` is the
same measure on the subsequences of words from a vocabulary (object nouns, colours, sizes,
spatial words): "the red mug left of the duck" heard as "the red mud left on the dock" has a
keyword WER of 2/4 (mug, duck lost; red, left kept) whatever happens to "the" and "of".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = ["normalise", "edit_distance", "wer", "keyword_wer", "WerTotals"]

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise(text: str) -> list[str]:
    """Lower-cased words without punctuation."""
    text = _NON_WORD.sub(" ", text.lower().replace("-", " "))
    return [w.strip("'") for w in text.split() if w.strip("'")]


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return float(len(hyp) > 0)
    return edit_distance(ref, hyp) / len(ref)


def _keywords(words: Iterable[str], vocabulary: set[str]) -> list[str]:
    return [w for w in words if w in vocabulary]


def keyword_wer(reference: str, hypothesis: str, vocabulary: Iterable[str]) -> tuple[int, int]:
    """(errors, reference keywords) on the words of ``vocabulary`` (single words, lower case)."""
    vocab = {w.lower() for w in vocabulary}
    ref = _keywords(normalise(reference), vocab)
    hyp = _keywords(normalise(hypothesis), vocab)
    return edit_distance(ref, hyp), len(ref)


@dataclass
class WerTotals:
    """Corpus-level WER: errors and reference words summed over utterances (not a mean of rates)."""
    errors: int = 0
    words: int = 0
    keyword_errors: int = 0
    keywords: int = 0

    def add(self, reference: str, hypothesis: str, vocabulary: Iterable[str]) -> None:
        ref, hyp = normalise(reference), normalise(hypothesis)
        self.errors += edit_distance(ref, hyp)
        self.words += len(ref)
        e, n = keyword_wer(reference, hypothesis, vocabulary)
        self.keyword_errors += e
        self.keywords += n

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)

    @property
    def keyword_wer(self) -> float:
        return self.keyword_errors / max(1, self.keywords)
