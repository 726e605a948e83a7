"""`refseg bench`: the latency figures of docs/performance.md in one run (``refseg_ros.bench``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HELP = "measure predict, set_command, batching, law vs static, the paper backbone and the ROS node"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tabletop", help="model preset (default tabletop)")
    parser.add_argument("--checkpoint", default=None,
                        help="*.safetensors to time (default: the shipped checkpoint if it is of --preset, "
                             "else random weights: latency does not depend on them)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write all figures to OUT")
    parser.add_argument("--quick", action="store_true", help="5 frames per figure (a smoke run, not figures)")
    parser.add_argument("--frames", type=int, default=None, help="frames per figure (default 50, --quick 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for the model and the node (default: all cores)")
    parser.add_argument("--no-ros", action="store_true", help="skip the ROS node figures")
    parser.add_argument("--dds-profile", choices=("large-frames", "default"), default="large-frames",
                        help="Fast DDS transports for the ROS figures: the shipped config/fastdds_large_frames.xml "
                             "(default, unless FASTDDS_DEFAULT_PROFILES_FILE is set) or Fast DDS's defaults")


def run(args: argparse.Namespace) -> int:
    from refseg_ros.bench.run import run_bench, summary

    if args.frames is not None and args.frames < 1:
        print("refseg bench: --frames must be >= 1", file=sys.stderr)
        return 2
    result = run_bench(args.preset, checkpoint=args.checkpoint, quick=args.quick, frames=args.frames,
                       threads=args.threads or os.cpu_count() or 1, ros=not args.no_ros, dds_profile=args.dds_profile,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
    print(summary(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
