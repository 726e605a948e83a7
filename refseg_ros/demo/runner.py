"""``refseg demo``: the simulated camera and the grounding node as processes, scripted commands
spoken over DDS, every result scored against the ground truth and drawn.

What a user would do by hand, automated: start ``sim_camera`` and ``refseg_node`` (shipped
checkpoint, ``use_depth:=true``), publish commands on ``command``, read ``groundings``. For each
scene (the ``reshuffle`` service moves on to the next), commands are generated from the scene's
ground truth (:mod:`refseg_ros.demo.script`); each is published, the first GroundingArray for it
from a frame of that scene is scored (:mod:`refseg_ros.demo.scoring`) and drawn. The last command
is "stop", after which no result may arrive. Artefacts in ``out``: ``cmd_NN.png`` per command,
``demo.gif``, ``summary.md``, ``summary.json`` and the two processes' logs under ``logs/``.

This module is the run itself; its pieces are :mod:`~refseg_ros.demo.config` (settings, the error),
:mod:`~refseg_ros.demo.processes` (the child processes), :mod:`~refseg_ros.demo.driver` (the demo's
own ROS node) and :mod:`~refseg_ros.demo.drawing` (the PNGs and the GIF).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from refseg_ros.demo import scoring
from refseg_ros.demo.config import DemoConfig, DemoError
from refseg_ros.demo.drawing import caption, draw_command, save_png, write_gif
from refseg_ros.demo.driver import DemoDriver, decode_results, group_by_expression, stamp_ns
from refseg_ros.demo.processes import ChildProcess, child_env, executable
from refseg_ros.demo.script import STOP_COMMAND, ScriptedCommand, plan_absent, plan_all_of, plan_scene
from refseg_ros.language.semantics import TYPES

__all__ = ["DemoConfig", "DemoError", "run_demo"]


class DemoRunner:
    """One demo run: start the processes, play every scene's commands, score, draw, summarise."""

    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.procs: list[ChildProcess] = []
        self.driver: DemoDriver | None = None
        self.records: list[dict] = []
        self.frames: list[np.ndarray] = []
        self.rng = np.random.default_rng(cfg.script_seed)
        # the absent-object and every-object commands draw from their own stream, so the other
        # commands of a seed stay what they were before these were added
        self.extra_rng = np.random.default_rng([cfg.script_seed, 1])

    def _log(self, text: str) -> None:
        print(f"[demo] {text}", flush=True)

    def _check(self) -> None:
        for p in self.procs:
            p.check()

    def start(self) -> None:
        cfg = self.cfg
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        for old in list(self.out.glob("cmd_*.png")):
            old.unlink()
        env = child_env(cfg.threads)
        os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
        self._log(f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}; starting sim_camera and refseg_node "
                  f"(logs in {self.out / 'logs'})")
        self.procs.append(ChildProcess("sim_camera", executable("sim_camera", "refseg_ros.ros.sim_camera") + [
            "--ros-args", "-p", f"rate_hz:={float(cfg.rate_hz)}", "-p", f"width:={int(cfg.width)}",
            "-p", f"height:={int(cfg.height)}", "-p", f"seed:={int(cfg.seed)}"], env, self.out / "logs"))
        # no checkpoint parameter = the node's default, the shipped checkpoint (an empty -p value does not parse)
        checkpoint = ["-p", f"checkpoint:={cfg.checkpoint}"] if cfg.checkpoint else []
        self.procs.append(ChildProcess("refseg_node", executable("refseg_node", "refseg_ros.ros.node") + [
            "--ros-args", "-p", "use_depth:=true", *checkpoint,
            "-p", f"num_threads:={int(cfg.threads)}", "-p", f"device:={cfg.device}",
            # reliable: best-effort 640x480 frames between processes are mostly lost in fragments
            "-p", "image_reliability:=reliable", "-p", "max_rate_hz:=5.0"], env, self.out / "logs"))
        self.driver = DemoDriver()
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
        since = stamp_ns(truth["stamp"])
        n_before = len(d.results)
        sent = d.say(cmd.text)

        def first():
            for received, array in d.results[n_before:]:
                if array.command == cmd.text and stamp_ns(array.header.stamp) >= since:
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
                    if later.command == cmd.text and stamp_ns(later.header.stamp) > stamp_ns(array.header.stamp) \
                            and all(g.has_position or not g.found for g in later.results):
                        return later
                return None

            array = d.wait(with_positions, grace, self._check) or array
        results = decode_results(array)
        instances = decode_instances(truth)
        groups = group_by_expression(results)
        if [e for e, _ in groups] != [p.expression for p in cmd.phrases]:
            raise DemoError(f"{cmd.text!r}: results for {[e for e, _ in groups]}, expected one answer for each of "
                            f"{[p.expression for p in cmd.phrases]}")
        scored = []
        for p, (expr, answers) in zip(cmd.phrases, groups):
            meant = p.targets or ([p.target] if p.target >= 0 else [])
            s = scoring.score_answers(p.type, meant, answers, instances, truth["objects"])
            s.update(expression=p.expression, parsed_expression=expr, type=p.type, target=p.target,
                     targets=meant, score=max(r.score for r in answers),
                     target_object="; ".join(" ".join(str(truth["objects"][t][k]) for k in ("size", "colour", "category"))
                                             for t in meant),
                     position=answers[0].position,
                     truth_position=truth["objects"][p.target]["position_cam"] if p.target >= 0 else None)
            scored.append(s)
        index = len(self.records) + 1
        record = {"index": index, "scene": scene, "seed": truth["seed"], "text": cmd.text,
                  "expressions": [e for e, _ in groups], "answers": len(results), "latency_s": latency,
                  "processing_time_s": float(array.processing_time), "phrases": scored}
        self.records.append(record)
        frame = d.frame_for(array.header.stamp)
        rgb = to_rgb8(imgmsg_to_numpy(frame), frame.encoding) if frame is not None else None
        if rgb is None:  # the frame left the cache: any frame of the same view looks the same
            rgb = self._any_frame(since)
        drawn = draw_command(rgb, results, truth, cmd, scored, latency, index)
        save_png(drawn, self.out / f"cmd_{index:02d}.png")
        self.frames.append(drawn)
        ious = ", ".join(scoring.verdict(s) for s in scored)
        self._log(f"{index:2d}. {cmd.text!r} -> {record['expressions']}: {ious}, {latency:.2f} s")

    def _any_frame(self, since: int) -> np.ndarray:
        from refseg_ros.ros.images import imgmsg_to_numpy, to_rgb8

        d = self.driver
        frame = d.wait(lambda: next((f for s, f in reversed(d.frames.items())
                                     if s[0] * 1_000_000_000 + s[1] >= since), None), 10.0, self._check)
        if frame is None:
            raise DemoError("no camera frame of the current scene received")
        return to_rgb8(imgmsg_to_numpy(frame), frame.encoding)

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
        rgb = self._any_frame(stamp_ns(truth["stamp"]))
        drawn = caption(rgb, [f"{len(self.records) + 1}. \"{STOP_COMMAND}\"",
                               f"   command cleared: {after} results in the {self.cfg.stop_quiet_s:.1f} s after it"])
        save_png(drawn, self.out / f"cmd_{len(self.records) + 1:02d}.png")
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
            # one object that is not there, on the first scene; every object of a kind, on the first
            # scene that has two or three of a kind in view
            extra = [plan_absent(truth["objects"], self.extra_rng) if scene == 0 else None,
                     plan_all_of(truth["objects"], self.extra_rng) if "multi_target" not in covered else None]
            commands += [c for c in extra if c is not None]
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
        write_gif(self.frames, self.out / "demo.gif", cfg.gif_frame_ms)
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
