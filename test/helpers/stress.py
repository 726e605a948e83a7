"""Reliability drills against a running refseg_node over DDS: fuzzed inputs, floods and a soak.

``test/test_node_reliability.py`` runs short versions in ``make test``; run this file for the full
ones and a report (the node is started here, as a user starts it)::

    python test/helpers/stress.py --flood 30 --soak 600 --report soak_report.md
    python test/helpers/stress.py --checkpoint run.safetensors --soak 120     # another checkpoint

Correctness does not depend on trained weights: the model is deterministic, so every result
published under load is compared with the node's own ``ground`` service answer for the same frame
and expression, asked afterwards on a quiet node. A result that mixed up frames, commands or
adaptive weights under load differs.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "white", "pink")
OBJECTS = ("mug", "cube", "ball", "duck", "teddy bear", "lego brick", "jenga block", "torus")
PLACES = ("", " on the left", " on the right", " next to the duck", " behind the mug", " in front")


# ---- process figures ---------------------------------------------------------------------------------

def proc_status(pid: int) -> dict[str, float]:
    """rss_mb, peak_rss_mb, threads, open fds and cpu_s (user + system seconds so far) of a live
    process, from /proc."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/stat") as f:  # the command name (field 2) may hold spaces: split after it
        ticks = f.read().rpartition(")")[2].split()
    out["cpu_s"] = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "VmRSS":
                out["rss_mb"] = int(value.split()[0]) / 1024
            elif key == "VmHWM":
                out["peak_rss_mb"] = int(value.split()[0]) / 1024
            elif key == "Threads":
                out["threads"] = int(value)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


# ---- inputs --------------------------------------------------------------------------------------------

