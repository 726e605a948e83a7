"""Reproduce the rclpy Ctrl-C race that ``refseg_ros.ros.runtime`` avoids, and show that its order avoids it.

On SIGINT, rclpy's signal thread walks the list of registered SIGINT guard conditions (one per
executor) without a lock, while the interrupted main thread may already be freeing them
(``executor.shutdown()``). A real node has one or two guard conditions, so the window is tiny and
the crash rare (once in CI); this script registers thousands to widen the window, then times the
crash rate of each order in fresh processes::

    python test/helpers/rclpy_signal_race.py --processes 12
    # teardown order                          crashed processes
    # free guard conditions first (rclpy's)   11 of 12 (9 SIGSEGV, 2 hung)
    # uninstall_signal_handlers() first       0 of 12

(measured 2026-12-02 on the 2-core CI machine, 10 min; a hung process is stopped after 60 s.)

Not part of ``make test``: it is slow and, by its nature, a matter of chance.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys


def child(order: str, rounds: int, guards: int) -> None:
    import rclpy
    from rclpy.signals import SignalHandlerGuardCondition, uninstall_signal_handlers

    for _ in range(rounds):
        rclpy.init()
        gcs = [SignalHandlerGuardCondition() for _ in range(guards)]
        try:
            os.kill(os.getpid(), signal.SIGINT)  # rclpy's handler wakes its thread; Python raises here
        except KeyboardInterrupt:
            pass
        if order == "runtime":
            uninstall_signal_handlers()  # what runtime.run_node does first
        for gc in gcs:
            gc.destroy()
        rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=12, help="fresh processes per order")
    parser.add_argument("--rounds", type=int, default=20, help="Ctrl-C rounds per process")
    parser.add_argument("--guards", type=int, default=6000, help="registered guard conditions per round")
    parser.add_argument("--child", choices=("rclpy", "runtime"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds, args.guards)
        return 0
    labels = {"rclpy": "free guard conditions first (rclpy's)", "runtime": "uninstall_signal_handlers() first"}
    print(f"{'teardown order':40s}  crashed processes")
    for order, label in labels.items():
        codes = []
        for _ in range(args.processes):
            try:
                codes.append(subprocess.run(
                    [sys.executable, __file__, "--child", order, "--rounds", str(args.rounds),
                     "--guards", str(args.guards)], capture_output=True, timeout=60).returncode)
            except subprocess.TimeoutExpired:
                codes.append("hung")
        bad = [c for c in codes if c != 0]
        print(f"{label:40s}  {len(bad)} of {len(codes)}" + (f" (exit codes {bad})" if bad else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
