"""`refseg info`: what this installation can do (versions, device, ROS messages, weights)."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform

HELP = "print versions, the compute device, and whether ROS messages and weight packages are found"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--preset", metavar="P",
                        help="instead: build model preset P (tabletop, paper) and print its total and "
                             "trainable parameters and GFLOPs per frame at the preset's input size")


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


def model_info(preset: str) -> dict:
    """Parameters and per-frame GFLOPs of a preset (builds the model: needs torch and the weights)."""
    import warnings

    from refseg_ros.model.build import build_model
    from refseg_ros.model.complexity import model_complexity

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="vit backbone: no vit_checkpoint")  # counts only
        model = build_model(preset)
    return {"preset": preset, **model_complexity(model)}


def run(args: argparse.Namespace) -> int:
    if getattr(args, "preset", None):
        from refseg_ros.utils.weights import MissingWeightsError

        try:
            info = model_info(args.preset)
        except (MissingWeightsError, ValueError) as exc:
            print(f"refseg info: {exc}")
            return 1
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(f"preset: {info['preset']}")
            print(f"input_size: {info['input_size'][0]}x{info['input_size'][1]} (W x H)")
            print(f"params: {info['params']:,} ({info['params'] / 1e6:.2f} M)")
            print(f"trainable_params: {info['trainable_params']:,} ({info['trainable_params'] / 1e6:.2f} M)")
            print(f"gflops: {info['gflops']} per frame, command cached "
                  f"(+{info['gflops_command']} once per command)")
        return 0
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
