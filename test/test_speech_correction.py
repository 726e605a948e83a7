"""Constrained correction of unsure near-misses to vocabulary words (refseg_ros.speech.correction). No ROS."""
from __future__ import annotations

from refseg_ros.language.vocabulary import keywords
from refseg_ros.speech.correction import (PROTECTED, Token, VocabularyCorrector, similarity, sound_key,
                                          tokens_from_words)

VOCAB = keywords()


def words(*pairs):
    """faster-whisper's word list: each word with its leading space."""
    return [(" " + w, p) for w, p in pairs]


def correct(*pairs, **kwargs):
    text, tokens = tokens_from_words(words(*pairs))
    return VocabularyCorrector(VOCAB, **kwargs).correct(text, tokens)


def test_tokens_keep_the_text_and_split_hyphenated_words():
    text, tokens = tokens_from_words([(" Pick", 0.9), (" the", 0.8), (" nut-clear.", 0.2)])
    assert text == "Pick the nut-clear."
    assert [text[t.start:t.end] for t in tokens] == ["Pick", "the", "nut", "clear"]
    assert [t.probability for t in tokens] == [0.9, 0.8, 0.2, 0.2]
    assert tokens_from_words([]) == ("", [])


def test_sound_alike_words_score_higher_than_different_ones():
    assert sound_key("sphere") == sound_key("sfeer")
    assert similarity("dock", "duck") > similarity("dock", "tray")
    assert similarity("steer", "sphere") > similarity("steer", "cube")
    assert similarity("mug", "mug") == 1.0
    assert 0.0 <= similarity("x", "rubber") <= 1.0


def test_an_unsure_near_miss_becomes_the_vocabulary_word():
    out, fixes = correct(("Pick", 0.9), ("up", 0.9), ("the", 0.9), ("blue", 0.8), ("steer.", 0.2))
    assert out == "Pick up the blue sphere."
    assert [(f.heard, f.word) for f in fixes] == [("steer", "sphere")]
    assert fixes[0].probability == 0.2 and fixes[0].similarity >= 0.7
    out, _ = correct(("Grab", 0.9), ("the", 0.9), ("dock", 0.3), ("on", 0.9), ("the", 0.9), ("rite.", 0.4))
    assert out == "Grab the duck on the right."
    # The case of the heard word is kept.
    out, _ = correct(("Dock", 0.1), ("please", 0.9))
    assert out == "Duck please"


def test_a_confident_word_is_never_rewritten():
    pairs = (("Pick", 0.9), ("up", 0.9), ("the", 0.9), ("blue", 0.8), ("steer.", 0.95))
    out, fixes = correct(*pairs)
    assert out == "Pick up the blue steer." and fixes == []
    # The threshold decides: the same word, unsure, is corrected; exactly at the threshold it is not.
    assert correct(*pairs[:-1], ("steer.", 0.49), max_probability=0.5)[0].endswith("sphere.")
    assert correct(*pairs[:-1], ("steer.", 0.5), max_probability=0.5)[1] == []


def test_vocabulary_function_and_far_words_stay():
    # Already a vocabulary word, however unsure: left as heard.
    assert correct(("the", 0.1), ("block", 0.1))[1] == []
    # Function and request words are protected, even when they sound like a vocabulary word.
    assert {"on", "to", "the", "pick", "hand"} <= PROTECTED
    assert correct(("hand", 0.05), ("me", 0.05), ("the", 0.05), ("cup", 0.9))[1] == []
    # Nothing in the vocabulary sounds like it: left alone.
    assert correct(("the", 0.9), ("mirror", 0.05))[1] == []
    # Too short to tell.
    assert correct(("ok", 0.01),)[1] == []


def test_an_ambiguous_near_miss_is_left_alone():
    corrector = VocabularyCorrector(["back", "big"], margin=0.1)
    word, _ = corrector.nearest("bag")  # as close to "big" as to "back"
    assert word == ""
    text, tokens = tokens_from_words(words(("the", 0.9), ("bag", 0.1)))
    assert corrector.correct(text, tokens) == ("the bag", [])


def test_split_words_merge_into_a_vocabulary_word():
    out, fixes = correct(("the", 0.9), ("left", 0.9), ("most", 0.9), ("cup", 0.9))
    assert out == "the leftmost cup" and fixes[0].word == "leftmost"  # the letters spell it: always
    out, _ = correct(("the", 0.9), ("small", 0.9), ("dough", 0.3), ("nut.", 0.2))
    assert out == "the small donut."
    # Sound-alike halves merge only when the recogniser was unsure of both.
    assert correct(("the", 0.9), ("dough", 0.9), ("nut", 0.2))[0] == "the dough nut"
    # Two vocabulary words side by side stay two words; so do words across punctuation.
    assert correct(("the", 0.9), ("red", 0.2), ("ball", 0.2))[0] == "the red ball"
    text, tokens = tokens_from_words([(" left,", 0.9), (" most", 0.9)])
    assert VocabularyCorrector(VOCAB).correct(text, tokens)[0] == "left, most"


def test_a_zero_threshold_turns_correction_off():
    assert correct(("the", 0.0), ("steer", 0.0), max_probability=0.0) == ("the steer", [])


def test_token_spans_must_match_the_text():
    corrector = VocabularyCorrector(VOCAB)
    text = "the steer"
    out, fixes = corrector.correct(text, [Token(0, 3, 0.9), Token(4, 9, 0.1)])
    assert out == "the sphere" and len(fixes) == 1
