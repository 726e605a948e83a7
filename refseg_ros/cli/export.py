"""`refseg export onnx`: the per-frame graph as ONNX, checked and timed against PyTorch."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "export the per-frame model path to ONNX (checked against PyTorch, timed with onnxruntime)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=("onnx",), help="export format")
    parser.add_argument("--checkpoint", default=None, help="*.safetensors (default: the shipped checkpoint)")
    parser.add_argument("--preset", default=None,
                        help="instead of a checkpoint: a randomly initialised model of this preset")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override with --preset")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--expr", action="append", default=None,
                        help="expression(s) for the example command (default: two)")
    parser.add_argument("--frames", type=int, default=30, help="frames to time with onnxruntime (0: skip)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both runtimes")
    parser.add_argument("--json", type=Path, default=None, help="write the check and timing figures here")


def run(args: argparse.Namespace) -> int:
    import torch

    from refseg_ros.cli.common import parse_overrides
    from refseg_ros.model.export import FramePath, check_onnx, export_onnx, time_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.preset:
        from refseg_ros.model.build import build_model

        model = build_model(args.preset, **parse_overrides(args.set))
        source = f"random init, preset {args.preset}"
    else:
        from refseg_ros.model.checkpoint import CheckpointError
        from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

        path = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
        try:
            from refseg_ros.model.checkpoint import load_checkpoint

            model = load_checkpoint(path, device="cpu")
        except (FileNotFoundError, CheckpointError) as exc:
            print(f"refseg export: {exc}", file=sys.stderr)
            return 1
        source = str(path)
    model.eval()
    expressions = args.expr or ["the red mug on the left", "the duck"]
    out = export_onnx(model, args.out, expressions)
    report = {"onnx": str(out), "weights": source, "bytes": out.stat().st_size,
              "inputs": FramePath(model).input_names(),
              "input_size": list(model.input_size)}
    w, h = model.input_size
    report["check"] = check_onnx(model, out, expressions, threads=args.threads)
    # Dynamic axes: another image size and another number of expressions than the example's.
    others = (expressions + ["the small blue cube", "the ball"])[:3]
    report["check_other_size"] = check_onnx(model, out, others, image_hw=(h + 32, w + 64), seed=1,
                                            threads=args.threads)
    if args.frames > 0:
        report["timing"] = time_onnx(model, out, expressions[:1], frames=args.frames, threads=args.threads)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
