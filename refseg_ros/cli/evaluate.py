"""`refseg eval`: REC Prec@0.5 and RES mIoU / oIoU / Prec@X on single-target expressions, and
n_acc / t_acc / gIoU / cIoU on every expression (no, one or several targets), overall and per
expression type (on v2 data also n_acc per reason a no-target expression has none,
``no_target_by_reason``); REC Prec@0.5 by target size at the model input (``by_target_size``: sqrt of the
target box's area in model-input pixels, buckets <15, 15-30, 30-45, >=45; ``--size-reference``
buckets by the size at another input instead, so runs at two ``--input-size`` compare object for
object)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refseg_ros.cli.common import add_dataset_arguments, add_runtime_arguments, apply_threads, open_dataset

HELP = "evaluate a checkpoint (default: the shipped one) on a dataset split; metrics in percent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="*.safetensors (default: the shipped checkpoint)")
    add_dataset_arguments(parser, split_default="test")
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="write the metrics here")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate an evenly spread subset")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default=None,
                        help="evaluate the node's per-frame path on this backend (per image: all its "
                             "expressions as one command, then predict); default: the batched "
                             "training-validation path in PyTorch")
    parser.add_argument("--int8", action="store_true",
                        help="with --backend onnxruntime: the int8-quantized per-frame graph")
    parser.add_argument("--found-threshold", type=float, default=None,
                        help="score at or above which a result counts as found, in [0, 1] (default: "
                             "the predictor's); a result not found is the answer 'none' for n_acc, "
                             "t_acc, giou and ciou")
    parser.add_argument("--types", nargs="+", default=None, metavar="TYPE",
                        help="only expressions of these types (tabletop formats; e.g. negation multi_target)")
    parser.add_argument("--no-compose", action="store_true",
                        help="let the model read negations whole instead of composing them from their "
                             "parts (model/compose.py): the comparison for docs/training.md")
    parser.add_argument("--no-relation-check", action="store_true",
                        help="take the model's answer for left/right relations as it is, without checking "
                             "that the relation holds for some object of its head or moving a wrong-side "
                             "answer to the one object on the named side (model/compose.py)")
    parser.add_argument("--depth", action="store_true",
                        help="give the predictor each image's depth image and intrinsics (v2 data), as the node "
                             "does with use_depth: 'in front of'/'behind' relations checked along the table "
                             "(model/ground_plane.py)")
    parser.add_argument("--no-pick", action="store_true",
                        help="let the model read ordinals and nearest-to-a-landmark expressions whole instead "
                             "of picking among the head's objects by position (model/compose.py)")
    parser.add_argument("--no-spelling", action="store_true",
                        help="read typed typos as they are instead of fixing them to the grounding vocabulary "
                             "(language/spelling.py): the comparison for docs/model.md")
    parser.add_argument("--no-strip-requests", action="store_true",
                        help="give the model an expression said as a request ('could you hand me the red mug?') "
                             "as it is, instead of the object it names as the node's command parser reads it "
                             "(language/parser.py as_expression): the comparison for docs/model.md")
    parser.add_argument("--knock-out", nargs="+", default=[], choices=("law", "word_attention"),
                        help="switch parts of the language path off at inference to measure what they carry "
                             "(law: generated weights Phi = 0; word_attention: the cross-attention adds "
                             "nothing); torch only")
    parser.add_argument("--input-size", type=input_size, default=None, metavar="WxH",
                        help="run the model at this input instead of the one it was trained at (e.g. 640x480; "
                             "multiples of 16): a resolution study; torch only")
    parser.add_argument("--size-reference", type=input_size, default=None, metavar="WxH",
                        help="bucket by_target_size by each target's size at this input (default: the "
                             "model input)")
    add_runtime_arguments(parser)


def input_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``; each side a multiple of 16 in [32, 4096]."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if not (32 <= w <= 4096 and 32 <= h <= 4096) or w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be a multiple of 16 in [32, 4096]")
    return w, h


def run(args: argparse.Namespace) -> int:
    from refseg_ros.model.checkpoint import CheckpointError
    from refseg_ros.model.predictor import GroundingPredictor, backend_label, resolve_backend
    from refseg_ros.training.evaluate import by_target_size, evaluate
    from refseg_ros.utils.device import resolve_device

    apply_threads(args)
    try:
        device, _ = resolve_device(args.device, strict=True)
        backend = resolve_backend(args.backend or "torch", device)
        predictor = GroundingPredictor.from_checkpoint(args.checkpoint, device=device, backend=backend,
                                                       int8=args.int8, found_threshold=args.found_threshold,
                                                       compose_negations=not args.no_compose,
                                                       check_relations=not args.no_relation_check,
                                                       pick_instances=not args.no_pick,
                                                       fix_spelling=not args.no_spelling,
                                                       strip_requests=not args.no_strip_requests)
        if args.knock_out:
            if backend != "torch":
                raise ValueError("--knock-out changes the PyTorch model; use it without --backend onnxruntime")
            predictor.model.knock_out(*args.knock_out)
            predictor.clear_cache()
        if args.input_size:
            if backend != "torch":
                raise ValueError("--input-size changes the PyTorch model; use it without --backend onnxruntime")
            predictor.model.run_at(args.input_size)
            predictor.clear_cache()
        dataset = open_dataset(args, types=args.types)
        if args.depth and not hasattr(dataset, "depth_frame"):
            raise ValueError("--depth needs data with depth images and intrinsics (--format tabletop-v2)")
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"refseg eval: {exc}", file=sys.stderr)
        return 1
    records: list[dict] = []
    metrics = evaluate(predictor, dataset, batch_size=args.batch_size, max_samples=args.max_samples,
                       progress=not args.no_progress, per_frame=args.backend is not None, records=records,
                       depth=args.depth)
    reference = args.size_reference or predictor.model.input_size
    metrics["by_target_size"] = by_target_size(records, reference)
    metrics["input_size"] = list(predictor.model.input_size)
    metrics["size_reference"] = list(reference)
    metrics["checkpoint"] = str(args.checkpoint or "shipped")
    metrics["path"] = (f"per-frame, {backend_label(backend, args.int8)}" if args.backend is not None
                       else "batched, torch")
    metrics["split"] = args.split
    metrics["format"] = args.format
    metrics["found_threshold"] = predictor.post.found_threshold
    metrics["knock_out"] = sorted(args.knock_out)
    metrics["compose_negations"] = predictor.compose_negations
    metrics["check_relations"] = predictor.check_relations
    metrics["depth"] = bool(args.depth)
    metrics["pick_instances"] = predictor.pick_instances
    metrics["fix_spelling"] = predictor.spelling is not None
    metrics["strip_requests"] = predictor.strip_requests
    metrics["types"] = args.types
    text = json.dumps(metrics, indent=2)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    print(text)
    return 0
