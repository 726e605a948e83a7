#!/usr/bin/env python3
"""Markdown tables from `refseg eval --json` files, side by side (for the README and model card).

    tools/eval_table.py law=runs/law/eval_test.json static=runs/static/eval_test.json

One row per expression type plus "all": REC Prec@0.5 / RES mIoU for each named file, then n.
"""
import argparse
import json
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=JSON")
    parser.add_argument("--metrics", default="rec_prec@0.5,res_miou",
                        help="comma-separated metric keys per run (default rec_prec@0.5,res_miou)")
    args = parser.parse_args()
    keys = args.metrics.split(",")
    named = []
    for item in args.runs:
        name, _, path = item.partition("=")
        named.append((name, json.loads(Path(path).read_text())))
    types = sorted({t for _, m in named for t in m.get("by_type", {})})
    header = ["type"] + [f"{name} {k}" for name, _ in named for k in keys] + ["n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in ["all"] + types:
        cells = [f"**{t}**" if t == "all" else t]
        n = None
        for _, m in named:
            row = m if t == "all" else m.get("by_type", {}).get(t, {})
            cells += [f"{row[k]:.1f}" if k in row else "-" for k in keys]
            n = row.get("n", n)
        cells.append(f"{n:,}" if n is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
