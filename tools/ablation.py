#!/usr/bin/env python3
"""The equal-budget VG-LAW experiment: pure VG-LAW, the hybrid (VG-LAW + word attention) and
static weights, trained on the same tabletop data with the same samples, schedule and threads,
then scored on the test and compositional splits with the knock-outs of the language path.

Every step is resumable and skipped when its output exists, so the same command continues an
interrupted experiment on any machine:

    .venv/bin/python tools/ablation.py run --root /work/runs/V          # data, train, eval
                                        # (2 arms side by side, 1 thread each, 3 x 2000 samples)
    .venv/bin/python tools/ablation.py run --root R --arms pure hybrid  # a subset, in this order
    .venv/bin/python tools/ablation.py commands --root R                # print the commands only
    .venv/bin/python tools/ablation_table.py                            # the markdown tables
    .venv/bin/python tools/ablation.py deltas [--checkpoint C]          # ||P Phi Q^T|| / ||W0|| per block

Data and runs go under ``--root`` (outside the repository); the eval JSONs (small) go to
``refseg_ros/checkpoints/ablations/`` named ``<arm>_<split>_<knock-out>.json``.
The budget is counted in samples, not wall time: the CPU may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "refseg_ros" / "checkpoints" / "ablations"
VENV_BIN = REPO / ".venv" / "bin"

#: arm -> (model overrides on top of the tabletop preset, knock-outs scored at inference)
ARMS: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {
    "pure": (["word_attention=false"], [(), ("law",)]),
    "hybrid": (["word_attention=true"], [(), ("law",), ("word_attention",), ("law", "word_attention")]),
    "static": (["law=false", "word_attention=false"], [()]),
    # pure VG-LAW with twice the rank of the generated weights (d_w = 64)
    "pure_r64": (["word_attention=false", "law_rank=64"], [(), ("law",)]),
    # not trained here: the package's checkpoint, scored on the same expressions
    "shipped": ([], [(), ("law",), ("word_attention",), ("law", "word_attention")]),
}
#: split -> (scenes, seed); the test/compositional seeds are those of the shipped data
DATA = {"train": (1200, 0), "val": (100, 1), "test": (150, 2), "compositional": (100, 3)}
EVAL_SPLITS = ("test", "compositional")
#: expressions scored per split (evenly spread over its scenes; compositional: all of them)
EVAL_MAX_SAMPLES = {"test": 600, "compositional": 300}


def knock_label(parts: tuple[str, ...]) -> str:
    return "+".join(parts) if parts else "none"


def bin_path(name: str) -> str:
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def data_commands(root: Path) -> list[list[str]]:
    cmds = []
    for split, (scenes, seed) in DATA.items():
        if not (root / "data" / f"{split}.json").exists():
            cmds.append([bin_path("refseg"), "data", "tabletop", "--out", str(root / "data"), "--split", split,
                         "--scenes", str(scenes), "--seed", str(seed), "--workers", "2", "--no-progress"])
    return cmds


def train_command(root: Path, arm: str, args) -> list[str]:
    cmd = [bin_path("refseg"), "train", "--preset", "tabletop", "--data", str(root / "data"),
           "--out", str(root / "runs" / f"{arm}_s{args.seed}"), "--epochs", str(args.epochs),
           "--epoch-samples", str(args.epoch_samples), "--batch-size", str(args.batch_size),
           "--threads", str(args.threads), "--val-samples", str(args.val_samples), "--seed", str(args.seed),
           "--no-progress", "--resume"]
    for override in ARMS[arm][0]:
        cmd += ["--set", override]
    return cmd


def finished_epochs(run_dir: Path) -> int:
    sidecar = run_dir / "checkpoints" / "last.json"
    if not sidecar.exists():
        return 0
    return int((json.loads(sidecar.read_text()).get("extra") or {}).get("epoch") or 0)


def eval_json(arm: str, split: str, parts: tuple[str, ...], seed: int) -> Path:
    suffix = "" if seed == 0 else f"_s{seed}"
    return OUT_DIR / f"{arm}{suffix}_{split}_{knock_label(parts)}.json"


def eval_jobs(arm: str) -> list[tuple[str, tuple[str, ...]]]:
    """(split, knock-out) pairs of ``arm``, most telling first: the intact test score, then the test
    knock-outs, then compositional (so an interrupted run has the important files)."""
    knocks = ARMS[arm][1]
    return [("test", k) for k in knocks] + [("compositional", k) for k in knocks]


def eval_arm(ckpt: Path, data: Path, jobs: list[tuple[str, tuple[str, ...]]], outs: list[Path], threads: int,
             meta: dict) -> None:
    """Score ``ckpt`` for each (split, knock-out) job into its JSON, one model load for all."""
    import torch

    from refseg_ros.data.dataset import TabletopRefDataset
    from refseg_ros.model.predictor import GroundingPredictor
    from refseg_ros.training.evaluate import evaluate

    torch.set_num_threads(threads)
    predictor = GroundingPredictor.from_checkpoint(ckpt, device="cpu")
    datasets = {}
    for (split, parts), out in zip(jobs, outs, strict=True):
        predictor.model.knock_out(*parts)
        predictor.clear_cache()  # commands hold Phi: computed again under this knock-out
        dataset = datasets.setdefault(split, TabletopRefDataset(str(data), split))
        t0 = time.time()
        metrics = evaluate(predictor, dataset, max_samples=EVAL_MAX_SAMPLES[split] or None, progress=False)
        metrics.update({"split": split, "knock_out": list(parts), "path": "batched, torch",
                        "max_samples": EVAL_MAX_SAMPLES[split], **meta})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"{out.name}: Prec@0.5 {metrics['rec_prec@0.5']:.1f} mIoU {metrics['res_miou']:.1f} "
              f"({metrics['n']} expressions, {time.time() - t0:.0f} s)", flush=True)


#: expressions of every type for :func:`weight_deltas`
DELTA_EXPRESSIONS = ["the red mug", "the leftmost cube", "the second cube from the left",
                     "the duck left of the blue cube", "the ball nearest to the tray", "the green torus",
                     "the rightmost duck", "the cube behind the mug"]


def weight_deltas(ckpt: Path | None) -> dict:
    """How large the generated part of each adapted layer is: ||P Phi Q^T|| / ||W0|| (mean over
    expressions) and how much it differs between expressions (mean pairwise distance / ||W0||)."""
    import torch

    from refseg_ros.model.law import fold_weights
    from refseg_ros.model.predictor import load_model

    model = load_model(ckpt).eval()
    layers = model.backbone.adaptive_layers
    with torch.no_grad():
        phi = model.command(DELTA_EXPRESSIONS).phi
        w0 = torch.stack([layer.weight for layer in layers])
        delta = fold_weights(layers, phi, model.backbone.law_basis) - w0
        norm0 = w0.flatten(1).norm(dim=1)
        size = delta.flatten(2).norm(dim=2).mean(0) / norm0
        spread = (delta[:, None] - delta[None]).flatten(3).norm(dim=3).mean((0, 1)) / norm0
    return {"relative_size": [round(v, 3) for v in size.tolist()],
            "relative_spread": [round(v, 3) for v in spread.tolist()], "expressions": DELTA_EXPRESSIONS}


def _run(cmd: list[str], dry: bool) -> None:
    print("+ nice -n 10 " + shlex.join(cmd), flush=True)
    if not dry:
        subprocess.run(["nice", "-n", "10", *cmd], check=True, cwd=REPO)


def cache_ready(root: Path) -> bool:
    """The trainer's frozen-feature cache of the training split is complete (runs may share it)."""
    for meta in (root / "data" / "cache").glob("features_*/meta.json"):
        m = json.loads(meta.read_text())
        if m["done"] >= m["rows"]:
            return True
    return False


