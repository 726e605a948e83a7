"""Shared pytest fixtures: an isolated DDS domain per test run, subprocess helpers, the node
tests' random checkpoint and camera frames. Helper modules live in test/helpers (on pytest.ini's
pythonpath)."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest


def _pick_domain_id() -> int:
    # Domain ids 1..100 keep DDS ports in the valid range; random per run so parallel runs
    # (two CI checkouts, a developer's shell) do not see each other's topics.
    return random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little")).randint(1, 100)


# Set before any test imports rclpy, so in-process nodes and subprocesses share the domain.
os.environ.setdefault("ROS_DOMAIN_ID", str(_pick_domain_id()))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ros_env() -> dict:
    """Environment for subprocesses that talk DDS with the test process."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a native crash in a node prints every thread's Python stack to its log
    return env


@pytest.fixture
def rclpy_context():
    """An initialised rclpy context, shut down after the test."""
    import rclpy

    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def run_python(args: list[str], env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env or dict(os.environ), timeout=timeout,
                          capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, ros_env) -> Path:
    """A randomly initialised tabletop model saved with the real checkpoint writer."""
    path = tmp_path_factory.mktemp("checkpoint") / "random_tabletop.safetensors"
    code = ("import sys, torch; torch.manual_seed(0); torch.set_num_threads(1)\n"
            "from refseg_ros.model import build_model, save_checkpoint\n"
            "save_checkpoint(build_model('tabletop'), sys.argv[1], extra={'note': 'random init, refseg_node tests'})\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=ros_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert path.is_file() and path.with_suffix(".json").is_file()
    return path


@pytest.fixture(scope="module")
def shipped_predictor():
    """The shipped checkpoint's predictor, on two threads (real weights)."""
    import torch

    from refseg_ros.model.predictor import DEFAULT_CHECKPOINT, GroundingPredictor

    torch.set_num_threads(2)
    return GroundingPredictor.from_checkpoint(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="module")
def frames():
    """640x480 RGB frames: from the tabletop generator when it works here, else synthetic."""
    from scenes import tabletop_frames

    return tabletop_frames((3, 4))
