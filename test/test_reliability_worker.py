"""The grounding worker cannot die, "stop" means stop, one worker always, services answer or refuse.

First the worker on its own (in-process, fake model and publishers, no DDS): its loop survives any
exception, a deactivation abandons the running frame without waiting for it and without a second
thread, and a result is never published after a stop or a new command was applied. Then the same
promises over DDS against a ``refseg_node`` process (``/relw``, random checkpoint): tiny rates and
lifecycle resets, stop and command changes under load, deactivation during a slow frame, bursts of
``ground`` calls and of lifecycle requests.
"""
from __future__ import annotations

import os
import re
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from refseg_ros.ros import params as P  # noqa: E402
from refseg_ros.ros.diagnostics import NodeStats, grounding_status  # noqa: E402
from refseg_ros.ros.images import numpy_to_imgmsg  # noqa: E402
from refseg_ros.ros.scheduler import Scheduler  # noqa: E402
from refseg_ros.ros.sync import ApproximateMatcher  # noqa: E402
from refseg_ros.ros.worker import GroundingWorker  # noqa: E402

pytestmark = pytest.mark.ros


# ---- the worker in-process ---------------------------------------------------------------------------

class FakePredictor:
    """Answers every expression with one box; ``gate`` (an Event) holds each frame until set."""

    def __init__(self, gate: threading.Event | None = None, fail_first: int = 0) -> None:
        self.post = SimpleNamespace(with_=lambda **kw: None)
        self.gate, self.fail_first = gate, fail_first
        self.entered = threading.Event()
        self.calls = 0
        self.expressions: tuple[str, ...] = ()

    def set_command(self, expressions) -> None:
        self.expressions = tuple(expressions)

    def predict(self, rgb, post, depth=None):
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        if self.calls <= self.fail_first:
            raise RuntimeError("the model broke")
        mask = np.zeros(rgb.shape[:2], bool)
        return [SimpleNamespace(expression=e, box=(0.0, 0.0, 2.0, 2.0), score=0.9, mask=mask, found=True)
                for e in self.expressions]


class FakePub:
    """Records (the frame's command, its stamp, the command in force while publishing) per message.

    Publishing takes a moment, as serialising a real mask or overlay does."""

    def __init__(self, topic: str, scheduler: Scheduler, log: list, command_of: dict) -> None:
        self.topic, self.scheduler, self.log, self.command_of = topic, scheduler, log, command_of

    def get_subscription_count(self) -> int:
        return 1

    def publish(self, msg) -> None:
        sec = msg.header.stamp.sec
        if hasattr(msg, "command"):
            self.command_of[sec] = msg.command
        for _ in range(2):
            command = self.scheduler.command  # what is in force while publishing
            self.log.append((self.topic, self.command_of.get(sec), sec, command.text if command else None))
            time.sleep(0.001)


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, text, **_):
        self.lines.append(text)

    info = warning = error


def _worker(predictor, scheduler=None):
    s = scheduler or Scheduler()
    published: list = []
    params = {spec.name: spec.default for spec in P.PARAMS}
    w = GroundingWorker(s, NodeStats(), ApproximateMatcher(0.05, 10), params, FakeLogger(),
                        lambda message, key=None: None, lambda: True)
    w.set_predictor(predictor)
    command_of: dict = {}
    w.pubs = {name: FakePub(name, s, published, command_of) for name in ("groundings", "mask", "overlay")}
    return w, s, published


def _frame(sec: int):
    msg = numpy_to_imgmsg(np.zeros((6, 8, 3), np.uint8), "rgb8")
    msg.header.stamp.sec = sec
    return msg


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def _worker_threads() -> int:
    return sum(t.name == "refseg_worker" and t.is_alive() for t in threading.enumerate())


