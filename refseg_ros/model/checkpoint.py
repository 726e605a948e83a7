"""Checkpoints: ``<name>.safetensors`` (weights) + ``<name>.json`` (how to rebuild and verify them).

Only weights that differ from the pinned weight packages are stored: the frozen MobileNetV2 and the
frozen MiniLM come from their packages at load time, so a frozen-backbone tabletop checkpoint holds
only the weights training changed. No pickle anywhere: safetensors for tensors, JSON for the rest.

Sidecar fields: ``format``, ``format_version``, ``preset``, ``overrides``, ``text_encoder``
(name, package, version), ``image_weights`` (package, version, or null), ``weights`` (file name,
sha256, bytes, tensor count), ``refseg_ros_version``, ``created``, ``extra`` (free-form, e.g.
training metrics). Loading verifies format and version, the sha256 (truncation, corruption,
replacement), then keys and shapes against a freshly built model; any mismatch is a
:class:`CheckpointError` that says what is wrong.

Both files are untrusted input (a checkpoint is copied between machines): the sidecar is checked
field by field before anything is built from it (the preset must be a known name, not a path;
overrides must be known options of the preset's types, and may not ask for a model far larger
than the largest preset; the text encoder is one of the pinned packages, or a local folder whose
contents match the digest ``save_checkpoint`` recorded (``text_encoder.sha256``), so a sidecar
cannot point the loader at an arbitrary folder; its ``config.json`` is read with bounds before
anything is built from it), and weights must have the model's kind of dtype and be finite in the
model's dtype (1e300 in float64 is finite, and infinite once cast to float32). A fuzz test
(``test/test_checkpoint_fuzz.py``) feeds random bytes, truncations and mutated sidecars and accepts
no other exception.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from refseg_ros.model.build import build_model
from refseg_ros.model.vglaw import VGLAW

FORMAT = "refseg_ros.vglaw"
FORMAT_VERSION = 1
#: A sidecar is a few fields plus training metrics in ``extra``; anything this big is not one and
#: is not read.
MAX_SIDECAR_BYTES = 1 << 20


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: wrong format or version, damaged file, or keys/shapes that do
    not match the model it describes."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _image_weights(model: VGLAW) -> dict[str, str] | None:
    if not model.backbone.pinned_modules:
        return None
    from refseg_ros.utils import weights

    return {"package": weights.MOBILENET_PACKAGE, "version": weights.MOBILENET_VERSION,
            "file": weights.MOBILENET_FILE}


def _text_encoder_entry(model: VGLAW) -> dict[str, str]:
    """The provenance of the model's text encoder; a local folder (no package) with its digest."""
    entry = dict(model.text_encoder.provenance)
    if not entry.get("package"):
        entry["sha256"] = folder_sha256(Path(entry["name"]).expanduser())
    return entry


