"""End-to-end latency of refseg_node (image published -> GroundingArray received) next to
``GroundingPredictor.predict`` alone, on the same 640x480 frames and thread count.

    python -m refseg_ros.bench.latency --checkpoint model.safetensors --frames 40 --threads 2

(``refseg bench`` runs this module in a subprocess for its ROS figures, with ``--json``:
:func:`bench_ros`.)

Frames are sent one at a time (the next after the previous result, then a 50 ms pause; predict
gets the same pause), so the figures are latency, not queueing. Run it on an otherwise idle
machine: with the cores busy elsewhere, torch's OpenMP threads wait on each other and 2 threads
can be several times slower than 1.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from refseg_ros.utils.timing import in_worker_thread, percentile_ms

#: the shipped Fast DDS profile for camera-sized frames (docs: performance)
LARGE_FRAMES_PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_large_frames.xml"


def synthetic_frame(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A rendered-looking tabletop (wooden table, soft shading, a red mug, a blue cube, a yellow duck),
    for when the tabletop renderer is not available."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 0.75 + 0.25 * (1 - y / h) * (1 - np.abs(x / w - 0.5))
    img = (np.array([181, 140, 99], np.float32)[None, None] * shade[..., None]).astype(np.uint8)
    s = w / 640
    cv2.rectangle(img, (int(120 * s), int(220 * s)), (int(190 * s), int(300 * s)), (200, 30, 30), -1)  # mug
    cv2.ellipse(img, (int(195 * s), int(260 * s)), (int(18 * s), int(25 * s)), 0, -90, 90, (200, 30, 30),
                max(1, int(8 * s)))
    cv2.rectangle(img, (int(300 * s), int(240 * s)), (int(360 * s), int(300 * s)), (40, 60, 200), -1)  # cube
    cv2.ellipse(img, (int(480 * s), int(270 * s)), (int(40 * s), int(30 * s)), 0, 0, 360, (240, 210, 40), -1)
    cv2.circle(img, (int(505 * s), int(235 * s)), int(18 * s), (240, 210, 40), -1)  # duck
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def rendered_frames(n_scenes: int = 3) -> list[np.ndarray]:
    """640x480 RGB tabletop scenes from the generator, or synthetic ones where it cannot run."""
    try:
        from refseg_ros.data import render_scene

        return [render_scene(seed, 640, 480).image for seed in range(n_scenes)]
    except Exception:  # noqa: BLE001 - the renderer (pybullet) is optional for latency
        return [synthetic_frame(seed=i) for i in range(n_scenes)]


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

    in_worker_thread(run)  # as the node runs it
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
    from refseg_ros.bench.ros_client import BenchClient, NodeProcess, stamp_ns

    os.environ.setdefault("ROS_DOMAIN_ID", str(90 + os.getpid() % 10))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # Reliable images: best-effort 640x480 frames (UDP fragments on loopback) are sometimes lost,
    # and a lost frame is not a latency.
    args = ["-r", "__ns:=/bench", "-p", f"num_threads:={threads}", "-p", "max_rate_hz:=0.0",
            "-p", "image_reliability:=reliable", "-p", f"backend:={backend}", "-p", f"int8:={str(int8).lower()}"]
    if checkpoint:
        args += ["-p", f"checkpoint:={checkpoint}"]
    node = NodeProcess(args, env=dict(os.environ))
    client = None
    try:
        if not node.wait_for(r"active: listening on", 300):
            raise SystemExit(f"node did not start:\n{node.log()}")
        client = BenchClient("/bench", reliable_images=True, visuals=visuals)
        client.wait_connected()
        client.command(text, node, expect=r"->")
        latencies, processing = [], []
        for i in range(n + 3):
            header = client.publish_image(frames[i % len(frames)])
            s = stamp_ns(header.stamp)
            got = client.spin_until(lambda: any(stamp_ns(m.header.stamp) == s for _, m in client.groundings[-3:]), 10)
            if not got:
                continue  # best effort: a lost frame; send the next
            t_recv, msg = next((t, m) for t, m in client.groundings if stamp_ns(m.header.stamp) == s)
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


# ---- run from refseg bench ------------------------------------------------------------------------

def dds_profile_env(choice: str) -> dict[str, str]:
    """Environment for the ROS part: ``large-frames`` = the shipped profile for both processes (as
    recommended for every process on the robot) unless FASTDDS_DEFAULT_PROFILES_FILE is already
    set; ``default`` = Fast DDS's built-in transports."""
    env = dict(os.environ)
    if choice == "default":
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    elif choice == "large-frames":
        if not env.get("FASTDDS_DEFAULT_PROFILES_FILE") and LARGE_FRAMES_PROFILE.is_file():
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LARGE_FRAMES_PROFILE)
    else:
        raise ValueError(f"dds profile must be 'large-frames' or 'default'; got {choice!r}")
    return env