def test_the_loop_survives_exceptions_anywhere_and_reports_them():
    s = Scheduler()
    real_wait, calls = s.wait_for_job, []

    def flaky_wait(stop, *args, **kwargs):  # e.g. the OverflowError a huge timeout once raised here
        calls.append(1)
        if len(calls) == 1:
            raise OverflowError("timeout value is too large")
        return real_wait(stop, *args, **kwargs)

    s.wait_for_job = flaky_wait
    w, s, published = _worker(FakePredictor(fail_first=1), s)
    w.start()
    try:
        s.apply_command("the duck", ("the duck",))
        for sec in range(1, 200):
            s.put_frame(_frame(sec))
            if _wait(lambda: published, 0.05):
                break
        assert published, "no result after a failure: the worker loop died"
        counts, _ = w.stats.snapshot()
        assert counts["errors"] == 2  # the scheduler's and the model's
        alive, _busy = w.health()
        assert alive
        status = grounding_status("n", "active", "m", "cpu", s.command, w.stats, 0.0, 10.0, True, w.health())
        assert status.level == status.ERROR and "grounding failed" in status.message
        dead = grounding_status("n", "active", "m", "cpu", s.command, NodeStats(), 0.0, 10.0, True, (False, 0.0))
        assert dead.level == dead.ERROR and "not running" in dead.message
        stalled = grounding_status("n", "active", "m", "cpu", s.command, NodeStats(), 0.0, 10.0, True, (True, 1e4))
        assert stalled.level == stalled.ERROR and "stalled" in stalled.message
    finally:
        w.stop()


def test_deactivation_abandons_a_slow_frame_and_never_starts_a_second_worker():
    gate = threading.Event()
    predictor = FakePredictor(gate)
    w, s, published = _worker(predictor)
    w.start()
    try:
        s.apply_command("the duck", ("the duck",))
        s.put_frame(_frame(1))
        assert predictor.entered.wait(10)
        t0 = time.monotonic()
        w.pause()  # deactivate while the model runs
        assert time.monotonic() - t0 < 0.5, "deactivation waited for the model"
        w.start()  # activate at once
        assert _worker_threads() == 1
        s.put_frame(_frame(2))
        gate.set()
        assert _wait(lambda: any(sec == 2 for _, _, sec, _ in published))
        time.sleep(0.2)
        secs = [sec for topic, _, sec, _ in published if topic == "groundings"]
        assert 1 not in secs, "the frame from before the deactivation was published"
        assert secs.count(2) == 2  # one message, seen twice by FakePub
        for _ in range(5):  # many cycles: still one thread
            w.pause()
            w.start()
        assert _worker_threads() == 1
    finally:
        gate.set()
        w.stop()
    assert _wait(lambda: _worker_threads() == 0, 5)


def test_no_result_is_published_after_a_command_change_was_applied():
    w, s, published = _worker(FakePredictor())
    w.start()
    stop = threading.Event()
    texts = ["the duck", "the red mug", "stop"]

    def commands():
        i = 0
        while not stop.is_set():
            t = texts[i % 3]
            s.apply_command(t, None if t == "stop" else (t,))
            i += 1
            time.sleep(0.0005)

    changer = threading.Thread(target=commands)
    changer.start()
    try:
        end, sec = time.monotonic() + 3.0, 0
        while time.monotonic() < end:
            sec += 1
            s.put_frame(_frame(sec))
            time.sleep(0.001)
    finally:
        stop.set()
        changer.join(5)
        w.stop()
    assert len(published) >= 20, len(published)
    late = [(topic, cmd, in_force) for topic, cmd, _, in_force in published if cmd != in_force]
    assert not late, f"{len(late)} of {len(published)} results published for a command no longer in force"


# ---- over DDS ----------------------------------------------------------------------------------------

from node_process import STARTUP_TIMEOUT, NodeProcess  # noqa: E402
from ros_client import Client, change_state, diag, get_state, stamp_ns  # noqa: E402

NS = "/relw"
NAME = f"{NS}/refseg_node"
LOG_TS = r"\[(?:INFO|WARN)\] \[(\d+\.\d+)\] \[relw\.refseg_node\]: "


