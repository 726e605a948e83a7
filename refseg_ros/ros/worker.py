"""The grounding node's model side: the predictor, the worker thread, and one frame's publishing.

The node's executor thread only stores frames and commands (``Scheduler``); this thread takes the
newest due frame, grounds the active command on it, and publishes the results unless the command
changed or was stopped meanwhile. The ``ground`` service shares the predictor through
:meth:`GroundingWorker.ground`; one lock keeps the two from running the model at once.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable

import numpy as np

from refseg_ros.ros import messages as M
from refseg_ros.ros.diagnostics import NodeStats
from refseg_ros.ros.images import ImageConversionError
from refseg_ros.ros.scheduler import Job, Scheduler
from refseg_ros.ros.sync import ApproximateMatcher, stamp_to_ns

#: How long stopping waits for the thread to finish its frame.
JOIN_TIMEOUT_S = 10.0


class GroundingWorker:
    """Holds the predictor and runs the worker thread of one node.

    Args:
        scheduler, stats, matcher: the node's (shared with its callbacks).
        params: the node's live parameter values (read on every frame).
        logger: the node's logger; ``warn(message, key)``: its throttled warning.
        context_ok: False once ROS is shutting down (errors then are not reported).
    """

    def __init__(self, scheduler: Scheduler, stats: NodeStats, matcher: ApproximateMatcher, params: dict,
                 logger, warn: Callable[[str, str | None], None], context_ok: Callable[[], bool]) -> None:
        self.scheduler, self.stats, self.matcher, self.params = scheduler, stats, matcher, params
        self.logger, self.warn, self.context_ok = logger, warn, context_ok
        self.predictor = None
        self.post = None  # PostProcess: the checkpoint's, with the node's threshold parameters
        self.pubs: dict[str, object] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_traceback_logged = False

    # ---- model -------------------------------------------------------------------------------------
    def set_predictor(self, predictor) -> None:
        with self._lock:
            self.predictor = predictor
        self.update_post()

    def update_post(self) -> None:
        """Rebuild the post-processing from the threshold parameters (negative mask = checkpoint's)."""
        with self._lock:
            if self.predictor is None:
                self.post = None
                return
            mask = float(self.params["mask_threshold"])
            self.post = self.predictor.post.with_(mask_threshold=mask if mask >= 0 else None,
                                                  found_threshold=float(self.params["found_threshold"]))

    def ground(self, rgb: np.ndarray, expressions: tuple[str, ...], stream: bool):
        """Results for ``expressions`` on ``rgb``: the stream's active command (``stream``) or a one-off."""
        with self._lock:
            predictor, post = self.predictor, self.post
            if predictor is None:
                raise RuntimeError("model is not loaded (node not configured)")
            if stream:
                predictor.set_command(expressions)  # no work when the command is unchanged
                return predictor.predict(rgb, post)
            return predictor.predict_once(rgb, expressions, post)

    def depth_limits(self) -> M.DepthLimits:
        p = self.params
        return M.DepthLimits(float(p["depth_min"]), float(p["depth_max"]), int(p["depth_min_valid_pixels"]))

    # ---- thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="refseg_worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.scheduler.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=JOIN_TIMEOUT_S)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.scheduler.wait_for_job(self._stop)
            if job is None:
                continue
            grounded = False
            try:
                grounded = self._process(job)
            except Exception as exc:  # noqa: BLE001 - keep serving; log the first traceback once
                if self._stop.is_set() or not self.context_ok():
                    break  # shutting down: publishers are gone, nothing to report
                self.stats.count("errors")
                if not self._first_traceback_logged:
                    self._first_traceback_logged = True
                    self.logger.error(f"grounding failed: {exc!r}\n{traceback.format_exc()}")
                else:
                    self.warn(f"grounding failed: {exc!r}", f"err:{type(exc).__name__}")
            finally:
                self.scheduler.done(job, grounded)  # never retry the same frame

    def _process(self, job: Job) -> bool:
        """Ground one frame and publish; False if nothing was published."""
        t0 = time.perf_counter()
        header, cmd, p = job.frame.msg.header, job.command, self.params
        try:
            rgb = M.decode_colour(job.frame.msg)
        except ImageConversionError as exc:
            self.stats.count("bad_images")
            self.warn(f"dropping image: {exc}", None)
            return False
        depth = None
        if p["use_depth"]:
            depth = M.match_depth(self.matcher, stamp_to_ns(header.stamp), float(p["sync_slop"]),
                                  wait=self.scheduler.wait, stopped=self._stop.is_set)
            if depth.problem:
                self.warn(f"3D positions unavailable: {depth.problem}", None)
        results = self.ground(rgb, cmd.expressions, stream=True)
        pubs = self.pubs
        if not pubs or not self.scheduler.is_current(cmd):
            return False  # cleaned up, or the command changed or was stopped while this frame ran
        # Encoding masks costs real time at full resolution: skip it when no one reads the topic.
        fill = p["publish_masks"] and pubs["groundings"].get_subscription_count() > 0
        out = M.grounding_array(header, cmd.text, results, depth, fill, self.depth_limits())
        for note, key in out.notes:
            self.warn(note, key)
        out.array.processing_time = float(time.perf_counter() - t0)
        pubs["groundings"].publish(out.array)
        # Drawing and encoding cost real time: only for someone listening.
        if pubs["mask"].get_subscription_count() > 0:
            pubs["mask"].publish(M.union_mask(header, rgb.shape[:2], out.found_masks))
        if pubs["overlay"].get_subscription_count() > 0:
            pubs["overlay"].publish(M.overlay(header, rgb, results, float(p["overlay_alpha"])))
        if "target" in pubs and (point := M.target(header, out.array)) is not None:
            pubs["target"].publish(point)
        if "markers" in pubs and pubs["markers"].get_subscription_count() > 0:
            pubs["markers"].publish(M.markers(header, out.array, float(p["marker_scale"])))
        self.stats.processed(time.perf_counter() - t0, time.monotonic() - job.frame.received)
        return True
