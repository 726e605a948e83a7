"""The command grammar as a word automaton and the grammatical command closest to a transcript
(refseg_ros.speech.command_grammar). No ROS, no recogniser."""
from __future__ import annotations

import numpy as np
import pytest

from refseg_ros.data import render_scene
from refseg_ros.speech.command_grammar import (CommandGrammar, changes_sure_word, object_names, pick_grammatical,
                                              sentence, words_of)
from refseg_ros.speech.heldout import FRAMES, TWO_OBJECT_FRAMES


@pytest.fixture(scope="module")
def grammar():
    return CommandGrammar()


def closest(grammar, text, **kwargs):
    return [(" ".join(words), cost) for words, cost in grammar.closest(words_of(text), **kwargs)]


def test_every_generated_command_is_accepted(grammar):
    rng = np.random.default_rng(0)
    expressions = [e["sent"] for seed in (11, 12, 13) for sents in render_scene(seed, 320, 240).expressions.values()
                   for e in sents]
    assert len(expressions) > 30
    for i, expr in enumerate(expressions):
        frame = FRAMES[i % len(FRAMES)]
        assert grammar.accepts(words_of(frame.format(expr))), frame.format(expr)
        other = expressions[int(rng.integers(len(expressions)))]
        two = TWO_OBJECT_FRAMES[i % len(TWO_OBJECT_FRAMES)].format(expr, other)
        assert grammar.accepts(words_of(two)), two


@pytest.mark.parametrize("text", [
    "pick up the red",                      # no noun
    "pick up red mug",                      # no article
    "the mug on the",                       # a place cut short
    "grab the leftmost",                    # an adjective alone
    "the red mug left",                     # a place word outside a place phrase
    "please",                               # no expression at all
    "the mug that is red blue",             # a colour outside the clause
    "the blue red mug",                     # two colours
])
def test_word_salad_is_not_a_command(grammar, text):
    assert not grammar.accepts(words_of(text))


def test_a_grammatical_transcript_is_its_own_closest_command(grammar):
    text = "could you hand me the small green rubber duck next to the big red mug please"
    assert closest(grammar, text) == [(text, 0.0)]


@pytest.mark.parametrize("heard, said", [
    ("Pick up the last most orange ring.", "pick up the leftmost orange ring"),
    ("Bring me the left no white mug.", "bring me the leftmost white mug"),
    ("Take the object's front to the left.", "take the object furthest to the left"),
    ("Please pick up the object or from the left.", "please pick up the object third from the left"),
    ("grab the blue steer", "grab the blue sphere"),
    ("pick up the cube next to red mug", "pick up the cube next to the red mug"),
])
def test_near_misses_become_the_command_they_sound_like(grammar, heard, said):
    (best, cost), = closest(grammar, heard)
    assert best == said
    assert 0.0 < cost < 1.5


def test_candidates_come_cheapest_first_and_distinct(grammar):
    found = closest(grammar, "go and get the right ball furthest from the camera", k=3)
    assert len(found) == 3
    assert [c for _, c in found] == sorted(c for _, c in found)
    assert len({t for t, _ in found}) == 3
    assert all(grammar.accepts(t.split()) for t, _ in found)
    assert not closest(grammar, "go and get the right ball furthest from the camera", max_cost=0.1)


def test_request_words_are_kept_only_as_heard(grammar):
    # "the left" must not turn into the request words "they lift": the place is in the expression.
    (best, _), = closest(grammar, "please pick up the object or from the left")
    assert "lift" not in best.split() and best.endswith("from the left")


def test_extra_nouns_are_objects_of_the_grammar():
    assert object_names("Screwdriver, tape measure.  ;") == ["screwdriver", "tape measure"]
    grammar = CommandGrammar(extra_nouns=object_names("screwdriver, tape measure"))
    assert grammar.accepts(words_of("pick up the red screwdriver next to the tape measure"))
    assert not CommandGrammar().accepts(words_of("pick up the red screwdriver"))


def test_pick_grammatical_weighs_decoder_score_against_edit_cost(grammar):
    hyps = [("Pick up the last most orange ring.", -0.20), ("Pick up the lost orange ring.", -0.25),
            ("Pick up the leftmost orange ring.", -0.60)]
    index, words, cost = pick_grammatical(hyps, grammar, weight=0.3)
    assert (index, " ".join(words)) == (0, "pick up the leftmost orange ring") and cost > 0
    # with edit cost weighing heavily, the transcript that already is a command wins
    index, words, cost = pick_grammatical(hyps, grammar, weight=5.0)
    assert (index, " ".join(words), cost) == (2, "pick up the leftmost orange ring", 0.0)
    assert pick_grammatical([("", -0.1)], grammar, 0.3) is None
    assert pick_grammatical([], grammar, 0.3) is None


