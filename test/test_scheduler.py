"""The node's scheduling rules without ROS: newest frame, latest command, rate, single shot."""
import threading
import time

import pytest

from refseg_ros.ros.scheduler import MAX_WAIT_S, ActiveCommand, Job, Scheduler


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_nothing_to_do_without_frame_or_command():
    s = Scheduler()
    assert s.next_job() is None
    s.put_frame("f1")
    assert s.next_job() is None  # no command
    s.clear()
    s.apply_command("the duck", ("the duck",))
    assert s.next_job() is None  # no frame


def test_newest_frame_wins_and_replacing_a_due_frame_is_a_drop():
    s = Scheduler()
    assert s.put_frame("f1") is False  # nothing due yet: no command
    s.apply_command("the duck", ("the duck",))
    assert s.put_frame("f2") is True  # f1 became due with the command and was never taken
    assert s.put_frame("f3") is True
    job = s.next_job()
    assert isinstance(job, Job) and job.frame.msg == "f3" and job.command.expressions == ("the duck",)
    assert s.put_frame("f4") is False  # f3 was taken
    s.done(job, grounded=True)
    assert s.next_job().frame.msg == "f4"


def test_a_frame_and_command_pair_runs_once_even_if_it_failed():
    s = Scheduler()
    s.apply_command("a", ("a",))
    s.put_frame("f1")
    job = s.next_job()
    s.done(job, grounded=False)
    assert s.next_job() is None  # not retried
    s.apply_command("b", ("b",))
    assert s.next_job().command.text == "b"  # same frame, new command: due again


def test_latest_command_wins_by_arrival_not_by_application_order():
    s = Scheduler()
    first, second = s.next_arrival(), s.next_arrival()
    assert isinstance(s.apply_command("newer", ("newer",), second), ActiveCommand)
    assert s.apply_command("older", ("older",), first) is False  # superseded: changes nothing
    assert s.command.text == "newer"


def test_stop_clears_and_is_current_tells_the_worker():
    s = Scheduler()
    cmd = s.apply_command("the duck", ("the duck",))
    s.put_frame("f1")
    job = s.next_job()
    assert s.is_current(job.command)
    assert s.apply_command("stop", None) is None
    assert not s.is_current(cmd) and s.command is None
    s.done(job, grounded=True)
    s.put_frame("f2")
    assert s.next_job() is None
    again = s.apply_command("the duck", ("the duck",))
    assert again.generation > cmd.generation and not s.is_current(cmd)


def test_rate_limit_and_rate_change_take_effect_at_once():
    clock = FakeClock()
    s = Scheduler(max_rate_hz=2.0, clock=clock)
    s.apply_command("a", ("a",))
    s.put_frame("f1")
    s.done(s.next_job(), True)
    s.put_frame("f2")
    wait = s.next_job()
    assert wait == pytest.approx(0.5)
    clock.t += 0.5
    assert isinstance(s.next_job(), Job)
    s.put_frame("f3")
    s.set_rate(1e-10)  # a tiny rate in range: must neither overflow a wait nor block forever
    job = s.next_job()
    assert isinstance(job, Job)  # a new rate starts a fresh interval
    s.done(job, True)
    s.put_frame("f4")
    assert s.next_job() > 1e9
    stop = threading.Event()
    t0 = time.monotonic()
    assert s.wait_for_job(stop) is None  # waits at most MAX_WAIT_S, no OverflowError
    assert time.monotonic() - t0 <= MAX_WAIT_S + 0.5
    s.set_rate(10.0)
    assert isinstance(s.next_job(), Job)


def test_single_shot_grounds_one_frame_per_command():
    s = Scheduler(continuous=False)
    s.apply_command("a", ("a",))
    s.put_frame("f1")
    job = s.next_job()
    s.done(job, grounded=False)  # an undecodable frame does not use up the command
    s.put_frame("f2")
    job = s.next_job()
    assert job.frame.msg == "f2"
    s.done(job, grounded=True)
    s.put_frame("f3")
    assert s.next_job() is None
    assert s.put_frame("f4") is False  # nothing due: not a drop
    s.set_continuous(True)
    assert s.next_job().frame.msg == "f4"


def test_wait_for_job_wakes_on_a_frame_from_another_thread():
    s = Scheduler()
    s.apply_command("a", ("a",))
    stop = threading.Event()
    got = []
    worker = threading.Thread(target=lambda: got.append(s.wait_for_job(stop, idle_timeout=5.0)))
    worker.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    s.put_frame("f1")
    worker.join(timeout=5)
    assert got and got[0].frame.msg == "f1" and time.monotonic() - t0 < 2.0
    stop.set()
    assert s.wait_for_job(stop) is None


def test_clear_starts_a_fresh_rate_interval():
    # Deactivate and cleanup clear the scheduler: a tiny rate set earlier must not keep the worker
    # waiting for ever after the node is activated again.
    clock = FakeClock()
    s = Scheduler(max_rate_hz=1e-10, clock=clock)
    s.apply_command("a", ("a",))
    s.put_frame("f1")
    s.done(s.next_job(), True)
    s.put_frame("f2")
    assert s.next_job() > 1e9
    s.clear()
    s.put_frame("f3")
    assert isinstance(s.next_job(), Job)


def test_a_frame_from_before_the_camera_fell_silent_is_not_grounded():
    clock = FakeClock()
    s = Scheduler(clock=clock, max_frame_age_s=2.0)
    s.apply_command("a", ("a",))
    s.put_frame("f1")
    s.done(s.next_job(), True)
    clock.t += 10.0  # the camera is silent; then a new command arrives
    s.apply_command("b", ("b",))
    assert s.next_job() is None  # not answered on a ten-second-old picture
    s.put_frame("f2")
    job = s.next_job()
    assert isinstance(job, Job) and job.frame.msg == "f2" and job.command.text == "b"
    s.done(job, True)
    clock.t += 1.0
    s.apply_command("c", ("c",))
    assert s.next_job().frame.msg == "f2"  # within the bound the newest frame still serves
    s.max_frame_age_s = 0.0  # 0 = any age
    clock.t += 100.0
    s.apply_command("d", ("d",))
    assert s.next_job().frame.msg == "f2"


def test_a_command_change_waits_for_a_publish_in_progress():
    # The worker publishes under publish_lock after checking is_current: a stop applied meanwhile
    # must wait, so that once apply_command returns nothing for the old command is published.
    s = Scheduler()
    cmd = s.apply_command("a", ("a",))
    applied = threading.Event()
    with s.publish_lock:
        assert s.is_current(cmd)
        stopper = threading.Thread(target=lambda: (s.apply_command("stop", None), applied.set()))
        stopper.start()
        assert not applied.wait(0.3)  # blocked behind the publish
        assert s.is_current(cmd)
    assert applied.wait(5.0)
    stopper.join(5.0)
    assert not s.is_current(cmd) and s.command is None
