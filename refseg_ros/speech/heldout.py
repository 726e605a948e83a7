"""A spoken-command test set the recogniser is not tuned on, and the keyword accuracy it is scored by.

What a robot hears differs from one synthetic voice in a quiet room, so the set varies what the
recogniser meets: two synthesisers (espeak-ng accents and variants, flite's voices when flite is
installed), speaking rates, background noise (white, pink, brown) at 10-20 dB SNR, and command
frames beyond "pick up ..." ("could you hand me ...", "... please", two objects). The expressions
come from the tabletop grammar of rendered scenes: ``split="dev"`` and ``split="heldout"`` use
disjoint scene seeds, so anything chosen by looking at dev results is scored on held-out scenes.

Keyword accuracy is the share of the reference's keywords (object, colour, size and spatial words,
:func:`refseg_ros.language.vocabulary.keywords`) that reach the transcript in order: the longest
common subsequence of the two keyword sequences over the reference's keyword count. An inserted
keyword is not counted against it (WER counts those). No ROS.
"""
from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from refseg_ros.speech.audio import TARGET_RATE, read_wav
from refseg_ros.speech.wer import normalise

__all__ = ["Voice", "VOICES", "SPLIT_SEEDS", "SpokenCommand", "command_set", "speak", "add_noise",
           "keyword_accuracy", "missed_keywords", "available_voices", "OUT_OF_GRAMMAR", "out_of_grammar_set"]

#: First scene seed of each split (far from the seeds the tests and benchmarks use).
SPLIT_SEEDS = {"dev": 8000, "heldout": 9000}
NOISE_KINDS = ("white", "pink", "brown")
SNRS_DB = (10.0, 15.0, 20.0)

#: How a command is asked for; "{}" is an expression ("the red mug on the left").
FRAMES = ("pick up {}", "grab {}", "please pick up {}", "could you hand me {}", "can you get {} for me",
          "I want {}", "bring me {}", "take {}", "now pick up {} please", "go and get {}", "{} please",
          "reach for {}")
TWO_OBJECT_FRAMES = ("grab {} and {}", "pick up {} and then {}")


@dataclass(frozen=True)
class Voice:
    engine: str   # "espeak" or "flite"
    name: str     # espeak-ng -v value, or flite -voice value
    rate: float   # espeak: words per minute; flite: duration stretch (1 = its own pace)
    pitch: int = 50  # espeak only

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}@{self.rate:g}"


VOICES: tuple[Voice, ...] = (
    Voice("espeak", "en-us", 150, 50), Voice("espeak", "en-gb", 170, 40),
    Voice("espeak", "en-gb-scotland", 140, 60), Voice("espeak", "en-gb-x-rp", 185, 50),
    Voice("espeak", "en-029", 155, 45), Voice("espeak", "en-us+f3", 165, 70),
    Voice("espeak", "en-gb-x-gbcwmd", 130, 50), Voice("espeak", "en-us+m3", 200, 35),
    Voice("flite", "kal16", 1.0), Voice("flite", "awb", 0.9), Voice("flite", "rms", 1.15),
    Voice("flite", "slt", 1.0), Voice("flite", "slt", 0.85),
)


def available_voices(voices: Sequence[Voice] = VOICES) -> list[Voice]:
    """The voices whose synthesiser is installed (flite is optional)."""
    have = {"espeak": shutil.which("espeak-ng") is not None, "flite": shutil.which("flite") is not None}
    return [v for v in voices if have[v.engine]]


#: Commands a person might say that the command grammar does not have (a relative clause, a
#: negation, two colours, a superlative, places it lacks): a recogniser that pulls what it hears
#: toward the grammar must not turn these into other commands.
OUT_OF_GRAMMAR = ("pick up the mug which is red", "give me the red and blue cube", "the duck between the two mugs",
                  "pick up the cube on top of the tray", "get me the biggest ball",
                  "grab the cup behind the duck on the left", "the smallest cube please",
                  "hand me the ball that is not red", "the mug closest to me", "pick up both ducks",
                  "grab the last cube on the right", "the green ring in the middle",
                  "get the duck that is in front of the mug")


@dataclass(frozen=True)
class SpokenCommand:
    text: str
    voice: Voice
    noise: str
    snr_db: float


def _expressions(split: str, n: int) -> list[list[str]]:
    """Per object of consecutive scenes of ``split``: its grammar expressions."""
    from refseg_ros.data import render_scene

    seed, out = SPLIT_SEEDS[split], []
    while len(out) < n:
        scene = render_scene(seed, 320, 240)
        out += [[e["sent"] for e in sents] for _, sents in sorted(scene.expressions.items()) if sents]
        seed += 1
    return out


