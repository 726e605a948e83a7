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

    def __post_init__(self) -> None:
        self.milestones = tuple(float(m) for m in self.milestones)
        if self.cache_features not in ("auto", "on", "off"):
            raise ValueError(f"cache_features must be auto, on or off; got {self.cache_features!r}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of all steps in (0, 1); got {self.milestones}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 1 and lr > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
