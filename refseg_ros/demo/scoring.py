"""Scoring the demo's live results against the simulated camera's ground truth, and the summary
files. No ROS imports.

Per single-object expression: mask IoU with the object's visible mask (the headline "IoU", as the
model's mIoU; 0 when the node answered "not found"), box IoU (Prec@0.5 counts box IoU >= 0.5, as
REC does), and the 3D error: the distance from the published position (median depth under the
predicted mask, see ``refseg_ros.ros.geometry``) to the object's centre. The published point lies
on the visible surface, so even a perfect result is off by up to the object's radius along the
view ray (1-5 cm for these objects).

An object that is not on the table (``no_target``) is answered correctly iff the node says "not
found" (IoU 1 then, 0 otherwise: the GRES convention of ``refseg eval``'s gIoU). Every object of a
kind (``multi_target``) is scored as the IoU of the union of the found objects' masks with the
union of the true objects' masks (gIoU's per-expression IoU: it needs no matching of objects,
and a missed or extra object lowers it), and the number of objects published against the true
number is reported beside it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from refseg_ros.language.semantics import TYPES
from refseg_ros.training.metrics import box_iou_xyxy, mask_intersection_union

__all__ = ["mask_iou", "box_iou", "score_phrase", "score_answers", "verdict", "summarize", "format_table",
           "write_summary"]

NO_TARGET, MULTI_TARGET = "no_target", "multi_target"  # as refseg_ros.demo.script names them


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mask IoU as the evaluation counts it (both empty = 1)."""
    inter, union = mask_intersection_union(pred, truth)
    return inter / union if union else 1.0


def box_iou(a, b) -> float:
    """IoU of two ``x_min, y_min, x_max, y_max`` boxes (0 if either is missing)."""
    return 0.0 if a is None or b is None else box_iou_xyxy(a, b)


def score_phrase(pred_mask: np.ndarray | None, pred_box, pred_position, truth_mask: np.ndarray, truth: dict
                 ) -> dict:
    """IoU, box IoU and 3D error (metres, None without a position) of one result."""
    iou = mask_iou(pred_mask, truth_mask) if pred_mask is not None else 0.0
    error = None
    if pred_position is not None:
        error = float(np.linalg.norm(np.asarray(pred_position, float) - np.asarray(truth["position_cam"], float)))
    return {"iou": iou, "box_iou": box_iou(pred_box, truth.get("bbox")), "error_3d_m": error}


def score_answers(kind: str, targets: list[int], answers: list, instances: np.ndarray, objects: list[dict]) -> dict:
    """Score the node's answers (``driver.Result``) to one expression of type ``kind``.

    ``targets``: the objects it means (indices; empty or ``[-1]`` for ``no_target``);
    ``instances``: the scene's instance label image (object k is ``k + 1``).
    """
    found = [a for a in answers if a.found]
    if kind == NO_TARGET:
        return {"iou": 0.0 if found else 1.0, "box_iou": None, "error_3d_m": None, "correct": not found,
                "found": bool(found), "n_found": len(found), "n_targets": 0}
    if kind == MULTI_TARGET:
        truth = np.isin(instances, [t + 1 for t in targets])
        pred = np.zeros_like(truth)
        for a in found:
            if a.mask is not None and a.mask.shape == pred.shape:
                pred |= a.mask
        return {"iou": mask_iou(pred, truth), "box_iou": None, "error_3d_m": None, "found": bool(found),
                "n_found": len(found), "n_targets": len(targets)}
    first = answers[0]
    target = targets[0]
    s = score_phrase(first.mask if first.found else None, first.box if first.found else None, first.position,
                     instances == target + 1, objects[target])
    s.update(found=first.found)
    return s


