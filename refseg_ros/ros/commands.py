"""How a command on the ``command`` topic reaches the grounding node: never lost, never stale, once.

A command can be spoken before ``refseg_node`` listens (it loads its model on configure; an
``audio_file`` run of ``speech_node`` may be done by then). So every command publisher in this
package keeps its newest command for late subscribers (:func:`command_qos`: transient local, depth
1), and the node subscribes with that profile from configure on, next to a volatile subscription
that hears every other publisher (``ros2 topic pub`` and user scripts default to volatile, which a
transient-local subscription cannot match). A durable publisher reaches both subscriptions, so
:class:`CommandInbox` drops the second copy by publisher and sequence number; it also drops
commands older than ``command_max_age_s`` (a durable publisher hands its last command to every
node that starts later, however old) and holds the newest command while the node is not active.

Ages come from the publisher's send time (``MessageInfo.source_timestamp``, wall clock), because
std_msgs/String has no header. Pure logic: no ROS imports outside :func:`command_qos`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from refseg_ros.language.parser import Action, parse_command
from refseg_ros.ros.stats import RateLimit

__all__ = ["command_qos", "Delivery", "CommandInbox", "CommandApplier"]

APPLY, HOLD, DUPLICATE, STALE = "apply", "hold", "duplicate", "stale"


def command_qos():
    """QoS of every command publisher and of the node's durable command subscription."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    # Depth 1: only the newest command matters (the node applies the latest one anyway).
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class Delivery:
    """What to do with one received command: ``action`` is apply, hold, duplicate or stale."""
    action: str
    text: str
    age_s: float | None = None  # None when the publisher gave no send time

    def describe_age(self) -> str:
        return "of unknown age" if self.age_s is None else f"{self.age_s:.1f} s old"


class CommandInbox:
    """Each command message once, only while fresh; the newest one held while the node is not active.

    ``max_age_s`` <= 0 accepts any age. ``remember`` bounds how many publishers' sequence numbers
    are kept for de-duplication (the least recently heard is forgotten first). Thread-safe: in a
    multi-threaded executor a command can arrive while the node activates, and must then be
    either held and handed over by :meth:`activate`, or applied, never left behind.
    """

    def __init__(self, max_age_s: float, remember: int = 64) -> None:
        self.max_age_s = float(max_age_s)
        self._remember = remember
        self._lock = threading.Lock()
        self._active = False
        self._last: OrderedDict[tuple, int] = OrderedDict()  # publisher -> highest order seen
        self._held: tuple[str, int] | None = None  # (text, send time ns or 0)

    def receive(self, text: str, info: Mapping[str, Any] | None, now_ns: int) -> Delivery:
        """Classify a message from either subscription; ``info`` is rclpy's MessageInfo (or None)."""
        sent_ns = int((info or {}).get("source_timestamp") or 0)
        with self._lock:
            if self._seen_before(info, sent_ns):
                return Delivery(DUPLICATE, text)
            delivery = self._aged(text, sent_ns, now_ns)
            if delivery.action == STALE or self._active:
                return delivery
            self._held = (text, sent_ns)  # newest wins, like the active command
            return Delivery(HOLD, text, delivery.age_s)

    def activate(self, now_ns: int) -> Delivery | None:
        """From now on commands apply; returns the one held meanwhile, aged now (apply or stale), or None."""
        with self._lock:
            self._active = True
            if self._held is None:
                return None
            (text, sent_ns), self._held = self._held, None
            return self._aged(text, sent_ns, now_ns)

    def deactivate(self) -> None:
        with self._lock:
            self._active = False

    def clear_held(self) -> None:
        with self._lock:
            self._held = None

    @property
    def held(self) -> str | None:
        held = self._held
        return None if held is None else held[0]

    def _aged(self, text: str, sent_ns: int, now_ns: int) -> Delivery:
        if sent_ns <= 0:
            return Delivery(APPLY, text)
        # A publisher's clock slightly ahead of ours is not a command from the future.
        age = max(0.0, (now_ns - sent_ns) / 1e9)
        stale = self.max_age_s > 0 and age > self.max_age_s
        return Delivery(STALE if stale else APPLY, text, age)

    def _seen_before(self, info: Mapping[str, Any] | None, sent_ns: int) -> bool:
        gid = (info or {}).get("publisher_gid")
        if not gid:
            return False
        key = (gid.get("implementation_identifier"), bytes(gid.get("data") or b""))
        seq = (info or {}).get("publication_sequence_number")
        # Without sequence numbers (some middlewares) the send time orders one publisher's messages.
        order = int(seq) if seq is not None else sent_ns
        if order <= 0:
            return False
        last = self._last.get(key)
        if last is not None and order <= last:
            # Each subscription delivers in order, so anything at or below the highest seen from
            # this publisher came through the other subscription already (or was superseded).
            return True
        self._last[key] = order
        self._last.move_to_end(key)
        while len(self._last) > self._remember:
            self._last.popitem(last=False)
        return False


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


