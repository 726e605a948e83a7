"""Data: the pybullet tabletop generator, the on-disk format (docs/data-format.md), the tabletop
and REFER (RefCOCO family) Datasets, and augmentation. The expressions' grammar is part of the
command language (:mod:`refseg_ros.language`).

Modules import lazily from here, so ``import refseg_ros.data`` stays cheap:

* :func:`render_scene` / :class:`TabletopRenderer` (``tabletop``): one scene in memory;
* :func:`generate_split` (``generate``): scenes to disk, resumable, multiprocess;
* :class:`TabletopRefDataset` (``dataset``) and :class:`ReferDataset` (``refer``): Samples;
* :class:`Augment`, :func:`hflip_sample`, :func:`photometric_jitter` (``augment``).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "render_scene": "tabletop", "TabletopRenderer": "tabletop", "TabletopScene": "tabletop",
    "generate_split": "generate", "scene_seed": "generate",
    "TabletopRefDataset": "dataset", "ExpressionDataset": "dataset",
    "ReferDataset": "refer", "load_refs": "refer", "UnsafePickleError": "refer",
    "Augment": "augment", "hflip_sample": "augment", "photometric_jitter": "augment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"refseg_ros.data.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'refseg_ros.data' has no attribute {name!r}")