#: Frames this wide stand for a slow model run (see ``relw``): at full size, frames that once took
#: seconds now take well under one, and a test of "deactivate during a frame" needs a long frame.
SLOW_WIDTH, SLOW_S = 641, 4.0
SLOW_MODEL = f"""# refseg_node test stand-in: the model takes {SLOW_S} s longer on frames {SLOW_WIDTH} px wide.
import time
from refseg_ros.model import predictor as _p
_predict, _once = _p.GroundingPredictor.predict, _p.GroundingPredictor.predict_once
def _slow(image):
    if image.shape[1] == {SLOW_WIDTH}:
        time.sleep({SLOW_S})
def predict(self, image_rgb, *args, **kwargs):
    _slow(image_rgb)
    return _predict(self, image_rgb, *args, **kwargs)
def predict_once(self, image_rgb, *args, **kwargs):
    _slow(image_rgb)
    return _once(self, image_rgb, *args, **kwargs)
_p.GroundingPredictor.predict, _p.GroundingPredictor.predict_once = predict, predict_once
"""


@pytest.fixture(scope="module")
def relw(checkpoint, ros_env, tmp_path_factory):
    # The node's own code, model and frame path; only its model is slower on one frame width,
    # through a sitecustomize module the interpreter imports at start (tests never edit the package).
    hook = tmp_path_factory.mktemp("slow_model")
    (hook / "sitecustomize.py").write_text(SLOW_MODEL)
    env = {**ros_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), ros_env.get("PYTHONPATH", "")]))}
    node = NodeProcess(["-r", f"__ns:={NS}", "-p", f"checkpoint:={checkpoint}", "-p", "num_threads:=1",
                        "-p", "max_rate_hz:=10.0", "-p", "warn_throttle_sec:=2.0",
                        "-p", "image_reliability:=reliable"], env=env)  # a single frame is not lost
    try:
        if not node.wait_for(r"active: listening on", STARTUP_TIMEOUT):
            pytest.fail(f"refseg_node did not become active:\n{node.log()[-4000:]}")
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def wclient(relw):
    c = Client(NS, reliable_images=True)
    c.wait_connected()
    yield c
    c.close()


def _log_time(node, mark: int, pattern: str, timeout: float = 30.0) -> float:
    """Wall-clock time (s) of the node's first log line after ``mark`` matching ``pattern``."""
    m = node.wait_for(LOG_TS + pattern, timeout, since=mark)
    assert m, f"node did not log {pattern!r}:\n{node.since(mark)[-3000:]}"
    return float(m.group(1))


def _fresh_results(c, text: str, since: float) -> list:
    return [a for _, a in c.results_for(text, since) if c.sent.get(stamp_ns(a.header.stamp), 0) >= since]


def _transition(c, transition_id: int) -> float:
    t0 = time.monotonic()
    assert change_state(c, NAME, transition_id)
    return time.monotonic() - t0


@pytest.mark.slow
def test_a_tiny_rate_then_lifecycle_resets_resume_grounding(relw, wclient, frames):
    from lifecycle_msgs.msg import Transition

    c, text = wclient, "the blue cube"
    mark = relw.mark()
    c.command(text, relw, expect=r"-> \['the blue cube'\]")
    t0 = time.monotonic()
    assert c.stream_until(frames, lambda: _fresh_results(c, text, t0), 60), relw.since(mark)[-3000:]
    try:
        assert all(r.successful for r in c.set_params(max_rate_hz=1e-10))
        t1 = time.monotonic()
        c.stream_until(frames, lambda: False, 3.0)  # one frame at most, then a wait of centuries
        assert len(_fresh_results(c, text, t1)) <= 1
        assert all(r.successful for r in c.set_params(max_rate_hz=10.0))
        t2 = time.monotonic()
        assert c.stream_until(frames, lambda: len(_fresh_results(c, text, t2)) >= 2, 20), "no recovery at 10 Hz"
        # The tiny rate again, then deactivate/activate: a fresh interval, a result at once.
        assert all(r.successful for r in c.set_params(max_rate_hz=1e-10))
        c.stream_until(frames, lambda: False, 3.0)  # at most one more frame, then a wait of centuries
        t3 = time.monotonic()
        c.stream_until(frames, lambda: False, 1.5)
        assert not _fresh_results(c, text, t3), "the tiny rate is not in force"
        _transition(c, Transition.TRANSITION_DEACTIVATE)
        _transition(c, Transition.TRANSITION_ACTIVATE)
        t4 = time.monotonic()
        assert c.stream_until(frames, lambda: _fresh_results(c, text, t4), 20), \
            "deactivate/activate kept the old rate interval"
        # and through cleanup/configure (the model reloads; the command is kept by the node)
        _transition(c, Transition.TRANSITION_DEACTIVATE)
        _transition(c, Transition.TRANSITION_CLEANUP)
        _transition(c, Transition.TRANSITION_CONFIGURE)
        _transition(c, Transition.TRANSITION_ACTIVATE)
        c.command(text)
        t5 = time.monotonic()
        assert c.stream_until(frames, lambda: _fresh_results(c, text, t5), 30), \
            "cleanup/configure kept the old rate interval"
    finally:
        c.set_params(max_rate_hz=10.0)
        if get_state(c, NAME) != "active":
            change_state(c, NAME, Transition.TRANSITION_ACTIVATE)
    assert relw.proc.poll() is None and "Traceback" not in relw.since(mark)


