"""Augmentations that keep a Sample's expression true.

* :func:`hflip_sample` mirrors image, mask and box and swaps left/right words ("leftmost" <->
  "rightmost", "left of" <-> "right of", "from the left" <-> "from the right"); front/behind and
  camera distance are unchanged by a horizontal flip, so nothing else changes.
* :func:`photometric_jitter` changes brightness, contrast and (a little) saturation; it never
  shifts hue, so colour words stay true.
* :class:`Augment` applies both at random; safe in DataLoader workers (each worker its own
  random stream).
* :func:`camera_variant` re-images a picture as another camera might have taken it (blur, exposure,
  sensor noise, white balance, contrast and saturation, JPEG); :class:`CachedVariants` draws such
  variants reproducibly per (seed, image, variant), for the cached training path, which computes
  the frozen CNN's features of each variant once.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

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


# ---- camera variants (photometric only: boxes and masks stay valid) ------------------------------
_GAMMA = 2.2
_TO_LINEAR = ((np.arange(256, dtype=np.float32) / 255.0) ** _GAMMA).astype(np.float32)


@dataclass(frozen=True)
class CameraParams:
    """Ranges of :func:`camera_variant`. Every field is part of a feature cache's key.

    Args:
        exposure: gain range in linear light (clipped); below 1 is low light, above 1 overexposure.
        exposure_sigma: the gain is log-normal around 1 with this sigma, then clipped to ``exposure``.
        white_balance: sigma of the log gain of red and of blue against green (clipped at twice it);
            small, so a red mug stays red.
        contrast, saturation: hue-preserving jitter, x[1-c, 1+c] about the mean, x[1-s, 1+s] from grey.
        p_blur: probability of a blur; half of them Gaussian (sigma up to ``blur_sigma`` px), half a
            straight motion streak of 3 to ``motion_px`` px at a random angle.
        p_noise: probability of sensor noise: read noise (sigma up to ``read_noise`` of full scale)
            plus shot noise (variance up to ``shot_noise`` x signal), in linear light.
        p_jpeg: probability of a JPEG round trip at a quality in ``jpeg_quality``.
    """

    exposure: tuple[float, float] = (0.45, 1.8)
    exposure_sigma: float = 0.4
    white_balance: float = 0.05
    contrast: float = 0.2
    saturation: float = 0.2
    p_blur: float = 0.4
    blur_sigma: float = 1.5
    motion_px: int = 9
    p_noise: float = 0.5
    read_noise: float = 0.012
    shot_noise: float = 0.004
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 90)

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.exposure)
        qlo, qhi = (int(v) for v in self.jpeg_quality)
        object.__setattr__(self, "exposure", (lo, hi))
        object.__setattr__(self, "jpeg_quality", (qlo, qhi))
        if not 0 < lo <= hi:
            raise ValueError(f"exposure range must be positive, low first; got {self.exposure}")
        if not 1 <= qlo <= qhi <= 100:
            raise ValueError(f"jpeg_quality must be within 1..100, low first; got {self.jpeg_quality}")
        if self.motion_px < 3:
            raise ValueError(f"motion_px must be >= 3; got {self.motion_px}")
        for name in ("p_blur", "p_noise", "p_jpeg"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability; got {getattr(self, name)}")
        for name in ("exposure_sigma", "white_balance", "contrast", "saturation", "blur_sigma",
                     "read_noise", "shot_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    import cv2

    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    centre = ((length - 1) / 2, (length - 1) / 2)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle_deg, 1.0), (length, length))
    return kernel / max(float(kernel.sum()), 1e-6)


def camera_variant(image: np.ndarray, rng: np.random.Generator, params: CameraParams = CameraParams()
                   ) -> tuple[np.ndarray, dict]:
    """``image`` (HxWx3 uint8 RGB) as another exposure of the same scene, and what was drawn.

    In the order a camera applies them: optics and motion blur, exposure, sensor noise (all in
    linear light), then white balance, gamma, contrast/saturation and JPEG. Geometry is unchanged.
    Every draw is made whether or not it is used, so one choice never shifts the others' streams.
    """
    import cv2

    p = params
    draws = rng.random(5)
    lin = _TO_LINEAR[image]
    info: dict = {}
    blur_sigma = float(rng.uniform(0.5, max(0.5, p.blur_sigma)))
    motion = int(rng.integers(3, p.motion_px + 1))
    angle = float(rng.uniform(0, 180))
    if draws[0] < p.p_blur:
        if draws[1] < 0.5:
            lin = cv2.GaussianBlur(lin, (0, 0), blur_sigma)
            info["blur_sigma"] = blur_sigma
        else:
            lin = cv2.filter2D(lin, -1, _motion_kernel(motion, angle), borderType=cv2.BORDER_REFLECT)
            info["motion_px"] = motion
    lo, hi = p.exposure
    gain = float(np.clip(np.exp(rng.normal(0.0, p.exposure_sigma)), lo, hi))
    lin = lin * gain
    info["exposure"] = gain
    read = float(rng.uniform(0, p.read_noise))
    shot = float(rng.uniform(0, p.shot_noise))
    noise = rng.standard_normal(lin.shape, dtype=np.float32)
    if draws[2] < p.p_noise:
        lin = lin + noise * np.sqrt(np.clip(lin, 0, None) * shot + read * read).astype(np.float32)
        info["read_noise"], info["shot_noise"] = read, shot
    wb = np.clip(rng.normal(0.0, p.white_balance, 2), -2 * p.white_balance, 2 * p.white_balance)
    gains = np.exp(np.array([wb[0], 0.0, wb[1]], np.float32))
    lin = lin * gains
    info["white_balance"] = [float(g) for g in gains]
    img = np.clip(lin, 0, 1) ** (1 / _GAMMA) * 255.0
    c = float(rng.uniform(1 - p.contrast, 1 + p.contrast))
    s = float(rng.uniform(1 - p.saturation, 1 + p.saturation))
    mean = float(img.mean())
    img = (img - mean) * c + mean
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = grey[..., None] + (img - grey[..., None]) * s
    info["contrast"], info["saturation"] = c, s
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    if draws[3] < p.p_jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        info["jpeg_quality"] = quality
    return out, info


@dataclass(frozen=True)
class CachedVariants:
    """How many camera variants of each training image the cached path stores, and how it picks.

    Variant ``v`` (1..``count``) of image ``i`` is ``camera_variant`` with the random stream
    ``(seed, i, v)``, so a cache can be rebuilt or resumed bit for bit; variant 0 is the image itself.

    Args:
        count: variants per image besides the clean image.
        p_clean: probability that a training sample uses the clean image rather than a variant.
        seed: seed of the variants' random streams.
        params: the variants' ranges.
        p_clean_colour: the same probability for a sample whose expression says a colour word
            (None: ``p_clean``); 1 keeps such samples on the clean image, so the colours they name
            are the rendered ones.
    """

    count: int
    p_clean: float = 0.34
    seed: int = 0
    params: CameraParams = CameraParams()
    p_clean_colour: float | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0; got {self.count}")
        for name in ("p_clean", "p_clean_colour"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} is a probability; got {value}")

    def image(self, image: np.ndarray, image_index: int, variant: int) -> np.ndarray:
        """Variant ``variant`` of image ``image_index`` (0: the image unchanged)."""
        if variant == 0:
            return image
        if not 1 <= variant <= self.count:
            raise IndexError(f"variant {variant} out of 0..{self.count}")
        rng = np.random.default_rng([self.seed, int(image_index), int(variant)])
        return camera_variant(image, rng, self.params)[0]

    def key(self) -> dict:
        """What the cached features depend on (``p_clean`` and ``p_clean_colour`` only pick among
        them, so they are left out)."""
        return {"variants": self.count, "seed": self.seed, "camera": self.params.to_dict(),
                "algorithm": "camera_variant/1"}
