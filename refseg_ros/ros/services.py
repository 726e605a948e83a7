"""The grounding node's ``ground`` service, answered off the executor thread from a bounded queue.

rclpy answers a service with the value its callback returns, so a callback that runs the model
holds the executor for the whole call: a ``stop`` waits behind it, and requests arriving
meanwhile pile up in the middleware's request queue, which drops the oldest when full (those
clients then wait forever). Here the callback only checks the request and reserves a place:

- a place free (at most ``capacity`` requests waiting or running): the request is answered later,
  by this module's thread, with the response object rclpy handed to the callback;
- no place free: the answer is immediate, ``success: false, message: "busy"``, and counted.

The deferral hooks rclpy's ``Service.send_response`` of this one service (the executor calls it
with the callback's return value and the request's header): a reserved response is queued with
its header instead of being sent, and the thread sends it when the work is done. The service's
request queue is deep enough that a burst of calls reaches the callback (and gets an answer).
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from refseg_ros.language.parser import Action, parse_command
from refseg_ros.ros import messages as M
from refseg_ros.ros.images import ImageConversionError

#: Requests waiting or running at once; more are answered "busy" at once.
QUEUE_CAPACITY = 4
#: Depth of the service's request queue in the middleware: requests that may arrive between two
#: turns of the executor (each turn takes every waiting request and answers or queues it).
REQUEST_DEPTH = 100
BUSY = "busy"


def service_qos():
    from rclpy.qos import qos_profile_services_default, QoSProfile

    qos = QoSProfile(**{k: getattr(qos_profile_services_default, k)
                        for k in ("history", "reliability", "durability")}, depth=REQUEST_DEPTH)
    return qos


class DeferredService:
    """Answer a service's requests from a worker thread, at most ``capacity`` at a time.

    Args:
        capacity: requests reserved (waiting or running) at once.
        on_error: ``on_error(text)`` when a deferred answer could not be computed or sent.
    """

    def __init__(self, capacity: int = QUEUE_CAPACITY, on_error: Callable[[str], None] = lambda text: None) -> None:
        self.capacity = int(capacity)
        self._on_error = on_error
        self._lock = threading.Lock()
        self._reserved: dict[int, tuple[object, Callable[[], object]]] = {}  # id(response) -> (response, work)
        self._in_flight = 0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()

    def attach(self, service) -> None:
        """Route ``service``'s answers through this object (see the module docstring)."""
        send_now = service.send_response

        def send_response(response, header) -> None:
            with self._lock:
                entry = self._reserved.pop(id(response), None)
            if entry is None:
                send_now(response, header)  # answered in the callback (an error or "busy")
            else:
                self._jobs.put((entry[1], send_now, header))

        service.send_response = send_response

    def defer(self, response, work: Callable[[], object]) -> bool:
        """Reserve a place for ``response``, filled by ``work()`` later; False when full (answer busy)."""
        with self._lock:
            if self._in_flight >= self.capacity:
                return False
            self._in_flight += 1
            self._reserved[id(response)] = (response, work)
            self._quit.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="refseg_ground_service", daemon=True)
                self._thread.start()
        return True

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def stop(self, timeout: float = 2.0) -> None:
        self._quit.set()
        self._jobs.put(None)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._quit.is_set():
            job = self._jobs.get()
            if job is None:
                continue
            work, send, header = job
            try:
                send(work(), header)
            except Exception as exc:  # noqa: BLE001 - e.g. the service was destroyed meanwhile
                self._on_error(f"ground service: could not answer: {type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._in_flight -= 1


class GroundService:
    """The ``ground`` service's logic: checks in the callback, the model in :class:`DeferredService`'s thread.

    Args:
        worker: the node's :class:`~refseg_ros.ros.worker.GroundingWorker` (shares the model).
        params: the node's live parameters; ``state()``: its lifecycle state label.
        stats: the node's counters; ``warn(message)``: its throttled warning.
    """

    def __init__(self, worker, params: dict, state: Callable[[], str], stats, warn: Callable[[str], None],
                 capacity: int = QUEUE_CAPACITY) -> None:
        self.worker, self.params, self.state, self.stats, self.warn = worker, params, state, stats, warn
        self.deferred = DeferredService(capacity, on_error=warn)

    def __call__(self, request, response):
        """The service callback (executor thread): a quick answer, or a place in the queue."""
        self.stats.count("service_calls")
        response.groundings.header = request.image.header
        response.groundings.command = request.command
        if self.state() != "active":
            return self._fail(response, f"node is {self.state()}, not active")
        parsed = parse_command(request.command, max_chars=self.params["max_command_chars"],
                               max_expressions=self.params["max_expressions"])
        if parsed.action is Action.STOP:
            return self._fail(response, f"{request.command!r} is a stop command; the ground service needs an "
                                        "object description")
        if parsed.action is Action.INVALID:
            return self._fail(response, f"bad command: {parsed.reason}")
        if not self.deferred.defer(response, lambda: self._ground(request, response, parsed.expressions)):
            self.stats.count("service_busy")
            self.warn(f"ground service: busy ({self.deferred.capacity} calls waiting or running); "
                      "answered 'busy'")
            response.success, response.message = False, BUSY
        return response

    def _fail(self, response, message: str):
        response.success, response.message = False, message
        self.warn(f"ground service: {message}")
        return response

    def _ground(self, request, response, expressions):
        """The model's part (service thread)."""
        t0 = time.perf_counter()
        if self.state() != "active":
            return self._fail(response, f"node is {self.state()}, not active")
        try:
            rgb = M.decode_colour(request.image, max_pixels=self.worker.max_pixels())
        except ImageConversionError as exc:
            return self._fail(response, f"bad image: {exc}")
        depth = None
        if request.depth.height > 0 or request.depth.width > 0 or len(request.depth.data):
            depth = M.DepthView.from_messages(request.depth, request.camera_info, max_pixels=self.worker.max_pixels())
            if depth.problem:
                return self._fail(response, depth.problem)
        try:
            results = self.worker.ground(rgb, expressions, stream=False)
        except Exception as exc:  # noqa: BLE001
            return self._fail(response, f"grounding failed: {exc}")
        out = M.grounding_array(request.image.header, request.command, results, depth,
                                fill_masks=bool(self.params["publish_masks"]), limits=self.worker.depth_limits())
        if out.not_found:
            self.stats.count("not_found", out.not_found)
        for note, _key in out.notes:
            self.warn(note)
        out.array.processing_time = float(time.perf_counter() - t0)
        response.groundings = out.array
        response.success, response.message = True, ""
        return response

    def stop(self) -> None:
        self.deferred.stop()
