"""Calibration of a checkpoint's score as "the expression has a referent", and the found threshold.

Runs the batched evaluation path on a split of expressions with zero, one or several targets
(tabletop v2), then writes a reliability diagram (PNG), the expected calibration error (ECE, 15
equal-width bins), the AUROC of present against absent, and n_acc / t_acc for a sweep of ``found_threshold`` values (JSON). Choose the
threshold on ``val``; report the metrics on ``test`` with ``refseg eval --found-threshold``.

    python tools/calibration.py --checkpoint CKPT --data data/tabletop_v2 --split val \\
        --out refseg_ros/checkpoints/calibration_val
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BINS = 15


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = BINS) -> tuple[float, list[dict]]:
    """ECE (in [0, 1]) of probabilities ``scores`` for binary ``labels``, and the per-bin table."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        if not sel.any():
            continue
        conf, acc = float(scores[sel].mean()), float(labels[sel].mean())
        ece += sel.mean() * abs(conf - acc)
        table.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(sel.sum()),
                      "mean_score": conf, "fraction_with_target": acc})
    return float(ece), table


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Probability that an expression with a target scores above one without (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def threshold_sweep(scores: np.ndarray, labels: np.ndarray) -> list[dict]:
    """n_acc (no-target answered none) and t_acc (with targets answered something), in percent."""
    rows = []
    for t in np.round(np.arange(0.05, 0.96, 0.05), 2):
        found = scores >= t
        rows.append({"found_threshold": float(t),
                     "n_acc": 100.0 * float((~found[~labels]).mean()) if (~labels).any() else None,
                     "t_acc": 100.0 * float(found[labels].mean()) if labels.any() else None})
    return rows


def reliability_png(table: list[dict], ece: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    centres = [(r["lo"] + r["hi"]) / 2 for r in table]
    ax.bar(centres, [r["fraction_with_target"] for r in table], width=1 / BINS * 0.9, alpha=0.7,
           label="fraction with a target")
    ax.plot([r["mean_score"] for r in table], [r["fraction_with_target"] for r in table], "o-", color="C3",
            markersize=3, label="mean score per bin")
    ax.set_xlabel("score (predicted probability of a target)")
    ax.set_ylabel("fraction of expressions with a target")
    ax.set_title(f"{title}\nECE {100 * ece:.1f} %", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from refseg_ros.data.v2.dataset import TabletopV2Dataset
    from refseg_ros.model.predictor import GroundingPredictor
    from refseg_ros.training.evaluate import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="*.safetensors (default: the shipped one)")
    parser.add_argument("--data", required=True, help="a tabletop v2 root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.png")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    predictor = GroundingPredictor.from_checkpoint(args.checkpoint)
    records: list[dict] = []
    metrics = evaluate(predictor, TabletopV2Dataset(args.data, args.split), max_samples=args.max_samples,
                       records=records, desc="calibration")
    scores = np.array([r["score"] for r in records], np.float64)
    labels = np.array([r["n_targets"] > 0 for r in records])
    ece, table = expected_calibration_error(scores, labels)
    out = {"checkpoint": str(args.checkpoint or "shipped"), "split": args.split, "expressions": len(records),
           "ece": 100.0 * ece, "auroc": None if auroc(scores, labels) is None else 100.0 * auroc(scores, labels),
           "bins": table, "sweep": threshold_sweep(scores, labels),
           "n_acc": metrics.get("n_acc"), "t_acc": metrics.get("t_acc"),
           "found_threshold": predictor.post.found_threshold}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2))
    reliability_png(table, ece, args.out.with_suffix(".png"),
                    f"{Path(str(args.checkpoint or 'shipped')).name} on {args.split} ({len(records)} expr.)")
    print(json.dumps({k: out[k] for k in ("expressions", "ece", "auroc", "n_acc", "t_acc", "found_threshold")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
