"""Typed typos read as the vocabulary word they miss (language/spelling.py); the predictor's side:
test_reading.py."""
from __future__ import annotations

import numpy as np
import pytest

from refseg_ros.language.spelling import SpellingFixer, edits, english_words, grounding_words, one_edit


@pytest.fixture(scope="module")
def fixer():
    english = english_words()
    assert english is not None, "pyspellchecker is a pinned requirement (requirements/base.txt)"
    return SpellingFixer(english)


@pytest.mark.parametrize("typed, read", [
    ("the hambuger", "the hamburger"),           # a letter dropped
    ("THE MUFFCN", "THE MUFFIN"),                # one changed, in the case typed
    ("Yellzw mug, pleaes?", "Yellow mug, please?"),  # two words, punctuation kept
    ("pick up the jar behnd the bowl", "pick up the jar behind the bowl"),
    ("the ketcup bottle", "the ketchup bottle"),
    ("the mgu on the lfet", "the mug on the left"),  # neighbours swapped
    ("the jenga blokc", "the jenga block"),
])
def test_typos_are_read_as_the_vocabulary_word(fixer, typed, read):
    assert fixer(typed) == read


@pytest.mark.parametrize("text", [
    "the saucer", "the plait", "the tumbler",     # English words, even if not the model's names
    "all the drainers", "both footballs", "the bunnies",  # plurals
    "the bal",                                    # one edit from "ball" and from "bar": unsure
    "the zxqvk", "", "   ", "a", "the 2 mugs!", "el vaso rojo", "die rote Tasse", "赤いマグ",
    "the moka pot next to the jenga block",       # vocabulary words the dictionary lacks
])
def test_words_of_english_and_unsure_ones_stay(fixer, text):
    assert fixer(text) == text


def test_edits_and_the_vocabulary():
    assert edits("mug", "mug") == 0 and edits("mgu", "mug") == 1 and edits("mu", "mug") == 1
    assert edits("mugs", "mug") == 1 and edits("bowl", "ball") == 2 and edits("", "abc") == 3
    pairs = [("mug", "mug"), ("mgu", "mug"), ("mu", "mug"), ("mugs", "mug"), ("bowl", "ball"), ("", "a"),
             ("abcd", "badc"), ("abc", "acb"), ("abc", "cab"), ("left", "lfet"), ("left", "letf"), ("ab", "ba"),
             ("please", "pleaes"), ("hamburger", "hambuger"), ("hamburger", "hmburgr"), ("x", "")]
    for a, b in pairs:
        assert one_edit(a, b) == one_edit(b, a) == (edits(a, b) == 1), (a, b)
    words = grounding_words()
    assert {"hamburger", "ketchup", "mug", "mugs", "red", "grey", "leftmost", "behind", "second", "every"} <= words
    assert all(len(w) >= 3 and w.isalpha() for w in words)


def test_without_a_dictionary_only_the_vocabulary_and_given_words_count():
    plain = SpellingFixer(known=["saucer"], vocabulary=["sauce", "mug"])
    assert plain("the saucer") == "the saucer"      # known
    assert plain("the sauc and the mgu") == "the sauce and the mug"
    assert plain("the sauces") == "the sauces"      # a plural of a vocabulary word


@pytest.mark.slow
def test_without_pyspellchecker_typos_are_read_as_typed_with_a_warning(shipped_predictor, monkeypatch):
    import refseg_ros.language.spelling as spelling
    from refseg_ros.model.predictor import GroundingPredictor, load_predictor

    model = shipped_predictor.model
    monkeypatch.setattr(spelling, "english_words", lambda: None)
    with pytest.warns(UserWarning, match="pyspellchecker"):
        plain = GroundingPredictor(model)
    assert plain.spelling is None and plain.understood("the hambuger") == "the hambuger"
    heard = []
    loaded = load_predictor("", "cpu", backend="torch", log=lambda level, message: heard.append((level, message)))
    assert loaded.spelling is None and any(level == "warning" and "pyspellchecker" in m for level, m in heard)
    assert GroundingPredictor(model, fix_spelling=False).spelling is None
