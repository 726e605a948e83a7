"""Vocabulary rescoring of the recogniser's n-best transcripts (refseg_ros.speech.transcriber). No ROS."""
from __future__ import annotations

import pytest

from refseg_ros.language.vocabulary import keywords
from refseg_ros.speech.transcriber import pick_hypothesis

VOCAB = keywords()


def test_pick_hypothesis_adds_the_bonus_per_vocabulary_word():
    hyps = [("I want the fish.", -0.30), ("I want the dish.", -0.45), ("I want the wish.", -0.50)]
    assert pick_hypothesis(hyps, 0.0, VOCAB) == 0  # no bonus: the decoder's own best
    assert pick_hypothesis(hyps, 0.1, VOCAB) == 0  # "dish" is not close enough
    assert pick_hypothesis(hyps, 0.3, VOCAB) == 1
    # A confident transcript has no close competitor: nothing rewrites it.
    assert pick_hypothesis([("pick up the red mug", -0.05), ("pick up the red mud", -1.2)], 0.3, VOCAB) == 0
    # Ties keep the earlier (likelier) one; an empty list has no pick.
    assert pick_hypothesis([("the mug", -0.5), ("the cup", -0.5)], 0.3, VOCAB) == 0
    assert pick_hypothesis([], 0.3, VOCAB) == -1


def test_a_repeated_command_does_not_win_on_its_repeated_keywords():
    once = ("Please pick up the pink object.", -0.30)
    twice = ("Please pick up the pink object. Please pick up the pink object.", -0.25)
    # Keywords count once each: the repetition gains nothing from them.
    assert pick_hypothesis([once, twice], 0.3, VOCAB) == 1  # its own (better) decoder score still decides
    assert pick_hypothesis([twice, once], 0.3, VOCAB) == 0
    # With a word budget (the first pass's words and a few more) it is no candidate at all.
    assert pick_hypothesis([once, twice], 0.3, VOCAB, max_words=9) == 0
    # None within the budget: the decoder's own best, as without rescoring.
    assert pick_hypothesis([twice, twice], 0.3, VOCAB, max_words=5) == 0
    assert pick_hypothesis([twice, once], 0.3, VOCAB, max_words=9) == 1


@pytest.mark.slow
def test_rescoring_fixes_an_unsure_word_and_keeps_a_clear_command(tmp_path):
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from refseg_ros.language.prompt import initial_prompt
    from refseg_ros.speech.heldout import Voice, add_noise, speak
    from refseg_ros.speech.synth import espeak_available
    from refseg_ros.speech.transcriber import Transcriber

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    prompt = initial_prompt("command")
    # In Whisper's whole window, where greedy decoding of the audio below heard "fish".
    greedy = Transcriber(initial_prompt=prompt, short_window=False)
    rescored = Transcriber(initial_prompt=prompt, nbest=5, keyword_bonus=0.3, vocabulary=VOCAB, short_window=False)
    assert rescored.rescoring and not greedy.rescoring
    clear = speak("pick up the red mug", Voice("espeak", "en-us", 150), tmp_path / "clear.wav")
    a, b = greedy.transcribe(clear), rescored.transcribe(clear)
    assert a.text == b.text and "greedy" not in b.extra
    # A voice and noise where greedy decoding heard "fish" (tools/keyword_accuracy.py, dev split).
    unsure = add_noise(speak("I want the dish", Voice("espeak", "en-us+f3", 165, 70), tmp_path / "u.wav"),
                       20.0, "pink", seed=70)
    b = rescored.transcribe(unsure)
    assert "dish" in b.text.lower(), b
    if "greedy" in b.extra:  # the first pass's text is kept for the transcript details
        assert b.extra["greedy"] != b.text
    assert b.latency_s > 0 and b.confidence > 0
    # Decoding restricted to the command lexicon cannot write "fish" at all.
    from refseg_ros.speech.lexicon import command_lexicon

    lexicon = Transcriber(initial_prompt=prompt, lexicon=command_lexicon()).transcribe(unsure)
    assert "dish" in lexicon.text.lower() and "fish" not in lexicon.text.lower(), lexicon