@pytest.mark.slow
def test_a_new_command_after_camera_silence_waits_for_a_new_frame(relw, wclient, frames):
    c = wclient
    c.command("the duck", relw, expect=r"-> \['the duck'\]")
    t0 = time.monotonic()
    assert c.stream_until(frames, lambda: _fresh_results(c, "the duck", t0), 60)
    c.spin(4.0)  # the camera falls silent for longer than max_frame_age_s (2 s)
    text = "the green ball"
    c.command(text, relw, expect=r"-> \['the green ball'\]")
    t1 = time.monotonic()
    c.spin(3.0)
    assert not c.results_for(text, t1), "answered on a frame from before the silence"
    assert c.stream_until(frames, lambda: _fresh_results(c, text, t1), 60)  # a new frame is grounded
    c.command("stop")


class _Outputs:
    """Every groundings, mask and overlay message with its publisher's send time (wall clock, s)."""

    def __init__(self, c) -> None:
        from sensor_msgs.msg import Image

        from refseg_ros.msg import GroundingArray

        self.items: list[tuple[str, int, float]] = []  # (topic, frame stamp ns, sent at)
        self.command_of: dict[int, str] = {}  # frame stamp ns -> the command its groundings named
        self.subs = []
        for topic, kind in (("groundings", GroundingArray), ("mask", Image), ("overlay", Image)):
            self.subs.append(c.node.create_subscription(kind, f"{NS}/{topic}", self._keep(topic), 50))

    def _keep(self, topic):
        def callback(msg, info) -> None:
            stamp = stamp_ns(msg.header.stamp)
            if topic == "groundings":
                self.command_of[stamp] = msg.command
            self.items.append((topic, stamp, info["source_timestamp"] / 1e9))
        return callback

    def after(self, command: str, t_wall: float) -> list:
        return [(topic, sent - t_wall) for topic, stamp, sent in self.items
                if self.command_of.get(stamp) == command and sent > t_wall]


COMMANDS = ("the red mug and the duck", "the blue cube and the green ball", "the duck and the blue cube")


@pytest.mark.slow
def test_nothing_is_published_for_a_command_after_stop_or_a_new_command(relw, wclient, frames):
    import cv2

    c = wclient
    big = [cv2.resize(f, (1280, 960)) for f in frames]  # masks and overlays at this size take a while
    out = _Outputs(c)
    late: list = []
    try:
        for trial in range(8):
            text = COMMANDS[trial % len(COMMANDS)]
            follow = "stop" if trial % 2 == 0 else COMMANDS[(trial + 1) % len(COMMANDS)]
            mark = relw.mark()
            c.command(text)
            t0 = time.monotonic()
            # The change is sent the moment a result arrives: the worker is then still publishing
            # that frame's mask and overlay, or grounding the next frame.
            assert c.stream_until(big, lambda: _fresh_results(c, text, t0), 60, rate_hz=15), \
                relw.since(mark)[-3000:]
            # The change is looked for only after this trial's command was logged: a "stop" of the
            # test before, logged late, must not pass for this trial's.
            _log_time(relw, mark, re.escape(f"command {text!r} ->"))
            mark = relw.mark()
            c.command(follow)
            applied = _log_time(relw, mark, r"command 'stop': cleared" if follow == "stop"
                                else re.escape(f"command {follow!r} ->"))
            c.stream_until(big, lambda: False, 1.5, rate_hz=15)
            late += [(trial, *item) for item in out.after(text, applied)]
    finally:
        for sub in out.subs:
            c.node.destroy_subscription(sub)
        c.command("stop")
    assert not late, f"published after the change was applied (trial, topic, seconds later): {late}"


