"""``refseg bench``: every latency figure of issue 8 in one run, side by side, as JSON.

What is measured (CPU, one process unless said otherwise):

- ``predict`` with a cached command on frames of the preset's input size: p50/p95 over ``frames``
  frames after warm-up, in PyTorch (``*_torch``), with the per-frame graph run by onnxruntime in
  float32 (``*_onnxruntime``) and with its int8 matmuls (``*_onnxruntime_int8``). The headline keys
  (``predict_ms_*``, ``law_over_static``, ``batch4_over_batch1``) are on what the node runs by
  default: ``backend: auto`` (onnxruntime on a CPU) with its ``int8`` parameter (``backend`` and
  ``int8`` in the result say which);
- ``set_command`` for an expression not in the cache (text encoder + generated weights);
- k = 1, 2, 4 expressions on one frame, one batch vs k single-expression calls (frames only: each
  command is set once beforehand), in PyTorch; k = 1, 4 on both onnxruntime graphs;
- the ``law: false`` model of the same preset (static weights), on every backend, interleaved frame
  by frame with the LAW model so both see the same machine load: ``law_over_static``;
- timm's ViT-B/16 at 448x448 (random weights), the VG-LAW paper's visual backbone;
- the ROS node in its own process (image published -> GroundingArray received) next to
  ``predict`` alone on the same 640x480 frames, and the node's peak RSS. This part runs
  ``test/helpers/latency_benchmark.py`` (the node tests' client over real DDS) in a subprocess, so it
  needs a source checkout with ROS 2 Python packages; otherwise its keys are null and ``notes`` says why.

Timings come from a worker thread (the node runs the model in one too; on a loaded CPU, torch
threads driven from the main thread were measured several times slower). Ratios are computed from
one run, so they survive a loaded machine better than the absolute numbers; the JSON records the
load average before and after.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

#: issue 8 targets for the tabletop preset on the 2-core CPU (key -> upper bound)
TARGETS = {
    "predict_ms_p50": 40.0,
    "paper_over_predict_min": 15.0,  # lower bound: predict at least 15x faster than ViT-B/16 @ 448
    "law_over_static": 1.10,
    "set_command_ms": 25.0,
    "batch4_over_batch1": 2.2,
    "ros_over_predict": 1.25,
    "rss_mb": 1500.0,
}

#: the keys every result holds (null when a part could not run)
REQUIRED_KEYS = ("predict_ms_p50", "predict_ms_p95", "set_command_ms", "batch4_over_batch1",
                 "law_over_static", "ros_over_predict", "paper_backbone_ms_p50", "rss_mb")

EXPRESSIONS = ["the red mug on the left", "the small blue cube", "the duck next to the tray",
               "the second ball from the right", "the green lego brick behind the teddy bear",
               "the yellow torus", "the biggest jenga block", "the cube closest to the camera",
               "the purple ball between the mug and the duck", "the rightmost object"]

LATENCY_HELPER = Path(__file__).resolve().parents[2] / "test" / "helpers" / "latency_benchmark.py"
#: the shipped Fast DDS profile for camera-sized frames (README "Performance")
LARGE_FRAMES_PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_large_frames.xml"


def dds_profile_env(choice: str) -> dict[str, str]:
    """Environment for the ROS part: ``large-frames`` = the shipped profile for both processes (as
    the README recommends for every process on the robot) unless FASTDDS_DEFAULT_PROFILES_FILE is
    already set; ``default`` = Fast DDS's built-in transports."""
    env = dict(os.environ)
    if choice == "default":
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    elif choice == "large-frames":
        if not env.get("FASTDDS_DEFAULT_PROFILES_FILE") and LARGE_FRAMES_PROFILE.is_file():
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LARGE_FRAMES_PROFILE)
    else:
        raise ValueError(f"dds profile must be 'large-frames' or 'default'; got {choice!r}")
    return env


