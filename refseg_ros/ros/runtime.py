"""One process lifecycle for every node of the package: init, spin, and an orderly teardown.

The nodes differ in what they build and how they spin; what happens around that is the same and
lives here: setup errors become one line on stderr and exit code 1 (not a traceback), Ctrl-C and an
external shutdown end the spin quietly, and teardown runs in the order that lets a node exit at
once (rclpy's signal thread stops, the executor stops taking callbacks, then the node releases its
threads and handles).

Why rclpy's signal thread goes first: on SIGINT/SIGTERM rclpy wakes a helper thread that walks its
list of registered guard conditions (one per executor) and triggers each, without a lock. The
interrupt reaches the main thread at once, and ``executor.shutdown()`` frees that executor's guard
condition and reallocates the list; if the helper thread runs late (a busy CPU), it touches freed
memory and the process dies with SIGSEGV instead of exiting 0.
``uninstall_signal_handlers()`` joins that thread, so nothing touches the list afterwards
(test_runtime.py checks the order; test/helpers/rclpy_signal_race.py widens the race window:
processes then crash or hang in rclpy's order, not in this one). A second Ctrl-C during
teardown ends it early with exit code 130 and one line, not a traceback: Python's own SIGINT
handler is put back explicitly once rclpy's are removed, so that holds whatever handler rclpy
left behind (a CI run saw a second Ctrl-C ignored after the race below).

The same signal thread can shut the context down between the executor's check that it is valid
and its building of the wait set; the spin then raises ``RCLError`` ("the given context is not
valid") instead of ``KeyboardInterrupt`` or ``ExternalShutdownException``. With the context gone
that is the same Ctrl-C and ends quietly with exit code 0.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.signals import uninstall_signal_handlers


def run_node(name: str, make_node: Callable[[], object], *, threads: int = 1, args: list[str] | None = None,
             start: Callable[[object], int | None] | None = None,
             spin: Callable[[object, object], None] | None = None,
             exit_codes: tuple[tuple[type[BaseException], int], ...] = ()) -> int:
    """Run one node until Ctrl-C or shutdown; returns the process exit code.

    Args:
        name: the executable's name, prefixed to setup-error lines.
        make_node: builds the node (after ``rclpy.init``); it may define ``close()``.
        threads: executor threads (1 = single-threaded executor).
        args: ROS arguments (default: ``sys.argv``).
        start: called once before spinning; a non-None return ends the process with that code.
        spin: ``spin(executor, node)`` replaces ``executor.spin()`` (e.g. a node that finishes).
        exit_codes: ``(exception type, code)`` pairs reported as ``name: message`` with that code.
    """
    rclpy.init(args=args)
    node = None
    executor = None
    code = 0
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        early = start(node) if start is not None else None
        if early is not None:
            return early
        if spin is not None:
            spin(executor, node)
        else:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback, for setup errors
        # An RCLError with the context gone is a Ctrl-C that shut it down mid-spin (module docstring).
        if not (isinstance(exc, _rclpy.RCLError) and not rclpy.ok()):
            code = _report(name, exc, exit_codes)
    finally:
        try:
            _teardown(executor, node)
        except KeyboardInterrupt:
            print(f"{name}: interrupted again during shutdown", file=sys.stderr)
            code = 130
    return code


def _report(name: str, exc: Exception, exit_codes: tuple[tuple[type[BaseException], int], ...]) -> int:
    """One line on stderr for an error that ends the process; its exit code."""
    for kind, special in exit_codes:
        if isinstance(exc, kind):
            print(f"{name}: {exc}", file=sys.stderr)
            return special
    print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


def _teardown(executor, node) -> None:
    uninstall_signal_handlers()  # joins rclpy's signal thread: see the module docstring
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: KeyboardInterrupt
    if executor is not None:
        executor.shutdown(timeout_sec=5.0)  # its threads stop taking callbacks before teardown
    if node is not None:
        if rclpy.ok():  # after Ctrl-C the context is gone, and rosout with it
            node.get_logger().info("shutting down")
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()
    rclpy.try_shutdown()