def save_checkpoint(model: VGLAW, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (must end in ``.safetensors``) and its JSON sidecar, atomically. Returns ``path``."""
    from safetensors.torch import save_file

    from refseg_ros import __version__

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors; got {path}")
    overrides = dict(model.overrides)
    meta: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "preset": model.preset, "overrides": overrides,
        "text_encoder": _text_encoder_entry(model),
        "image_weights": _image_weights(model),
    }
    try:
        json.dumps(meta)
        json.dumps(extra or {})
    except TypeError as exc:
        raise ValueError(f"overrides and extra must be JSON-serialisable: {exc}") from None
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.trainable_state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    meta["weights"] = {"file": path.name, "sha256": file_sha256(tmp), "bytes": tmp.stat().st_size,
                       "tensors": len(state)}
    meta.update(refseg_ros_version=__version__,
                created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                extra=extra or {})
    side_tmp = sidecar_path(path).with_name(sidecar_path(path).name + ".tmp")
    side_tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, path)
    os.replace(side_tmp, sidecar_path(path))
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The sidecar of checkpoint ``path``, checked for format and version (not yet the hash)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"checkpoint {path} has no sidecar {side.name}; it records the preset and "
                              "the sha256 and is written next to the .safetensors by save_checkpoint")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"sidecar {side} is {side.stat().st_size} bytes (a sidecar is about 1 kB, "
                              f"at most {MAX_SIDECAR_BYTES}); it is not a checkpoint sidecar")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"sidecar {side} is not valid JSON ({exc}); it is damaged") from None
    except RecursionError:
        raise CheckpointError(f"sidecar {side} nests too deeply to be a checkpoint sidecar") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{side} is not a {FORMAT} checkpoint sidecar (format={meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{side} is not a {FORMAT} sidecar")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise CheckpointError(f"{path.name}: checkpoint format version {version!r}, this refseg_ros reads "
                              f"version {FORMAT_VERSION}" + ("; upgrade refseg_ros" if newer else ""))
    for key in ("preset", "overrides", "weights"):
        if key not in meta:
            raise CheckpointError(f"sidecar {side} lacks {key!r}; it is damaged or hand-edited")
    _check_sidecar_fields(meta, side)
    return meta


def _check_sidecar_fields(meta: dict[str, Any], side: Path) -> None:
    """Types and values of the fields the loader uses, so a hand-edited sidecar is a clear error."""
    from refseg_ros.model.config import available_presets

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"sidecar {side}: {what}; it is damaged or hand-edited")

    preset = meta["preset"]
    if not isinstance(preset, str) or preset not in available_presets():
        raise bad(f"preset {preset!r} is not one of {', '.join(available_presets())}")
    if not isinstance(meta["overrides"], dict):
        raise bad(f"overrides must be an object, not {type(meta['overrides']).__name__}")
    weights = meta["weights"]
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise bad("weights.sha256 is not a 64-digit hex sha256")
    for key in ("text_encoder", "image_weights"):
        entry = meta.get(key)
        if entry is not None and not (isinstance(entry, dict)
                                      and all(isinstance(v, (str, type(None))) for v in entry.values())):
            raise bad(f"{key} must be an object of strings or null")


#: A text encoder's config.json is a few hundred bytes; anything this big is not one.
MAX_ENCODER_CONFIG_BYTES = 64 << 10
#: Largest sizes a text encoder's config.json may ask for (BERT-large is 1024 wide, 24 layers,
#: 30k words; multilingual vocabularies reach 250k).
ENCODER_CONFIG_LIMITS = {"hidden_size": 4096, "num_hidden_layers": 48, "num_attention_heads": 64,
                         "intermediate_size": 16384, "vocab_size": 300_000, "max_position_embeddings": 8192,
                         "type_vocab_size": 16}


#: A local text-encoder folder is digested file by file: at most this many files and bytes.
MAX_FOLDER_FILES = 200
MAX_FOLDER_BYTES = 8 << 30


def folder_sha256(folder: str | Path) -> str:
    """sha256 over a folder's regular files (relative names and contents, sorted); ValueError for
    symlinks, special files, or more than ``MAX_FOLDER_FILES`` files or ``MAX_FOLDER_BYTES``."""
    folder = Path(folder)
    files, total = [], 0
    for entry in sorted(folder.rglob("*")):
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            raise ValueError(f"{entry} is a link or a special file")
        if entry.is_file():
            files.append(entry)
            total += entry.stat().st_size
            if len(files) > MAX_FOLDER_FILES or total > MAX_FOLDER_BYTES:
                raise ValueError(f"{folder} holds more than {MAX_FOLDER_FILES} files or {MAX_FOLDER_BYTES} bytes")
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + file_sha256(f).encode())
    return h.hexdigest()


def _check_text_encoder(name_value: Any, recorded: Any, name: str) -> None:
    """The sidecar's text encoder is a pinned package, or a local folder with the digest recorded at
    save time; and its config.json has plausible sizes."""
    from refseg_ros.model.text_encoder import TEXT_ENCODERS, resolve_text_encoder

    if not isinstance(name_value, str):
        raise CheckpointError(f"{name}: text_encoder {name_value!r} is not a name")
    if name_value not in TEXT_ENCODERS:
        digest = recorded.get("sha256") if isinstance(recorded, dict) else None
        where = f"{name}: text_encoder {name_value[:80]!r} is not a pinned text encoder ({', '.join(TEXT_ENCODERS)})"
        if not digest:
            raise CheckpointError(f"{where} and the sidecar records no digest of that folder (text_encoder.sha256)")
        folder = Path(name_value).expanduser()
        if not (folder.is_dir() and (folder / "config.json").is_file()):
            raise CheckpointError(f"{where} nor a folder holding a transformers config.json")
        try:
            actual = folder_sha256(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{where}, and its folder cannot be digested: {exc}") from None
        if actual != digest:
            raise CheckpointError(f"{where}, and the folder's contents differ from those the checkpoint was "
                                  "saved with (text_encoder.sha256)")
    try:
        folder, _ = resolve_text_encoder(name_value)
    except Exception:  # noqa: BLE001 - a missing package: building the model says how to install it
        return
    config = Path(folder) / "config.json"
    if not config.is_file():
        return
    size = config.stat().st_size
    if size > MAX_ENCODER_CONFIG_BYTES:
        raise CheckpointError(f"{name}: text encoder {name_value!r} config.json is {size} bytes (at most "
                              f"{MAX_ENCODER_CONFIG_BYTES}); refusing to read it")
    try:
        values = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{name}: text encoder {name_value!r} config.json is not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{name}: text encoder {name_value!r} config.json is not an object")
    for key, limit in ENCODER_CONFIG_LIMITS.items():
        value = values.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit):
            raise CheckpointError(f"{name}: text encoder {name_value!r} config.json asks for {key}={value!r} "
                                  f"(at most {limit}); refusing to build it")


#: A checkpoint may not ask for a model with more visual-transformer weights than this (ViT-B, the
#: `paper` preset, has 85M): building what an untrusted sidecar describes must not exhaust memory.
MAX_BLOCK_PARAMS = 400_000_000


def _check_overrides(meta: dict[str, Any], name: str):
    """The ModelConfig a sidecar's overrides describe; CheckpointError for unknown options, values
    of the wrong type and absurd sizes (checked before any weight is allocated)."""
    from refseg_ros.model.config import load_config, preset_values

    base = preset_values(meta["preset"])
    for key, value in meta["overrides"].items():
        if key == "vit_checkpoint":
            continue  # replaced by None below: the weights are in the checkpoint
        if key not in base:
            raise CheckpointError(f"{name}: unknown model option {key!r} in the sidecar's overrides")
        ref = base[key]
        if isinstance(ref, bool) or isinstance(value, bool):
            ok = isinstance(ref, bool) and isinstance(value, bool)
        elif isinstance(ref, (int, float)):
            ok = isinstance(value, (int, float)) and (isinstance(value, int) or not isinstance(ref, int)) \
                and math.isfinite(value)
        elif isinstance(ref, list):
            ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v) for v in value)
        else:  # str or None
            ok = isinstance(value, str) or value is None
        if not ok:
            raise CheckpointError(f"{name}: override {key}={value!r} has the wrong type for that option "
                                  f"(preset value {ref!r})")
    try:
        cfg = load_config(meta["preset"], **{**meta["overrides"], "vit_checkpoint": None})
    except (TypeError, ValueError, ArithmeticError) as exc:  # e.g. num_heads 0: a modulo by zero
        raise CheckpointError(f"{name}: cannot rebuild its model (preset {meta['preset']!r}, "
                              f"overrides {meta['overrides']}): {exc}") from None
    _check_text_encoder(cfg.text_encoder, meta.get("text_encoder"), name)
    sizes = {k: getattr(cfg, k) for k in ("embed_dim", "depth", "num_heads", "lap_dim", "mask_dim",
                                          "decoder_width", "law_groups", "law_reduction", "law_rank",
                                          "patch_size", "max_tokens")}
    if any(v < 1 for v in sizes.values()) or cfg.mlp_ratio <= 0:
        raise CheckpointError(f"{name}: model sizes must be positive ({sizes}, mlp_ratio {cfg.mlp_ratio})")
    block_params = cfg.depth * (4 + 2 * cfg.mlp_ratio) * cfg.embed_dim ** 2
    widths = max(cfg.lap_dim, cfg.mask_dim, cfg.decoder_width, cfg.law_rank, cfg.law_groups)
    if block_params > MAX_BLOCK_PARAMS or widths > 4 * max(cfg.embed_dim, 1024) \
            or max(cfg.input_size) > 4096 or cfg.max_tokens > 4096:
        raise CheckpointError(f"{name}: the sidecar asks for an implausibly large model ({block_params:.3g} "
                              f"transformer weights, sizes {sizes}, input {cfg.input_size}); refusing to build it")
    return cfg


def _check_packages(meta: dict[str, Any]) -> None:
    for entry in (meta.get("text_encoder"), meta.get("image_weights")):
        if not entry or not entry.get("package"):
            continue
        try:
            installed = importlib.metadata.version(entry["package"])
        except importlib.metadata.PackageNotFoundError:
            continue  # building the model reports the missing package with its install command
        if installed != entry.get("version"):
            warnings.warn(f"checkpoint was trained with {entry['package']}=={entry.get('version')}, "
                          f"{installed} is installed: the frozen weights may differ", stacklevel=3)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> VGLAW:
    """Rebuild and load a model saved by :func:`save_checkpoint`; raises :class:`CheckpointError`."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    expected, actual = meta["weights"].get("sha256"), file_sha256(path)
    if actual != expected:
        size, recorded = path.stat().st_size, meta["weights"].get("bytes")
        raise CheckpointError(
            f"{path.name}: sha256 {actual[:12]}... does not match the sidecar's {str(expected)[:12]}... "
            f"(file {size} bytes, recorded {recorded}): the file is "
            + ("truncated" if isinstance(recorded, int) and size < recorded else "corrupted or replaced"))
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad header
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({exc})") from None
    _check_packages(meta)
    _check_overrides(meta, path.name)

    overrides = dict(meta["overrides"])
    overrides["vit_checkpoint"] = None  # ViT weights are in the checkpoint; the init file is not needed
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="vit backbone: no vit_checkpoint")
            model = build_model(meta["preset"], **overrides)
    except Exception as exc:  # noqa: BLE001 - whatever an edited sidecar breaks is the checkpoint's fault
        raise CheckpointError(f"{path.name}: cannot rebuild its model (preset {meta['preset']!r}, "
                              f"overrides {meta['overrides']}): {type(exc).__name__}: {exc}") from None
    model.overrides = dict(meta["overrides"])

    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state) - model.pinned_state_keys())
    shapes = [f"{k}: {tuple(v.shape)} vs model {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and v.shape != own[k].shape]
    if unexpected or missing or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys {missing[:4]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys {unexpected[:4]}")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatches {shapes[:4]}")
        raise CheckpointError(f"{path.name} does not match preset {meta['preset']!r} with overrides "
                              f"{meta['overrides']}: " + "; ".join(problems))
    kinds = [f"{k}: {str(v.dtype).split('.')[-1]} vs model {str(own[k].dtype).split('.')[-1]}"
             for k, v in state.items() if v.is_floating_point() != own[k].is_floating_point()
             or (not v.is_floating_point() and v.dtype != own[k].dtype)]
    if kinds:
        raise CheckpointError(f"{path.name}: {len(kinds)} tensors of the wrong dtype {kinds[:4]}: weights are "
                              "floating point (any precision), counters keep their integer type")
    # Cast first, then check: a value finite in the file's dtype can overflow the model's.
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    not_finite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not_finite:
        raise CheckpointError(f"{path.name}: {len(not_finite)} tensors hold NaN or infinite values in the "
                              f"model's dtype {not_finite[:4]}: the weights are damaged (or training diverged)")
    model.load_state_dict(state, strict=False)
    model.checkpoint_meta = meta
    return model.to(device)


def extend_checkpoint(path: str | Path, **overrides) -> tuple[VGLAW, list[str]]:
    """A checkpoint's model rebuilt with ``overrides`` that add parts (e.g. ``presence_head=True``),
    its weights loaded and the new parts freshly initialised: the start of a fine-tuning run.

    Returns the model and the state-dict keys that are new. Every stored tensor must land in the
    new model with its shape; an override that changes an existing part is an error.
    """
    old = load_checkpoint(path)
    merged = {**old.overrides, **overrides}
    model = build_model(old.preset, **merged)
    model.overrides = merged
    state = old.trainable_state_dict()
    own = model.state_dict()
    lost = sorted(k for k, v in state.items() if k not in own or own[k].shape != v.shape)
    if lost:
        raise CheckpointError(f"{Path(path).name}: overrides {overrides} change existing parts "
                              f"({len(lost)} tensors, e.g. {lost[:3]}); they may only add parts")
    model.load_state_dict(state, strict=False)
    new = sorted(set(own) - set(state) - model.pinned_state_keys())
    return model, new