def verdict(s: dict) -> str:
    """One scored expression in a few words, for the log and the pictures."""
    if s.get("type") == NO_TARGET or "correct" in s:
        return "not found (correct)" if s["correct"] else f"found {s['n_found']} (wrong: not there)"
    if s.get("n_targets", 1) > 1 or s.get("type") == MULTI_TARGET:
        return f"union IoU {s['iou']:.2f}, {s['n_found']} of {s['n_targets']} objects"
    return f"IoU {s['iou']:.2f}" + ("" if s.get("found", True) else " (not found)")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def summarize(records: list[dict], stop: dict | None = None, meta: dict | None = None) -> dict:
    """Overall figures over every scored expression of ``records`` (see ``runner.DemoRunner``)."""
    phrases = [p for r in records for p in r["phrases"]]
    single = [p for p in phrases if p["type"] in TYPES]
    absent = [p for p in phrases if p["type"] == NO_TARGET]
    many = [p for p in phrases if p["type"] == MULTI_TARGET]
    latencies = [r["latency_s"] for r in records if r.get("latency_s") is not None]
    by_type = {}
    for kind in TYPES:
        ious = [p["iou"] for p in single if p["type"] == kind]
        if ious:
            by_type[kind] = {"n": len(ious), "mean_iou": float(np.mean(ious))}
    if absent:
        by_type[NO_TARGET] = {"n": len(absent), "accuracy": float(np.mean([p["correct"] for p in absent]))}
    if many:
        by_type[MULTI_TARGET] = {"n": len(many), "mean_iou": float(np.mean([p["iou"] for p in many])),
                                 "objects_found": int(sum(p["n_found"] for p in many)),
                                 "objects": int(sum(p["n_targets"] for p in many))}
    errors = [p["error_3d_m"] for p in single if p.get("error_3d_m") is not None]
    return {
        "meta": meta or {},
        "n_commands": len(records),
        "n_expressions": len(phrases),
        # single-object expressions, as REC and RES score them
        "mean_iou": _mean(p["iou"] for p in single),
        "mean_box_iou": _mean(p["box_iou"] for p in single),
        "prec_at_0.5": _mean(float(p["box_iou"] >= 0.5) for p in single),
        "median_error_3d_m": float(np.median(errors)) if errors else None,
        "no_target_accuracy": by_type.get(NO_TARGET, {}).get("accuracy"),
        "multi_target_mean_iou": by_type.get(MULTI_TARGET, {}).get("mean_iou"),
        "median_latency_s": float(np.median(latencies)) if latencies else None,
        "max_latency_s": float(np.max(latencies)) if latencies else None,
        "by_type": by_type,
        "types_covered": sorted(by_type),
        "stop": stop or {},
        "commands": records,
    }


def _f(value, fmt: str, none: str = "-") -> str:
    return none if value is None else format(value, fmt)


def format_table(summary: dict) -> str:
    """The per-command Markdown table plus the overall line."""
    lines = ["| # | scene | command | expression (type) | IoU | box IoU | 3D error (cm) | latency (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(summary["commands"], 1):
        for j, p in enumerate(r["phrases"]):
            err = None if p.get("error_3d_m") is None else 100 * p["error_3d_m"]
            first = j == 0
            iou = verdict(p) if p["type"] in (NO_TARGET, MULTI_TARGET) else f"{p['iou']:.2f}"
            lines.append(f"| {i if first else ''} | {r['scene'] if first else ''} | "
                         f"{_md(r['text']) if first else ''} | {_md(p['expression'])} ({p['type']}) | "
                         f"{iou} | {_f(p.get('box_iou'), '.2f')} | {_f(err, '.1f')} | "
                         f"{_f(r.get('latency_s') if first else None, '.2f', '')} |")
    stop = summary.get("stop") or {}
    if stop:
        lines.append(f"| {len(summary['commands']) + 1} | {stop.get('scene', '')} | {_md(stop['text'])} | "
                     f"results after stop: {stop['results_after_stop']} | | | | |")
    s = summary
    pct = None if s["prec_at_0.5"] is None else 100 * s["prec_at_0.5"]
    err = None if s["median_error_3d_m"] is None else 100 * s["median_error_3d_m"]
    lines.append("")
    lines.append(f"{s['n_commands']} commands, {s['n_expressions']} expressions "
                 f"({', '.join(s['types_covered'])}): mean IoU {_f(s['mean_iou'], '.3f')} (single objects), "
                 f"Prec@0.5 {_f(pct, '.0f')} %, median 3D error {_f(err, '.1f')} cm, "
                 f"median latency {_f(s['median_latency_s'], '.2f')} s (max {_f(s['max_latency_s'], '.2f')} s)")
    extra = []
    if s.get("no_target_accuracy") is not None:
        b = s["by_type"][NO_TARGET]
        extra.append(f"absent objects answered 'not found': {round(b['accuracy'] * b['n'])} of {b['n']}")
    if s.get("multi_target_mean_iou") is not None:
        b = s["by_type"][MULTI_TARGET]
        extra.append(f"every object of a kind: union IoU {b['mean_iou']:.3f}, "
                     f"{b['objects_found']} objects published for {b['objects']}")
    if extra:
        lines.append("; ".join(extra))
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def write_summary(summary: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    md, js = out_dir / "summary.md", out_dir / "summary.json"
    meta = summary.get("meta", {})
    header = ["# refseg_ros demo", ""]
    if meta:
        header += [", ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    md.write_text("\n".join(header) + format_table(summary) + "\n")
    js.write_text(json.dumps(summary, indent=2) + "\n")
    return md, js