def command_set(n: int, split: str = "heldout", voices: Sequence[Voice] | None = None,
                seed: int = 0) -> list[SpokenCommand]:
    """``n`` commands of ``split`` with a voice, a noise kind and an SNR each (deterministic)."""
    rng = random.Random(f"{split}:{seed}")
    voices = list(voices if voices is not None else available_voices())
    if not voices:
        raise FileNotFoundError("no synthesiser: sudo apt-get install -y espeak-ng (and flite for more voices)")
    objects = _expressions(split, n + n // 4)
    out = []
    for i in range(n):
        pick = rng.choice(objects[i])
        if i % 8 == 7:  # one command in eight names two objects
            other = rng.choice(objects[n + i // 8])
            text = rng.choice(TWO_OBJECT_FRAMES).format(pick, other)
        else:
            text = rng.choice(FRAMES).format(pick)
        out.append(SpokenCommand(text, voices[i % len(voices)], NOISE_KINDS[i % len(NOISE_KINDS)],
                                 SNRS_DB[(i // len(NOISE_KINDS)) % len(SNRS_DB)]))
    return out


def out_of_grammar_set(voices: Sequence[Voice] | None = None) -> list[SpokenCommand]:
    """Each of :data:`OUT_OF_GRAMMAR` said by espeak-ng en-us and flite slt (those installed), in
    pink noise at 20 dB SNR: clear speech, so that what changes is what the recogniser makes of it."""
    voices = list(voices if voices is not None else
                  available_voices((Voice("espeak", "en-us", 150, 50), Voice("flite", "slt", 1.0))))
    return [SpokenCommand(text, voice, "pink", 20.0) for voice in voices for text in OUT_OF_GRAMMAR]


def speak(text: str, voice: Voice, path: str | Path) -> np.ndarray:
    """``text`` said by ``voice``, as float32 mono at 16 kHz (the WAV is left at ``path``)."""
    path = Path(path)
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(voice.rate)), "-p", str(voice.pitch), "-w", str(path), text]
    elif voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={voice.rate}", "-t", text, "-o", str(path)]
    else:
        raise ValueError(f"unknown synthesiser {voice.engine!r}")
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    audio, _ = read_wav(path)
    return audio


def _coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    spectrum /= np.sqrt(f) if kind == "pink" else f  # 1/f power (pink) or 1/f^2 (brown)
    return np.fft.irfft(spectrum, n)


def add_noise(audio: np.ndarray, snr_db: float, kind: str = "white", seed: int = 0,
              pad_s: float = 0.4) -> np.ndarray:
    """``audio`` with ``pad_s`` of lead-in and tail, in ``kind`` noise at ``snr_db`` below the speech's
    power (measured on the speech alone, as a microphone in a room would record it)."""
    rng = np.random.default_rng(seed)
    pad = np.zeros(int(pad_s * TARGET_RATE), np.float32)
    speech = np.concatenate([pad, np.asarray(audio, np.float32), pad])
    noise = _coloured_noise(kind, len(speech), rng)
    power = float(np.mean(np.asarray(audio, np.float64) ** 2)) or 1e-12
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / max(float(np.mean(noise ** 2)), 1e-20))
    mixed = speech + noise.astype(np.float32)
    peak = float(np.max(np.abs(mixed))) if len(mixed) else 0.0
    return (mixed / peak * 0.9 if peak > 0.99 else mixed).astype(np.float32)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def keyword_accuracy(reference: str, hypothesis: str, vocabulary: Iterable[str]) -> tuple[int, int]:
    """(keywords of ``reference`` that reach ``hypothesis`` in order, keywords of ``reference``)."""
    vocab = {w.lower() for w in vocabulary}
    ref = [w for w in normalise(reference) if w in vocab]
    hyp = [w for w in normalise(hypothesis) if w in vocab]
    return _lcs(ref, hyp), len(ref)


def missed_keywords(reference: str, hypothesis: str, vocabulary: Iterable[str]) -> list[str]:
    """The keywords of ``reference`` that :func:`keyword_accuracy` counts as lost (those outside one
    longest common subsequence of the two keyword sequences), in order."""
    vocab = {w.lower() for w in vocabulary}
    ref = [w for w in normalise(reference) if w in vocab]
    hyp = [w for w in normalise(hypothesis) if w in vocab]
    table = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) - 1, -1, -1):
        for j in range(len(hyp) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if ref[i] == hyp[j] else max(table[i + 1][j], table[i][j + 1])
    missed, i, j = [], 0, 0
    while i < len(ref):
        if j < len(hyp) and ref[i] == hyp[j]:
            i, j = i + 1, j + 1
        elif j < len(hyp) and table[i][j + 1] >= table[i + 1][j]:
            j += 1
        else:
            missed.append(ref[i])
            i += 1
    return missed
