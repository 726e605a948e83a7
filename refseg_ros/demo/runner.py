"""``refseg demo``: the simulated camera and the grounding node as processes, scripted commands
spoken over DDS, every result scored against the ground truth and drawn.

What a user would do by hand, automated: start ``sim_camera`` and ``refseg_node`` (shipped
checkpoint, ``use_depth:=true``), publish commands on ``command``, read ``groundings``. For each
scene (the ``reshuffle`` service moves on to the next), commands are generated from the scene's
ground truth (:mod:`refseg_ros.demo.script`); each is published, the first GroundingArray for it
from a frame of that scene is scored (:mod:`refseg_ros.demo.scoring`) and drawn. The last command
is "stop", after which no result may arrive. Artefacts in ``out``: ``cmd_NN.png`` per command,
``demo.gif``, ``summary.md``, ``summary.json`` and the two processes' logs under ``logs/``.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refseg_ros.data.grammar import TYPES
from refseg_ros.demo import scoring
from refseg_ros.demo.script import STOP_COMMAND, ScriptedCommand, plan_scene
from refseg_ros.ros.params import SPECS

__all__ = ["DemoConfig", "DemoError", "run_demo"]


class DemoError(RuntimeError):
    """The demo could not run (a process died, a timeout); the message says which and why."""


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    scenes: int = 4
    commands_per_scene: int = 4
    seed: int = 0  # first scene's seed (sim_camera parameter seed)
    script_seed: int = 0
    width: int = 640
    height: int = 480
    rate_hz: float = 5.0
    checkpoint: str = ""  # empty: the shipped checkpoint
    threads: int = 2  # torch threads of the grounding node
    device: str = "cpu"
    startup_timeout: float = 300.0
    result_timeout: float = 60.0
    stop_quiet_s: float = 2.0
    gif_frame_ms: int = 1800


def _executable(name: str, module: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


class _Process:
    """A child process with its output in a log file; stopped like Ctrl-C."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._interrupted = False

    def check(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise DemoError(f"{self.name} exited with code {code}; the end of its log ({self.log_path}):\n"
                            + self.tail())

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def interrupt(self) -> None:
        """Ctrl-C, once."""
        if self.proc.poll() is None and not self._interrupted:
            self._interrupted = True
            self.proc.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.interrupt()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


class _Driver:
    """The demo's own ROS node: speaks commands, listens to results, ground truth and frames."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from refseg_ros.msg import GroundingArray

        self._rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, args=[])
        self.node = Node("refseg_demo", context=self.context)
        self._cv = threading.Condition()
        self.truths: list[dict] = []
        self.results: list[tuple[float, object]] = []  # (time received, GroundingArray)
        self.frames: OrderedDict[tuple[int, int], object] = OrderedDict()  # stamp -> Image
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(String, "ground_truth", self._on_truth, latched)
        self.node.create_subscription(GroundingArray, "groundings", self._on_result, 50)
        self.node.create_subscription(Image, "image", self._on_image,
                                      QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                                                 reliability=ReliabilityPolicy.RELIABLE))
        self.command_pub = self.node.create_publisher(String, "command", 10)
        self.reshuffle = self.node.create_client(Trigger, "reshuffle")
        self._Trigger, self._String = Trigger, String
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="refseg_demo_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutting down
            pass

    def _on_truth(self, msg) -> None:
        with self._cv:
            self.truths.append(json.loads(msg.data))
            self._cv.notify_all()

    def _on_result(self, msg) -> None:
        with self._cv:
            self.results.append((time.monotonic(), msg))
            self._cv.notify_all()

    def _on_image(self, msg) -> None:
        with self._cv:
            self.frames[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
            while len(self.frames) > 60:
                self.frames.popitem(last=False)

    def wait(self, predicate, timeout: float, check=None):
        """Wait until ``predicate()`` (called under the lock) returns a truthy value."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(timeout=min(left, 0.5))
                if check is not None:
                    self._cv.release()
                    try:
                        check()
                    finally:
                        self._cv.acquire()

    def say(self, text: str) -> float:
        self.command_pub.publish(self._String(data=text))
        return time.monotonic()

    def call_reshuffle(self, timeout: float) -> str:
        if not self.reshuffle.wait_for_service(timeout_sec=timeout):
            raise DemoError("the sim_camera reshuffle service is not available")
        future = self.reshuffle.call_async(self._Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            raise DemoError(f"reshuffle did not answer within {timeout:.0f} s")
        result = future.result()
        if not result.success:
            raise DemoError(f"reshuffle failed: {result.message}")
        return result.message

    def frame_for(self, stamp) -> object | None:
        with self._cv:
            return self.frames.get((stamp.sec, stamp.nanosec))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)


def _stamp_ns(stamp) -> int:
    if isinstance(stamp, dict):
        return int(stamp["sec"]) * 1_000_000_000 + int(stamp["nanosec"])
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class _Result:
    """A GroundingArray's results in numpy, duck-typed for ``draw_groundings``."""

    expression: str
    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None
    found: bool
    position: tuple[float, float, float] | None


def _decode_results(array) -> list[_Result]:
    from refseg_ros.ros.images import imgmsg_to_numpy

    out = []
    for g in array.results:
        mask = imgmsg_to_numpy(g.mask) > 0 if g.mask.width and g.mask.height else None
        if mask is not None and mask.ndim == 3:
            mask = mask[:, :, 0]
        pos = (g.position.x, g.position.y, g.position.z) if g.has_position else None
        out.append(_Result(g.expression, (g.x_min, g.y_min, g.x_max, g.y_max), float(g.score), mask,
                           bool(g.found), pos))
    return out


def _caption(image_rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """The image with a dark caption bar above it (one text line each)."""
    import cv2

    h, w = image_rgb.shape[:2]
    scale = max(0.4, w / 1100.0)
    line_h = int(26 * scale / 0.58)
    bar = np.full((line_h * len(lines) + 8, w, 3), 28, np.uint8)
    for i, text in enumerate(lines):
        text = text.encode("ascii", "replace").decode("ascii")
        cv2.putText(bar, text, (8, line_h * (i + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255) if i == 0 else (200, 200, 200), 1, cv2.LINE_AA)
    return np.concatenate([bar, image_rgb], axis=0)


def _draw(rgb: np.ndarray, results: list[_Result], truth: dict, cmd: ScriptedCommand, scored: list[dict],
          latency: float | None, index: int) -> np.ndarray:
    import cv2

    from refseg_ros.utils.overlay import draw_groundings

    canvas = rgb.copy()
    for p in cmd.phrases:  # the truth: thin white boxes under the results
        box = truth["objects"][p.target]["bbox"]
        if box:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1, cv2.LINE_AA)
    # the node's own rule: below found_threshold a result is its best guess, drawn grey
    canvas = draw_groundings(canvas, results, found_threshold=float(SPECS["found_threshold"].default),
                             channel_order="rgb", copy=False)
    lines = [f"{index}. \"{cmd.text}\"" + (f"  ({latency:.2f} s)" if latency is not None else "")]
    for p, s in zip(cmd.phrases, scored):
        err = "" if s["error_3d_m"] is None else f", 3D error {100 * s['error_3d_m']:.1f} cm"
        lines.append(f"   {p.expression} [{p.type}]: IoU {s['iou']:.2f}{err}")
    return _caption(canvas, lines)


def _write_gif(frames: list[np.ndarray], path: Path, frame_ms: int) -> None:
    from PIL import Image as PILImage

    if not frames:
        return
    h = max(f.shape[0] for f in frames)
    padded = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0))) for f in frames]
    # FASTOCTREE: median cut takes seconds per 640x480 frame on a busy CPU
    images = [PILImage.fromarray(f).quantize(colors=255, method=PILImage.Quantize.FASTOCTREE) for f in padded]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=True)


