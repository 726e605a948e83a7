#!/usr/bin/env python3
"""Markdown tables of the equal-budget experiment from its eval JSONs (``tools/ablation.py``).

    .venv/bin/python tools/ablation_table.py [--dir refseg_ros/checkpoints/ablations] [--seed 0]

Prints: (1) overall REC Prec@0.5 / RES mIoU per arm and split, with every knock-out row and its
drop from the intact model; (2) per expression type, one table per split, intact models side by
side. Arms or files not there yet show as "-" (a run still in progress).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARMS = {"pure": "pure VG-LAW (`word_attention=false`)",
        "hybrid": "VG-LAW + word attention (shipped recipe)",
        "static": "static weights (`law=false word_attention=false`)",
        "pure_r64": "pure VG-LAW, d_w = 64 (`law_rank=64`)",
        "shipped": "shipped checkpoint (hybrid, 100,000 samples; not trained here)"}
KNOCKS = {"none": "intact", "law": "Phi = 0", "word_attention": "word attention off",
          "law+word_attention": "both off"}
SPLITS = ("test", "compositional")


def load(directory: Path, seed: int) -> dict[tuple[str, str, str], dict]:
    suffix = "" if seed == 0 else f"_s{seed}"
    found = {}
    for arm in ARMS:
        for split in SPLITS:
            for knock in KNOCKS:
                path = directory / f"{arm}{suffix}_{split}_{knock}.json"
                if path.exists():
                    found[(arm, split, knock)] = json.loads(path.read_text())
    return found


def _cell(m: dict | None, key: str) -> str:
    return f"{m[key]:.1f}" if m and key in m else "-"


def overall_table(found: dict) -> str:
    lines = ["| arm | at inference | test Prec@0.5 | test mIoU | compositional Prec@0.5 | compositional mIoU "
             "| test drop Prec@0.5 |", "|---|---|---|---|---|---|---|"]
    for arm, arm_name in ARMS.items():
        for knock, knock_name in KNOCKS.items():
            test = found.get((arm, "test", knock))
            comp = found.get((arm, "compositional", knock))
            if not (test or comp) and knock != "none":
                continue
            base = found.get((arm, "test", "none"))
            drop = (f"{test['rec_prec@0.5'] - base['rec_prec@0.5']:+.1f}"
                    if test and base and knock != "none" else "")
            lines.append(f"| {arm_name if knock == 'none' else ''} | {knock_name} | "
                         f"{_cell(test, 'rec_prec@0.5')} | {_cell(test, 'res_miou')} | "
                         f"{_cell(comp, 'rec_prec@0.5')} | {_cell(comp, 'res_miou')} | {drop} |")
    return "\n".join(lines)


def type_table(found: dict, split: str) -> str:
    runs = [(arm, found.get((arm, split, "none"))) for arm in ARMS if arm != "shipped"]
    types = sorted({t for _, m in runs if m for t in m.get("by_type", {})})
    header = ["type"] + [f"{arm} Prec@0.5 / mIoU" for arm, _ in runs] + ["n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in ["all"] + types:
        cells, n = [f"**{t}**" if t == "all" else t], None
        for _, m in runs:
            row = (m if t == "all" else m.get("by_type", {}).get(t)) if m else None
            cells.append(f"{row['rec_prec@0.5']:.1f} / {row['res_miou']:.1f}" if row else "-")
            n = row.get("n", n) if row else n
        cells.append(f"{n:,}" if n is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def budget_line(found: dict) -> str:
    for m in found.values():
        tc = m.get("train_config") or {}
        if m.get("train_samples"):
            sched = m.get("schedule_samples") or m["train_samples"]
            part = (f", scored after {m['train_samples']:,} of the schedule's {sched:,}"
                    if sched != m["train_samples"] else "")
            return (f"Budget per arm: {m['train_samples']:,} training samples (batch {tc.get('batch_size')}, "
                    f"lr {tc.get('lr')}, warm-up {tc.get('warmup_steps')} steps, lr x{tc.get('gamma')} at "
                    f"{tc.get('milestones')} of the schedule's steps{part}), seed {m.get('seed', 0)}.")
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / "refseg_ros" / "checkpoints" / "ablations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    found = load(args.dir, args.seed)
    if not found:
        print(f"no eval JSONs in {args.dir}")
        return 1
    parts = [budget_line(found), "", overall_table(found)]
    for split in SPLITS:
        parts += ["", f"Per type, `{split}` split (intact models):", "", type_table(found, split)]
    print("\n".join(parts).strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
