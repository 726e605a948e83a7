"""The in-process figures of ``refseg bench``: the predictor on each backend, ``set_command``,
batching, the ``law: false`` model next to the LAW one, and the paper's visual backbone.

Every function returns a flat dict of figures (ms, ratios); :mod:`refseg_ros.bench.run` merges them.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from refseg_ros.utils.timing import interleaved, percentile_ms

EXPRESSIONS = ["the red mug on the left", "the small blue cube", "the duck next to the tray",
               "the second ball from the right", "the green lego brick behind the teddy bear",
               "the yellow torus", "the biggest jenga block", "the cube closest to the camera",
               "the purple ball between the mug and the duck", "the rightmost object"]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either is missing (a part that did not run)."""
    return None if a is None or b is None or b <= 0 else round(a / b, 3)


def random_frames(size: tuple[int, int], n: int = 3) -> list[np.ndarray]:
    """Random uint8 RGB frames of ``size = (W, H)`` (latency does not depend on the content)."""
    rng = np.random.default_rng(0)
    w, h = size
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def load_models(preset: str, checkpoint: str | None):
    """(LAW model, static model, description of the weights, checkpoint path or None)."""
    from refseg_ros.model.build import build_model
    from refseg_ros.model.checkpoint import load_checkpoint
    from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

    path = Path(checkpoint) if checkpoint else (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None)
    model = None
    if path is not None:
        model = load_checkpoint(path, device="cpu")
        if model.preset != preset and not checkpoint:
            model, path = None, None  # the shipped checkpoint is of another preset
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="vit backbone: no vit_checkpoint")
        if model is None:
            model = build_model(preset)
            weights = "random init"
        else:
            weights = str(path)
        overrides = {**model.overrides, "law": False}
        static = build_model(model.preset, **overrides)
    return model, static, weights, path


def node_int8() -> bool:
    """The grounding node's default for its ``int8`` parameter (read from its parameter table)."""
    from refseg_ros.ros.params import SPECS

    return bool(SPECS["int8"].default)