class DemoRunner:
    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.procs: list[_Process] = []
        self.driver: _Driver | None = None
        self.records: list[dict] = []
        self.frames: list[np.ndarray] = []
        self.rng = np.random.default_rng(cfg.script_seed)

    def _log(self, text: str) -> None:
        print(f"[demo] {text}", flush=True)

    def _check(self) -> None:
        for p in self.procs:
            p.check()

    def _env(self) -> dict:
        env = dict(os.environ)
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        if "ROS_DOMAIN_ID" not in env:  # keep this demo's topics apart from anything else running
            env["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ int(time.time())).randint(1, 100))
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("OMP_NUM_THREADS", str(max(1, self.cfg.threads)))
        return env

    def start(self) -> None:
        cfg = self.cfg
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        for old in list(self.out.glob("cmd_*.png")):
            old.unlink()
        env = self._env()
        os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
        self._log(f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}; starting sim_camera and refseg_node "
                  f"(logs in {self.out / 'logs'})")
        self.procs.append(_Process("sim_camera", _executable("sim_camera", "refseg_ros.ros.sim_camera") + [
            "--ros-args", "-p", f"rate_hz:={float(cfg.rate_hz)}", "-p", f"width:={int(cfg.width)}",
            "-p", f"height:={int(cfg.height)}", "-p", f"seed:={int(cfg.seed)}"], env, self.out / "logs"))
        # no checkpoint parameter = the node's default, the shipped checkpoint (an empty -p value does not parse)
        checkpoint = ["-p", f"checkpoint:={cfg.checkpoint}"] if cfg.checkpoint else []
        self.procs.append(_Process("refseg_node", _executable("refseg_node", "refseg_ros.ros.node") + [
            "--ros-args", "-p", "use_depth:=true", *checkpoint,
            "-p", f"num_threads:={int(cfg.threads)}", "-p", f"device:={cfg.device}",
            # reliable: best-effort 640x480 frames between processes are mostly lost in fragments
            "-p", "image_reliability:=reliable", "-p", "max_rate_hz:=5.0"], env, self.out / "logs"))
        self.driver = _Driver()
        d = self.driver
        t0 = time.monotonic()
        if not d.wait(lambda: d.truths, cfg.startup_timeout, self._check):
            raise DemoError(f"no ground truth from sim_camera within {cfg.startup_timeout:.0f} s")
        if not d.wait(lambda: d.command_pub.get_subscription_count() > 0, cfg.startup_timeout, self._check):
            raise DemoError(f"refseg_node did not become active within {cfg.startup_timeout:.0f} s")
        self._log(f"camera streaming and grounding node active after {time.monotonic() - t0:.1f} s")

    def _scene_truth(self, scene: int) -> dict:
        d = self.driver

        def latest():
            found = [t for t in d.truths if t["scene"] == scene]
            return found[-1] if found else None

        truth = d.wait(latest, self.cfg.result_timeout, self._check)
        if truth is None:
            raise DemoError(f"no ground truth for scene {scene}")
        return truth

    def _run_command(self, scene: int, truth: dict, cmd: ScriptedCommand) -> None:
        from refseg_ros.data.sim_scene import decode_instances
        from refseg_ros.ros.images import imgmsg_to_numpy, to_rgb8

        d = self.driver
        since = _stamp_ns(truth["stamp"])
        n_before = len(d.results)
        sent = d.say(cmd.text)

        def first():
            for received, array in d.results[n_before:]:
                if array.command == cmd.text and _stamp_ns(array.header.stamp) >= since:
                    return received, array
            return None

        got = d.wait(first, self.cfg.result_timeout, self._check)
        if got is None:
            raise DemoError(f"no result for {cmd.text!r} within {self.cfg.result_timeout:.0f} s")
        received, array = got
        latency = received - sent
        if any(g.found and not g.has_position for g in array.results):
            # its depth frame had not arrived in time (a busy CPU): the static scene's next result
            # gives the same masks, with positions; the latency stays that of the first result
            grace = max(2.0, 3.0 * float(array.processing_time))

            def with_positions():
                for _, later in d.results[n_before:]:
                    if later.command == cmd.text and _stamp_ns(later.header.stamp) > _stamp_ns(array.header.stamp) \
                            and all(g.has_position or not g.found for g in later.results):
                        return later
                return None

            array = d.wait(with_positions, grace, self._check) or array
        results = _decode_results(array)
        instances = decode_instances(truth)
        scored = []
        for p, r in zip(cmd.phrases, results):
            s = scoring.score_phrase(r.mask, r.box, r.position, instances == p.target + 1,
                                     truth["objects"][p.target])
            s.update(expression=p.expression, parsed_expression=r.expression, type=p.type, target=p.target,
                     target_object=" ".join(str(truth["objects"][p.target][k]) for k in ("size", "colour", "category")),
                     score=r.score, found=r.found, position=r.position,
                     truth_position=truth["objects"][p.target]["position_cam"])
            scored.append(s)
        if len(results) != len(cmd.phrases):
            raise DemoError(f"{cmd.text!r}: {len(results)} results for {len(cmd.phrases)} expressions "
                            f"({[r.expression for r in results]})")
        index = len(self.records) + 1
        record = {"index": index, "scene": scene, "seed": truth["seed"], "text": cmd.text,
                  "expressions": [r.expression for r in results], "latency_s": latency,
                  "processing_time_s": float(array.processing_time), "phrases": scored}
        self.records.append(record)
        frame = d.frame_for(array.header.stamp)
        rgb = to_rgb8(imgmsg_to_numpy(frame), frame.encoding) if frame is not None else None
        if rgb is None:  # the frame left the cache: any frame of the same view looks the same
            rgb = self._any_frame(since)
        drawn = _draw(rgb, results, truth, cmd, scored, latency, index)
        self._save(drawn, self.out / f"cmd_{index:02d}.png")
        self.frames.append(drawn)
        ious = ", ".join(f"{s['iou']:.2f}" for s in scored)
        self._log(f"{index:2d}. {cmd.text!r} -> {record['expressions']}: IoU {ious}, {latency:.2f} s")

    def _any_frame(self, since: int) -> np.ndarray:
        from refseg_ros.ros.images import imgmsg_to_numpy, to_rgb8

        d = self.driver
        frame = d.wait(lambda: next((f for s, f in reversed(d.frames.items())
                                     if s[0] * 1_000_000_000 + s[1] >= since), None), 10.0, self._check)
        if frame is None:
            raise DemoError("no camera frame of the current scene received")
        return to_rgb8(imgmsg_to_numpy(frame), frame.encoding)

    @staticmethod
    def _save(rgb: np.ndarray, path: Path) -> None:
        import cv2

        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise DemoError(f"could not write {path}")

    def _stop(self, scene: int, truth: dict) -> dict:
        d = self.driver
        sent = d.say(STOP_COMMAND)
        # a frame already being grounded when "stop" arrived is still published: let it through
        slowest = max([r["processing_time_s"] for r in self.records] or [0.5])
        time.sleep(0.5 + 2.0 * slowest)
        n = len(d.results)
        time.sleep(self.cfg.stop_quiet_s)
        self._check()
        after = len(d.results) - n
        self._log(f"{len(self.records) + 1:2d}. 'stop' -> {after} results in the {self.cfg.stop_quiet_s:.1f} s after it")
        rgb = self._any_frame(_stamp_ns(truth["stamp"]))
        drawn = _caption(rgb, [f"{len(self.records) + 1}. \"{STOP_COMMAND}\"",
                               f"   command cleared: {after} results in the {self.cfg.stop_quiet_s:.1f} s after it"])
        self._save(drawn, self.out / f"cmd_{len(self.records) + 1:02d}.png")
        self.frames.append(drawn)
        return {"text": STOP_COMMAND, "scene": scene, "results_after_stop": after, "sent": sent}

    def run(self) -> dict:
        cfg = self.cfg
        t_start = time.monotonic()
        self.start()
        covered: set[str] = set()
        stop = {}
        for scene in range(cfg.scenes):
            if scene > 0:
                self._log(f"reshuffle: {self.driver.call_reshuffle(cfg.result_timeout)}")
            truth = self._scene_truth(scene)
            order = [k for k in TYPES if k not in covered] + [k for k in TYPES if k in covered]
            multi = scene == min(1, cfg.scenes - 1)
            commands = plan_scene(truth["objects"], truth["width"], self.rng, cfg.commands_per_scene, order,
                                  multi=multi)
            self._log(f"scene {scene} (seed {truth['seed']}): {len(truth['objects'])} objects, "
                      f"{len(commands)} commands")
            for cmd in commands:
                self._run_command(scene, truth, cmd)
                covered |= {p.type for p in cmd.phrases}
            if scene == cfg.scenes - 1:
                stop = self._stop(scene, truth)
        meta = {"scenes": cfg.scenes, "resolution": f"{cfg.width}x{cfg.height}",
                "checkpoint": cfg.checkpoint or "shipped (refseg_ros/checkpoints/tabletop.safetensors)",
                "node threads": cfg.threads, "wall time (s)": round(time.monotonic() - t_start, 1)}
        summary = scoring.summarize(self.records, stop=stop, meta=meta)
        scoring.write_summary(summary, self.out)
        t0 = time.monotonic()
        _write_gif(self.frames, self.out / "demo.gif", cfg.gif_frame_ms)
        self._log(f"wrote {self.out / 'demo.gif'} ({len(self.frames)} frames) in {time.monotonic() - t0:.1f} s")
        return summary

    def close(self) -> None:
        t0 = time.monotonic()
        for p in reversed(self.procs):  # Ctrl-C to both first: they shut down in parallel
            p.interrupt()
        if self.driver is not None:
            try:
                self.driver.close()
            except Exception:  # noqa: BLE001
                pass
        codes = {p.name: p.stop() for p in reversed(self.procs)}
        if self.procs:
            self._log(f"stopped {', '.join(f'{k} (exit {v})' for k, v in codes.items())} "
                      f"in {time.monotonic() - t0:.1f} s")


def run_demo(cfg: DemoConfig) -> dict:
    """Run the whole demo; returns the summary (also written to ``cfg.out``)."""
    runner = DemoRunner(cfg)
    try:
        return runner.run()
    finally:
        runner.close()
