"""No lost commands, over real DDS: a command sent before refseg_node listens is grounded once it
does, if still fresh (``command_max_age_s``), and exactly once.

- speech_node with an audio file and refseg_node started at the same moment (what voice.launch.py
  did before it waited for activation; still what a user typing the two commands does).
- a managed node: a durable publisher's command sent before configure is held and applied on
  activation; one held too long is dropped with a log line; a durable publisher reaches both of
  the node's command subscriptions but is applied once; a volatile publisher still works.
"""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from node_process import STARTUP_TIMEOUT, NodeProcess
from paths import PARAMS_FILE, REPO

rclpy = pytest.importorskip("rclpy")

from ros_client import Client, change_state  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SPEECH_PARAMS_FILE = REPO / "config" / "speech.yaml"
FRAME = np.full((240, 320, 3), 128, np.uint8)


def _stream(client: Client, predicate, timeout: float) -> bool:
    """Publish FRAME at 5 Hz until ``predicate()``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        client.publish_image(FRAME)
        client.spin(0.2)
        if predicate():
            return True
    return bool(predicate())


def test_speech_node_and_grounding_node_started_together_ground_the_command(tmp_path, ros_env):
    pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")
    from std_msgs.msg import String

    from refseg_ros.speech.synth import espeak_available, synthesise

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    wav = synthesise("please pick up the red mug", tmp_path / "command.wav")
    # Both as the parameter files configure them, at the same moment.
    grounding = NodeProcess(["--params-file", str(PARAMS_FILE), "-r", "__ns:=/together", "-p", "num_threads:=1"],
                            env=ros_env)
    speech = NodeProcess(["--params-file", str(SPEECH_PARAMS_FILE), "-r", "__ns:=/together",
                          "-p", f"audio_file:={wav}", "-p", "num_threads:=1"],
                         env=ros_env, name="speech_node", executable="speech_node")
    client = Client("/together", visuals=False)
    heard: list[str] = []
    client.node.create_subscription(String, "/together/transcript", lambda m: heard.append(json.loads(m.data)["text"]),
                                    10)
    try:
        done = _stream(client, lambda: heard and client.results_for(heard[0]), STARTUP_TIMEOUT + 120)
        assert heard, f"nothing transcribed:\n{speech.log()[-3000:]}"
        assert done, (f"{heard[0]!r} was never grounded:\n{grounding.log()[-3000:]}\n---\n"
                      f"{speech.log()[-3000:]}")
        _, arr = client.results_for(heard[0])[0]
        assert arr.results and "mug" in arr.results[0].expression
        assert speech.proc.wait(timeout=60) == 0, speech.log()[-3000:]
        assert "dropping command" not in grounding.log()
        assert "Traceback" not in grounding.log() + speech.log()
    finally:
        speech.stop()
        grounding.stop()
        client.close()


def _applied(node: NodeProcess, text: str, since: int = 0) -> int:
    return len(re.findall(rf"command {re.escape(repr(text))} -> ", node.since(since)))


def test_early_command_held_until_active_stale_one_dropped_each_applied_once(ros_env):
    from std_msgs.msg import String
    from lifecycle_msgs.msg import Transition

    from refseg_ros.ros.commands import command_qos

    node = NodeProcess(["--params-file", str(PARAMS_FILE), "-r", "__ns:=/inbox", "-p", "autostart:=false",
                        "-p", "backend:=torch", "-p", "num_threads:=1", "-p", "command_max_age_s:=0.0",
                        "-p", "warn_throttle_sec:=0.0"], env=ros_env)
    client = Client("/inbox", visuals=False)
    name = "/inbox/refseg_node"
    durable = client.node.create_publisher(String, "/inbox/command", command_qos())
    try:
        assert node.wait_for(r"waiting for a lifecycle manager", STARTUP_TIMEOUT), node.log()
        # Sent before the node has any command subscription: the durable publisher keeps it.
        durable.publish(String(data="the red mug"))
        assert change_state(client, name, Transition.TRANSITION_CONFIGURE), node.log()[-3000:]
        assert node.wait_for(r"command 'the red mug' held until the node is active", 30), node.log()[-3000:]
        client.spin(1.0)
        assert not client.received["groundings"]
        assert change_state(client, name, Transition.TRANSITION_ACTIVATE)
        assert _stream(client, lambda: client.results_for("the red mug"), 60), node.log()[-3000:]
        assert _applied(node, "the red mug") == 1

        # Held for longer than command_max_age_s: dropped with a log line when the node activates.
        assert client.set_params(command_max_age_s=2.0)[0].successful
        assert change_state(client, name, Transition.TRANSITION_DEACTIVATE)
        mark = node.mark()
        durable.publish(String(data="the blue cube"))
        assert node.wait_for(r"command 'the blue cube' held", 30, since=mark), node.since(mark)
        time.sleep(3.0)
        assert change_state(client, name, Transition.TRANSITION_ACTIVATE)
        assert node.wait_for(r"dropping command 'the blue cube': \d+\.\d s old, older than command_max_age_s "
                             r"\(2 s\)", 30, since=mark), node.since(mark)
        assert _applied(node, "the blue cube", mark) == 0

        # While active: a durable publisher reaches both subscriptions, the command applies once;
        # a volatile publisher (ros2 topic pub, user scripts) is heard as before.
        mark = node.mark()
        durable.publish(String(data="the green duck"))
        assert _stream(client, lambda: client.results_for("the green duck"), 60), node.since(mark)
        client.command_pub.publish(String(data="the yellow duck"))
        assert _stream(client, lambda: client.results_for("the yellow duck"), 60), node.since(mark)
        assert _applied(node, "the green duck", mark) == 1 and _applied(node, "the yellow duck", mark) == 1
        assert not client.results_for("the blue cube")
        assert "Traceback" not in node.log()
    finally:
        node.stop()
        client.close()
