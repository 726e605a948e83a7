#!/usr/bin/env python3
"""Copy a trained checkpoint to the package's default location (refseg_ros/checkpoints/tabletop.*).

Re-saves through the checkpoint module so the sidecar names the new file and its sha256, keeping
the run's metadata (epoch, training recipe, validation) and adding the evaluation JSON files given.

    tools/ship_checkpoint.py runs/law/checkpoints/last.safetensors --eval test=runs/law/eval_test.json

``--set found_threshold=0.75`` records a post-processing choice made on validation data (only the
post-processing options; the weights' architecture comes from the checkpoint).
"""
import argparse
import json
from pathlib import Path

from refseg_ros.model.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from refseg_ros.model.config import load_config
from refseg_ros.model.predictor import DEFAULT_CHECKPOINT


POST_OPTIONS = ("found_threshold", "mask_threshold", "box_source", "mask_components")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--eval", action="append", default=[], metavar="SPLIT=JSON",
                        help="evaluation results to record in the sidecar")
    parser.add_argument("--extra", action="append", default=[], metavar="KEY=JSON",
                        help="more metadata for the sidecar (e.g. the training history of a resumed run)")
    parser.add_argument("--set", dest="post", action="append", default=[], metavar="KEY=VALUE",
                        help=f"post-processing option to record ({', '.join(POST_OPTIONS)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    args = parser.parse_args()
    meta = read_metadata(args.checkpoint)
    extra = dict(meta.get("extra") or {})
    for item in args.eval:
        split, path = item.split("=", 1)
        extra.setdefault("eval", {})[split] = json.loads(Path(path).read_text())
    for item in args.extra:
        key, value = item.split("=", 1)
        extra[key] = json.loads(value)
    model = load_checkpoint(args.checkpoint)
    for item in args.post:
        key, _, value = item.partition("=")
        if key not in POST_OPTIONS:
            parser.error(f"--set {key}: only post-processing options may be set here ({', '.join(POST_OPTIONS)})")
        model.overrides[key] = float(value) if key.endswith("threshold") else value
    if args.post:  # the config follows the recorded options (checked by rebuilding it)
        model.cfg = load_config(model.preset, **model.overrides)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out, extra=extra)
    print(f"shipped {args.checkpoint} -> {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
