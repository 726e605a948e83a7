"""Approximate time synchronisation of a colour image with depth and camera_info. No ROS.

message_filters is not installable here, and the node needs only one case: for the colour frame
it is about to ground, find the depth image (and camera_info) whose stamp is nearest, within a
slop. Messages are kept per stream in bounded buffers, so a stream that stops or runs ahead never
grows memory: at most ``queue_size`` messages and ``max_bytes`` of image data per stream (the
newest message is always kept), so large depth images do not multiply by the queue size; stamps
are integer nanoseconds.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Hashable

__all__ = ["ApproximateMatcher", "DEFAULT_MAX_BYTES", "stamp_to_ns"]

#: Two 32FC1 depth images at the default ``max_image_pixels`` (4096 x 4096).
DEFAULT_MAX_BYTES = 2 * 4 * 4096 * 4096


def _size(msg: Any) -> int:
    data = getattr(msg, "data", None)
    try:
        return len(data) if data is not None else 0
    except TypeError:
        return 0


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (or anything with sec/nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class ApproximateMatcher:
    """Bounded per-stream buffers of (stamp, message); look up the nearest stamp within ``slop``.

    Thread-safe: subscription callbacks push while a worker thread matches.
    """

    def __init__(self, slop_s: float = 0.05, queue_size: int = 10, max_bytes: int = DEFAULT_MAX_BYTES):
        self._lock = threading.Lock()
        self._buffers: dict[Hashable, deque] = {}
        self.slop_ns = int(slop_s * 1e9)
        self.queue_size = max(1, int(queue_size))
        self.max_bytes = int(max_bytes)

    def configure(self, slop_s: float | None = None, queue_size: int | None = None) -> None:
        with self._lock:
            if slop_s is not None:
                self.slop_ns = int(slop_s * 1e9)
            if queue_size is not None and int(queue_size) != self.queue_size:
                self.queue_size = max(1, int(queue_size))
                self._buffers = {k: deque(v, maxlen=self.queue_size) for k, v in self._buffers.items()}

    def push(self, stream: Hashable, stamp_ns: int, msg: Any) -> None:
        with self._lock:
            buf = self._buffers.get(stream)
            if buf is None:
                buf = self._buffers[stream] = deque(maxlen=self.queue_size)
            buf.append((int(stamp_ns), msg))
            total = sum(_size(m) for _, m in buf)
            while len(buf) > 1 and total > self.max_bytes:
                total -= _size(buf.popleft()[1])

    def match(self, stream: Hashable, stamp_ns: int) -> Any | None:
        """The message of ``stream`` nearest to ``stamp_ns`` if within the slop, else None."""
        with self._lock:
            buf = self._buffers.get(stream)
            if not buf:
                return None
            best_stamp, best = min(buf, key=lambda item: abs(item[0] - stamp_ns))
        return best if abs(best_stamp - stamp_ns) <= self.slop_ns else None

    def latest(self, stream: Hashable) -> Any | None:
        with self._lock:
            buf = self._buffers.get(stream)
            return buf[-1][1] if buf else None

    def may_still_arrive(self, stream: Hashable, stamp_ns: int, stale_ns: int = 1_000_000_000) -> bool:
        """True while a message for ``stamp_ns`` is worth waiting for: the stream is live (its
        newest message is less than ``stale_ns`` older than ``stamp_ns``) and nothing stamped at or
        after ``stamp_ns`` has arrived yet.

        Streams arrive in stamp order, so once a message stamped at or after ``stamp_ns`` is
        buffered, waiting longer cannot produce a closer match; a stream that never delivered
        (depth not connected) or has stopped (its newest message is stale) is not waited for: a
        driver that died would otherwise cost every colour frame the whole wait.
        """
        with self._lock:
            buf = self._buffers.get(stream)
            return bool(buf) and stamp_ns - stale_ns <= buf[-1][0] < stamp_ns

    def stats(self) -> dict[Hashable, int]:
        with self._lock:
            return {k: len(v) for k, v in self._buffers.items()}

    def clear(self) -> None:
        with self._lock:
            self._buffers.clear()