@pytest.mark.slow
def test_deactivation_during_a_slow_frame(relw, wclient, frames):
    from lifecycle_msgs.msg import Transition

    c, text = wclient, "the red mug and the duck and the blue cube"
    mark = relw.mark()
    c.command(text, relw, expect=r"-> \['the red mug', 'the duck', 'the blue cube'\]")
    t0 = time.monotonic()
    assert c.stream_until(frames, lambda: _fresh_results(c, text, t0), 60)
    out = _Outputs(c)
    try:
        c.spin(2.5)  # the stream has stopped; diagnostics count every frame received so far
        received = int(diag(c, NAME)["frames_received"])
        threads_before = len(os.listdir(f"/proc/{relw.proc.pid}/task"))
        slow = np.random.default_rng(0).integers(0, 255, (480, SLOW_WIDTH, 3), dtype=np.uint8)
        slow_stamp = stamp_ns(c.publish_image(slow).stamp)
        assert c.spin_until(lambda: int(diag(c, NAME)["frames_received"]) > received, 60), "slow frame not received"
        c.spin(0.5)  # the worker took it at once (idle, a command in force)
        deactivated_at = time.time()
        took = _transition(c, Transition.TRANSITION_DEACTIVATE)
        _transition(c, Transition.TRANSITION_ACTIVATE)
        threads_after = len(os.listdir(f"/proc/{relw.proc.pid}/task"))
        t1 = time.monotonic()
        assert c.stream_until(frames, lambda: len(_fresh_results(c, text, t1)) >= 5, 120), relw.since(mark)[-3000:]
        c.stream_until(frames, lambda: False, 2.0)
        slow_sent = [sent for topic, stamp, sent in out.items if stamp == slow_stamp]
    finally:
        for sub in out.subs:
            c.node.destroy_subscription(sub)
        c.command("stop")
    assert not [t for t in slow_sent if t < deactivated_at], "the slow frame was done before the deactivation"
    assert not slow_sent, f"the frame running at deactivation was published {slow_sent[0] - deactivated_at:.1f} s after"
    stamps = [stamp_ns(a.header.stamp) for _, a in c.results_for(text, t0)]
    assert len(stamps) == len(set(stamps)), "frames published twice: two workers"
    assert threads_after <= threads_before, (threads_before, threads_after)
    assert took < 1.5, f"deactivate took {took:.1f} s: it waited for the frame"
    assert relw.proc.poll() is None and "Traceback" not in relw.since(mark)


def _ground_request(rgb, command: str):
    from refseg_ros.srv import Ground

    req = Ground.Request()
    req.image = numpy_to_imgmsg(rgb, "rgb8")
    req.command = command
    return req


@pytest.mark.slow
def test_a_burst_of_ground_calls_is_answered_or_refused(relw, wclient, frames):
    from rclpy.qos import QoSProfile

    from refseg_ros.srv import Ground

    c = wclient
    mark = relw.mark()
    # a deep response queue on our side: 30 answers may arrive between two turns of this client
    cli = c.node.create_client(Ground, f"{NS}/ground", qos_profile=QoSProfile(depth=100))
    try:
        assert cli.wait_for_service(timeout_sec=30)
        before = int((diag(c, NAME) or {}).get("service_busy", 0))
        req = _ground_request(frames[0], "the red mug")
        futures = [cli.call_async(req) for _ in range(30)]
        assert c.spin_until(lambda: all(f.done() for f in futures), 180), \
            f"{sum(f.done() for f in futures)} of 30 calls answered"
        answers = [f.result() for f in futures]
        ok = [a for a in answers if a.success]
        busy = [a for a in answers if not a.success and a.message == "busy"]
        assert len(ok) + len(busy) == 30, [a.message for a in answers if not a.success and a.message != "busy"]
        assert ok and all([g.expression for g in a.groundings.results] == ["the red mug"] for a in ok)
        c.spin(2.5)  # the next diagnostics
        assert int(diag(c, NAME)["service_busy"]) - before == len(busy)
    finally:
        c.node.destroy_client(cli)
    assert relw.proc.poll() is None and "Traceback" not in relw.since(mark)


