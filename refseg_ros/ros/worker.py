"""The grounding node's model side: the predictor, the worker thread, and one frame's publishing.

The node's executor thread only stores frames and commands (``Scheduler``); this thread takes the
newest due frame, grounds the active command on it, and publishes the results unless the command
changed or was stopped meanwhile. The ``ground`` service shares the predictor through
:meth:`GroundingWorker.ground`; one lock keeps the two from running the model at once.

One thread per node, always. It is started on the first activation and lives until :meth:`stop`
(process exit); deactivation only *pauses* it: the running frame is abandoned (its results are
never published, even after a quick re-activation) and the executor never waits for the model.
An *epoch*, bumped on every activation and deactivation, marks which frames may still publish.
No exception ends the thread: each is logged, counted, and the loop goes on.
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
from refseg_ros.ros.scheduler import MAX_WAIT_S, Job, Scheduler
from refseg_ros.ros.sync import ApproximateMatcher, stamp_to_ns

#: How long :meth:`GroundingWorker.stop` (process exit) waits for the thread to finish its frame.
JOIN_TIMEOUT_S = 2.0


class _Abandoned:
    """``is_set()`` once the worker quits or the epoch a job started in is over (an Event look-alike)."""

    def __init__(self, worker: "GroundingWorker", epoch: int) -> None:
        self._worker, self._epoch = worker, epoch

    def is_set(self) -> bool:
        return self._worker._quit.is_set() or self._worker._epoch != self._epoch


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
        self._refs = threading.Lock()  # predictor and post: swapped without waiting for a running frame
        self._model = threading.Lock()  # one model run at a time (stream frames and service calls)
        self._state = threading.Lock()  # thread, epoch, active, quit
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()
        self._epoch = 0
        self._active = False
        self._busy_since: float | None = None
        self._first_traceback_logged = False

    # ---- model -------------------------------------------------------------------------------------
    def set_predictor(self, predictor) -> None:
        """Swap the predictor; a frame running on the old one finishes on it (the executor never waits)."""
        with self._refs:
            self.predictor = predictor
        self.update_post()

    def update_post(self) -> None:
        """Rebuild the post-processing from the threshold parameters (negative mask = checkpoint's)."""
        with self._refs:
            if self.predictor is None:
                self.post = None
                return
            mask = float(self.params["mask_threshold"])
            found = float(self.params["found_threshold"])
            self.post = self.predictor.post.with_(mask_threshold=mask if mask >= 0 else None,
                                                  found_threshold=found if found >= 0 else None)

    def understood(self, expression: str) -> str:
        """``expression`` as the loaded model reads it (typos fixed); as given before configure."""
        with self._refs:
            predictor = self.predictor
        return expression if predictor is None else predictor.understood(expression)

    def ground(self, rgb: np.ndarray, expressions: tuple[str, ...], stream: bool, depth=None):
        """Results for ``expressions`` on ``rgb``: the stream's active command (``stream``) or a
        one-off; ``depth`` (``model.ground_plane.DepthFrame`` or None): the frame's depth, with
        which "in front of"/"behind" are checked along the table."""
        with self._refs:
            predictor, post = self.predictor, self.post
        if predictor is None:
            raise RuntimeError("model is not loaded (node not configured)")
        with self._model:
            if stream:
                predictor.set_command(expressions)  # no work when the command is unchanged
                return predictor.predict(rgb, post, depth)
            return predictor.predict_once(rgb, expressions, post, depth)

    def max_pixels(self) -> int:
        """The largest colour or depth image grounded (``max_image_pixels``)."""
        return int(self.params.get("max_image_pixels", M.MAX_IMAGE_PIXELS))

    def depth_limits(self) -> M.DepthLimits:
        p = self.params
        return M.DepthLimits(float(p["depth_min"]), float(p["depth_max"]), int(p["depth_min_valid_pixels"]))

    # ---- thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Ground from now on (activate): resume the thread, or start it if there is none."""
        with self._state:
            self._epoch += 1
            self._active = True
            self._quit.clear()
            if self._thread is None:  # set to None by the thread itself, under this lock, as it exits
                self._thread = threading.Thread(target=self._loop, name="refseg_worker", daemon=True)
                self._thread.start()
        self.scheduler.notify()

    def pause(self) -> None:
        """Stop grounding (deactivate) without waiting: a running frame is abandoned, never published.

        Takes the scheduler's publish lock, so a publish in progress finishes first and none follows.
        """
        with self.scheduler.publish_lock, self._state:
            self._epoch += 1
            self._active = False
        self.scheduler.notify()

    def stop(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """End the thread (node exit): pause, then wait up to ``timeout`` for it to leave its frame."""
        self.pause()
        with self._state:
            self._quit.set()
            thread = self._thread
        self.scheduler.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)  # a daemon: one still busy exits after its frame, unpublished

    def health(self) -> tuple[bool, float]:
        """(the thread is running, seconds the current frame has been running; 0 when idle)."""
        with self._state:
            alive = self._thread is not None and self._thread.is_alive()
        since = self._busy_since
        return alive, (time.monotonic() - since) if since is not None else 0.0

    def _loop(self) -> None:
        while True:
            with self._state:
                if self._quit.is_set():
                    self._thread = None
                    return
                epoch, active = self._epoch, self._active
            job, published = None, False
            try:
                if not active:
                    self.scheduler.wait(MAX_WAIT_S)  # start() notifies
                    continue
                job = self.scheduler.wait_for_job(_Abandoned(self, epoch))
                if job is None:
                    continue
                self._busy_since = time.monotonic()
                published = self._process(job, epoch)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one frame
                self._report(exc)
            finally:
                self._busy_since = None
                if job is not None:
                    try:
                        self.scheduler.done(job, published)  # never retry the same frame
                    except Exception as exc:  # noqa: BLE001
                        self._report(exc)

    def _report(self, exc: Exception) -> None:
        if self._quit.is_set() or not self.context_ok():
            return  # shutting down: publishers are gone, nothing to report
        try:
            self.stats.error(f"{type(exc).__name__}: {exc}")
            if not self._first_traceback_logged:
                self._first_traceback_logged = True
                self.logger.error(f"grounding failed: {exc!r}\n{traceback.format_exc()}")
            else:
                self.logger.error(f"grounding failed: {exc!r}", throttle_duration_sec=5.0)
        except Exception:  # noqa: BLE001 - a broken logger must not end the loop either
            pass
        time.sleep(0.01)  # a fault on every iteration must not spin a core

    def _publish(self, job: Job, epoch: int, pubs: dict, messages: list) -> bool:
        """Publish ``messages`` if the job's command and epoch are still current (atomically)."""
        with self.scheduler.publish_lock:
            if not self._current(job, epoch) or self.pubs is not pubs:
                return False
            for pub, msg in messages:
                pub.publish(msg)
            return True

    def _current(self, job: Job, epoch: int) -> bool:
        return self._epoch == epoch and bool(self.pubs) and self.scheduler.is_current(job.command)

    def _process(self, job: Job, epoch: int) -> bool:
        """Ground one frame and publish; False if nothing was published."""
        t0 = time.perf_counter()
        header, cmd, p = job.frame.msg.header, job.command, self.params
        try:
            rgb = M.decode_colour(job.frame.msg, max_pixels=self.max_pixels())
        except ImageConversionError as exc:
            self.stats.bad_image(str(exc))
            self.warn(f"dropping image: {exc}", None)
            return False
        depth = None
        if p["use_depth"]:
            depth = M.match_depth(self.matcher, stamp_to_ns(header.stamp), float(p["sync_slop"]),
                                  wait=self.scheduler.wait, stopped=_Abandoned(self, epoch).is_set,
                                  max_pixels=self.max_pixels())
            if depth.problem:
                self.warn(f"3D positions unavailable: {depth.problem}", None)
        results = self.ground(rgb, cmd.expressions, stream=True, depth=depth.frame() if depth is not None else None)
        pubs = self.pubs
        if not self._current(job, epoch):
            return False  # deactivated, cleaned up, or the command changed or was stopped meanwhile
        # Encoding masks costs real time at full resolution: skip it when no one reads the topic.
        fill = p["publish_masks"] and pubs["groundings"].get_subscription_count() > 0
        out = M.grounding_array(header, cmd.text, results, depth, fill, self.depth_limits())
        for note, key in out.notes:
            self.warn(note, key)
        out.array.processing_time = float(time.perf_counter() - t0)
        # The last check and each publish under the lock a stop, a new command and a deactivation
        # also take: a result either goes out before the change is applied or not at all.
        target = M.target(header, out.array) if "target" in pubs else None
        if not self._publish(job, epoch, pubs, [(pubs["groundings"], out.array)]
                             + ([(pubs["target"], target)] if target is not None else [])):
            return False
        if out.not_found:
            self.stats.count("not_found", out.not_found)
        # Drawing and encoding cost real time: only for someone listening, after the results a robot
        # acts on, outside the lock (so a stop never waits for them), then checked again.
        extra = []
        if pubs["mask"].get_subscription_count() > 0:
            extra.append((pubs["mask"], M.union_mask(header, rgb.shape[:2], out.found_masks)))
        if pubs["overlay"].get_subscription_count() > 0:
            extra.append((pubs["overlay"], M.overlay(header, rgb, results, float(p["overlay_alpha"]))))
        if "markers" in pubs and pubs["markers"].get_subscription_count() > 0:
            extra.append((pubs["markers"], M.markers(header, out.array, float(p["marker_scale"]))))
        if extra:
            self._publish(job, epoch, pubs, extra)
        self.stats.processed(time.perf_counter() - t0, time.monotonic() - job.frame.received)
        return True
