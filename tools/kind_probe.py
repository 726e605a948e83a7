#!/usr/bin/env python3
"""How well do the frozen CNN features the model sees tell an object's kind? A probe on v2 scenes.

Every miss of issue #19 comes back to telling kinds apart. This tool asks whether the image
features carry that information at all: for each annotated object of a tabletop v2 split it
averages the model's frozen MobileNetV2 feature maps (``s16``, ``s8`` and both) over the object's
true mask on the letterbox grid, fits a classifier of the object's category on one split (a linear
layer, or a one-hidden-layer MLP with ``--probe mlp``) and scores it on another, by object size.
``--cnn-scale`` runs the same CNN with the model's ``cnn_scale`` option (the input upsampled k
times, features pooled back to the same grid), so scales compare at equal feature-map sizes.

    python tools/kind_probe.py --data data/tabletop_v2 --fit-split test --score-split val \\
        --probe mlp --cnn-scale 1 2 --json /work/runs/kind_probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

#: object size buckets: sqrt of the mask area in pixels of the split's images
SIZE_BUCKETS = ((0.0, 20.0, "<20"), (20.0, 35.0, "20-35"), (35.0, float("inf"), ">=35"))
FEATURE_SETS = (("s16", ("s16",)), ("s8", ("s8",)), ("s16+s8", ("s16", "s8")))


def mask_weights(mask, resized_size: tuple[int, int], canvas_hw: tuple[int, int], grid_hw: tuple[int, int]):
    """The share of each cell of a ``grid_hw`` feature map covered by ``mask`` (image pixels),
    after the letterbox (the image resized to ``resized_size`` = (w, h) at the canvas's top left)."""
    import torch
    import torch.nn.functional as F

    m = torch.as_tensor(np.asarray(mask, np.float32))[None, None]
    rw, rh = resized_size
    canvas = torch.zeros((1, 1) + tuple(canvas_hw))
    canvas[..., :rh, :rw] = F.interpolate(m, size=(rh, rw), mode="area")
    return F.adaptive_avg_pool2d(canvas, tuple(grid_hw))[0, 0]


def object_features(model, dataset, max_images: int, progress: bool = True) -> dict:
    """Per object: the mask-weighted mean of each feature map, its category and size."""
    import torch

    from refseg_ros.data.masks import segmentation_to_mask
    from refseg_ros.model.letterbox import letterbox_images

    by_image = defaultdict(list)
    for ann in dataset.annotations.values():
        by_image[ann["image_id"]].append(ann)
    feats = defaultdict(list)
    kinds, sizes = [], []
    images = dataset.images[:max_images]
    if progress:
        from tqdm import tqdm
        images = tqdm(images, desc=f"features (cnn_scale {model.backbone.cnn_scale})", unit="image")
    for i, record in enumerate(images):
        rgb = dataset.load_image(i)
        h, w = rgb.shape[:2]
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(255.0)
        canvas, box = letterbox_images(tensor, model.input_size, fill=model.pixel_mean)
        with torch.inference_mode():
            maps = model.image_features(canvas)
        for ann in by_image[record["id"]]:
            mask = segmentation_to_mask(ann["segmentation"], h, w)
            if not mask.any():
                continue
            pooled = {}
            for name, fmap in maps.items():
                weight = mask_weights(mask, box.resized_size, canvas.shape[-2:], fmap.shape[-2:])
                if float(weight.sum()) <= 0:
                    break
                pooled[name] = ((fmap[0].float() * weight).sum((1, 2)) / weight.sum()).numpy()
            else:
                for name, v in pooled.items():
                    feats[name].append(v)
                kinds.append(ann["category"])
                sizes.append(float(np.sqrt(mask.sum())))
    return {"features": {k: np.stack(v) for k, v in feats.items()}, "kinds": kinds, "sizes": np.array(sizes)}


def fit_and_score(x_fit: np.ndarray, y_fit: list[str], x_score: np.ndarray, y_score: list[str],
                  probe: str = "linear", steps: int = 600, seed: int = 0) -> np.ndarray:
    """Fit a classifier of ``y_fit`` on standardised ``x_fit`` (full-batch Adam); return, per scored
    row, whether it was classified right (kinds never seen in fitting count as wrong)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    classes = sorted(set(y_fit))
    index = {c: i for i, c in enumerate(classes)}
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    xf = torch.tensor((x_fit - mean) / std, dtype=torch.float32)
    xs = torch.tensor((x_score - mean) / std, dtype=torch.float32)
    yf = torch.tensor([index[c] for c in y_fit])
    ys = torch.tensor([index.get(c, -1) for c in y_score])
    dim = xf.shape[1]
    if probe == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(dim, 256), torch.nn.GELU(), torch.nn.Dropout(0.3),
                                  torch.nn.Linear(256, len(classes)))
    else:
        net = torch.nn.Linear(dim, len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(xf), yf).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return (net(xs).argmax(1) == ys).numpy()


def by_size(correct: np.ndarray, sizes: np.ndarray) -> dict:
    out = {}
    for lo, hi, name in SIZE_BUCKETS:
        sel = (sizes >= lo) & (sizes < hi)
        out[name] = {"objects": int(sel.sum()),
                     "accuracy": round(100.0 * float(correct[sel].mean()), 1) if sel.any() else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a tabletop v2 root (refseg data tabletop-v2)")
    ap.add_argument("--fit-split", default="test", help="split whose objects fit the probe")
    ap.add_argument("--score-split", default="val", help="split whose objects score it")
    ap.add_argument("--max-images", type=int, nargs=2, default=(1000, 500), metavar=("FIT", "SCORE"))
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint (only its CNN is used)")
    ap.add_argument("--cnn-scale", type=int, nargs="+", default=[1], help="cnn_scale values to compare")
    ap.add_argument("--probe", choices=("linear", "mlp"), default="linear")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if any(not 1 <= s <= 4 for s in args.cnn_scale):
        ap.error("--cnn-scale: values in [1, 4]")
    if min(args.max_images) < 1:
        ap.error("--max-images: at least one image per split")

    import torch

    from refseg_ros.data.v2.dataset import TabletopV2Dataset
    from refseg_ros.model.predictor import load_model

    torch.set_num_threads(args.threads)
    try:
        fit_data = TabletopV2Dataset(args.data, args.fit_split)
        score_data = TabletopV2Dataset(args.data, args.score_split)
    except (FileNotFoundError, ValueError) as e:
        print(f"kind_probe: {e}", file=sys.stderr)
        return 2
    model = load_model(args.checkpoint).eval()
    report = {"data": args.data, "fit_split": args.fit_split, "score_split": args.score_split,
              "probe": args.probe, "checkpoint": args.checkpoint or "shipped", "scales": {}}
    for scale in args.cnn_scale:
        model.backbone.cnn_scale = scale       # only the CNN's input changes; the weights are the same
        fit = object_features(model, fit_data, args.max_images[0], not args.no_progress)
        score = object_features(model, score_data, args.max_images[1], not args.no_progress)
        rows = {}
        for label, names in FEATURE_SETS:
            xf = np.hstack([fit["features"][n] for n in names])
            xs = np.hstack([score["features"][n] for n in names])
            ok = fit_and_score(xf, fit["kinds"], xs, score["kinds"], args.probe)
            rows[label] = {"accuracy": round(100.0 * float(ok.mean()), 1), "by_size": by_size(ok, score["sizes"])}
            sizes = ", ".join(f"{k} {v['accuracy']}" for k, v in rows[label]["by_size"].items())
            print(f"cnn_scale {scale} {label:<7} kind accuracy {rows[label]['accuracy']:5.1f} %  (by size: {sizes})")
        report["scales"][str(scale)] = {"objects_fit": len(fit["kinds"]), "objects_scored": len(score["kinds"]),
                                        "kinds": len(set(fit["kinds"])), "features": rows}
        print(f"cnn_scale {scale}: {len(fit['kinds'])} objects fit, {len(score['kinds'])} scored, "
              f"{len(set(fit['kinds']))} kinds")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
