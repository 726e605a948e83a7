"""Run refseg_node as a user does (a separate process) and read its log while it runs.

The process wrapper is the benchmark's (:mod:`refseg_ros.bench.ros_client`): one implementation
for the bench and the tests.
"""
from __future__ import annotations

from refseg_ros.bench.ros_client import NodeProcess, node_command

__all__ = ["NodeProcess", "STARTUP_TIMEOUT", "node_command"]

STARTUP_TIMEOUT = 240  # seconds: import torch + build the model, on a shared 2-core machine
