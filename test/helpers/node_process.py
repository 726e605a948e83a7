"""Run refseg_node as a user does (a separate process) and read its log while it runs."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT = 240  # seconds: import torch + build the model, on a shared 2-core machine


def node_command(executable: str = "refseg_node") -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    exe = Path(sys.executable).with_name(executable)
    module = {"refseg_node": "refseg_ros.ros.node"}.get(executable, f"refseg_ros.ros.{executable}")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


class NodeProcess:
    """``refseg_node --ros-args ...`` with stdout+stderr collected line by line in a thread."""

    def __init__(self, ros_args: list[str], env: dict | None = None, name: str = "refseg_node",
                 executable: str = "refseg_node"):
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(node_command(executable) + ["--ros-args", *ros_args], env=env or dict(os.environ),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{name}-log")
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """Position in the log; pass to ``wait_for``/``since`` to look only at later lines."""
        with self._lock:
            return len(self.lines)

    def since(self, mark: int) -> str:
        with self._lock:
            return "\n".join(self.lines[mark:])

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match | None:
        """First match of ``pattern`` in log lines after ``since``; None on timeout or exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines[since:]:
                    m = rx.search(line)
                    if m:
                        return m
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                with self._lock:
                    for line in self.lines[since:]:
                        m = rx.search(line)
                        if m:
                            return m
                return None
            time.sleep(0.05)
        return None

    def stop(self, timeout: float = 15) -> int:
        """SIGINT (as Ctrl-C), then SIGKILL if it does not exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        return self.proc.returncode
