"""What the grounding worker does next: the newest frame, the active command, the rate limit.

Pure Python (threads, no ROS), so the node's timing rules are unit-tested on their own:

- **Newest-frame slot.** A new frame replaces an unprocessed one (a *drop*); the worker always
  takes the newest, so results are never more than one processing time behind the camera.
- **Command generations.** Every applied command (or stop) gets a new generation. A command
  carries its arrival sequence number; an older one never replaces a newer one, so the latest
  command wins however the callbacks interleave. ``is_current`` tells the worker whether the
  command it grounded is still the one in force, right before it publishes.
- **Rate.** A job starts at most every ``1 / max_rate_hz`` seconds (0 = as fast as the worker
  runs). ``continuous=False`` grounds one frame per command. A rate change and :meth:`clear`
  (the node's inputs went away: deactivate, cleanup) start a fresh interval, so no setting a
  user has since replaced can keep the worker waiting.
- **Fresh frames only.** A frame received more than ``max_frame_age_s`` ago is never grounded:
  after a camera falls silent, a new command waits for a new frame instead of being answered on
  a picture of the past (the diagnostics' "no images arriving" uses the same bound).
- **Publishing is atomic with command changes.** The worker publishes while holding
  :attr:`Scheduler.publish_lock` and checks :meth:`Scheduler.is_current` inside it;
  :meth:`Scheduler.apply_command` takes the same lock, so once a stop or a new command has been
  applied, no result for the old one goes out.

A frame and command pair is handed out once: a frame that failed is not retried, and in single-shot
mode only a frame that was grounded uses up its command.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

#: Longest single wait, so a very low rate (or a clock jump) never asks ``Condition.wait`` for an
#: overflowing timeout, and a new rate or command is seen promptly.
MAX_WAIT_S = 1.0
#: Frames older than this (s since they were received) are not grounded. Two seconds is far longer
#: than a live camera's frame interval and shorter than anyone's patience with a stale answer.
MAX_FRAME_AGE_S = 2.0


@dataclass(frozen=True)
class ActiveCommand:
    """A parsed command in force: its generation, raw text and expressions."""

    generation: int
    text: str
    expressions: tuple[str, ...]


@dataclass(frozen=True)
class Frame:
    seq: int
    msg: object  # an Image or CompressedImage; the scheduler never looks inside
    received: float  # the scheduler's clock


@dataclass(frozen=True)
class Job:
    frame: Frame
    command: ActiveCommand


class Scheduler:
    """Thread-safe newest-frame slot and command state for one worker.

    Args:
        max_rate_hz: most jobs started per second; 0 = no limit.
        continuous: True grounds every new frame; False one frame per command.
        clock: monotonic seconds (injectable for tests).
        max_frame_age_s: frames older than this are not grounded; 0 = any age.
    """

    def __init__(self, max_rate_hz: float = 0.0, continuous: bool = True,
                 clock: Callable[[], float] = time.monotonic, max_frame_age_s: float = MAX_FRAME_AGE_S) -> None:
        self._clock = clock
        self._cv = threading.Condition()
        #: Held while results are published and while a command changes (see the module docstring).
        #: Order: ``publish_lock`` before the internal condition, never the other way round.
        self.publish_lock = threading.Lock()
        self.max_frame_age_s = float(max_frame_age_s)
        self._rate = 0.0
        self._continuous = bool(continuous)
        self._frame: Frame | None = None
        self._frame_seq = 0
        self._taken_seq = 0
        self._command: ActiveCommand | None = None
        self._generation = 0
        self._arrivals = 0
        self._applied_arrival = 0
        self._last_done: tuple[int, int] = (0, 0)  # (frame seq, generation)
        self._last_grounded_generation = 0
        self._next_start = 0.0
        self.set_rate(max_rate_hz)

    # ---- settings --------------------------------------------------------------------------------
    def set_rate(self, max_rate_hz: float) -> None:
        """Change the rate limit; the next job may start at once."""
        with self._cv:
            self._rate = max(0.0, float(max_rate_hz))
            self._next_start = 0.0
            self._cv.notify_all()

    def set_continuous(self, continuous: bool) -> None:
        with self._cv:
            self._continuous = bool(continuous)
            self._cv.notify_all()

    # ---- inputs ----------------------------------------------------------------------------------
    def put_frame(self, msg: object) -> bool:
        """Make ``msg`` the newest frame; True when it replaced a frame that was still due (a drop)."""
        with self._cv:
            old = self._frame
            dropped = old is not None and old.seq > self._taken_seq and self._has_work_locked(old)
            self._frame_seq += 1
            self._frame = Frame(self._frame_seq, msg, self._clock())
            self._cv.notify_all()
            return dropped

    def next_arrival(self) -> int:
        """A sequence number for a command that has just arrived (before it is parsed)."""
        with self._cv:
            self._arrivals += 1
            return self._arrivals

    def apply_command(self, text: str, expressions: tuple[str, ...] | None,
                      arrival: int | None = None) -> ActiveCommand | None | bool:
        """Put a parsed command in force (``expressions`` None or empty = stop).

        Returns the new :class:`ActiveCommand` (None for a stop), or False when a command that
        arrived later was applied already (this one is superseded and changes nothing).
        """
        with self.publish_lock, self._cv:  # waits for a publish in progress to finish
            if arrival is None:
                self._arrivals += 1
                arrival = self._arrivals
            if arrival < self._applied_arrival:
                return False
            self._applied_arrival = arrival
            self._generation += 1
            self._command = (ActiveCommand(self._generation, text, tuple(expressions))
                             if expressions else None)
            self._cv.notify_all()
            return self._command

    def clear(self) -> None:
        """Forget the newest frame and start a fresh rate interval (inputs went away); the command stays."""
        with self._cv:
            self._frame = None
            self._next_start = 0.0
            self._cv.notify_all()

    def notify(self) -> None:
        """Wake a waiting worker (something it waits for may have changed)."""
        with self._cv:
            self._cv.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until notified or ``timeout`` (for callers polling for a related event)."""
        with self._cv:
            self._cv.wait(timeout=min(max(0.0, timeout), MAX_WAIT_S))

    # ---- state -----------------------------------------------------------------------------------
    @property
    def command(self) -> ActiveCommand | None:
        with self._cv:
            return self._command

    @property
    def newest_frame(self) -> Frame | None:
        with self._cv:
            return self._frame

    def is_current(self, command: ActiveCommand) -> bool:
        """True while ``command`` is still the one in force (no newer command or stop since)."""
        with self._cv:
            return self._command is not None and self._command.generation == command.generation

    # ---- the worker's side -----------------------------------------------------------------------
    def _has_work_locked(self, frame: Frame) -> bool:
        cmd = self._command
        if cmd is None:
            return False
        fresh = (frame.seq, cmd.generation) != self._last_done
        if not self._continuous:
            return fresh and self._last_grounded_generation != cmd.generation
        return fresh

    def _next_locked(self) -> Job | float | None:
        frame, cmd = self._frame, self._command
        if frame is None or cmd is None or not self._has_work_locked(frame):
            return None
        now = self._clock()
        if self.max_frame_age_s > 0 and now - frame.received > self.max_frame_age_s:
            return None  # a picture of the past: wait for the camera (put_frame wakes the worker)
        wait = self._next_start - now
        if wait > 0:
            return wait
        self._next_start = now + (1.0 / self._rate if self._rate > 0 else 0.0)
        self._taken_seq = frame.seq
        return Job(frame, cmd)

    def next_job(self) -> Job | float | None:
        """A job, or seconds until one may start (rate limit), or None when there is nothing to do."""
        with self._cv:
            return self._next_locked()

    def wait_for_job(self, stop: threading.Event, idle_timeout: float = 0.5) -> Job | None:
        """Block until a job is due (returned) or ``stop`` is set / ``idle_timeout`` passed (None)."""
        with self._cv:
            if stop.is_set():
                return None
            job = self._next_locked()
            if isinstance(job, Job):
                return job
            self._cv.wait(timeout=min(job if job is not None else idle_timeout, MAX_WAIT_S))
            if stop.is_set():
                return None
            job = self._next_locked()
            return job if isinstance(job, Job) else None

    def done(self, job: Job, grounded: bool) -> None:
        """``job`` is finished; ``grounded``: results were published (single-shot uses the command)."""
        with self._cv:
            self._last_done = (job.frame.seq, job.command.generation)
            if grounded:
                self._last_grounded_generation = job.command.generation
