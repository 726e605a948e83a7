"""Timing helpers shared by the node's diagnostics, ``refseg export`` and ``refseg bench``:
percentiles in milliseconds, a rolling latency window, interleaved timing. No ROS, no torch.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Iterable

import numpy as np

__all__ = ["LatencyWindow", "in_worker_thread", "interleaved", "percentile_ms"]


def percentile_ms(seconds: Iterable[float] | np.ndarray, q: float = 50, digits: int = 3) -> float | None:
    """The q-th percentile (0-100) of durations in seconds, in milliseconds; None with no samples."""
    values = np.asarray(list(seconds), dtype=float)
    if values.size == 0:
        return None
    return round(float(np.percentile(values, q)) * 1000, digits)


class LatencyWindow:
    """The last ``size`` durations (seconds); percentiles for diagnostics. Thread-safe."""

    def __init__(self, size: int = 200):
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(float(seconds))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) in seconds; NaN with no samples."""
        with self._lock:
            if not self._values:
                return float("nan")
            return float(np.percentile(np.fromiter(self._values, float), q))

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def in_worker_thread(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a fresh thread and return its result (or raise its exception).

    The node runs its model in a worker thread, and on a loaded CPU torch threads driven from the
    main thread run slower than from a worker, so figures meant to match the node are taken there.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="refseg-timing")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, np.ndarray]:
    """Seconds per call of each function, calling them in turn ``rounds`` times (after ``warmup``).

    Interleaving gives every function the same machine load, so their ratios hold on a busy machine.
    Also ``"<key>_cpu"``: CPU seconds of the calling thread. With one torch thread all the work runs
    there, so on a loaded machine this is close to what the wall time would be on an idle one.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    times.update({f"{k}_cpu": [] for k in fns})
    for r in range(warmup + rounds):
        for key, fn in fns.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            if r >= warmup:
                times[key].append(time.perf_counter() - t0)
                times[f"{key}_cpu"].append(time.thread_time() - c0)
    return {k: np.asarray(v) for k, v in times.items()}