def test_copies_of_a_command_after_its_end_are_dropped():
    from refseg_ros.speech.transcriber import drop_repeats

    assert drop_repeats("Pick up the blue cube. Pick up the blue cube. Pick up the") == "Pick up the blue cube."
    assert drop_repeats("Take the pink object, take the pink object, take the pink") == "Take the pink object"
    # A command that only repeats some of its words, or short runs, stays as heard.
    for text in ("pick up the mug", "grab the red cube and the red cube", "the cup the cup", "",
                 "take the cube to the left of the ball and the cup to the left of the tray"):
        assert drop_repeats(text) == text


def test_looping_tells_a_decoder_loop_from_a_command():
    from refseg_ros.speech.transcriber import looping

    assert looping("Red green green red red green green green green green.")
    assert looping("I want, not yellow, or red, white, no, no, no, brick.")
    assert looping("the cup " * 12)  # compresses like a repetition
    for text in ("Pick up the red mug.", "grab the red cube and the red cube", "the cup the cup", "",
                 "take the cube to the left of the ball and the cup to the left of the tray"):
        assert not looping(text), text


def test_a_copy_cut_inside_a_word_is_dropped_too():
    from refseg_ros.speech.transcriber import drop_repeats

    text = "Pick up the teddy, pick up the teddy, pick up the teddy, pick up the t"
    assert drop_repeats(text) == "Pick up the teddy"
    assert drop_repeats("pick up the teddy and the tray") == "pick up the teddy and the tray"


@pytest.mark.slow
def test_a_first_pass_caught_in_a_loop_is_decoded_again_without_the_prompt(tmp_path):
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from refseg_ros.language.prompt import initial_prompt
    from refseg_ros.speech.heldout import Voice, add_noise, speak
    from refseg_ros.speech.lexicon import command_lexicon
    from refseg_ros.speech.synth import espeak_available
    from refseg_ros.speech.transcriber import Transcriber, looping

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    # A voice and noise where the prompted first pass looped ("Go, and get, ..., go, go, go, go")
    # on the development split of tools/keyword_accuracy.py.
    audio = add_noise(speak("go and get the teddy", Voice("espeak", "en-gb-x-gbcwmd", 130, 50), tmp_path / "a.wav"),
                      20.0, "pink", seed=448)
    from refseg_ros.speech.command_grammar import CommandGrammar

    kwargs = dict(initial_prompt=initial_prompt("command"), lexicon=command_lexicon(), denoise=True, nbest=5,
                  grammar=CommandGrammar(), keep_sure=0.7)
    stuck = Transcriber(retry_loops=False, **kwargs).transcribe(audio)
    first = stuck.extra.get("greedy", stuck.text)  # the first pass, before grammar fitting
    if not looping(first):
        pytest.skip(f"this espeak-ng build's audio does not make the decoder loop: {first!r}")
    retried = Transcriber(**kwargs).transcribe(audio)
    assert retried.extra["loop"] == first
    assert not looping(retried.text) and "teddy" in retried.text.lower(), retried


@pytest.mark.slow
def test_extra_prompts_pool_more_transcripts_for_grammar_fitting(tmp_path):
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from refseg_ros.language.prompt import initial_prompt
    from refseg_ros.speech.command_grammar import CommandGrammar, words_of
    from refseg_ros.speech.heldout import Voice, add_noise, speak
    from refseg_ros.speech.lexicon import command_lexicon
    from refseg_ros.speech.synth import espeak_available
    from refseg_ros.speech.transcriber import Transcriber

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    prompt = initial_prompt("command")
    audio = add_noise(speak("pick up the red mug", Voice("espeak", "en-us", 150, 50), tmp_path / "a.wav"),
                      20.0, "pink", seed=3)
    rec = Transcriber(initial_prompt=prompt, lexicon=command_lexicon(), denoise=True, nbest=5,
                      grammar=CommandGrammar(), keep_sure=0.7, extra_prompts=(initial_prompt("nouns"), "", prompt))
    # The first pass's own prompt is not decoded twice; the others add one n-best list each.
    rec._decode_window(audio, prompt)
    more = rec._more_hypotheses(rec._encoded.pop(), prompt, len(audio))
    assert 2 <= len(more) <= 2 * rec.nbest and all(isinstance(s, float) for _, s in more)
    heard = rec.transcribe(audio)
    assert {"red", "mug"} <= set(words_of(heard.text)), heard
