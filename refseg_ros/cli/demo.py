"""`refseg demo`: the end-to-end demo (simulated camera + grounding node + scripted commands)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run the simulated camera and the grounding node, speak scripted commands, score and draw the results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--scenes", type=int, default=4, help="tabletop scenes to show (default 4)")
    parser.add_argument("--commands-per-scene", type=int, default=4,
                        help="single-object commands per scene; the second scene adds a two-object one (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene (default 0)")
    parser.add_argument("--script-seed", type=int, default=0, help="seed of the command script (default 0)")
    parser.add_argument("--width", type=int, default=640, help="camera width (default 640)")
    parser.add_argument("--height", type=int, default=480, help="camera height (default 480)")
    parser.add_argument("--rate", type=float, default=5.0, help="camera frame rate in Hz (default 5)")
    parser.add_argument("--checkpoint", default="", help="model checkpoint (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the grounding node (default 2)")
    parser.add_argument("--device", default="cpu", help="device of the grounding node (default cpu)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    import json

    from refseg_ros.demo.runner import DemoConfig, DemoError, run_demo
    from refseg_ros.demo.scoring import format_table

    if args.scenes < 1 or args.commands_per_scene < 1:
        print("refseg demo: --scenes and --commands-per-scene must be at least 1", file=sys.stderr)
        return 2
    if args.checkpoint and not Path(args.checkpoint).is_file():
        print(f"refseg demo: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 1
    if not args.checkpoint:
        from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

        if not DEFAULT_CHECKPOINT.is_file():
            print(f"refseg demo: no shipped checkpoint at {DEFAULT_CHECKPOINT} yet; pass --checkpoint "
                  f"<file>.safetensors (a training run writes runs/<name>/checkpoints/last.safetensors)",
                  file=sys.stderr)
            return 1
    cfg = DemoConfig(out=args.out, scenes=args.scenes, commands_per_scene=args.commands_per_scene, seed=args.seed,
                     script_seed=args.script_seed, width=args.width, height=args.height, rate_hz=args.rate,
                     checkpoint=str(Path(args.checkpoint).resolve()) if args.checkpoint else "",
                     threads=args.threads, device=args.device)
    try:
        summary = run_demo(cfg)
    except DemoError as exc:
        print(f"refseg demo: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "commands"}, indent=2))
    else:
        print()
        print(format_table(summary))
        print(f"\nwritten to {args.out}/: summary.md, summary.json, demo.gif, cmd_*.png, logs/")
    return 0