def test_sentence_is_capitalised_with_a_full_stop():
    assert sentence(["pick", "up", "the", "duck"]) == "Pick up the duck."
    assert sentence(["i", "want", "the", "duck"]) == "I want the duck."
    assert sentence([]) == ""


def test_noise_heard_as_words_does_not_become_a_command(grammar):
    assert pick_grammatical([("Thank you.", -0.3), ("you", -0.5)], grammar, 0.3) is None
    # a command is chosen only when one of its tabletop words was heard (or sounds like a heard word)
    index, words, _ = pick_grammatical([("Thank you.", -0.3), ("the blue steer", -0.6)], grammar, 0.3)
    assert index == 1 and words == ["the", "blue", "sphere"]


def test_a_surely_heard_word_is_not_changed_by_fitting():
    heard = [(" Hand", 0.9), (" me", 0.9), (" the", 0.95), (" ball", 0.9), (" that", 0.8), (" is", 0.8),
             (" not", 0.9), (" red.", 0.9)]
    fitted = "hand me the ball that is green".split()
    assert changes_sure_word(heard, fitted, sure=0.7)          # "not red" would become "green"
    assert not changes_sure_word(heard, fitted, sure=0.95)     # ... unless no word counts as sure
    # unsure words may change, and words the recogniser did not hear may be added
    unsure = [(" Pick", 0.9), (" up", 0.9), (" the", 0.9), (" last", 0.2), (" most", 0.3), (" ring", 0.8)]
    assert not changes_sure_word(unsure, "pick up the leftmost ring".split(), sure=0.7)
    assert not changes_sure_word([(" the", 0.9), (" cube", 0.9)], "the red cube".split(), sure=0.5)
    # dropping a sure word is a change too
    assert changes_sure_word([(" the", 0.9), (" mug", 0.9), (" now", 0.9)], ["the", "mug"], sure=0.5)
    assert not changes_sure_word([], ["the", "mug"], sure=0.5)


def test_a_word_heard_in_two_pieces_may_be_joined_but_not_respelled():
    split = [(" Pick", 0.9), (" up", 0.95), (" the", 0.95), (" left", 0.99), (" most", 0.8), (" ring.", 0.9)]
    assert not changes_sure_word(split, "pick up the leftmost ring".split(), sure=0.7)
    hyphen = [(" the", 0.9), (" right", 0.95), ("-most", 0.9), (" cube", 0.9)]
    assert not changes_sure_word(hyphen, "the rightmost cube".split(), sure=0.7)
    # two sure words that do not spell the fitted word stay protected
    last = [(" the", 0.9), (" last", 0.95), (" most", 0.9), (" ring", 0.9)]
    assert changes_sure_word(last, "the leftmost ring".split(), sure=0.7)
    # joining is only for a word of the fitted command: "left most" may not vanish into "left"
    assert changes_sure_word(split, "pick up the left ring".split(), sure=0.7)
    # a sure word completed by the unsure sound after it ("near" + "the" -> "nearest") ...
    near = [(" the", 0.9), (" ball", 0.9), (" near", 0.8), (" the", 0.1), (" camera", 0.95)]
    assert not changes_sure_word(near, "the ball nearest the camera".split(), sure=0.7)
    # ... but not by a sure one, which would vanish
    near_sure = [(" the", 0.9), (" ball", 0.9), (" near", 0.8), (" us", 0.9), (" camera", 0.95)]
    assert changes_sure_word(near_sure, "the ball nearest camera".split(), sure=0.7)


def test_the_out_of_grammar_commands_are_outside_the_grammar(grammar):
    from refseg_ros.speech.heldout import OUT_OF_GRAMMAR, Voice, out_of_grammar_set

    assert len(OUT_OF_GRAMMAR) >= 10
    for text in OUT_OF_GRAMMAR:
        assert not grammar.accepts(words_of(text)), text
    voices = [Voice("espeak", "en-us", 150), Voice("flite", "slt", 1.0)]
    spoken = out_of_grammar_set(voices)
    assert [c.text for c in spoken] == list(OUT_OF_GRAMMAR) * 2
    assert {(c.noise, c.snr_db) for c in spoken} == {("pink", 20.0)}