def in_worker_thread(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a fresh thread (as the node runs the model) and return its result."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="refseg-bench")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, np.ndarray]:
    """Seconds per call of each function, calling them in turn ``rounds`` times (after ``warmup``).

    Also ``"<key>_cpu"``: CPU seconds of the calling thread. With one torch thread all the work runs
    there, so on a loaded machine this is close to what the wall time would be on an idle one.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    times.update({f"{k}_cpu": [] for k in fns})
    for r in range(warmup + rounds):
        for key, fn in fns.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            if r >= warmup:
                times[key].append(time.perf_counter() - t0)
                times[f"{key}_cpu"].append(time.thread_time() - c0)
    return {k: np.asarray(v) for k, v in times.items()}


def ms(times: np.ndarray, q: float = 50) -> float:
    return round(float(np.percentile(times, q)) * 1000, 3)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 3)


def _frames(size: tuple[int, int], n: int = 3) -> list[np.ndarray]:
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
    frames = _frames(model.input_size)
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
    for key in ("torch", "onnxruntime", "onnxruntime_int8"):
        if key in t:
            out[f"predict_{key}_ms_p50"], out[f"predict_{key}_ms_p95"] = ms(t[key]), ms(t[key], 95)
            out[f"predict_{key}_cpu_ms_p50"] = ms(t[f"{key}_cpu"])  # the calling thread only
            out[f"static_predict_{key}_ms_p50"] = ms(t[f"static_{key}"])
            out[f"law_over_static_{key}"] = _ratio(out[f"predict_{key}_ms_p50"], out[f"static_predict_{key}_ms_p50"])
    out["law_over_static_torch_cpu"] = _ratio(ms(t["torch_cpu"]), ms(t["static_torch_cpu"]))
    out["predict_ms_p50"], out["predict_ms_p95"] = out[f"predict_{node}_ms_p50"], out[f"predict_{node}_ms_p95"]
    out["static_predict_ms_p50"] = out[f"static_predict_{node}_ms_p50"]
    out["law_over_static"] = out[f"law_over_static_{node}"]

    cmd_times = []
    for expr in EXPRESSIONS[1:(4 if quick else 10)]:
        law.clear_cache()
        t0 = time.perf_counter()
        law.set_command([expr])
        cmd_times.append(time.perf_counter() - t0)
    out["set_command_ms"] = ms(np.asarray(cmd_times))

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
    out["batch4_over_batch1_torch"] = _ratio(out["batch4_ms"], out["batch1_ms"])
    out["batch4_over_batch1_torch_cpu"] = _ratio(out["batch4_cpu_ms"], out["batch1_cpu_ms"])
    if onnx is not None:
        for key in ("onnxruntime", "onnxruntime_int8"):
            out[f"batch4_over_batch1_{key}"] = _ratio(out[f"{key}_batch4_ms"], out[f"{key}_batch1_ms"])
    out["batch4_over_batch1"] = out[f"batch4_over_batch1_{node}"]
    out.update(batch_flops(model))
    out["batch4_over_sequential4"] = _ratio(out["batch4_ms"], out["sequential4_ms"])
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
    out["flops_batch4_over_batch1"] = _ratio(out["gflops_batch4"], out["gflops_batch1"])
    return out


def bench_paper_backbone(n: int) -> dict:
    """timm ViT-B/16 at 448x448, random weights (no registry ships ViT weights), features only."""
    import timm
    import torch

    vit = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=448, num_classes=0).eval()
    x = torch.rand(1, 3, 448, 448)
    with torch.inference_mode():
        t = interleaved({"vit": lambda: vit.forward_features(x)}, n, warmup=1)
    return {"paper_backbone_ms_p50": ms(t["vit"]), "paper_backbone_cpu_ms_p50": ms(t["vit_cpu"]),
            "paper_backbone": "timm vit_base_patch16_224, img_size 448, random init"}


def bench_ros(checkpoint: Path, frames_n: int, threads: int, timeout: float = 900,
              dds_profile: str = "large-frames") -> dict:
    """The node between processes, via the test suite's latency helper (``--json``)."""
    from refseg_ros.model.predictor import backend_label

    if not LATENCY_HELPER.is_file():
        return {"notes_ros": f"no {LATENCY_HELPER} (not a source checkout): ROS figures skipped"}
    env = dds_profile_env(dds_profile)
    env.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryDirectory(prefix="refseg_bench_") as tmp:
        out_json = Path(tmp) / "ros.json"
        cmd = [sys.executable, str(LATENCY_HELPER), "--checkpoint", str(checkpoint), "--frames", str(frames_n),
               "--threads", str(threads), "--json", str(out_json)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out_json.is_file():
            tail = (proc.stdout + proc.stderr)[-1500:]
            return {"notes_ros": f"latency helper failed (exit {proc.returncode}): {tail}"}
        ros = json.loads(out_json.read_text())
    backend = ros.get("backend") and backend_label(ros["backend"], bool(ros.get("int8")))
    return {"ros_frame_size": ros["frame_size"], "ros_backend": backend, "ros_frames": ros["frames"],
            "ros_predict_ms_p50": ros["predict_ms_p50"], "ros_node_ms_p50": ros["node_ms_p50"],
            "ros_node_ms_p95": ros["node_ms_p95"], "ros_node_processing_ms_p50": ros["node_processing_ms_p50"],
            "ros_over_predict": _ratio(ros["node_ms_p50"], ros["predict_ms_p50"]), "rss_mb": ros["rss_mb"],
            "dds_profile": env.get("FASTDDS_DEFAULT_PROFILES_FILE")}


def check_targets(result: dict) -> dict[str, bool | None]:
    """Each issue-8 target: True met, False missed, None not measured."""
    def upper(key):
        value = result.get(key)
        return None if value is None else bool(value <= TARGETS[key])

    checks = {k: upper(k) for k in ("predict_ms_p50", "law_over_static", "set_command_ms",
                                    "batch4_over_batch1", "ros_over_predict", "rss_mb")}
    speedup = result.get("paper_over_predict")
    checks["paper_over_predict_min"] = None if speedup is None else bool(speedup >= TARGETS["paper_over_predict_min"])
    return checks


def run_bench(preset: str = "tabletop", checkpoint: str | None = None, quick: bool = False,
              frames: int | None = None, threads: int = 2, ros: bool = True,
              log: Callable[[str], None] = print, dds_profile: str = "large-frames") -> dict:
    """Run every part and return one flat dict (ms, MB, ratios; see ``REQUIRED_KEYS``)."""
    import torch

    torch.set_num_threads(threads)
    n = frames or (5 if quick else 50)
    result: dict = {"preset": preset, "quick": quick, "frames": n, "threads": threads,
                    "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "load_average_before": round(os.getloadavg()[0], 2),
                    "dds_profile": None}
    log(f"refseg bench: preset {preset}, {threads} threads, {n} frames, load {result['load_average_before']}")
    model, static, weights, path = load_models(preset, checkpoint)
    result["weights"] = weights
    log("  predict, set_command, batching, law vs static ...")
    result.update(in_worker_thread(lambda: bench_model(model, static, n, quick)))
    log("  paper backbone (ViT-B/16 @ 448) ...")
    result.update(in_worker_thread(lambda: bench_paper_backbone(1 if quick else 10)))
    result["paper_over_predict"] = _ratio(result["paper_backbone_ms_p50"], result["predict_ms_p50"])
    result["paper_over_predict_torch"] = _ratio(result["paper_backbone_ms_p50"], result["predict_torch_ms_p50"])
    result["bench_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result.update({"ros_over_predict": None, "rss_mb": None})
    if ros:
        log("  ROS node end to end (separate process, DDS) ...")
        with tempfile.TemporaryDirectory(prefix="refseg_bench_ckpt_") as tmp:
            if path is None:  # random init: the node needs a file to load the same model
                from refseg_ros.model.checkpoint import save_checkpoint

                path = save_checkpoint(model, Path(tmp) / f"random_{preset}.safetensors",
                                       extra={"note": "random init, refseg bench"})
            result.update(bench_ros(path, n, threads, dds_profile=dds_profile))
    else:
        result["notes_ros"] = "skipped (--no-ros)"
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    result["targets"] = TARGETS if preset == "tabletop" else {}
    result["meets_targets"] = check_targets(result) if preset == "tabletop" else {}
    return result


def summary(result: dict) -> str:
    """Human-readable lines for the terminal."""
    from refseg_ros.model.predictor import backend_label

    def f(key, unit=" ms"):
        value = result.get(key)
        return "n/a" if value is None else f"{value:g}{unit}"

    lines = [
        f"weights: {result['weights']}; input {result['input_size'][0]}x{result['input_size'][1]}; "
        f"{result['threads']} threads; load {result['load_average_before']} -> {result['load_average_after']} "
        f"on {result['cpu_count']} cores",
        f"predict ({backend_label(str(result.get('backend')), bool(result.get('int8')))}, command cached)  "
        f"p50 {f('predict_ms_p50')}  p95 {f('predict_ms_p95')}",
        f"  law: false model          p50 {f('static_predict_ms_p50')}  law/static {f('law_over_static', 'x')}",
        f"predict, torch              p50 {f('predict_torch_ms_p50')}  p95 {f('predict_torch_ms_p95')}",
        f"  law: false model          p50 {f('static_predict_torch_ms_p50')}  "
        f"law/static {f('law_over_static_torch', 'x')} (thread CPU {f('law_over_static_torch_cpu', 'x')})",
        f"set_command (new expr)      {f('set_command_ms')}",
        f"k=1/2/4 batched, torch      {f('batch1_ms')} / {f('batch2_ms')} / {f('batch4_ms')}  "
        f"(4 vs 1: {f('batch4_over_batch1_torch', 'x')}; CPU {f('batch4_over_batch1_torch_cpu', 'x')}; "
        f"GFLOPs {f('flops_batch4_over_batch1', 'x')})",
        f"k=1/2/4 sequential, torch   {f('sequential1_ms')} / {f('sequential2_ms')} / {f('sequential4_ms')}",
        f"k=1/4 batched, onnxruntime  {f('onnxruntime_batch1_ms')} / {f('onnxruntime_batch4_ms')}  "
        f"(4 vs 1: {f('batch4_over_batch1_onnxruntime', 'x')})",
        f"onnxruntime float32 / int8  predict p50 {f('predict_onnxruntime_ms_p50')} / "
        f"{f('predict_onnxruntime_int8_ms_p50')}  law/static {f('law_over_static_onnxruntime', 'x')} / "
        f"{f('law_over_static_onnxruntime_int8', 'x')}",
        f"k=1/4 batched, ort int8     {f('onnxruntime_int8_batch1_ms')} / {f('onnxruntime_int8_batch4_ms')}  "
        f"(4 vs 1: {f('batch4_over_batch1_onnxruntime_int8', 'x')})",
        f"paper backbone ViT-B/16@448 p50 {f('paper_backbone_ms_p50')}  ({f('paper_over_predict', 'x')} predict)",
        f"ROS node ({result.get('ros_backend')}) end to end p50 {f('ros_node_ms_p50')}  "
        f"p95 {f('ros_node_ms_p95')}  vs predict "
        f"{f('ros_predict_ms_p50')} at {result.get('ros_frame_size')}: {f('ros_over_predict', 'x')}",
        f"  DDS: {Path(result['dds_profile']).name if result.get('dds_profile') else 'Fast DDS defaults'}",
        f"node peak RSS               {f('rss_mb', ' MB')}",
    ]
    if result.get("notes_ros"):
        lines.append(f"note: {result['notes_ros']}")
    if result.get("meets_targets"):
        met = ", ".join(f"{k} {'ok' if v else ('MISSED' if v is False else 'n/a')}"
                        for k, v in result["meets_targets"].items())
        lines.append(f"targets: {met}")
    return "\n".join(lines)