def bench_model(model, static, frames_n: int, quick: bool) -> dict:
    """predict, set_command, batching and law-vs-static figures (seconds -> ms in the result)."""
    import torch

    from refseg_ros.model.predictor import GroundingPredictor, resolve_backend

    law, plain = GroundingPredictor(model), GroundingPredictor(static)
    frames = random_frames(model.input_size)
    out: dict = {"input_size": list(model.input_size), "word_attention": bool(model.cfg.word_attention),
                 "law": bool(model.cfg.law)}
    # The headline keys (predict_ms_*, law_over_static) are on the backend the node runs by
    # default (backend: auto); the PyTorch figures are kept under *_torch.
    fns = {"torch": law, "static_torch": plain}
    onnx = None
    try:
        for key, kwargs in (("onnxruntime", {}), ("onnxruntime_int8", {"int8": True})):
            fns[key] = GroundingPredictor(model, backend="onnxruntime", **kwargs)
            fns[f"static_{key}"] = GroundingPredictor(static, backend="onnxruntime", **kwargs)
        onnx = fns["onnxruntime"]
    except Exception as exc:  # noqa: BLE001 - a figure less, not a failed benchmark
        fns = {k: p for k, p in fns.items() if "onnxruntime" not in k}
        out["notes_onnx"] = f"onnxruntime backend skipped: {type(exc).__name__}: {exc}"
    backend = resolve_backend("auto") if onnx is not None else "torch"
    node = f"{backend}_int8" if backend == "onnxruntime" and node_int8() else backend
    out["backend"], out["int8"] = backend, node.endswith("_int8")
    for p in fns.values():
        p.set_command(EXPRESSIONS[:1])
    i = iter(range(10**9))
    t = interleaved({k: (lambda p=p: p.predict(frames[next(i) % 3])) for k, p in fns.items()}, frames_n, warmup=3)
    ms = percentile_ms
    for key in ("torch", "onnxruntime", "onnxruntime_int8"):
        if key in t:
            out[f"predict_{key}_ms_p50"], out[f"predict_{key}_ms_p95"] = ms(t[key]), ms(t[key], 95)
            out[f"predict_{key}_cpu_ms_p50"] = ms(t[f"{key}_cpu"])  # the calling thread only
            out[f"static_predict_{key}_ms_p50"] = ms(t[f"static_{key}"])
            out[f"law_over_static_{key}"] = ratio(out[f"predict_{key}_ms_p50"], out[f"static_predict_{key}_ms_p50"])
    out["law_over_static_torch_cpu"] = ratio(ms(t["torch_cpu"]), ms(t["static_torch_cpu"]))
    out["predict_ms_p50"], out["predict_ms_p95"] = out[f"predict_{node}_ms_p50"], out[f"predict_{node}_ms_p95"]
    out["static_predict_ms_p50"] = out[f"static_predict_{node}_ms_p50"]
    out["law_over_static"] = out[f"law_over_static_{node}"]

    cmd_times = []
    for expr in EXPRESSIONS[1:(4 if quick else 10)]:
        law.clear_cache()
        t0 = time.perf_counter()
        law.set_command([expr])
        cmd_times.append(time.perf_counter() - t0)
    out["set_command_ms"] = ms(cmd_times)

    # Frames only: each command is set once, on a predictor of its own (set_command is timed above).
    def commanded(expressions, **kwargs):
        predictor = GroundingPredictor(model, **kwargs)
        predictor.set_command(expressions)
        return lambda: predictor.predict(frames[0])

    single = fns  # the predictors above hold EXPRESSIONS[:1]: the onnxruntime k = 1 figures reuse them
    fns = {}
    for k in (1, 2, 4):
        fns[f"batch{k}"] = commanded(EXPRESSIONS[:k])
        singles = [commanded([expr]) for expr in EXPRESSIONS[:k]]
        fns[f"sequential{k}"] = lambda singles=singles: [run() for run in singles]
    if onnx is not None:  # the node's default backend on a CPU, and its int8 variant
        for key, kwargs in (("onnxruntime", {}), ("onnxruntime_int8", {"int8": True})):
            fns[f"{key}_batch1"] = lambda p=single[key]: p.predict(frames[0])
            fns[f"{key}_batch4"] = commanded(EXPRESSIONS[:4], backend="onnxruntime", **kwargs)
    t = interleaved(fns, max(3, frames_n // 4), warmup=1)
    for key, times in t.items():
        out[f"{key.removesuffix('_cpu')}_{'cpu_' if key.endswith('_cpu') else ''}ms"] = ms(times)
    out["batch4_over_batch1_torch"] = ratio(out["batch4_ms"], out["batch1_ms"])
    out["batch4_over_batch1_torch_cpu"] = ratio(out["batch4_cpu_ms"], out["batch1_cpu_ms"])
    if onnx is not None:
        for key in ("onnxruntime", "onnxruntime_int8"):
            out[f"batch4_over_batch1_{key}"] = ratio(out[f"{key}_batch4_ms"], out[f"{key}_batch1_ms"])
    out["batch4_over_batch1"] = out[f"batch4_over_batch1_{node}"]
    out.update(batch_flops(model))
    out["batch4_over_sequential4"] = ratio(out["batch4_ms"], out["sequential4_ms"])
    out["torch_threads"] = torch.get_num_threads()
    return out


def batch_flops(model) -> dict:
    """Matmul/conv GFLOPs of one frame with 1 and 4 expressions: the floor of ``batch4_over_batch1``
    for this architecture (the image features are shared, everything after them is per expression)."""
    import torch

    from refseg_ros.model.complexity import count_flops

    w, h = model.input_size
    image = torch.rand(1, 3, h, w)
    out = {}
    with torch.inference_mode():
        for k in (1, 4):
            command = model.command(EXPRESSIONS[:k])
            out[f"gflops_batch{k}"] = round(count_flops(
                lambda: model.ground(model.image_features(image), command)) / 1e9, 3)
    out["flops_batch4_over_batch1"] = ratio(out["gflops_batch4"], out["gflops_batch1"])
    return out


def bench_paper_backbone(n: int) -> dict:
    """timm ViT-B/16 at 448x448, random weights (no registry ships ViT weights), features only."""
    import timm
    import torch

    vit = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=448, num_classes=0).eval()
    x = torch.rand(1, 3, 448, 448)
    with torch.inference_mode():
        t = interleaved({"vit": lambda: vit.forward_features(x)}, n, warmup=1)
    return {"paper_backbone_ms_p50": percentile_ms(t["vit"]), "paper_backbone_cpu_ms_p50": percentile_ms(t["vit_cpu"]),
            "paper_backbone": "timm vit_base_patch16_224, img_size 448, random init"}
