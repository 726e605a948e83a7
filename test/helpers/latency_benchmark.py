"""End-to-end latency of refseg_node (image published -> GroundingArray received) next to
``GroundingPredictor.predict`` alone, on the same 640x480 frames and thread count.

    python test/helpers/latency_benchmark.py --checkpoint model.safetensors --frames 40 --threads 2

(``refseg bench`` runs this script for its ROS figures, with ``--json``.)

Frames are sent one at a time (the next after the previous result, then a 50 ms pause; predict
gets the same pause), so the figures are latency, not queueing. Run it on an otherwise idle
machine: with the cores busy elsewhere, torch's OpenMP threads wait on each other and 2 threads
can be several times slower than 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def _frames(n_scenes: int = 3) -> list[np.ndarray]:
    try:
        from refseg_ros.data import render_scene

        return [render_scene(seed, 640, 480).image for seed in range(n_scenes)]
    except Exception:  # noqa: BLE001
        from test_node import _synthetic_frame

        return [_synthetic_frame(seed=i) for i in range(n_scenes)]


def bench_predict(checkpoint: str | None, frames, n: int, threads: int, command: list[str],
                  backend: str = "torch", int8: bool = False) -> np.ndarray:
    import torch

    from refseg_ros.model.predictor import GroundingPredictor

    torch.set_num_threads(threads)
    predictor = GroundingPredictor.from_checkpoint(checkpoint, backend=backend, int8=int8)
    predictor.set_command(command)
    for f in frames:
        predictor.predict(f)  # warm-up
    times = []

    def run():
        for i in range(n):
            t0 = time.perf_counter()
            predictor.predict(frames[i % len(frames)])
            times.append(time.perf_counter() - t0)
            time.sleep(0.05)  # the same pause between frames as the node benchmark leaves

    # In a worker thread, as the node runs it: on an oversubscribed CPU, 2 torch threads driven
    # from the main thread measured ~3x slower than from a worker thread here.
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return np.array(times)


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of a running process, in MB; None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def bench_node(checkpoint: str | None, frames, n: int, threads: int, text: str,
               visuals: bool = False, stats: dict | None = None,
               backend: str = "torch", int8: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Node latencies and processing times; ``stats`` (if given) receives the node's ``rss_mb``."""
    from node_process import NodeProcess
    from test_node import Client, stamp_ns

    os.environ.setdefault("ROS_DOMAIN_ID", str(90 + os.getpid() % 10))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # Reliable images: best-effort 640x480 frames (900 KB, UDP fragments on loopback) are sometimes
    # lost here, and a lost frame is not a latency.
    args = ["-r", "__ns:=/bench", "-p", f"num_threads:={threads}", "-p", "max_rate_hz:=0.0",
            "-p", "image_reliability:=reliable", "-p", f"backend:={backend}", "-p", f"int8:={str(int8).lower()}"]
    if checkpoint:
        args += ["-p", f"checkpoint:={checkpoint}"]
    node = NodeProcess(args, env=dict(os.environ))
    client = None
    try:
        if not node.wait_for(r"active: listening on", 300):
            raise SystemExit(f"node did not start:\n{node.log()}")
        client = Client("/bench", reliable_images=True, visuals=visuals)
        client.wait_connected()
        client.command(text, node, expect=r"->")
        latencies, processing = [], []
        for i in range(n + 3):
            header = client.publish_image(frames[i % len(frames)])
            s = stamp_ns(header.stamp)
            got = client.spin_until(lambda: any(stamp_ns(m.header.stamp) == s
                                                for _, m in client.received["groundings"][-3:]), 10)
            if not got:
                continue  # best effort: a lost frame; send the next
            t_recv, msg = next((t, m) for t, m in client.received["groundings"] if stamp_ns(m.header.stamp) == s)
            if i >= 3:  # warm-up
                latencies.append(t_recv - client.sent[s])
                processing.append(msg.processing_time)
            client.spin(0.05)
        if stats is not None:
            stats["rss_mb"] = peak_rss_mb(node.proc.pid)
        return np.array(latencies), np.array(processing)
    finally:
        if client is not None:
            client.close()
        node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--command", default="pick up the red mug on the left")
    parser.add_argument("--visuals", action="store_true", help="also subscribe to overlay and mask (as rviz does)")
    parser.add_argument("--json", default=None, help="also write the figures (ms, MB) to this JSON file")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="per-frame backend of both the node and predict (default: the node's default, auto)")
    parser.add_argument("--int8", default="default", choices=("default", "true", "false"),
                        help="int8 onnxruntime graph for both (default: the node's default)")
    args = parser.parse_args()
    from refseg_ros.ros.command_parser import parse_command

    expressions = list(parse_command(args.command).expressions)
    frames = _frames()
    stats: dict = {}
    from refseg_ros.model.predictor import backend_label, resolve_backend

    from refseg_ros.utils.bench import node_int8

    backend = resolve_backend(args.backend)
    int8 = backend == "onnxruntime" and (node_int8() if args.int8 == "default" else args.int8 == "true")
    lat, proc = bench_node(args.checkpoint, frames, args.frames, args.threads, args.command, args.visuals, stats,
                           backend=backend, int8=int8)
    pred = bench_predict(args.checkpoint, frames, args.frames, args.threads, expressions, backend=backend, int8=int8)

    def fmt(a):
        return f"p50 {np.median(a) * 1000:6.1f} ms  p95 {np.percentile(a, 95) * 1000:6.1f} ms  (n={a.size})"

    print(f"640x480, backend {backend_label(backend, int8)}, {args.threads} threads, command {expressions}, "
          f"overlay+mask subscribed: {args.visuals}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  predict alone              {fmt(pred)}")
    print(f"  node processing_time       {fmt(proc)}")
    print(f"  image -> GroundingArray    {fmt(lat)}")
    print(f"  node peak RSS              {stats.get('rss_mb') or float('nan'):.0f} MB")
    if args.json:
        def ms(a, q):
            return float(np.percentile(a, q) * 1000) if a.size else None

        figures = {"frame_size": list(frames[0].shape[1::-1]), "backend": backend, "int8": int8,
                   "threads": args.threads,
                   "frames": int(lat.size),
                   "expressions": expressions, "predict_ms_p50": ms(pred, 50), "predict_ms_p95": ms(pred, 95),
                   "node_ms_p50": ms(lat, 50), "node_ms_p95": ms(lat, 95),
                   "node_processing_ms_p50": ms(proc, 50), "rss_mb": stats.get("rss_mb")}
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
