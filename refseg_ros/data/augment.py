"""Augmentations that keep a Sample's expression true.

* :func:`hflip_sample` mirrors image, mask and box and swaps left/right words ("leftmost" <->
  "rightmost", "left of" <-> "right of", "from the left" <-> "from the right"); front/behind and
  camera distance are unchanged by a horizontal flip, so nothing else changes.
* :func:`photometric_jitter` changes brightness, contrast and (a little) saturation; it never
  shifts hue, so colour words stay true.
* :class:`Augment` applies both at random; safe in DataLoader workers (each worker its own
  random stream).
"""
from __future__ import annotations

import os

import numpy as np

from refseg_ros.language.flip import flip_text


def hflip_box(box: np.ndarray, width: int) -> np.ndarray:
    """Mirror ``x_min, y_min, x_max, y_max`` (pixel-edge coordinates) in an image ``width`` wide."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([width - x1, y0, width - x0, y1], dtype=np.float32)


def hflip_sample(sample: dict) -> dict:
    """The Sample as seen in a mirror: image, mask and box flipped, left/right words swapped."""
    out = dict(sample)
    width = sample["image"].shape[1]
    out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
    out["mask"] = np.ascontiguousarray(sample["mask"][:, ::-1])
    out["box"] = hflip_box(sample["box"], width)
    out["expression"] = flip_text(sample["expression"])
    return out


def photometric_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.15,
                       contrast: float = 0.15, saturation: float = 0.1) -> np.ndarray:
    """Random brightness (x[1-b, 1+b]), contrast (about the mean, x[1-c, 1+c]) and saturation
    (blend with grey, x[1-s, 1+s]); the hue of every pixel is kept."""
    img = image.astype(np.float32)
    img *= rng.uniform(1 - brightness, 1 + brightness)
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    s = rng.uniform(1 - saturation, 1 + saturation)
    img = grey[..., None] + (img - grey[..., None]) * s
    return np.clip(img, 0, 255).round().astype(np.uint8)


class Augment:
    """Random horizontal flip (with word swap) and photometric jitter for training Samples.

    Args:
        flip_prob: probability of :func:`hflip_sample`.
        jitter: apply :func:`photometric_jitter`.
        brightness, contrast, saturation: jitter ranges.
        seed: base seed; ``None`` draws fresh entropy. Each process (DataLoader worker) gets its
            own stream, so workers never repeat each other's augmentations.
    """

    def __init__(self, flip_prob: float = 0.5, jitter: bool = True, brightness: float = 0.15,
                 contrast: float = 0.15, saturation: float = 0.1, seed: int | None = None):
        self.flip_prob = flip_prob
        self.jitter = jitter
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._pid: int | None = None

    def _generator(self) -> np.random.Generator:
        if self._rng is None or self._pid != os.getpid():
            worker = 0
            try:
                from torch.utils.data import get_worker_info
                info = get_worker_info()
                worker = info.id if info is not None else 0
            except ImportError:
                pass
            self._rng = np.random.default_rng(None if self.seed is None else [self.seed, worker])
            self._pid = os.getpid()
        return self._rng

    def __call__(self, sample: dict) -> dict:
        rng = self._generator()
        if rng.random() < self.flip_prob:
            sample = hflip_sample(sample)
        if self.jitter:
            sample = dict(sample)
            sample["image"] = photometric_jitter(sample["image"], rng, self.brightness,
                                                 self.contrast, self.saturation)
        return sample