@pytest.mark.slow
def test_a_long_ground_call_does_not_hold_up_stop(relw, wclient):
    from refseg_ros.srv import Ground

    c = wclient
    mark = relw.mark()
    cli = c.node.create_client(Ground, f"{NS}/ground")
    try:
        assert cli.wait_for_service(timeout_sec=30)
        c.command("the duck", relw, expect=r"-> \['the duck'\]")
        slow = np.random.default_rng(1).integers(0, 255, (480, SLOW_WIDTH, 3), dtype=np.uint8)
        mark2 = relw.mark()
        future = cli.call_async(_ground_request(slow, "the red mug and the duck and the blue cube"))
        # Stops every half second until the answer: those sent while the call ran are the test.
        sent: list[float] = []
        deadline = time.monotonic() + 180
        while not future.done() and time.monotonic() < deadline:
            sent.append(time.time())
            c.command("stop")
            c.spin_until(future.done, 0.5)
        answered = time.time()
        res = future.result()
        assert res is not None and res.success, res
        started = answered - res.groundings.processing_time
        c.spin(1.0)
        applied = [float(t) for t in re.findall(LOG_TS + r"command 'stop': cleared", relw.since(mark2))]
        during = [t for t in sent if started < t < answered - 0.5]
        assert during, "no stop was sent while the call ran: nothing tested"
        # each of them applied (its log line written) within a second of being sent
        late = [round(min((a - t for a in applied if a >= t), default=float("inf")), 2) for t in during]
        assert max(late) < 1.0, f"stops sent during the call applied after (s): {late}"
    finally:
        c.node.destroy_client(cli)
    assert relw.proc.poll() is None and "Traceback" not in relw.since(mark)


def test_a_burst_of_lifecycle_requests_is_answered(relw, wclient):
    """As many requests at once as the lifecycle service queues (rcl_lifecycle's default service
    QoS: 10; more in one burst are dropped by the middleware before the node sees them, see
    docs/reliability.md), each answered, with transitions that never wait for the model."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    from rclpy.qos import QoSProfile

    c = wclient
    # a deep response queue on our side, so that only the node can lose an answer
    cli = c.node.create_client(ChangeState, f"{NAME}/change_state", qos_profile=QoSProfile(depth=100))
    try:
        assert cli.wait_for_service(timeout_sec=30)
        c.spin(1.0)  # the node's response writer discovers this client's reader too (a first answer can be lost)
        ids = [Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE] * 5
        futures = [cli.call_async(ChangeState.Request(transition=Transition(id=i))) for i in ids]
        assert c.spin_until(lambda: all(f.done() for f in futures), 60), \
            f"{sum(f.done() for f in futures)} of {len(futures)} lifecycle requests answered"
    finally:
        c.node.destroy_client(cli)
        if get_state(c, NAME) != "active":
            assert change_state(c, NAME, Transition.TRANSITION_ACTIVATE)


def test_refused_frames_are_named_in_the_status():
    stats = NodeStats()
    cmd = SimpleNamespace(text="the duck", expressions=("the duck",))
    quiet = grounding_status("n", "active", "m", "cpu", cmd, stats, 5.0, 10.0, True)
    assert quiet.level == quiet.WARN and quiet.message == "command active but no images arriving"
    stats.bad_image("16-bit colour PNG of 64x48")
    refused = grounding_status("n", "active", "m", "cpu", cmd, stats, 5.0, 10.0, True)
    assert refused.level == refused.WARN and "images arriving but refused" in refused.message
    assert "16-bit colour PNG" in refused.message and "1 bad_images" in refused.message
