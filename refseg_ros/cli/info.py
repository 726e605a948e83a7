"""`refseg info`: what this installation can do (versions, device, ROS messages, weights)."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform

HELP = "print versions, the compute device, and whether ROS messages and weight packages are found"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _version(distribution: str) -> str:
    # Package metadata, not an import: importing torch or pybullet would cost seconds (and
    # pybullet prints its build time to stdout).
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _ros_status() -> dict:
    out = {}
    try:
        import rclpy  # noqa: F401
        out["rclpy"] = "found"
    except Exception as exc:  # noqa: BLE001
        out["rclpy"] = f"missing ({exc})"
    try:
        from refseg_ros.msg import Grounding, GroundingArray  # noqa: F401
        from refseg_ros.srv import Ground  # noqa: F401
        out["messages"] = "found (Grounding, GroundingArray, Ground)"
    except Exception as exc:  # noqa: BLE001
        out["messages"] = f"missing ({type(exc).__name__}: {exc}); run `make setup` or colcon build"
    return out


def collect() -> dict:
    from refseg_ros import __version__
    from refseg_ros.utils.weights import weights_status

    info: dict = {"refseg_ros": __version__, "python": platform.python_version()}
    for dist in ("torch", "torchvision", "transformers", "timm", "numpy", "opencv-python-headless",
                 "pybullet", "safetensors"):
        info[dist] = _version(dist)
    try:
        import torch
        info["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        info["cuda_devices"] = torch.cuda.device_count()
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # noqa: BLE001
        info["device"] = "unavailable (torch missing)"
    info["ros"] = _ros_status()
    info["weights"] = weights_status()
    return info


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0
