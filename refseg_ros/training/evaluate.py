"""Evaluate a predictor on any Dataset that yields the Sample dict (docs/architecture.md)."""
from __future__ import annotations

import time

import numpy as np

from refseg_ros.training.metrics import GroundingMetrics


def subset_indices(n: int, max_samples: int | None) -> np.ndarray:
    """All indices, or ``max_samples`` evenly spread ones (deterministic, covers every scene range)."""
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_samples).round().astype(int))


def target_count(sample: dict) -> int:
    """How many objects ``sample`` refers to: its ``targets`` list where the Dataset gives one
    (v2 data: zero, one or several), else one (v1 and REFER samples)."""
    targets = sample.get("targets")
    return 1 if targets is None else len(targets)


def predict_per_frame(predictor, images: list, expressions: list[str], depths: list | None = None) -> list:
    """What the node does: per image, ``set_command`` with all of its expressions (one batch),
    then ``predict`` (the folded command; onnxruntime when that is the predictor's backend).
    ``images[i]`` with ``expressions[i]`` (and ``depths[i]``, or None); expressions about one image
    share its array object."""
    by_image: dict[int, list[int]] = {}
    for i, img in enumerate(images):
        by_image.setdefault(id(img), []).append(i)
    preds: list = [None] * len(images)
    for rows in by_image.values():
        predictor.set_command([expressions[i] for i in rows])
        depth = depths[rows[0]] if depths is not None else None
        for i, p in zip(rows, predictor.predict(images[rows[0]], depth=depth), strict=True):
            preds[i] = p
    return preds


def evaluate(predictor, dataset, batch_size: int = 16, max_samples: int | None = None,
             progress: bool = True, desc: str = "eval", per_frame: bool = False,
             records: list | None = None, depth: bool = False) -> dict:
    """Grounding metrics of ``predictor`` (a ``GroundingPredictor``) on ``dataset``, in percent:
    REC/RES on single-target expressions, n_acc/t_acc/gIoU/cIoU on all (``training/metrics.py``),
    with a result's ``found`` flag as the answer "something" or "none".

    ``per_frame``: predict as the node does (:func:`predict_per_frame`) instead of
    ``predict_batch`` (one unfolded batch of expressions over several images, as in training).
    ``depth``: give the predictor each image's depth (``dataset.depth_frame``, v2 data), as the node
    with ``use_depth`` does ("in front of"/"behind" checked along the table).
    Returns the ``GroundingMetrics`` summary plus ``images_per_s`` (model + post-processing
    throughput, data loading excluded). ``records``: a list that receives one dict per expression
    (``type``, ``n_targets``, ``score``, ``found``, ``target_pixels``, ``box``, ``target_box``,
    ``image_size``; for calibration and per-size tables: :func:`by_target_size`).
    """
    from tqdm import tqdm

    if depth and not hasattr(dataset, "depth_frame"):
        raise ValueError("this dataset has no depth images (depth: v2 data)")
    metrics = GroundingMetrics()
    indices = subset_indices(len(dataset), max_samples)
    model_time = 0.0
    bar = tqdm(total=len(indices), desc=desc, unit="expr", disable=not progress, leave=False)
    for start in range(0, len(indices), batch_size):
        samples = [dataset[int(i)] for i in indices[start:start + batch_size]]
        # Expressions about one image share its array, so predict_batch runs the CNN once for them.
        shared: dict = {}
        for s in samples:
            if s.get("image_id") is not None:
                s["image"] = shared.setdefault(s["image_id"], s["image"])
        depths = None
        if depth:  # one DepthFrame per image, shared by its expressions
            frames: dict = {}
            depths = []
            for i in indices[start:start + batch_size]:
                k = int(dataset.image_index[int(i)])
                if k not in frames:
                    frames[k] = dataset.depth_frame(k)
                depths.append(frames[k])
        t0 = time.perf_counter()
        images, expressions = [s["image"] for s in samples], [s["expression"] for s in samples]
        if per_frame:
            preds = predict_per_frame(predictor, images, expressions, depths)
        else:
            preds = predictor.predict_batch(images, expressions, depths=depths)
        model_time += time.perf_counter() - t0
        for s, p in zip(samples, preds):
            metrics.update(p.box, s["box"], p.mask, s["mask"].astype(bool), s.get("type", "all"),
                           found=p.found, n_targets=target_count(s), reason=s.get("reason"))
            if records is not None:
                records.append({"type": s.get("type", "all"), "n_targets": target_count(s), "score": float(p.score),
                                "found": bool(p.found), "target_pixels": int(s["mask"].astype(bool).sum()),
                                "box": [float(v) for v in p.box], "target_box": [float(v) for v in s["box"]],
                                "image_size": [int(s["image"].shape[1]), int(s["image"].shape[0])]})
        bar.update(len(samples))
    bar.close()
    out = metrics.compute()
    out["images_per_s"] = len(indices) / model_time if model_time > 0 else 0.0
    return out


#: Target size buckets (``sqrt(box width x height)`` in model-input pixels): lower edges.
SIZE_BUCKETS = ((0, "<15"), (15, "15-30"), (30, "30-45"), (45, ">=45"))


def by_target_size(records: list[dict], input_size: tuple[int, int]) -> dict[str, dict]:
    """REC Prec@0.5 of single-target expressions per target size at the model input (the image
    letterboxed to ``input_size``): ``{bucket: {"expressions": n, "rec_prec@0.5": percent}}``."""
    from refseg_ros.training.metrics import box_iou_xyxy

    out: dict[str, list[float]] = {name: [] for _, name in SIZE_BUCKETS}
    iw, ih = input_size
    for r in records:
        if r["n_targets"] != 1:
            continue
        w, h = r["image_size"]
        x0, y0, x1, y1 = r["target_box"]
        side = min(iw / w, ih / h) * float(np.sqrt(max(0.0, x1 - x0) * max(0.0, y1 - y0)))
        name = [n for lo, n in SIZE_BUCKETS if side >= lo][-1]
        out[name].append(box_iou_xyxy(r["box"], r["target_box"]) >= 0.5)
    return {name: {"expressions": len(v), "rec_prec@0.5": 100.0 * float(np.mean(v)) if v else None}
            for name, v in out.items()}
