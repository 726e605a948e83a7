"""The varied spoken-command set and its keyword accuracy (refseg_ros.speech.heldout); no ROS, no recogniser."""
from __future__ import annotations

import numpy as np
import pytest

from refseg_ros.language.vocabulary import keywords
from refseg_ros.speech.heldout import (NOISE_KINDS, SNRS_DB, VOICES, Voice, add_noise, available_voices, command_set,
                                       keyword_accuracy, missed_keywords, speak)

VOCAB = keywords()


def test_keyword_accuracy_counts_keywords_that_arrive_in_order():
    ref = "please pick up the green duck next to the mug"
    assert keyword_accuracy(ref, ref.upper() + ".", VOCAB) == (4, 4)  # green duck next mug
    assert keyword_accuracy(ref, "Please pick up the green dot next to the mug.", VOCAB) == (3, 4)
    assert keyword_accuracy(ref, "the mug next to the green duck", VOCAB)[0] < 4  # order matters
    assert keyword_accuracy(ref, "green big red duck next to the mug", VOCAB) == (4, 4)  # insertions are WER's
    assert keyword_accuracy("the left-hand one", "the left hand one", VOCAB) == (2, 2)
    assert keyword_accuracy("please", "", VOCAB) == (0, 0)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_noise_is_mixed_at_the_asked_snr(kind, snr):
    t = np.arange(16000) / 16000
    speech = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # quiet: no peak normalisation
    mixed = add_noise(speech, snr, kind, seed=1, pad_s=0.25)
    pad = 4000
    assert len(mixed) == len(speech) + 2 * pad and mixed.dtype == np.float32
    noise = mixed.astype(np.float64) - np.pad(speech, pad)
    measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert measured == pytest.approx(snr, abs=0.1)
    loud = add_noise(speech * 19, snr, kind, seed=1)
    assert np.max(np.abs(loud)) <= 0.9 + 1e-6  # loud mixes are scaled down, not clipped
    assert np.array_equal(mixed, add_noise(speech, snr, kind, seed=1, pad_s=0.25))  # deterministic


def test_command_set_varies_voices_noise_and_frames_and_splits_are_disjoint():
    voices = [v for v in VOICES if v.engine == "espeak"]
    dev = command_set(40, "dev", voices=voices)
    held = command_set(40, "heldout", voices=voices)
    assert [c.text for c in held] == [c.text for c in command_set(40, "heldout", voices=voices)]
    assert len(held) == 40 and len({c.voice for c in held}) == len(voices)
    assert {c.noise for c in held} == set(NOISE_KINDS) and {c.snr_db for c in held} == set(SNRS_DB)
    assert len({c.text.split(" the ")[0] for c in held}) >= 6  # many command frames
    assert any(" and " in c.text for c in held)  # two-object commands
    assert not {c.text for c in dev} & {c.text for c in held}
    for c in held:
        assert keyword_accuracy(c.text, c.text, VOCAB)[1] >= 1, c.text  # every command has keywords


def test_speak_gives_16khz_audio(tmp_path):
    voices = available_voices()
    if not voices:
        pytest.skip("neither espeak-ng nor flite is installed")
    for voice in {v.engine: v for v in voices}.values():  # one voice per installed synthesiser
        audio = speak("pick up the red mug", voice, tmp_path / f"{voice.engine}.wav")
        assert audio.dtype == np.float32 and 0.5 < len(audio) / 16000 < 5.0 and np.abs(audio).max() > 0.05
    with pytest.raises(ValueError):
        speak("x", Voice("nope", "x", 1.0), tmp_path / "x.wav")


def test_missed_keywords_are_those_outside_the_common_subsequence():
    vocab = keywords()
    ref = "pick up the red mug on the left of the blue duck"
    assert missed_keywords(ref, ref, vocab) == []
    assert missed_keywords(ref, "pick up the red mud on the left of the blue duck", vocab) == ["mug"]
    assert missed_keywords(ref, "the blue duck", vocab) == ["red", "mug", "left"]
    # order counts, as in keyword_accuracy: a swapped pair loses one of them
    lost = missed_keywords("the red mug", "the mug red", vocab)
    assert len(lost) == 1 and lost[0] in ("red", "mug")
    hit, total = keyword_accuracy(ref, "the red left blue", vocab)
    assert total - hit == len(missed_keywords(ref, "the red left blue", vocab))