def run(args) -> int:
    root = Path(args.root)
    for cmd in data_commands(root):
        _run(cmd, args.dry)
    if args.lanes <= 1 or args.dry:
        for arm in args.arms:
            run_arm(root, arm, args)
        return 0
    # Arms side by side (``lanes`` processes of ``threads`` each); the first one builds the shared
    # feature cache, the others start once it is complete.
    from concurrent.futures import ThreadPoolExecutor

    def lane(i: int, arm: str) -> None:
        while i > 0 and not cache_ready(root):
            time.sleep(20)
        run_arm(root, arm, args)

    with ThreadPoolExecutor(max_workers=args.lanes) as pool:
        for f in [pool.submit(lane, i, arm) for i, arm in enumerate(args.arms)]:
            f.result()
    return 0


def training_pids(run_dir: Path) -> list[int]:
    """Processes of a `refseg train --out run_dir` (e.g. left by an interrupted driver)."""
    needle = ["--out", str(run_dir)]
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "train" in argv and "nice" not in argv[0] and any(argv[i:i + 2] == needle for i in range(len(argv) - 1)):
            pids.append(int(proc.name))
    return pids


def training_running(run_dir: Path) -> bool:
    return bool(training_pids(run_dir))


def epoch_complete(run_dir: Path, epoch: int) -> bool:
    """Epoch ``epoch``'s checkpoint, optimizer state and log row are all written (safe to stop)."""
    opt = run_dir / "checkpoints" / "last_optimizer.json"
    log = run_dir / "metrics.jsonl"
    if not opt.exists() or not log.exists():
        return False
    saved = int((json.loads(opt.read_text()).get("extra") or {}).get("epoch") or 0)
    logged = [json.loads(line).get("epoch") for line in log.read_text().splitlines() if line.strip()]
    return saved >= epoch and epoch in logged


def stop_training_after(run_dir: Path, epoch: int) -> None:
    """Wait until ``epoch`` is complete, then end the run's training (``--resume`` continues it)."""
    while training_running(run_dir) and not epoch_complete(run_dir, epoch):
        time.sleep(20)
    for pid in training_pids(run_dir):
        os.kill(pid, signal.SIGTERM)
        print(f"stopped {run_dir.name} after epoch {epoch} (pid {pid})", flush=True)


