"""`refseg`: the command-line entry point. Each subcommand lives in its own module of this package.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``,
and keeps heavy imports (torch, pybullet, rclpy) inside ``run`` so ``refseg --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from refseg_ros import __version__
from refseg_ros.cli.common import expand_run_file

#: subcommand name -> module implementing it
SUBCOMMANDS: dict[str, str] = {
    "info": "refseg_ros.cli.info",
    "data": "refseg_ros.cli.data",
    "train": "refseg_ros.cli.train",
    "eval": "refseg_ros.cli.evaluate",
    "predict": "refseg_ros.cli.predict",
    "bench": "refseg_ros.cli.bench",
    "export": "refseg_ros.cli.export",
    "demo": "refseg_ros.cli.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refseg", description="Language-grounded perception (VG-LAW) for ROS 2.")
    parser.add_argument("--version", action="version", version=f"refseg_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(expand_run_file(parser, list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
