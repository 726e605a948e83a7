"""The shared node lifecycle (refseg_ros.ros.runtime) under Ctrl-C, in a real process with rclpy's handlers.

rclpy's SIGINT thread walks its list of executor guard conditions without a lock, so the teardown
must stop that thread before ``executor.shutdown()`` frees the executor's guard condition (a node
died with SIGSEGV on Ctrl-C in CI when it did not). The probe records, at the moment each SIGINT
guard condition is freed, whether rclpy's signal handling is still installed.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

PROBE = r'''
import os, signal, sys, time
import rclpy
import rclpy.signals
from rclpy.node import Node
from refseg_ros.ros.runtime import run_node

freed_while = []
_destroy = rclpy.signals.SignalHandlerGuardCondition.destroy

def destroy(self):
    freed_while.append(rclpy.signals.get_current_signal_handlers_options().name)
    _destroy(self)

rclpy.signals.SignalHandlerGuardCondition.destroy = destroy
MODE = sys.argv[1]

class Probe(Node):
    def __init__(self):
        super().__init__("runtime_probe")
        self.ticks = 0
        self.create_timer(0.05, self.tick)

    def tick(self):
        self.ticks += 1
        if self.ticks == 3:  # as Ctrl-C in a terminal: the signal reaches the process while it spins
            os.kill(os.getpid(), signal.SIGINT)

    def close(self):
        print(f"closed after {self.ticks} ticks", flush=True)
        if MODE in ("twice", "mid_spin"):  # Ctrl-C again while the node releases its resources
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            print("close finished", flush=True)

def shut_down_mid_spin(executor, node):
    # What rclpy's signal thread does when Ctrl-C lands between the executor's check that the
    # context is valid and its building of the wait set: the spin then raises RCLError.
    rclpy.shutdown()
    executor.spin_once(timeout_sec=0)

code = run_node("probe", Probe, spin=shut_down_mid_spin if MODE == "mid_spin" else None)
print("guard conditions freed with rclpy signal handlers:", freed_while, flush=True)
sys.exit(code)
'''


def _run(mode: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60)


def test_ctrl_c_stops_rclpys_signal_thread_before_the_executor_frees_its_guard_condition(ros_env):
    r = _run("once", ros_env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "closed after 3 ticks" in r.stdout and "Traceback" not in out, out
    freed = re.search(r"guard conditions freed with rclpy signal handlers: \[(.*)\]", r.stdout)
    assert freed and freed.group(1) and set(freed.group(1).split(", ")) == {"'NO'"}, out


def test_a_second_ctrl_c_during_teardown_ends_it_with_130_and_one_line(ros_env):
    r = _run("twice", ros_env)
    assert r.returncode == 130, r.stdout + r.stderr
    assert "closed after 3 ticks" in r.stdout and "close finished" not in r.stdout
    assert "probe: interrupted again during shutdown" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_context_shut_down_mid_spin_is_a_ctrl_c_and_a_second_one_still_ends_it_with_130(ros_env):
    # The race a CI run hit: the spin raised RCLError ("the given context is not valid"), the
    # process printed it and exited 1, and the second Ctrl-C during teardown was ignored.
    r = _run("mid_spin", ros_env)
    assert r.returncode == 130, r.stdout + r.stderr
    assert "RCLError" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "probe: interrupted again during shutdown" in r.stderr and "close finished" not in r.stdout
