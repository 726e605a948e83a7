"""``build_model(preset, **overrides)``: the one builder behind presets, checkpoints and the CLI."""
from __future__ import annotations

from typing import Any

from refseg_ros.model.backbones import build_backbone
from refseg_ros.model.config import DEFAULT_PRESET, ModelConfig, load_config
from refseg_ros.model.heads import build_head
from refseg_ros.model.law import LanguageAdaptiveWeights
from refseg_ros.model.text_encoder import TextEncoder
from refseg_ros.model.vglaw import VGLAW


def build_from_config(cfg: ModelConfig) -> VGLAW:
    """Assemble a model; pinned weights (MiniLM, MobileNetV2) are loaded from their packages."""
    text = TextEncoder(cfg.text_encoder, max_tokens=cfg.max_tokens, train_layers=cfg.text_train_layers,
                       layers=cfg.text_layers)
    backbone = build_backbone(cfg, text.dim)
    law = None
    if cfg.law:
        law = LanguageAdaptiveWeights(backbone.num_adapted_layers, text.dim, groups=cfg.law_groups,
                                      reduction=cfg.law_reduction, rank=cfg.law_rank,
                                      pool_scale=cfg.law_pool_scale, norm=cfg.law_norm)
    head = build_head(cfg, cfg.embed_dim, text.dim)
    return VGLAW(cfg, text, backbone, head, law)


def build_model(preset: str = DEFAULT_PRESET, **overrides: Any) -> VGLAW:
    """A VG-LAW model from a preset (``tabletop`` or ``paper``) with keyword overrides.

    >>> model = build_model("tabletop", box_head="lap_mlp", law=False)  # doctest: +SKIP
    """
    cfg = load_config(preset, **overrides)
    model = build_from_config(cfg)
    model.preset = preset
    model.overrides = dict(overrides)
    return model
