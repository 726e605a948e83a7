"""`refseg predict`: ground expressions in one image; print box/score, write an overlay."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refseg_ros.cli.common import add_runtime_arguments, apply_threads

HELP = "ground one or more expressions in an image (box, score, mask; optional overlay PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="*.safetensors (default: the shipped checkpoint)")
    parser.add_argument("--image", required=True, type=Path, help="image file (PNG, JPEG, ...)")
    parser.add_argument("--expr", required=True, action="append",
                        help="referring expression; repeat for several (grounded in one batch)")
    parser.add_argument("--out", type=Path, default=None, help="write an overlay image (box, tinted mask, text)")
    parser.add_argument("--mask-out", type=Path, default=None, help="write the first mask as a PNG (255 = object)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from refseg_ros.model.checkpoint import CheckpointError
    from refseg_ros.model.predictor import GroundingPredictor
    from refseg_ros.utils.device import resolve_device
    from refseg_ros.utils.overlay import draw_groundings

    apply_threads(args)
    bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if bgr is None:
        print(f"refseg predict: cannot read image {args.image}", file=sys.stderr)
        return 1
    expressions = [e.strip() for e in args.expr if e.strip()]
    if not expressions:
        print("refseg predict: --expr is empty", file=sys.stderr)
        return 1
    try:
        device, _ = resolve_device(args.device, strict=True)
        predictor = GroundingPredictor.from_checkpoint(args.checkpoint, device=device)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"refseg predict: {exc}", file=sys.stderr)
        return 1
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    predictor.set_command(expressions)
    results = predictor.predict(rgb)
    rows = [{"expression": r.expression, "box": [round(v, 1) for v in r.box], "score": round(r.score, 4),
             "mask_pixels": int(r.mask.sum())} for r in results]
    if args.json:
        print(json.dumps({"image": str(args.image), "width": rgb.shape[1], "height": rgb.shape[0],
                          "results": rows}, indent=2))
    else:
        for r in rows:
            x0, y0, x1, y1 = r["box"]
            print(f"{r['expression']!r}: box ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) score {r['score']:.3f} "
                  f"mask {r['mask_pixels']} px")
    if args.out:
        overlay = draw_groundings(bgr, results, channel_order="bgr")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.out), overlay)
    if args.mask_out and results:
        cv2.imwrite(str(args.mask_out), results[0].mask.astype(np.uint8) * 255)
    return 0
