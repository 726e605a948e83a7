"""Steady background noise taken out of an utterance before it is transcribed. No ROS.

A fan, a pump or a hissing microphone adds the same spectrum all the time, while speech comes and
goes. :func:`spectral_subtract` takes the noise level per frequency from a low percentile of the
utterance's own short-time power (minimum statistics: in most frequency bins speech is absent
much of the time, so no separate noise recording is needed), subtracts a multiple of it from
every frame and keeps a floor of the original so that no bin goes silent (which would add
"musical" artefacts the recogniser hears as sounds).

The subtraction is deliberately mild: the 10th percentile of a steady noise's power in a bin is
about a tenth of its mean, so the defaults remove roughly a sixth of the noise power, mostly
from the pauses and the weak bins. Stronger settings were no better for the recogniser on the
development commands (docs/speech.md).
"""
from __future__ import annotations

import numpy as np

__all__ = ["spectral_subtract"]


def spectral_subtract(audio: np.ndarray, frame: int = 400, hop: int = 160, percentile: float = 10.0,
                      over: float = 1.5, floor: float = 0.1) -> np.ndarray:
    """``audio`` (mono float32) with its steady noise subtracted: per frequency, ``over`` times the
    ``percentile``-th percentile of the frames' power is removed, and at least ``floor`` of each
    bin's magnitude is kept. The output has the input's length."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(x) < 4 * frame:
        return x.copy()
    window = np.hanning(frame).astype(np.float32)
    pad = np.concatenate([np.zeros(frame, np.float32), x, np.zeros(frame + hop, np.float32)])
    starts = np.arange(0, len(pad) - frame + 1, hop)
    frames = np.stack([pad[s:s + frame] * window for s in starts])
    spectrum = np.fft.rfft(frames, axis=1)
    power = np.abs(spectrum) ** 2
    noise = np.percentile(power, percentile, axis=0)
    gain = np.sqrt(np.maximum(1.0 - over * noise / np.maximum(power, 1e-20), floor ** 2))
    cleaned = np.fft.irfft(spectrum * gain, n=frame, axis=1) * window
    out = np.zeros(len(pad), np.float32)
    norm = np.zeros(len(pad), np.float32)
    for s, f in zip(starts, cleaned):
        out[s:s + frame] += f
        norm[s:s + frame] += window ** 2
    out = out / np.maximum(norm, 1e-3)
    return out[frame:frame + len(x)].astype(np.float32)
