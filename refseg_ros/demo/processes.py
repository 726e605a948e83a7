"""The demo's child processes (``sim_camera``, ``refseg_node``): how they are found, their
environment, their logs, and stopping them the way a user would (Ctrl-C)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from refseg_ros.demo.config import DemoError

__all__ = ["ChildProcess", "child_env", "executable"]


def executable(name: str, module: str) -> list[str]:
    """The installed console script next to this Python, else ``python -m module``."""
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


def child_env(threads: int) -> dict:
    """The children's environment: this one, kept on this machine and a domain of its own."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if "ROS_DOMAIN_ID" not in env:  # keep this demo's topics apart from anything else running
        env["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ int(time.time())).randint(1, 100))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, threads)))
    return env


class ChildProcess:
    """A child process with its output in a log file; stopped like Ctrl-C."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._interrupted = False

    def check(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise DemoError(f"{self.name} exited with code {code}; the end of its log ({self.log_path}):\n"
                            + self.tail())

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def interrupt(self) -> None:
        """Ctrl-C, once."""
        if self.proc.poll() is None and not self._interrupted:
            self._interrupted = True
            self.proc.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.interrupt()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode
