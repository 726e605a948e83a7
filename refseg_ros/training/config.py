"""Training recipe: a preset YAML (``presets/<name>.yaml``, named like the model preset) plus overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class TrainConfig:
    batch_size: int
    lr: float
    backbone_lr_factor: float
    weight_decay: float
    warmup_steps: int
    milestones: tuple[float, ...]
    gamma: float
    grad_clip: float
    flip_prob: float
    jitter: bool
    cache_features: str  # auto | on | off
    num_workers: int
    seed: int
    # Camera variants on the cached path (0: the clean image and its mirror only). Each variant's
    # frozen features are cached like the image's, so the variants, their seed and ranges are
    # part of the cache's key; ``augment_p_clean`` only picks among them at training time.
    augment_variants: int = 0
    augment_p_clean: float = 0.34
    # The same for samples whose expression says a colour word (None: augment_p_clean).
    augment_p_clean_colour: float | None = None
    augment_seed: int = 0
    augment_exposure: tuple[float, float] = (0.45, 1.8)  # linear-light gain range
    augment_exposure_sigma: float = 0.4    # log-normal around 1, then clipped to the range
    augment_white_balance: float = 0.05    # sigma of log red/blue gains (small: colour words stay true)
    augment_contrast: float = 0.2
    augment_saturation: float = 0.2
    augment_p_blur: float = 0.4            # half Gaussian, half motion streak
    augment_blur_sigma: float = 1.5        # px
    augment_motion_px: int = 9             # longest motion streak, px
    augment_p_noise: float = 0.5
    augment_read_noise: float = 0.012      # sigma, fraction of full scale
    augment_shot_noise: float = 0.004      # variance per unit of signal
    augment_p_jpeg: float = 0.5
    augment_jpeg_quality: tuple[int, int] = (30, 90)
    # Train only the parameters whose names start with one of these (e.g. "head.presence": a new
    # found/not-found output on a grounding that stays bit for bit as it was); empty: all that are
    # trainable.
    train_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.milestones = tuple(float(m) for m in self.milestones)
        self.train_only = tuple(str(p) for p in self.train_only)
        self.augment_exposure = tuple(float(v) for v in self.augment_exposure)
        self.augment_jpeg_quality = tuple(int(v) for v in self.augment_jpeg_quality)
        self.cache_augment()  # validates the ranges now rather than when the cache is built
        if self.cache_features not in ("auto", "on", "off"):
            raise ValueError(f"cache_features must be auto, on or off; got {self.cache_features!r}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of all steps in (0, 1); got {self.milestones}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 1 and lr > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cache_augment(self):
        """The cached path's camera variants (``refseg_ros.data.augment.CachedVariants``)."""
        from refseg_ros.data.augment import CachedVariants, CameraParams

        params = CameraParams(**{f.name: getattr(self, f"augment_{f.name}")
                                 for f in dataclasses.fields(CameraParams)})
        return CachedVariants(count=self.augment_variants, p_clean=self.augment_p_clean,
                              p_clean_colour=self.augment_p_clean_colour,
                              seed=self.augment_seed, params=params)


def load_train_config(preset: str = "tabletop", **overrides: Any) -> TrainConfig:
    import yaml

    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise ValueError(f"no training recipe for preset {preset!r}; available: {available}")
    values = yaml.safe_load(path.read_text())
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; valid: {', '.join(sorted(names))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


def lr_factor(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then a step schedule (x gamma at each milestone fraction of total steps)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    factor = 1.0
    for m in cfg.milestones:
        if step >= m * total_steps:
            factor *= cfg.gamma
    return factor
