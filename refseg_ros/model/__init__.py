"""VG-LAW in PyTorch: language-adaptive visual backbone, multi-task head, presets, inference API.

Public names are imported lazily, so ``from refseg_ros.model.box_ops import box_iou`` does not pay
for importing timm and transformers.

- ``build_model(preset="tabletop", **overrides) -> VGLAW`` (:mod:`.build`)
- ``GroundingPredictor``, ``Grounding`` (:mod:`.predictor`)
- ``save_checkpoint``, ``load_checkpoint``, ``CheckpointError`` (:mod:`.checkpoint`)
- ``GroundingLoss`` (:mod:`.losses`), ``ModelConfig``, ``load_config`` (:mod:`.config`)
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "build_model": "build", "build_from_config": "build",
    "ModelConfig": "config", "load_config": "config", "available_presets": "config",
    "VGLAW": "vglaw", "Command": "vglaw",
    "TextFeatures": "text_encoder", "GroundingOutput": "heads",
    "GroundingLoss": "losses",
    "GroundingPredictor": "predictor", "Grounding": "predictor",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "CheckpointError": "checkpoint",
    "Letterbox": "letterbox",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