def bench_ros(checkpoint: Path, frames_n: int, threads: int, timeout: float = 900,
              dds_profile: str = "large-frames") -> dict:
    """The node between processes: this module's ``main`` in a subprocess (``--json``)."""
    from refseg_ros.bench.figures import ratio
    from refseg_ros.model.predictor import backend_label

    if importlib.util.find_spec("rclpy") is None:
        return {"notes_ros": "rclpy is not importable (ROS 2 not sourced): ROS figures skipped"}
    env = dds_profile_env(dds_profile)
    env.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryDirectory(prefix="refseg_bench_") as tmp:
        out_json = Path(tmp) / "ros.json"
        cmd = [sys.executable, "-m", "refseg_ros.bench.latency", "--checkpoint", str(checkpoint), "--frames", str(frames_n),
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
            "ros_over_predict": ratio(ros["node_ms_p50"], ros["predict_ms_p50"]), "rss_mb": ros["rss_mb"],
            "dds_profile": env.get("FASTDDS_DEFAULT_PROFILES_FILE")}


# ---- script ---------------------------------------------------------------------------------------

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
    from refseg_ros.bench.figures import node_int8
    from refseg_ros.language.parser import parse_command
    from refseg_ros.model.predictor import backend_label, resolve_backend

    expressions = list(parse_command(args.command).expressions)
    frames = rendered_frames()
    stats: dict = {}
    backend = resolve_backend(args.backend)
    int8 = backend == "onnxruntime" and (node_int8() if args.int8 == "default" else args.int8 == "true")
    lat, proc = bench_node(args.checkpoint, frames, args.frames, args.threads, args.command, args.visuals, stats,
                           backend=backend, int8=int8)
    pred = bench_predict(args.checkpoint, frames, args.frames, args.threads, expressions, backend=backend, int8=int8)

    def fmt(a):
        if not a.size:
            return "no samples"
        return f"p50 {percentile_ms(a, 50):6.1f} ms  p95 {percentile_ms(a, 95):6.1f} ms  (n={a.size})"

    print(f"640x480, backend {backend_label(backend, int8)}, {args.threads} threads, command {expressions}, "
          f"overlay+mask subscribed: {args.visuals}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  predict alone              {fmt(pred)}")
    print(f"  node processing_time       {fmt(proc)}")
    print(f"  image -> GroundingArray    {fmt(lat)}")
    print(f"  node peak RSS              {stats.get('rss_mb') or float('nan'):.0f} MB")
    if args.json:
        figures = {"frame_size": list(frames[0].shape[1::-1]), "backend": backend, "int8": int8,
                   "threads": args.threads, "frames": int(lat.size), "expressions": expressions,
                   "predict_ms_p50": percentile_ms(pred, 50), "predict_ms_p95": percentile_ms(pred, 95),
                   "node_ms_p50": percentile_ms(lat, 50), "node_ms_p95": percentile_ms(lat, 95),
                   "node_processing_ms_p50": percentile_ms(proc, 50), "rss_mb": stats.get("rss_mb")}
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
