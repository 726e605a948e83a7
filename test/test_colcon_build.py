"""`colcon build` of the repository in a ROS 2 workspace layout, as on a robot with ROS installed.

Here the venv plays the role of the ROS underlay (/opt/ros/<distro>). The test checks the install
tree a user gets: generated messages and the hand-written package side by side in one Python
package, executables under lib/refseg_ros/, launch and config under share/refseg_ros/.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paths import REPO

pytestmark = pytest.mark.ros  # builds with the ROS toolchain (colcon, ament, rosidl) in the venv

VENV = Path(sys.prefix)
SKIP_DIRS = {".venv", "build", "install", "log", ".git", "data", "runs", "demo_out", "__pycache__",
             ".pytest_cache"}


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    colcon = VENV / "bin" / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment (make setup installs it)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "refseg_ros", ignore=lambda d, names: [n for n in names if n in SKIP_DIRS])
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(VENV), AMENT_PREFIX_PATH=str(VENV),
               PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    out = subprocess.run(
        [str(colcon), "build", "--base-paths", "src", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return ws / "install" / "refseg_ros"


def test_install_tree_layout(colcon_install):
    site = colcon_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    pkg = site / "refseg_ros"
    # generated interfaces and hand-written code in one package
    assert (pkg / "msg" / "__init__.py").is_file() and (pkg / "srv" / "__init__.py").is_file()
    assert (pkg / "ros" / "images.py").is_file() and (pkg / "cli" / "main.py").is_file()
    assert "extend_path" in (pkg / "__init__.py").read_text(), "generated __init__.py was not replaced"
    for exe in sorted((REPO / "scripts").iterdir()):
        installed = colcon_install / "lib" / "refseg_ros" / exe.name
        assert installed.is_file() and os.access(installed, os.X_OK), installed
    share = colcon_install / "share" / "refseg_ros"
    assert (share / "package.xml").is_file()
    for sub in ("launch", "config"):
        for f in (REPO / sub).rglob("*"):  # config/train/ holds the training run files
            if f.is_file() and "__pycache__" not in f.parts:
                rel = f.relative_to(REPO)
                assert (share / rel).is_file(), f"{rel} not installed"
    assert (colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "refseg_ros").is_file()


def test_installed_package_runs_from_the_install_tree(colcon_install):
    site = colcon_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env = dict(os.environ, PYTHONPATH=str(site), LD_LIBRARY_PATH=f"{colcon_install / 'lib'}:"
               + os.environ.get("LD_LIBRARY_PATH", ""))
    code = ("import refseg_ros.cli.main as m, refseg_ros.msg as msg\n"
            "from refseg_ros.msg import Grounding\n"
            "g = Grounding(); g.expression = 'the duck'\n"
            "print(m.__file__); print(msg.__file__); print(g.expression)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=colcon_install, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cli_file, msg_file, expr = out.stdout.splitlines()
    assert cli_file.startswith(str(site)) and msg_file.startswith(str(site))
    assert expr == "the duck"
    out = subprocess.run([str(colcon_install / "lib" / "refseg_ros" / "refseg"), "--version"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("refseg_ros "), out.stderr
