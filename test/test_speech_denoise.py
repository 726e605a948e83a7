"""Steady noise subtracted from an utterance (refseg_ros.speech.denoise). No ROS."""
from __future__ import annotations

import numpy as np

from refseg_ros.speech.denoise import spectral_subtract

RATE = 16000


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))


def test_steady_noise_is_reduced_and_intermittent_sound_kept():
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    # a "word": a 400 Hz tone with harmonics, on for 0.5 s out of each second
    gate = ((t % 1.0) < 0.5).astype(np.float32)
    clean = (0.3 * np.sin(2 * np.pi * 400 * t) + 0.1 * np.sin(2 * np.pi * 1200 * t)).astype(np.float32) * gate
    noisy = clean + 0.05 * rng.standard_normal(len(t)).astype(np.float32)
    out = spectral_subtract(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    # a mild subtraction (see the module docstring): better, never silent
    assert snr_db(clean, out) > snr_db(clean, noisy) + 0.4
    # the tone itself survives: its power in the voiced half stays within 1 dB
    voiced = gate > 0
    assert abs(10 * np.log10(np.mean(out[voiced] ** 2) / np.mean(clean[voiced] ** 2))) < 1.0
    # the pauses get quieter, and keep the floor
    pause = np.mean(out[~voiced] ** 2) / np.mean(noisy[~voiced] ** 2)
    assert 0.3 < pause < 0.95
    # a stronger subtraction takes more out of the pauses
    assert np.mean(spectral_subtract(noisy, over=6.0)[~voiced] ** 2) < 0.8 * np.mean(out[~voiced] ** 2)


def test_short_or_silent_audio_passes_through():
    short = np.ones(100, np.float32)
    assert np.array_equal(spectral_subtract(short), short)
    silent = np.zeros(RATE, np.float32)
    assert np.allclose(spectral_subtract(silent), 0.0)
