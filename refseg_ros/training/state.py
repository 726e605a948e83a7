"""Resumable training state without pickle: optimizer tensors in safetensors, the rest in JSON.

``torch.save`` would pickle, and a run directory is as untrusted as any downloaded file. AdamW's
state is a tensor per (parameter, slot) plus scalars, which flattens cleanly into
``{"state.<param index>.<slot>": tensor}`` and a JSON document for everything else.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')``; atomically each."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, slots in sd["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{slot}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[slot] = value
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    path = Path(path)
    tmp = path.with_suffix(".tmp.safetensors")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    _atomic_write_text(path.with_suffix(".json"), json.dumps(
        {"param_groups": groups, "scalars": scalars, "extra": extra or {}}, indent=1))


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> dict[str, Any]:
    """Restore ``optimizer`` from ``save_optimizer`` files; returns the saved ``extra`` dict."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    tensors = load_file(str(path))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, slot = key.split(".", 2)
        state.setdefault(int(idx), {})[slot] = value
    for idx, slots in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(slots)
    current = optimizer.state_dict()
    if len(current["param_groups"]) != len(meta["param_groups"]):
        raise ValueError(f"optimizer state in {path} has {len(meta['param_groups'])} parameter groups, "
                         f"the model has {len(current['param_groups'])}")
    groups = []
    for saved, now in zip(meta["param_groups"], current["param_groups"]):
        if len(saved["params"]) != len(now["params"]):
            raise ValueError(f"optimizer state in {path} does not match the model's parameters")
        groups.append({**saved, "params": now["params"]})
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return meta.get("extra", {})
