#!/usr/bin/env python3
"""What ``found_threshold`` trades off the generator: a sweep over the records of ``offgen_check.py``.

``tools/offgen_check.py --json J`` keeps, for every expression, the model's score and its box
whether or not the score passed the checkpoint's threshold. This tool replays the decision at
other thresholds without running the model again:

* ``single``: single-target expressions answered (score >= threshold) with a box of IoU >= 0.5;
* ``answered``: single-target expressions answered at all;
* ``precision``: answered ones whose box is right (what a grasp planner acts on);
* ``absent``: expressions about an absent object answered "not found" (score < threshold);
* ``ceiling``: the box is right whatever the score (``single`` at threshold 0).

Usage::

    python tools/offgen_thresholds.py /work/runs/offgen/check.json [--by light] [--thresholds 0.3,0.5,0.7]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@lru_cache(maxsize=1)
def _box_iou():
    """``box_iou`` of the check itself (one definition of a right box), loaded once."""
    path = Path(__file__).resolve().parent / "offgen_check.py"
    spec = importlib.util.spec_from_file_location("offgen_check", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("offgen_check", module)
    spec.loader.exec_module(module)
    return module.box_iou


def sweep(records: list[dict], thresholds=DEFAULT_THRESHOLDS) -> dict:
    """The figures above (percent) at each threshold, plus ``n_single``, ``n_absent``, ``ceiling``."""
    box_iou = _box_iou()
    present = [r for r in records if r["target"] is not None]
    absent = [r for r in records if r["target"] is None]
    right = [bool(r.get("pred_box")) and box_iou(r["pred_box"], r["gt_box"]) >= 0.5 for r in present]

    def pct(k: int, n: int) -> float | None:
        return round(100.0 * k / n, 1) if n else None

    rows = []
    for t in thresholds:
        answered = [r["score"] >= t for r in present]
        hits = sum(a and ok for a, ok in zip(answered, right))
        rows.append({"threshold": t,
                     "single": pct(hits, len(present)),
                     "answered": pct(sum(answered), len(present)),
                     "precision": pct(hits, sum(answered)),
                     "absent": pct(sum(r["score"] < t for r in absent), len(absent))})
    return {"n_single": len(present), "n_absent": len(absent), "ceiling": pct(sum(right), len(present)),
            "rows": rows}


def _table(name: str, s: dict) -> str:
    lines = [f"{name}: {s['n_single']} single-target, {s['n_absent']} absent; box right whatever "
             f"the score {s['ceiling']} %",
             f"  {'threshold':>9} {'single':>7} {'answered':>9} {'precision':>10} {'absent':>7}"]
    fmt = lambda v: "-" if v is None else f"{v:.1f}"   # noqa: E731
    for r in s["rows"]:
        lines.append(f"  {r['threshold']:>9.2f} {fmt(r['single']):>7} {fmt(r['answered']):>9} "
                     f"{fmt(r['precision']):>10} {fmt(r['absent']):>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", type=Path, nargs="+", help="offgen_check.py --json files")
    ap.add_argument("--thresholds", default=",".join(str(t) for t in DEFAULT_THRESHOLDS),
                    help="comma-separated found thresholds in [0, 1]")
    ap.add_argument("--by", default=None,
                    help="also per value of this record field (light, lens, distance, kind, size_bucket, ...)")
    ap.add_argument("--out-json", type=Path, default=None, help="write the sweeps here")
    args = ap.parse_args(argv)
    try:
        thresholds = tuple(float(t) for t in args.thresholds.split(",") if t.strip())
    except ValueError:
        ap.error(f"--thresholds {args.thresholds!r}: not a comma-separated list of numbers")
    if not thresholds or any(not 0.0 <= t <= 1.0 for t in thresholds):
        ap.error("--thresholds: give one or more numbers in [0, 1]")
    out = {}
    for path in args.json:
        try:
            records = json.loads(path.read_text())["records"]
        except OSError as e:
            print(f"offgen_thresholds: cannot read {path}: {e.strerror or e}", file=sys.stderr)
            return 2
        except (ValueError, KeyError, TypeError) as e:
            print(f"offgen_thresholds: {path}: not an offgen_check.py --json file ({e!r})", file=sys.stderr)
            return 2
        result = {"overall": sweep(records, thresholds)}
        print(_table(str(path), result["overall"]))
        if args.by:
            groups = defaultdict(list)
            for r in records:
                if args.by not in r:
                    ap.error(f"--by {args.by}: the records have no such field")
                groups[str(r[args.by])].append(r)
            # an absent object has no size: its bucket is "absent"; keep it with the others
            result[args.by] = {k: sweep(v, thresholds) for k, v in sorted(groups.items())}
            for k, s in result[args.by].items():
                print(_table(f"  {args.by}={k}", s))
        out[str(path)] = result
    if args.out_json:
        args.out_json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
