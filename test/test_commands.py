"""CommandInbox: each command message once, only while fresh, held while the node is not active;
CommandApplier: parsed once, latest wins, bad text keeps the active command (no ROS)."""
from __future__ import annotations

import threading

import pytest

from refseg_ros.ros.commands import APPLY, DUPLICATE, HOLD, STALE, CommandInbox

S = 1_000_000_000  # ns
NOW = 1_800_000_000 * S


def info(sent_ns: int = NOW, seq: int | None = 1, gid: bytes = b"pub-a") -> dict:
    """The shape of rclpy's MessageInfo."""
    return {"source_timestamp": sent_ns, "received_timestamp": sent_ns, "publication_sequence_number": seq,
            "reception_sequence_number": None,
            "publisher_gid": {"implementation_identifier": "rmw_test", "data": gid}}


def active_inbox(max_age_s: float = 30.0) -> CommandInbox:
    inbox = CommandInbox(max_age_s)
    assert inbox.activate(NOW) is None
    return inbox


def test_fresh_command_applies_with_its_age():
    d = active_inbox().receive("the red mug", info(NOW - 2 * S), NOW)
    assert (d.action, d.text) == (APPLY, "the red mug")
    assert d.age_s == pytest.approx(2.0)


def test_stale_command_is_dropped_and_zero_means_any_age():
    d = active_inbox(30.0).receive("the red mug", info(NOW - 31 * S), NOW)
    assert d.action == STALE and "31.0 s old" in d.describe_age()
    assert active_inbox(0.0).receive("the red mug", info(NOW - 3600 * S), NOW).action == APPLY


def test_unknown_send_time_and_clock_skew_count_as_fresh():
    inbox = active_inbox(1.0)
    d = inbox.receive("a", {"source_timestamp": 0}, NOW)
    assert d.action == APPLY and d.age_s is None and d.describe_age() == "of unknown age"
    assert inbox.receive("b", None, NOW).action == APPLY
    ahead = inbox.receive("c", info(NOW + 5 * S), NOW)  # publisher's clock ahead of ours
    assert ahead.action == APPLY and ahead.age_s == 0.0


def test_second_copy_through_the_other_subscription_is_a_duplicate():
    inbox = active_inbox()
    first = info(NOW, seq=7)
    assert inbox.receive("x", first, NOW).action == APPLY
    assert inbox.receive("x", dict(first), NOW).action == DUPLICATE
    # A burst: one subscription delivered 8 and 9 before the other delivered 8.
    assert inbox.receive("y", info(NOW, seq=8), NOW).action == APPLY
    assert inbox.receive("z", info(NOW, seq=9), NOW).action == APPLY
    assert inbox.receive("y", info(NOW, seq=8), NOW).action == DUPLICATE
    # Another publisher's sequence numbers are its own.
    assert inbox.receive("w", info(NOW, seq=1, gid=b"pub-b"), NOW).action == APPLY


def test_without_sequence_numbers_the_send_time_orders_a_publisher():
    inbox = active_inbox()
    assert inbox.receive("x", info(NOW - S, seq=None), NOW).action == APPLY
    assert inbox.receive("x", info(NOW - S, seq=None), NOW).action == DUPLICATE
    assert inbox.receive("y", info(NOW, seq=None), NOW).action == APPLY


def test_a_stale_copy_is_not_reported_twice():
    inbox = active_inbox(1.0)
    old = info(NOW - 10 * S, seq=3)
    assert inbox.receive("x", old, NOW).action == STALE
    assert inbox.receive("x", dict(old), NOW).action == DUPLICATE


def test_publishers_remembered_are_bounded():
    inbox = CommandInbox(0.0, remember=3)
    inbox.activate(NOW)
    for i in range(10):
        assert inbox.receive("x", info(seq=1, gid=bytes([i])), NOW).action == APPLY
    assert len(inbox._last) == 3
    assert inbox.receive("x", info(seq=1, gid=bytes([9])), NOW).action == DUPLICATE  # recent: remembered


