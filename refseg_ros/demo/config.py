"""The demo's settings and the one error it raises."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoConfig", "DemoError"]


class DemoError(RuntimeError):
    """The demo could not run (a process died, a timeout); the message says which and why."""


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    scenes: int = 4
    commands_per_scene: int = 4
    seed: int = 0  # first scene's seed (sim_camera parameter seed)
    script_seed: int = 0
    width: int = 640
    height: int = 480
    rate_hz: float = 5.0
    checkpoint: str = ""  # empty: the shipped checkpoint
    threads: int = 2  # torch threads of the grounding node
    device: str = "cpu"
    startup_timeout: float = 300.0
    result_timeout: float = 60.0
    stop_quiet_s: float = 2.0
    gif_frame_ms: int = 1800