class CommandApplier:
    """Puts delivered commands in force: parsed once, the latest arrival wins (the scheduler's
    generations), a log line for each (a few per second under a flood).

    Args:
        scheduler: the node's :class:`~refseg_ros.ros.scheduler.Scheduler`.
        stats: the node's counters; ``params``: its live parameters (``max_command_chars``,
            ``max_expressions``).
        info: ``info(text)`` logs a line; ``warn(text, key)`` a throttled warning; ``key(text)``
            the throttle's key of a text (so that warnings differing only in numbers share one).
        understood: ``understood(expression)``, the expression as the model reads it (typos fixed),
            shown in the log line when it differs.
    """

    def __init__(self, scheduler, stats, params: Mapping[str, Any], info: Callable[[str], None],
                 warn: Callable[[str, str], None], key: Callable[[str], str] = str,
                 understood: Callable[[str], str] = str) -> None:
        self.scheduler, self.stats, self.params, self.info, self.warn = scheduler, stats, params, info, warn
        self.key, self.understood = key, understood
        self._log_limit = RateLimit(rate=5.0, burst=20)

    def deliver(self, delivery: Delivery, state: str, max_age_s: float) -> None:
        """Act on what the :class:`CommandInbox` decided for a message."""
        if delivery.action == APPLY:
            self.apply(delivery.text, source="command")
        elif delivery.action == HOLD:
            self.info(f"command {_shown(delivery.text)!r} held until the node is active (now {state})")
        elif delivery.action == STALE:
            self.warn(f"dropping command {_shown(delivery.text)!r}: {delivery.describe_age()}, older than "
                      f"command_max_age_s ({max_age_s:g} s)", "stale-command")

    def apply(self, text: str, source: str) -> None:
        """Parse ``text`` once and put it in force, unless a newer command arrived meanwhile."""
        arrival = self.scheduler.next_arrival()
        parsed = parse_command(text, max_chars=self.params["max_command_chars"],
                               max_expressions=self.params["max_expressions"])
        shown = _shown(text)
        for note in parsed.notes:
            self.warn(f"{source} {shown!r}: {note}", "note:" + self.key(note)[:60])
        if parsed.action is Action.INVALID:
            self.stats.count("bad_commands")
            active = self.scheduler.command
            keep = f"; keeping the active command {active.text!r}" if active else ""
            self.warn(f"ignoring {source} {shown!r}: {parsed.reason}{keep}", "badcmd:" + self.key(parsed.reason)[:60])
            return
        self.stats.count("commands")
        previous = self.scheduler.command
        stop = parsed.action is Action.STOP
        if self.scheduler.apply_command(text, None if stop else parsed.expressions, arrival) is False:
            self.stats.count("superseded_commands")  # a newer command was applied meanwhile
            return
        if not self._log_limit.allow():
            return
        skipped = self._log_limit.take_suppressed()
        more = f" ({skipped} earlier commands not logged: more than 5/s)" if skipped else ""
        if stop:
            self.info(f"{source} {shown!r}: cleared the active command"
                      + (f" {previous.text!r}" if previous else "") + more)
        else:
            self.info(f"{source} {shown!r} -> {list(parsed.expressions)}{self._read_as(parsed.expressions)}{more}")

    def _read_as(self, expressions) -> str:
        """", read as [...]" when the model reads some expression differently (typos fixed)."""
        read = [self.understood(e) for e in expressions]
        return f", read as {read}" if read != list(expressions) else ""