def test_newest_command_is_held_while_inactive_and_handed_over_on_activation():
    inbox = CommandInbox(30.0)
    d = inbox.receive("the duck", info(NOW - 5 * S, seq=1), NOW - 4 * S)
    assert d.action == HOLD and inbox.held == "the duck"
    assert inbox.receive("the mug", info(NOW - 3 * S, seq=2), NOW - 3 * S).action == HOLD
    assert inbox.held == "the mug"  # newest wins
    released = inbox.activate(NOW)
    assert (released.action, released.text) == (APPLY, "the mug")
    assert released.age_s == pytest.approx(3.0)  # aged at activation, not at arrival
    assert inbox.held is None and inbox.activate(NOW) is None
    assert inbox.receive("the cube", info(NOW, seq=3), NOW).action == APPLY


def test_held_command_too_old_by_activation_is_stale():
    inbox = CommandInbox(10.0)
    assert inbox.receive("the duck", info(NOW - 20 * S), NOW - 15 * S).action == HOLD
    assert inbox.activate(NOW).action == STALE


def test_stale_on_arrival_is_not_held():
    inbox = CommandInbox(10.0)
    assert inbox.receive("the duck", info(NOW - 20 * S), NOW).action == STALE
    assert inbox.held is None


def test_deactivate_holds_again_and_clear_forgets():
    inbox = active_inbox()
    inbox.deactivate()
    assert inbox.receive("the duck", info(), NOW).action == HOLD
    inbox.clear_held()
    assert inbox.activate(NOW) is None


def test_a_command_racing_activation_is_never_left_held():
    for _ in range(200):
        inbox = CommandInbox(0.0)
        out = []
        t = threading.Thread(target=lambda: out.append(inbox.receive("x", None, NOW)))
        t.start()
        released = inbox.activate(NOW)
        t.join()
        applied = (released is not None and released.action == APPLY) + (out[0].action == APPLY)
        assert applied == 1 and inbox.held is None


def _applier():
    from refseg_ros.ros.commands import CommandApplier
    from refseg_ros.ros.diagnostics import NodeStats
    from refseg_ros.ros.scheduler import Scheduler

    lines, warnings = [], []
    scheduler, stats = Scheduler(), NodeStats()
    applier = CommandApplier(scheduler, stats, {"max_command_chars": 300, "max_expressions": 5}, lines.append,
                             lambda text, key: warnings.append(text))
    return applier, scheduler, stats, lines, warnings


def test_applier_parses_once_keeps_the_active_command_on_bad_text_and_stop_clears():
    applier, scheduler, stats, lines, warnings = _applier()
    applier.apply("could you pick up the red mug and the duck", source="command")
    assert scheduler.command.expressions == ("the red mug", "the duck")
    active = scheduler.command
    applier.apply("", source="command")  # refused: the active command stays
    assert scheduler.command is active and stats.snapshot()[0]["bad_commands"] == 1
    assert any("keeping the active command" in w for w in warnings)
    applier.apply("stop", source="command")
    assert scheduler.command is None and "cleared the active command" in lines[-1]


def test_applier_logs_how_the_model_reads_a_misspelt_command():
    from refseg_ros.language.spelling import SpellingFixer, english_words

    applier, scheduler, _, lines, _ = _applier()
    applier.understood = SpellingFixer(english_words())
    applier.apply("pick up the hambuger and the duck", source="command")
    assert scheduler.command.expressions == ("the hambuger", "the duck")  # the text is kept as sent
    assert lines[-1].endswith("-> ['the hambuger', 'the duck'], read as ['the hamburger', 'the duck']")
    applier.apply("the red mug", source="command")
    assert "read as" not in lines[-1]


def test_applier_a_command_that_arrived_earlier_never_replaces_a_later_one():
    applier, scheduler, stats, _, _ = _applier()
    early = scheduler.next_arrival()  # taken, then overtaken by a later arrival that is applied first
    applier.apply("the duck", source="command")
    assert scheduler.apply_command("the mug", ("the mug",), early) is False
    assert scheduler.command.text == "the duck"


def test_applier_acts_on_the_inbox_decision():
    applier, scheduler, _, lines, warnings = _applier()
    inbox = CommandInbox(30.0)
    applier.deliver(inbox.receive("the duck", info(), NOW), "inactive", inbox.max_age_s)
    assert scheduler.command is None and "held until the node is active" in lines[-1]
    applier.deliver(inbox.activate(NOW), "active", inbox.max_age_s)
    assert scheduler.command.text == "the duck"
    applier.deliver(inbox.receive("the mug", info(NOW - 60 * S, seq=2), NOW), "active", inbox.max_age_s)
    assert scheduler.command.text == "the duck" and "older than command_max_age_s" in warnings[-1]
