"""Training end to end on freshly rendered scenes: train, checkpoint, resume, evaluate; DDP on gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test trains in `refseg` subprocesses

VENV_BIN = Path(sys.executable).parent


def _refseg(*args, timeout=900, env=None):
    out = subprocess.run([str(VENV_BIN / "refseg"), *map(str, args)], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, f"refseg {' '.join(map(str, args))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tabletop")
    _refseg("data", "tabletop", "--out", root, "--scenes", 6, "--seed", 101, "--split", "train", "--workers", 2,
            "--no-progress")
    _refseg("data", "tabletop", "--out", root, "--scenes", 2, "--seed", 102, "--split", "val", "--workers", 1,
            "--no-progress")
    return root


TRAIN_ARGS = ["--epoch-samples", 8, "--batch-size", 4, "--val-samples", 4, "--no-progress", "--threads", 1]


def test_train_checkpoint_resume_evaluate(tiny_data, tmp_path):
    run = tmp_path / "run"
    _refseg("train", "--data", tiny_data, "--out", run, "--epochs", 1, *TRAIN_ARGS)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and rows[0]["step"] == 2
    assert (run / "curves.png").stat().st_size > 1000 and (run / "metrics.csv").is_file()
    assert "rec_prec@0.5" in rows[0]["val"]
    first = (run / "checkpoints" / "last.safetensors").read_bytes()

    # resume: continues at epoch 2 and step 3 with the saved optimizer state
    _refseg("train", "--data", tiny_data, "--out", run, "--epochs", 2, "--resume", *TRAIN_ARGS)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["step"] == 4
    assert (run / "checkpoints" / "epoch_002.safetensors").is_file()
    assert (run / "checkpoints" / "last.safetensors").read_bytes() != first, "resumed run did not train"
    meta = json.loads((run / "checkpoints" / "last.json").read_text())
    assert meta["extra"]["epoch"] == 2

    out = _refseg("eval", "--checkpoint", run / "checkpoints" / "last.safetensors", "--data", tiny_data,
                  "--split", "val", "--json", tmp_path / "eval.json", "--no-progress", "--threads", 1)
    metrics = json.loads((tmp_path / "eval.json").read_text())
    for key in ["rec_prec@0.5", "res_miou", "res_oiou", "n", "by_type", "images_per_s"] + \
               [f"res_prec@{t}" for t in (0.5, 0.6, 0.7, 0.8, 0.9)]:
        assert key in metrics, key
    assert metrics["n"] > 0 and 0 <= metrics["res_miou"] <= 100
    assert sum(v["n"] for v in metrics["by_type"].values()) == metrics["n"]
    assert json.loads(out.stdout)["n"] == metrics["n"]
    assert metrics["path"] == "batched, torch"
    # the node's per-frame path (each image's expressions as one command), int8 onnxruntime graph
    _refseg("eval", "--checkpoint", run / "checkpoints" / "last.safetensors", "--data", tiny_data,
            "--split", "val", "--json", tmp_path / "node.json", "--no-progress", "--threads", 1,
            "--backend", "onnxruntime", "--int8")
    node = json.loads((tmp_path / "node.json").read_text())
    assert node["path"] == "per-frame, onnxruntime int8" and node["n"] == metrics["n"]


def test_ddp_two_processes_gloo_identical_weights(tiny_data, tmp_path):
    """Two ranks build the (new, variant) feature cache in shards, then train to identical weights."""
    torchrun = VENV_BIN / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    caches = set((tiny_data / "cache").glob("features_*"))
    out = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(VENV_BIN / "refseg"),
                          "train", "--data", str(tiny_data), "--out", str(run), "--epochs", "1",
                          "--augment-variants", "1", "--val-split", "", *map(str, TRAIN_ARGS)],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    built = set((tiny_data / "cache").glob("features_*")) - caches
    assert len(built) == 1, built
    meta = json.loads((built.pop() / "meta.json").read_text())
    assert meta["done"] == meta["rows"] == 6 * 2 * 2  # 6 images x (clean + 1 variant) x mirror
    for k in (1, 2):  # both cores computed their half
        assert f"computed the features of 3 images (shard {k} of 2)" in out.stderr, out.stderr[-3000:]
    check = json.loads((run / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["identical"], check
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 1  # 8 samples / (batch 4 x 2 ranks)


def test_init_fine_tunes_from_a_checkpoint(tiny_data, tmp_path):
    """--init: the run starts from the checkpoint's weights and options, with its own schedule."""
    from safetensors.torch import load_file

    base = tmp_path / "base"
    _refseg("train", "--data", tiny_data, "--out", base, "--epochs", 1, "--set", "word_attention=true",
            "--val-split", "", *TRAIN_ARGS)
    start = base / "checkpoints" / "last.safetensors"
    ft = tmp_path / "ft"
    run_file = tmp_path / "ft.yaml"  # the same options from a --run-file, --out on the command line
    run_file.write_text(f"data: {tiny_data}\nepochs: 1\ninit: {start}\nlr: 1e-9\nval_split: ''\n"
                        "epoch_samples: 8\nbatch_size: 4\nval_samples: 4\nno_progress: true\nthreads: 1\n")
    _refseg("train", "--run-file", run_file, "--out", ft)
    meta = json.loads((ft / "checkpoints" / "last.json").read_text())
    assert meta["overrides"] == {"word_attention": True}  # the options came with the weights
    assert meta["extra"]["global_step"] == 2  # a fresh schedule, not the base run's
    before, after = load_file(str(start)), load_file(str(ft / "checkpoints" / "last.safetensors"))
    assert before.keys() == after.keys()
    # lr 1e-9 for two steps: the weights are the base run's (a fresh model would differ by far more)
    assert max(float((before[k].float() - after[k].float()).abs().max()) for k in before) < 1e-4
    run = json.loads((ft / "run.json").read_text())
    assert run["init"] == str(start)
    assert run["run_file"] == {"path": str(run_file), "text": run_file.read_text()}
    assert meta["extra"]["init"]["path"] == str(start) and meta["extra"]["init"]["epoch"] == 1

    bad = subprocess.run([str(VENV_BIN / "refseg"), "train", "--data", str(tiny_data), "--out", str(tmp_path / "x"),
                          "--init", str(start), "--set", "law=false"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "may only add parts" in bad.stderr

    # --set that adds a part: the stored weights carry over, the presence head starts fresh
    grown = tmp_path / "grown"
    _refseg("train", "--data", tiny_data, "--out", grown, "--epochs", 1, "--init", start, "--lr", 1e-9,
            "--set", "presence_head=true", "--val-split", "", *TRAIN_ARGS)
    meta = json.loads((grown / "checkpoints" / "last.json").read_text())
    assert meta["overrides"] == {"word_attention": True, "presence_head": True}
    after = load_file(str(grown / "checkpoints" / "last.safetensors"))
    new = set(after) - set(before)
    assert new and all(k.startswith("head.presence.") for k in new) and set(before) <= set(after)
    assert max(float((before[k].float() - after[k].float()).abs().max()) for k in before) < 1e-4


def test_train_only_changes_nothing_else(tiny_data, tmp_path):
    """--train-only head.presence: the found/not-found output learns, every other weight (boxes,
    masks, the generated weights) comes out bit for bit as it went in; a prefix naming nothing is refused."""
    from safetensors.torch import load_file

    base = tmp_path / "base"
    _refseg("train", "--data", tiny_data, "--out", base, "--epochs", 1, "--set", "presence_head=true",
            "--val-split", "", *TRAIN_ARGS)
    start = base / "checkpoints" / "last.safetensors"
    only = tmp_path / "only"
    _refseg("train", "--data", tiny_data, "--out", only, "--epochs", 1, "--init", start, "--lr", 1e-2,
            "--train-only", "head.presence", "--val-split", "", *TRAIN_ARGS)
    before, after = load_file(str(start)), load_file(str(only / "checkpoints" / "last.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(k.startswith("head.presence.") for k in changed), sorted(changed)[:5]
    run = json.loads((only / "run.json").read_text())
    assert run["train_config"]["train_only"] == ["head.presence"]

    bad = subprocess.run([str(VENV_BIN / "refseg"), "train", "--data", str(tiny_data), "--out", str(tmp_path / "x"),
                          "--init", str(start), "--train-only", "head.nothing", "--val-split", "",
                          *map(str, TRAIN_ARGS)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "refseg train: train_only ['head.nothing']" in bad.stderr
    assert "Traceback" not in bad.stderr
