"""Voice-activity detection: cut a stream of audio into utterances. Pure numpy, streaming.

An energy detector with an adaptive noise floor, which is enough for a command microphone: speech
is loud, bursty and short; room noise, fans and hiss are steady. Per 30 ms frame the level (dBFS)
is compared with a floor, the 10th percentile of the last ``floor_window_s`` of levels (taken to
be quiet, ``min_level_db``, before any audio has arrived, so a command at the very start of a
file is heard). Steady noise of any level becomes the floor within that window and stops
triggering; pauses between words keep the floor down during speech. A frame is voiced when it is
``threshold_db`` above the floor and above ``min_level_db``. ``start_frames`` voiced frames in a row
open an utterance (with ``pre_roll_s`` of audio before them, so the first consonant is kept);
``end_silence_s`` without a voiced frame closes it; ``max_utterance_s`` cuts a long one (a TV, a
monologue), after which a new start is needed. Utterances with less than ``min_speech_s`` of voiced
frames (a cough, a door) are discarded.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from refseg_ros.speech.audio import TARGET_RATE

__all__ = ["VadConfig", "Utterance", "UtteranceSegmenter", "frame_levels_db", "segment"]


@dataclass(frozen=True)
class VadConfig:
    threshold_db: float = 12.0      # voiced = this far above the noise floor
    min_level_db: float = -55.0     # and at least this loud (dBFS): digital silence is never speech
    frame_s: float = 0.03
    start_frames: int = 3           # voiced frames in a row that open an utterance
    pre_roll_s: float = 0.3
    end_silence_s: float = 0.6      # unvoiced time that closes it
    max_utterance_s: float = 15.0
    min_speech_s: float = 0.25      # voiced time an utterance needs to be kept
    floor_window_s: float = 5.0     # the floor is the 10th percentile of this much recent audio


@dataclass
class Utterance:
    samples: np.ndarray   # float32 mono at the segmenter's rate
    start_s: float        # stream time of the first sample
    rate: int
    voiced_s: float
    cut: bool = False     # closed by max_utterance_s, not by silence

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def frame_levels_db(samples: np.ndarray, frame: int) -> np.ndarray:
    """Mean-square level in dBFS of each whole ``frame``-sample frame."""
    n = len(samples) // frame
    x = np.asarray(samples[: n * frame], dtype=np.float64).reshape(n, frame)
    return 10.0 * np.log10(np.mean(x * x, axis=1) + 1e-12)


class UtteranceSegmenter:
    """Feed audio in chunks of any size; get back the utterances completed so far."""

    def __init__(self, config: VadConfig | None = None, rate: int = TARGET_RATE):
        self.config = c = config or VadConfig()
        self.rate = int(rate)
        self.frame = max(1, int(round(c.frame_s * rate)))
        self._frame_s = self.frame / self.rate
        self._pending = np.zeros(0, np.float32)
        self._pre = deque(maxlen=max(1, int(round(c.pre_roll_s / self._frame_s))))
        n_floor = max(3, int(round(c.floor_window_s / self._frame_s)))
        self._history = deque([c.min_level_db] * n_floor, maxlen=n_floor)
        self._run = 0               # voiced frames in a row while idle
        self._frames: list[np.ndarray] | None = None  # the open utterance
        self._voiced = 0
        self._silence = 0
        self._start = 0.0
        self._t = 0.0               # stream time of the next frame
        self.floor_db = float("nan")

    @property
    def in_utterance(self) -> bool:
        return self._frames is not None

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        x = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        n = len(x) // self.frame
        self._pending = x[n * self.frame:].copy()
        out: list[Utterance] = []
        if n == 0:
            return out
        levels = frame_levels_db(x, self.frame)
        for i in range(n):
            done = self._step(x[i * self.frame:(i + 1) * self.frame], float(levels[i]))
            if done is not None:
                out.append(done)
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: close an open utterance (and forget partial frames)."""
        self._pending = np.zeros(0, np.float32)
        done = self._close(cut=False) if self._frames is not None else None
        self._run = 0
        self._pre.clear()
        return [done] if done is not None else []

    # ---- internals ---------------------------------------------------------------------------------
    def _step(self, frame: np.ndarray, level: float) -> Utterance | None:
        c = self.config
        self._history.append(level)
        self.floor_db = floor = float(np.percentile(self._history, 10))
        voiced = level >= floor + c.threshold_db and level >= c.min_level_db
        t = self._t
        self._t += self._frame_s
        if self._frames is None:
            self._pre.append(frame)
            self._run = self._run + 1 if voiced else 0
            if self._run >= c.start_frames:
                self._frames = list(self._pre)
                self._start = t + self._frame_s - len(self._frames) * self._frame_s
                self._voiced, self._silence = self._run, 0
                self._pre.clear()
                self._run = 0
            return None
        self._frames.append(frame)
        if voiced:
            self._voiced += 1
            self._silence = 0
        else:
            self._silence += 1
        if self._silence * self._frame_s >= c.end_silence_s:
            # keep a little of the trailing silence: the recogniser likes a clean ending
            keep = max(0, self._silence - int(round(0.2 / self._frame_s)))
            if keep:
                del self._frames[-keep:]
            return self._close(cut=False)
        if len(self._frames) * self._frame_s >= c.max_utterance_s:
            return self._close(cut=True)
        return None

    def _close(self, cut: bool) -> Utterance | None:
        frames, self._frames = self._frames, None
        voiced_s = self._voiced * self._frame_s
        self._voiced = self._silence = 0
        if not frames or voiced_s < self.config.min_speech_s:
            return None
        return Utterance(np.concatenate(frames), self._start, self.rate, voiced_s, cut)


def segment(samples: np.ndarray, rate: int = TARGET_RATE, config: VadConfig | None = None) -> list[Utterance]:
    """Every utterance in a whole recording."""
    seg = UtteranceSegmenter(config, rate)
    return seg.feed(samples) + seg.flush()