def budget(args) -> int:
    """Training samples behind the scored checkpoint."""
    return (args.stop_after_epoch or args.epochs) * args.epoch_samples


def run_arm(root: Path, arm: str, args) -> None:
    run_dir = root / "runs" / f"{arm}_s{args.seed}"
    stop = args.stop_after_epoch
    if arm == "shipped":
        from refseg_ros.model.predictor import DEFAULT_CHECKPOINT

        ckpt, samples = DEFAULT_CHECKPOINT, 0
    else:
        samples = budget(args)
        ckpt = run_dir / "checkpoints" / (f"epoch_{stop:03d}.safetensors" if stop else "last.safetensors")
        if stop and not args.dry:
            stop_training_after(run_dir, stop)  # one left running by an interrupted driver
        while not args.dry and training_running(run_dir):
            time.sleep(30)
        if finished_epochs(run_dir) < (stop or args.epochs):
            t0 = time.time()
            cmd = train_command(root, arm, args)
            print("+ nice -n 10 " + shlex.join(cmd), flush=True)
            if not args.dry:
                proc = subprocess.Popen(["nice", "-n", "10", *cmd], cwd=REPO)
                if stop:
                    while proc.poll() is None and not epoch_complete(run_dir, stop):
                        time.sleep(20)
                    if proc.poll() is None:
                        stop_training_after(run_dir, stop)
                if proc.wait() not in (0, -signal.SIGTERM) and not (stop and epoch_complete(run_dir, stop)):
                    raise RuntimeError(f"training {arm} failed")
                print(f"{arm}: trained in {(time.time() - t0) / 60:.1f} min", flush=True)
    # The working tree may be mid-edit by others: a failed eval is retried (finished jobs are kept).
    for attempt in range(4):
        jobs = [(split, parts) for split, parts in eval_jobs(arm)
                if not _scored(eval_json(arm, split, parts, args.seed), samples)]
        if not jobs:
            return
        cmd = [sys.executable, str(Path(__file__).resolve()), "eval", "--checkpoint", str(ckpt),
               "--data", str(root / "data"), "--threads", str(args.threads), "--arm", arm,
               "--seed", str(args.seed), "--samples", str(samples),
               "--schedule-samples", str(0 if arm == "shipped" else args.epochs * args.epoch_samples),
               "--jobs", *[f"{split}:{knock_label(parts)}" for split, parts in jobs]]
        try:
            _run(cmd, args.dry)
            return
        except subprocess.CalledProcessError:
            print(f"{arm}: eval failed (attempt {attempt + 1}); retrying in a minute", flush=True)
            time.sleep(60)


def _scored(path: Path, samples: int) -> bool:
    return path.exists() and json.loads(path.read_text()).get("train_samples") == samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("run", "commands"):
        p = sub.add_parser(name)
        p.add_argument("--root", type=Path, required=True, help="data and run directories (outside the repo)")
        p.add_argument("--arms", nargs="+", choices=list(ARMS), default=["pure", "hybrid", "static", "shipped"])
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--epoch-samples", type=int, default=2000)
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--threads", type=int, default=1, help="torch threads per process")
        p.add_argument("--stop-after-epoch", type=int, default=0,
                       help="score epoch N's checkpoint and stop the training there (0 = the last epoch); "
                            "a later run without it resumes the schedule")
        p.add_argument("--lanes", type=int, default=2, help="arms trained side by side (processes)")
        p.add_argument("--val-samples", type=int, default=300)
        p.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval", help="score one checkpoint for several (split, knock-out) jobs")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--jobs", nargs="+", required=True, metavar="SPLIT:KNOCK",
                   help="e.g. test:none test:law compositional:law+word_attention")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--arm", default="")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--samples", type=int, default=0)
    e.add_argument("--schedule-samples", type=int, default=0, help="samples of the whole lr schedule")
    d = sub.add_parser("deltas", help="size of the generated weights relative to the static ones")
    d.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    args = parser.parse_args(argv)
    if args.cmd == "deltas":
        print(json.dumps(weight_deltas(args.checkpoint)))
        return 0
    if args.cmd == "eval":
        meta = {"arm": args.arm, "seed": args.seed, "train_samples": args.samples,
                "schedule_samples": args.schedule_samples,
                "overrides": ARMS.get(args.arm, ([], []))[0], "checkpoint": args.checkpoint.name}
        sidecar = args.checkpoint.with_suffix(".json")
        if sidecar.exists():
            extra = json.loads(sidecar.read_text()).get("extra") or {}
            meta.update({"epoch": extra.get("epoch"), "global_step": extra.get("global_step"),
                         "train_config": extra.get("train_config")})
        jobs = []
        for job in args.jobs:
            split, _, knock = job.partition(":")
            jobs.append((split, () if knock in ("", "none") else tuple(knock.split("+"))))
        eval_arm(args.checkpoint, args.data, jobs, [eval_json(args.arm, sp, k, args.seed) for sp, k in jobs],
                 args.threads, meta)
        return 0
    args.dry = args.cmd == "commands"
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
