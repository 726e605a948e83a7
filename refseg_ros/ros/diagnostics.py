"""The grounding node's counters and its ``/diagnostics`` status (one ``DiagnosticStatus``)."""
from __future__ import annotations

import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from refseg_ros.ros.scheduler import MAX_FRAME_AGE_S
from refseg_ros.utils.timing import LatencyWindow

COUNTERS = ("received", "processed", "dropped", "bad_images", "errors", "commands", "bad_commands",
            "superseded_commands", "service_calls", "service_busy", "not_found")
#: Window over which ``rate_hz`` is measured.
RATE_WINDOW_S = 5.0
#: A command is active but no frame for this long: the status warns. The worker's own bound on a
#: frame's age, so "no images arriving" means exactly "nothing the worker would ground".
NO_IMAGES_S = MAX_FRAME_AGE_S
#: An error in the worker loop within this many seconds makes the status ERROR.
ERROR_WINDOW_S = 10.0
#: One frame running longer than this: the worker is reported stalled (ERROR). Far above any frame
#: the size limits admit on a working machine.
STALLED_S = 60.0


class NodeStats:
    """Thread-safe counters, latency windows and the recent processing rate."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self.latency = LatencyWindow(200)  # decode + model + publish
        self.age = LatencyWindow(200)  # frame received -> results published
        self._processed: list[float] = []
        self.last_error: tuple[float, str] | None = None  # (clock time, what failed)
        self.last_bad_image: tuple[float, str] | None = None  # (clock time, why it was refused)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def error(self, what: str) -> None:
        """An exception in the worker loop: counted, and remembered for the status."""
        with self._lock:
            self._counts["errors"] += 1
            self.last_error = (self._clock(), what[:200])

    def bad_image(self, why: str) -> None:
        """A frame refused (undecodable, over the size cap, ...): counted, and why remembered."""
        with self._lock:
            self._counts["bad_images"] += 1
            self.last_bad_image = (self._clock(), why[:200])

    def recent_bad_image(self, window_s: float) -> str | None:
        """Why the last frame was refused, if within ``window_s``."""
        with self._lock:
            last = self.last_bad_image
        return last[1] if last is not None and self._clock() - last[0] <= window_s else None

    def recent_error(self, window_s: float = ERROR_WINDOW_S) -> str | None:
        """What failed last, if within ``window_s``."""
        with self._lock:
            last = self.last_error
        return last[1] if last is not None and self._clock() - last[0] <= window_s else None

    def processed(self, latency_s: float, age_s: float) -> None:
        now = self._clock()
        with self._lock:
            self._counts["processed"] += 1
            self._processed = [t for t in self._processed if now - t < RATE_WINDOW_S] + [now]
        self.latency.add(latency_s)
        self.age.add(age_s)

    def snapshot(self) -> tuple[dict[str, int], float]:
        """(counters, results per second over the last ``RATE_WINDOW_S``)."""
        now = self._clock()
        with self._lock:
            rate = len([t for t in self._processed if now - t < RATE_WINDOW_S]) / RATE_WINDOW_S
            return dict(self._counts), rate


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 1000:.1f}"


def grounding_status(name: str, state: str, model: str, device: str, command, stats: NodeStats,
                     last_frame_age_s: float, max_rate_hz: float, continuous: bool,
                     worker: tuple[bool, float] = (True, 0.0), no_images_s: float = NO_IMAGES_S) -> DiagnosticStatus:
    """The node's status: level and message from its state, with every counter as a key/value.

    ``worker``: (its thread is running, seconds its current frame has been running);
    ``no_images_s``: the newest frame older than this (and a command active) warns.
    """
    counts, rate = stats.snapshot()
    status = DiagnosticStatus()
    status.name = f"{name}: grounding"
    status.hardware_id = device
    values = {
        "lifecycle_state": state,
        "model": model,
        "device": device,
        "command": command.text if command else "",
        "expressions": "; ".join(command.expressions) if command else "",
        "frames_received": counts["received"],
        "frames_processed": counts["processed"],
        "frames_dropped": counts["dropped"],
        "bad_images": counts["bad_images"],
        "errors": counts["errors"],
        "commands": counts["commands"],
        "bad_commands": counts["bad_commands"],
        "superseded_commands": counts["superseded_commands"],
        "service_calls": counts["service_calls"],
        "service_busy": counts["service_busy"],
        # expressions answered "not found" on published frames (a frame with two counts two)
        "not_found": counts["not_found"],
        "worker_alive": worker[0],
        "worker_busy_s": f"{worker[1]:.1f}",
        "rate_hz": f"{rate:.2f}",
        "latency_p50_ms": _ms(stats.latency.percentile(50)),
        "latency_p95_ms": _ms(stats.latency.percentile(95)),
        "receive_to_publish_p50_ms": _ms(stats.age.percentile(50)),
        "receive_to_publish_p95_ms": _ms(stats.age.percentile(95)),
        "max_rate_hz": max_rate_hz,
        "continuous": continuous,
    }
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    recent = stats.recent_error()
    if state != "active":
        status.level, status.message = DiagnosticStatus.WARN, f"{state}: not grounding"
    elif not worker[0]:
        status.level, status.message = DiagnosticStatus.ERROR, "worker thread is not running"
    elif worker[1] > STALLED_S:
        status.level, status.message = DiagnosticStatus.ERROR, f"worker stalled: one frame for {worker[1]:.0f} s"
    elif recent is not None:
        status.level, status.message = DiagnosticStatus.ERROR, f"grounding failed: {recent}"
    elif command is not None and 0 < no_images_s < last_frame_age_s:
        refused = stats.recent_bad_image(max(no_images_s, 1.0))
        status.level = DiagnosticStatus.WARN
        status.message = (f"images arriving but refused ({counts['bad_images']} bad_images; last: {refused})"
                          if refused else "command active but no images arriving")
    elif command is None:
        status.level, status.message = DiagnosticStatus.OK, "idle: waiting for a command"
    else:
        status.level, status.message = DiagnosticStatus.OK, f"grounding at {rate:.1f} Hz"
    return status
