"""``refseg bench``: every latency figure in one run, side by side, as JSON.

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
  ``predict`` alone on the same 640x480 frames, and the node's peak RSS
  (:mod:`refseg_ros.bench.latency`, run in a subprocess). It needs the ROS 2 Python packages;
  otherwise its keys are null and ``notes_ros`` says why.

The parts live in :mod:`refseg_ros.bench.figures` (in process) and :mod:`refseg_ros.bench.latency`
(the node); this module runs them and checks the targets. Timings come from a worker thread (the
node runs the model in one too). Ratios are computed from one run, so they survive a loaded machine
better than the absolute numbers; the JSON records the load average before and after.
"""
from __future__ import annotations

import os
import platform
import resource
import tempfile
from pathlib import Path
from typing import Callable

from refseg_ros.bench.figures import bench_model, bench_paper_backbone, load_models, ratio
from refseg_ros.bench.latency import bench_ros
from refseg_ros.utils.timing import in_worker_thread

__all__ = ["REQUIRED_KEYS", "TARGETS", "check_targets", "run_bench", "summary"]

#: latency targets for the tabletop preset on a 2-core CPU (key -> upper bound)
TARGETS = {
    "predict_ms_p50": 40.0,
    "paper_over_predict_min": 15.0,  # lower bound: predict at least this much faster than ViT-B/16 @ 448
    "law_over_static": 1.10,
    "set_command_ms": 25.0,
    "batch4_over_batch1": 2.2,
    "ros_over_predict": 1.25,
    "rss_mb": 1500.0,
}

#: the keys every result holds (null when a part could not run)
REQUIRED_KEYS = ("predict_ms_p50", "predict_ms_p95", "set_command_ms", "batch4_over_batch1",
                 "law_over_static", "ros_over_predict", "paper_backbone_ms_p50", "rss_mb")


def check_targets(result: dict) -> dict[str, bool | None]:
    """Each target: True met, False missed, None not measured."""
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
    result["paper_over_predict"] = ratio(result["paper_backbone_ms_p50"], result["predict_ms_p50"])
    result["paper_over_predict_torch"] = ratio(result["paper_backbone_ms_p50"], result["predict_torch_ms_p50"])
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
