"""The grounding node's counters and its ``/diagnostics`` status (one ``DiagnosticStatus``)."""
from __future__ import annotations

import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from refseg_ros.utils.timing import LatencyWindow

COUNTERS = ("received", "processed", "dropped", "bad_images", "errors", "commands", "bad_commands",
            "superseded_commands", "service_calls")
#: Window over which ``rate_hz`` is measured.
RATE_WINDOW_S = 5.0
#: A command is active but no frame for this long: the status warns.
NO_IMAGES_S = 2.0


class NodeStats:
    """Thread-safe counters, latency windows and the recent processing rate."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self.latency = LatencyWindow(200)  # decode + model + publish
        self.age = LatencyWindow(200)  # frame received -> results published
        self._processed: list[float] = []

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

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
                     last_frame_age_s: float, max_rate_hz: float, continuous: bool) -> DiagnosticStatus:
    """The node's status: level and message from its state, with every counter as a key/value."""
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
        "rate_hz": f"{rate:.2f}",
        "latency_p50_ms": _ms(stats.latency.percentile(50)),
        "latency_p95_ms": _ms(stats.latency.percentile(95)),
        "receive_to_publish_p50_ms": _ms(stats.age.percentile(50)),
        "receive_to_publish_p95_ms": _ms(stats.age.percentile(95)),
        "max_rate_hz": max_rate_hz,
        "continuous": continuous,
    }
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    if state != "active":
        status.level, status.message = DiagnosticStatus.WARN, f"{state}: not grounding"
    elif counts["errors"] and not counts["processed"]:
        status.level, status.message = DiagnosticStatus.ERROR, "grounding fails on every frame"
    elif command is not None and last_frame_age_s > NO_IMAGES_S:
        status.level, status.message = DiagnosticStatus.WARN, "command active but no images arriving"
    elif command is None:
        status.level, status.message = DiagnosticStatus.OK, "idle: waiting for a command"
    else:
        status.level, status.message = DiagnosticStatus.OK, f"grounding at {rate:.1f} Hz"
    return status