def valid_commands(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct commands a user could say, one or two objects each."""
    seen: dict[str, None] = {}
    while len(seen) < n:
        c, o, p = rng.choice(COLOURS), rng.choice(OBJECTS), rng.choice(PLACES)
        if rng.random() < 0.3:
            text = f"grab the {c} {o} and the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}{p}"
        else:
            text = f"{rng.choice(('', 'please ', 'robot, '))}pick up the {c} {o}{p}"
        seen.setdefault(text)
    return list(seen)


def expected_expressions(text: str, max_chars: int = 300, max_expressions: int = 5) -> tuple[str, ...] | None:
    """What the node grounds for ``text`` (None: the node must ignore it), by the node's own parser."""
    from refseg_ros.language.parser import Action, parse_command

    parsed = parse_command(text, max_chars=max_chars, max_expressions=max_expressions)
    return tuple(parsed.expressions) if parsed.action is Action.GROUND else None


def fuzz_commands(rng: random.Random, n: int) -> list[str]:
    """Random UTF-8, control characters, terminal escapes, 100 kB strings, boundary lengths."""
    def random_text(length: int) -> str:
        chars = []
        for _ in range(length):
            r = rng.random()
            if r < 0.4:
                chars.append(chr(rng.randrange(32, 127)))
            elif r < 0.55:
                chars.append(chr(rng.randrange(0, 32)))
            else:
                cp = rng.randrange(0x80, 0x10FFFF)
                chars.append(chr(cp) if not 0xD800 <= cp <= 0xDFFF else "\ufffd")  # no lone surrogates
        return "".join(chars)

    fixed = ["", " ", "\t\n\r", "\x00", "\x00the red mug", "\x1b[2J\x1b[31mthe red mug\x1b[0m", "\u202ethe red mug",
             "the red mug\u200b\u200b", "\ufeffstop", "STOP!!!", "\U0001F916 grab the \U0001F986", "x" * 100_000,
             "the red mug " * 9000, "the " * 25_000, "a" * 300, "a" * 301, "%s%n%x", "'; DROP TABLE refs; --",
             "and and and", "it", "the", "${jndi:ldap://x}", "\\" * 1000, "\"" * 1000, "\ud7ff\ue000\uffff"]
    out = list(fixed)
    while len(out) < n:
        out.append(random_text(rng.choice((1, 5, 40, 300, 2000, 100_000))))
    return out[:n]


def fuzz_images(rng: random.Random, n: int, max_bytes: int = 1 << 16) -> list:
    """sensor_msgs/Image with random and inconsistent fields; data never above ``max_bytes``."""
    from sensor_msgs.msg import Image

    from refseg_ros.ros.images import SUPPORTED_ENCODINGS, encoding_info

    junk = ["", "yuv422", "BGR8", "bgr8 ", "bayer_rggb8", "64FC1", "16SC1", "rgb16", "\u00e9", "a" * 500, "\x00", "jpeg"]
    msgs = []
    for i in range(n):
        msg = Image()
        msg.header.frame_id = rng.choice(("camera", "", "\u00e9" * 50, "x" * 1000))
        encoding = (list(SUPPORTED_ENCODINGS) + junk)[i % (len(SUPPORTED_ENCODINGS) + len(junk))]
        msg.encoding = encoding
        try:
            info = encoding_info(encoding)
            pixel = info.channels * info.dtype.itemsize
        except Exception:  # noqa: BLE001 - a junk encoding
            pixel = rng.choice((1, 2, 3, 4))
        msg.height = rng.choice((0, 1, 2, 3, 17, 48, 480, 20_000, 2**32 - 1))
        msg.width = rng.choice((0, 1, 2, 5, 64, 640, 20_000, 2**32 - 1))
        row = msg.width * pixel
        msg.step = min(2**32 - 1, rng.choice((row, row, row + rng.randrange(1, 64), max(0, row - 1), 0,
                                              2**32 - 1, rng.randrange(0, 5000))))
        need = msg.height * msg.step
        size = rng.choice((need, need, max(0, need - 1), need + 1, 0, rng.randrange(0, 5000)))
        msg.data = rng.randbytes(min(size, max_bytes))
        msg.is_bigendian = rng.choice((0, 1))
        msgs.append(msg)
    # Consistent but extreme shapes: these decode and reach the model.
    for h, w, enc in ((1, 16000, "mono8"), (16000, 1, "mono8"), (2, 16384, "bgr8"), (1, 1, "rgb8"), (3, 2, "mono16")):
        msg = Image()
        msg.height, msg.width, msg.encoding = h, w, enc
        pixel = encoding_info(enc).channels * encoding_info(enc).dtype.itemsize
        msg.step = w * pixel
        msg.is_bigendian = 1
        msg.data = rng.randbytes(h * w * pixel)
        msgs.append(msg)
    return msgs


def fuzz_compressed(rng: random.Random, n: int, valid: bytes) -> list:
    """sensor_msgs/CompressedImage: random bytes, damaged and truncated JPEG, a PNG decompression bomb."""
    import struct
    import zlib

    from sensor_msgs.msg import CompressedImage

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(4000))) + chunk(b"IEND", b""))
    payloads = [b"", bomb, bomb[:30], b"\xff\xd8", b"\xff\xd8\xff\xe0garbage", valid[: len(valid) // 2], valid[:20]]
    while len(payloads) < n:
        kind = rng.randrange(3)
        if kind == 0:
            payloads.append(rng.randbytes(rng.choice((1, 16, 1000, 100_000))))
        elif kind == 1:
            b = bytearray(valid)
            for _ in range(rng.randrange(1, 30)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            payloads.append(bytes(b))
        else:
            payloads.append(valid[: rng.randrange(len(valid))])
    msgs = []
    for p in payloads[:n]:
        msg = CompressedImage()
        msg.format = rng.choice(("jpeg", "png", "", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png", "\u00e9"))
        msg.data = p
        msgs.append(msg)
    return msgs


# ---- drills --------------------------------------------------------------------------------------------

def _paced(client, seconds: float, tick: float, step) -> None:
    """Call ``step(i)`` every ``tick`` seconds for ``seconds``, spinning the client in between."""
    t0 = time.monotonic()
    next_t, i = t0, 0
    while time.monotonic() - t0 < seconds:
        step(i)
        i += 1
        next_t += tick
        while True:
            left = next_t - time.monotonic()
            if left <= 0:
                break
            client.executor.spin_once(timeout_sec=left)


def results_between(client, t0: float, t1: float) -> list:
    """Every GroundingArray the client received between monotonic times ``t0`` and ``t1``."""
    return [(t, m) for t, m in client.received["groundings"] if t0 <= t <= t1]


def publish_frame(client, frames, i: int, sent: dict) -> None:
    """Publish frame ``i`` (cycled) and remember which frame went out under which stamp."""
    from ros_client import stamp_ns

    header = client.publish_image(frames[i % len(frames)])
    sent[stamp_ns(header.stamp)] = i % len(frames)


def check_results(client, results, sent: dict, frames, n_check: int = 8, rng=None) -> dict:
    """Structure of every result, and a sample compared with the ``ground`` service on the same
    frame and command (``sent``: stamp -> frame index, from :func:`publish_frame`)."""
    from refseg_ros.srv import Ground
    from ros_client import stamp_ns

    wrong_expr, unknown, compared, mismatched = [], 0, 0, []
    for _, arr in results:
        exp = expected_expressions(arr.command)
        if exp is None or tuple(g.expression for g in arr.results) != exp:
            wrong_expr.append(arr.command[:60])
        if stamp_ns(arr.header.stamp) not in client.sent:  # a stamp this client never sent: a broken header
            unknown += 1
    rng = rng or random.Random(0)
    for _, arr in rng.sample(results, min(n_check, len(results))):
        index = sent.get(stamp_ns(arr.header.stamp))
        if index is None:
            continue
        req = Ground.Request()
        req.image = client._built[(id(frames[index]), "bgr8")][1]  # the very message that was published
        req.command = arr.command
        future = client.ground.call_async(req)
        if not client.spin_until(future.done, 60) or not future.result().success:
            mismatched.append(f"service failed for {arr.command!r}")
            continue
        compared += 1
        for got, want in zip(arr.results, future.result().groundings.results):
            box_got = np.array([got.x_min, got.y_min, got.x_max, got.y_max])
            box_want = np.array([want.x_min, want.y_min, want.x_max, want.y_max])
            if not (np.allclose(box_got, box_want, atol=0.05) and abs(got.score - want.score) < 1e-3):
                mismatched.append(f"{got.expression!r}: {box_got.round(1)} {got.score:.4f} vs service "
                                  f"{box_want.round(1)} {want.score:.4f}")
    return {"results": len(results), "wrong_expressions": wrong_expr, "unknown_stamps": unknown,
            "compared_with_service": compared, "mismatches": mismatched}


def baseline_rate(client, frames, text: str = "the blue cube", seconds: float = 7.0, fps: float = 30.0) -> float:
    """Results/s for one command and a ``fps`` stream, no flood: what "its own rate" is compared to."""
    from std_msgs.msg import String

    client.command_pub.publish(String(data=text))
    sent: dict = {}
    client.new_stream()
    t0 = time.monotonic()
    _paced(client, seconds, 1 / fps, lambda i: publish_frame(client, frames, i, sent))
    return len(client.results_for(text, t0 + 1.0)) / (seconds - 1.0)  # the first second: the command lands


def flood(client, node, frames, seconds: float, image_hz: float = 100.0, command_hz: float = 500.0,
          seed: int = 0, before: str = "") -> dict:
    """Images at ``image_hz`` and valid commands at ``command_hz``; then one last command and a
    quiet stream: the last command must be the one grounded (latest wins). ``before``: the command
    in force when the flood starts (reported as ``stuck_on_before`` where it is still grounded on
    frames sent more than 2 s into the flood)."""
    from std_msgs.msg import String

    from ros_client import stamp_ns

    rng = random.Random(seed)
    commands = valid_commands(rng, 400)
    final = "pick up the pink torus behind the mug"
    client.new_stream()
    sent: dict[int, int] = {}
    per_tick = max(1, int(round(command_hz / image_hz)))
    status_before = proc_status(node.proc.pid)
    rss = [status_before["rss_mb"]]
    n_commands = publish_errors = 0

    def step(i):
        nonlocal n_commands, publish_errors
        publish_frame(client, frames, i, sent)
        for k in range(per_tick):
            try:
                client.command_pub.publish(String(data=commands[(i * per_tick + k) % len(commands)]))
                n_commands += 1
            except Exception:  # noqa: BLE001 - rclpy: "cannot publish data" when this side's queue is full
                publish_errors += 1
        if i % int(image_hz) == 0:
            rss.append(proc_status(node.proc.pid)["rss_mb"])

    t_start, cpu_start = time.monotonic(), time.process_time()
    _paced(client, seconds, 1.0 / image_hz, step)
    t_end, cpu_end = time.monotonic(), time.process_time()
    node_cpu_s = proc_status(node.proc.pid)["cpu_s"] - status_before["cpu_s"]
    n_images = len(sent)
    during = results_between(client, t_start, t_end)
    client.command_pub.publish(String(data=final))
    # Reliable delivery: after a flood the final command may queue on this side; latest-wins is
    # judged from the moment the node's reader has it.
    from rclpy.duration import Duration

    client.command_pub.wait_for_all_acked(Duration(seconds=60))
    t_final = time.monotonic()

    def settle_results():  # results for frames sent (0.5 s) after the final command
        return [(t, a) for t, a in results_between(client, t_final, time.monotonic())
                if client.sent.get(stamp_ns(a.header.stamp), 0) > t_final + 0.5]

    i = 0
    while time.monotonic() - t_final < 120 and (time.monotonic() - t_final < 4.0 or len(settle_results()) < 2):
        publish_frame(client, frames, i, sent)  # quiet: 10 Hz, no commands
        client.spin(0.1)
        i += 1
    after = proc_status(node.proc.pid)
    rss.append(after["rss_mb"])
    settle = settle_results()
    report = {
        "seconds": round(t_end - t_start, 1), "images_sent": n_images, "commands_sent": n_commands,
        "client_publish_errors": publish_errors,
        "image_rate_hz": round(n_images / (t_end - t_start), 1),
        "command_rate_hz": round(n_commands / (t_end - t_start), 1),
        "results_during": len(during), "result_rate_hz": round(len(during) / (t_end - t_start), 2),
        "distinct_commands_grounded": len({a.command for _, a in during}),
        "stuck_on_before": [round(client.sent.get(stamp_ns(a.header.stamp), 0) - t_start, 2) for _, a in during
                            if before and a.command == before
                            and client.sent.get(stamp_ns(a.header.stamp), 0) > t_start + 2.0],
        # CPU cores used during the flood: the flooder (this process, publishing in Python) takes
        # its share of the machine from the node
        "flooder_cpu_cores": round((cpu_end - cpu_start) / (t_end - t_start), 2),
        "node_cpu_cores": round(node_cpu_s / (t_end - t_start), 2),
        "rss_before_mb": round(status_before["rss_mb"], 1), "rss_max_mb": round(max(rss), 1),
        "rss_after_mb": round(after["rss_mb"], 1), "threads_before": status_before["threads"],
        "threads_after": after["threads"], "results_after_final": len(settle),
        "after_final_not_final": [a.command for _, a in settle if a.command != final], "final": final,
    }
    report["check"] = check_results(client, during + settle, sent, frames, rng=rng)
    return report


def soak(client, node, frames, seconds: float, fps: float = 30.0, command_period: float = 4.0,
         warmup: float = 10.0, seed: int = 1, log=print, lost_after: float = 30.0) -> dict:
    """``fps`` frames with a new command every ``command_period`` s; RSS each second; latencies."""
    from std_msgs.msg import String

    from ros_client import stamp_ns

    rng = random.Random(seed)
    n_commands = int(seconds / command_period) + 1
    commands = valid_commands(rng, n_commands)
    client.new_stream()
    sent: dict[int, int] = {}
    samples: list[tuple[float, float, float, float]] = []  # (t, rss, threads, fds)
    issued: list[tuple[float, str]] = []
    t_start = time.monotonic()
    per_second = int(fps)

    def step(i):
        t = time.monotonic() - t_start
        # A new command every command_period s, once the current one has been grounded (or after
        # lost_after s: then it counts as lost). On a slow CPU a frame can take longer than the period.
        if not issued or (time.monotonic() - issued[-1][0] >= command_period and len(issued) < len(commands) and (
                client.results_for(issued[-1][1], issued[-1][0]) or time.monotonic() - issued[-1][0] > lost_after)):
            text = commands[len(issued)]
            client.command_pub.publish(String(data=text))
            issued.append((time.monotonic(), text))
        publish_frame(client, frames, i, sent)
        if i % per_second == 0:
            s = proc_status(node.proc.pid)
            samples.append((t, s["rss_mb"], s["threads"], s["fds"]))
            if i % (per_second * 30) == 0:
                log(f"  soak t={t:5.0f} s rss {s['rss_mb']:.0f} MB threads {s['threads']:.0f}")

    _paced(client, seconds, 1.0 / fps, step)
    t_end = time.monotonic()
    # The last command may be only just out: frames at 10 Hz until it is grounded (or lost).
    i = 0
    while not client.results_for(issued[-1][1], issued[-1][0]) and time.monotonic() - issued[-1][0] < lost_after:
        publish_frame(client, frames, i, sent)
        client.spin(0.1)
        i += 1
    client.spin(1.0)
    results = results_between(client, t_start, time.monotonic())
    # Latencies of results after warm-up; first vs last third of the remaining time.
    lat = [(t - t_start, t - client.sent[stamp_ns(a.header.stamp)], a.processing_time) for t, a in results
           if stamp_ns(a.header.stamp) in client.sent and t - t_start >= warmup]
    span = seconds - warmup
    first = [x for x in lat if x[0] < warmup + span / 3]
    last = [x for x in lat if x[0] >= warmup + 2 * span / 3]

    def p95(rows, k):
        return float(np.percentile([r[k] for r in rows], 95)) if rows else float("nan")

    base = [r for t, r, _, _ in samples if warmup <= t < warmup + 5.0] or [samples[0][1]]
    tail = [r for t, r, _, _ in samples if t >= seconds - 5.0] or [samples[-1][1]]
    grounded = {a.command for _, a in results}
    report = {
        "seconds": round(t_end - t_start, 1), "frames_sent": len(sent), "commands": len(issued),
        "results": len(results), "result_rate_hz": round(len(results) / (t_end - t_start), 2),
        "rss_after_warmup_mb": round(float(np.mean(base)), 1), "rss_end_mb": round(float(np.mean(tail)), 1),
        "rss_max_mb": round(max(r for _, r, _, _ in samples), 1),
        "rss_growth_pct": round(100 * (np.mean(tail) - np.mean(base)) / np.mean(base), 2),
        "threads_start_end": (samples[0][2], samples[-1][2]), "fds_start_end": (samples[0][3], samples[-1][3]),
        "latency_p95_first_ms": round(1000 * p95(first, 1), 1), "latency_p95_last_ms": round(1000 * p95(last, 1), 1),
        "processing_p95_first_ms": round(1000 * p95(first, 2), 1), "processing_p95_last_ms": round(1000 * p95(last, 2), 1),
        "latency_p50_ms": round(1000 * float(np.median([r[1] for r in lat])), 1) if lat else None,
        "lost_commands": [c for _, c in issued if c not in grounded],
    }
    report["check"] = check_results(client, results, sent, frames, rng=rng)
    return report


# ---- script --------------------------------------------------------------------------------------------

def _frames(width: int = 640, height: int = 480, n: int = 3) -> list[np.ndarray]:
    from scenes import tabletop_frames

    frames = tabletop_frames(range(n))
    if frames[0].shape[:2] != (height, width):
        import cv2

        frames = [cv2.resize(f, (width, height)) for f in frames]
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint (the node's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the node")
    parser.add_argument("--flood", type=float, default=30.0, help="flood seconds (0: skip)")
    parser.add_argument("--soak", type=float, default=600.0, help="soak seconds (0: skip)")
    parser.add_argument("--fuzz", type=int, default=2000, help="fuzzed messages of each kind (0: skip)")
    parser.add_argument("--backend", default=None, choices=("auto", "torch", "onnxruntime"),
                        help="the node's per-frame backend (default: the node's default)")
    parser.add_argument("--report", default=None, help="write a markdown report here (and .json next to it)")
    args = parser.parse_args()

    os.environ.setdefault("ROS_DOMAIN_ID", str(80 + os.getpid() % 10))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy  # noqa: F401 - fail early without ROS

    from node_process import NodeProcess
    from ros_client import Client

    node_args = ["-r", "__ns:=/stress", "-p", f"num_threads:={args.threads}", "-p", "warn_throttle_sec:=2.0"]
    if args.checkpoint:
        node_args += ["-p", f"checkpoint:={args.checkpoint}"]
    if args.backend:
        node_args += ["-p", f"backend:={args.backend}"]
    node = NodeProcess(node_args, env=dict(os.environ))
    client = None
    report: dict = {"checkpoint": args.checkpoint or "shipped", "threads": args.threads,
                    "backend": args.backend or "node default"}
    try:
        if not node.wait_for(r"active: listening on", 300):
            raise SystemExit(f"node did not start:\n{node.log()[-3000:]}")
        client = Client("/stress")
        client.wait_connected()
        frames = _frames()
        if args.fuzz:
            report["fuzz"] = fuzz_drill(client, node, frames, args.fuzz)
            print("fuzz:", json.dumps(report["fuzz"]))
        if args.flood:
            report["flood"] = {"baseline_rate_hz": round(baseline_rate(client, frames), 2),
                               **flood(client, node, frames, args.flood, before="the blue cube")}
            print("flood:", json.dumps(report["flood"]))
        if args.soak:
            report["soak"] = soak(client, node, frames, args.soak)
            print("soak:", json.dumps(report["soak"]))
        report["node_alive"] = node.proc.poll() is None
        report["tracebacks_in_log"] = node.log().count("Traceback")
    finally:
        if client is not None:
            client.close()
        report["exit_code"] = node.stop()
    if args.report:
        Path(args.report).write_text(_markdown(report))
        Path(args.report).with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
        print(f"report: {args.report}")
    return 0


def fuzz_drill(client, node, frames, n: int, seed: int = 2) -> dict:
    """Fuzzed images and commands, then a valid command that must be grounded correctly."""
    from std_msgs.msg import String

    from ros_client import stamp_ns

    rng = random.Random(seed)
    mark = node.mark()
    t0 = time.monotonic()
    images = fuzz_images(rng, n)
    commands = fuzz_commands(rng, max(30, n // 10))

    def step(i):
        msg = images[i % len(images)]
        msg.header.stamp = client.next_stamp()
        client.sent[stamp_ns(msg.header.stamp)] = time.monotonic()  # a few are valid and get grounded
        client.image_pub.publish(msg)
        if i % 10 == 0:
            client.command_pub.publish(String(data=commands[(i // 10) % len(commands)]))

    rate = 100.0  # messages/s: a best-effort depth-1 subscription on a loaded CPU drops more at higher rates
    _paced(client, max(len(images), 10 * len(commands)) / rate, 1 / rate, step)
    client.spin(1.0)
    log = node.since(mark).splitlines()
    text = "grab the duck and the red mug"
    client.command(text)
    t1 = time.monotonic()
    sent: dict[int, int] = {}
    client.new_stream()
    i = 0
    while time.monotonic() - t1 < 60 and len([a for _, a in client.results_for(text, t1)
                                              if stamp_ns(a.header.stamp) in sent]) < 3:
        publish_frame(client, frames, i, sent)  # 10 Hz until three results for these frames
        client.spin(0.1)
        i += 1
    results = client.results_for(text, t1)
    return {"images": len(images), "commands": len(commands), "seconds": round(t1 - t0, 1),
            "warn_lines": sum("[WARN]" in line for line in log), "error_lines": sum("[ERROR]" in line for line in log),
            "log_lines": len(log), "tracebacks": node.since(mark).count("Traceback"),
            "alive": node.proc.poll() is None, "valid_command_results": len(results),
            "check": check_results(client, results, sent, frames)}


def _markdown(report: dict) -> str:
    lines = [f"# refseg_node stress report ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"checkpoint: {report['checkpoint']}, torch threads {report['threads']}, "
             f"node alive at the end: {report.get('node_alive')}, tracebacks in the log: "
             f"{report.get('tracebacks_in_log')}, exit code {report.get('exit_code')}", ""]
    for key in ("fuzz", "flood", "soak"):
        if key in report:
            lines += [f"## {key}", "", "| figure | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in report[key].items() if k != "check"]
            lines += [f"| check | {json.dumps(report[key]['check'])[:2000]} |", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
