"""Log throttling for the nodes: once per cause, and a token bucket for routine lines. No ROS."""
from __future__ import annotations

import re
import threading
import time

__all__ = ["Throttle", "RateLimit"]


class Throttle:
    """Decide whether to log a warning: once per ``period`` per *cause*, counting the rest.

    rclpy's ``throttle_duration_sec`` throttles per call site, so an empty command would silence
    the warning about the 2,000-word command that follows it. Here the cause is the message with
    its numbers and quoted text masked ("data holds 12 bytes ..." and "... 40 bytes ..." are one
    cause, and so are ``unsupported image encoding 'x'`` and ``... 'y'``: a sender cycling through
    random strings must not get one log line per message).
    """

    _NUMBERS = re.compile(r"\d+(\.\d+)?")
    _QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")

    def __init__(self, period: float = 5.0, clock=time.monotonic):
        self.period = float(period)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def key(self, message: str) -> str:
        return self._NUMBERS.sub("#", self._QUOTED.sub("'*'", message))[:200]

    def check(self, message: str, key: str | None = None) -> str | None:
        """The message to log now (with a count of suppressed repeats), or None to stay quiet."""
        key = key or self.key(message)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            if len(self._last) > 1000:  # bounded: forget old causes
                self._last.clear()
                self._suppressed.clear()
            self._last[key] = now
            n = self._suppressed.pop(key, 0)
        return f"{message} ({n} similar suppressed)" if n else message


class RateLimit:
    """A token bucket for routine log lines: up to ``burst`` at once, ``rate`` per second after.

    ``allow()`` says whether to log now; when it does after a quiet spell, ``take_suppressed()``
    gives how many lines were skipped, so a flood of valid commands costs a few lines, not 500 a second.
    """

    def __init__(self, rate: float = 5.0, burst: int = 20, clock=time.monotonic):
        self.rate, self.burst = float(rate), float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._suppressed = 0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self._suppressed += 1
            return False

    def take_suppressed(self) -> int:
        with self._lock:
            n, self._suppressed = self._suppressed, 0
            return n
