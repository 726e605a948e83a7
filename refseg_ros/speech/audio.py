"""Audio as the recogniser wants it: mono float32 in [-1, 1] at 16 kHz. No ROS, no extra packages.

WAV files are read with the standard library (PCM 8/16/24/32-bit, any rate, any channel count;
channels are averaged). Resampling is a windowed-sinc low-pass (when the rate goes down) followed
by linear interpolation: plenty for speech recognition, and it needs only numpy.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

__all__ = ["TARGET_RATE", "AudioError", "read_wav", "write_wav", "resample", "pcm16_to_float", "float_to_pcm16",
           "list_wavs", "to_mono"]

#: Whisper's input rate.
TARGET_RATE = 16000


class AudioError(ValueError):
    """A file or buffer that is not audio this module can read (the message says why)."""


def pcm16_to_float(samples) -> np.ndarray:
    return np.asarray(samples, dtype=np.int16).astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype(np.int16)


def _decode_pcm(raw: bytes, width: int) -> np.ndarray:
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float32) / float(1 << 23)
    if width == 4:
        return (np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    raise AudioError(f"unsupported sample width {width} bytes")


def to_mono(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved ``channels``-channel samples -> their mean (float32)."""
    samples = np.asarray(samples, dtype=np.float32)
    if channels <= 1:
        return samples
    usable = len(samples) - len(samples) % channels
    return samples[:usable].reshape(-1, channels).mean(axis=1)


def read_wav(path: str | Path, rate: int | None = TARGET_RATE) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of a PCM WAV file, resampled to ``rate`` unless None."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, src_rate, n = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a PCM WAV file ({exc})") from exc
    if src_rate <= 0:
        raise AudioError(f"{path}: sample rate {src_rate}")
    mono = to_mono(_decode_pcm(raw, width), channels)
    if rate is None or rate == src_rate:
        return mono, src_rate
    return resample(mono, src_rate, rate), rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int = TARGET_RATE) -> None:
    """Mono 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(float_to_pcm16(samples).astype("<i2").tobytes())


def _lowpass(x: np.ndarray, cutoff: float, taps: int = 63) -> np.ndarray:
    """Windowed-sinc FIR low-pass; ``cutoff`` as a fraction of the sample rate (0..0.5)."""
    n = np.arange(taps) - (taps - 1) / 2.0
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    h /= h.sum()
    return np.convolve(x, h, mode="same").astype(np.float32)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """``samples`` at ``src_rate`` -> ``dst_rate`` (float32); band-limited first when downsampling."""
    x = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate or len(x) == 0:
        return x.copy()
    if dst_rate < src_rate:
        x = _lowpass(x, 0.45 * dst_rate / src_rate)
    n_out = int(round(len(x) * dst_rate / src_rate))
    t = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    return np.interp(t, np.arange(len(x), dtype=np.float64), x).astype(np.float32)


def list_wavs(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else the ``*.wav`` files in the directory, sorted by name."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if path.is_file():
        return [path]
    raise AudioError(f"{path}: no such file or directory")
