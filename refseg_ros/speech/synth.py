"""Spoken commands from text with espeak-ng (Debian package), for tests, benchmarks and demos. No ROS."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["espeak_available", "synthesise"]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesise(text: str, path: str | Path, voice: str = "en-us", words_per_minute: int = 150,
               pitch: int = 50) -> Path:
    """Write ``text`` spoken by espeak-ng to the WAV file ``path`` (22.05 kHz mono PCM)."""
    if not espeak_available():
        raise FileNotFoundError("espeak-ng not found: sudo apt-get install -y espeak-ng")
    path = Path(path)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(words_per_minute)), "-p", str(int(pitch)),
                    "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path
