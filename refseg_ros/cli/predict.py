"""`refseg predict`: ground expressions in one image; print box/score, write an overlay.

One line (one JSON entry) per answer, as the node publishes them: an expression that is not found
gives one with ``found: false`` and ``box: null``; one that asks for every match ("all the red
cubes") gives one per object, ``instance`` 0..n-1 of ``instances`` n."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refseg_ros.cli.common import add_runtime_arguments, apply_threads
from refseg_ros.ros.images import MAX_IMAGE_PIXELS

HELP = "ground one or more expressions in an image (box, score, mask; optional overlay PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="*.safetensors (default: the shipped checkpoint)")
    parser.add_argument("--image", required=True, type=Path, help="image file (PNG, JPEG, ...)")
    parser.add_argument("--expr", required=True, action="append",
                        help="referring expression; repeat for several (grounded in one batch)")
    parser.add_argument("--out", type=Path, default=None, help="write an overlay image (box, tinted mask, text)")
    parser.add_argument("--mask-out", type=Path, default=None,
                        help="write the first expression's mask as a PNG (255 = object; all 0 when not found)")
    parser.add_argument("--found-threshold", type=float, default=None,
                        help="score at or above which an expression is found, in [0, 1] (default: the "
                             "checkpoint's, as the node's found_threshold default)")
    parser.add_argument("--depth", type=Path, default=None,
                        help="the image's depth (16-bit PNG in millimetres, registered to the image; any "
                             "size covering the same view): 'in front of'/'behind' are then checked along "
                             "the table, as the node does with use_depth (needs --camera-k)")
    parser.add_argument("--camera-k", type=_camera_k, default=None, metavar="FX,FY,CX,CY",
                        help="pinhole intrinsics of the colour image, in pixels (CameraInfo K's fx, fy, cx, cy)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS,
                        help=f"refuse images of more pixels (width x height, read from the file's header "
                             f"before decoding; default {MAX_IMAGE_PIXELS}, the node's max_image_pixels)")
    add_runtime_arguments(parser)


def _camera_k(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FX,FY,CX,CY (numbers), not {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 values FX,FY,CX,CY, not {len(values)}")
    return values


def read_depth(path: Path, camera_k, image_size: tuple[int, int], max_pixels: int):
    """``path`` (16-bit PNG, millimetres) as a ``model.ground_plane.DepthFrame`` with ``camera_k``
    (fx, fy, cx, cy of the ``image_size`` colour image) scaled to its size. ValueError says why not."""
    import cv2

    from refseg_ros.data.geometry import mm_to_depth
    from refseg_ros.model.ground_plane import DepthFrame
    from refseg_ros.ros.geometry import Intrinsics

    if camera_k is None:
        raise ValueError("--depth needs the colour image's intrinsics: --camera-k FX,FY,CX,CY")
    if path.stat().st_size > 8 * max_pixels + (1 << 20):
        raise ValueError(f"{path} is too big for a depth image of at most {max_pixels} pixels")
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.ndim != 2 or depth.dtype != "uint16":
        raise ValueError(f"{path}: expected a single-channel 16-bit PNG of millimetres"
                         + ("" if depth is None else f", got {depth.dtype} of shape {depth.shape}"))
    k = Intrinsics(*camera_k, *image_size)
    problem = k.problem()
    if problem:
        raise ValueError(f"--camera-k: {problem}")
    k = k.scaled_to(depth.shape[1], depth.shape[0])
    return DepthFrame(mm_to_depth(depth), k.fx, k.fy, k.cx, k.cy)


def read_image(path: Path, max_pixels: int):
    """``path`` as a BGR uint8 image like ``cv2.imread(IMREAD_COLOR)``; its size is read from the
    header first (PNG/JPEG here, other formats through Pillow when installed), so an image over
    ``max_pixels`` is refused without being decoded. ValueError says why not."""
    import cv2
    import numpy as np

    from refseg_ros.ros.images import ImageConversionError, check_pixels, compressed_dimensions

    size = path.stat().st_size
    if size > 8 * max_pixels + (1 << 20):  # more bytes than any image format spends on that many pixels
        raise ValueError(f"{path} is {size} bytes, too big for an image of at most {max_pixels} pixels")
    data = path.read_bytes()
    try:
        _, width, height = compressed_dimensions(data)
    except ImageConversionError:
        width, height = _other_format_size(path)
    try:
        check_pixels(width, height, max_pixels, f"image {path}")
    except ImageConversionError as exc:
        raise ValueError(f"{exc}; raise --max-image-pixels to ground it") from None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return bgr


def _other_format_size(path: Path) -> tuple[int, int]:
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(f"cannot read image {path}: not PNG or JPEG (other formats need Pillow)") from None
    try:
        with Image.open(path) as img:  # reads the header only
            return img.size
    except Exception as exc:  # noqa: BLE001 - any format Pillow cannot identify
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    try:  # before the model is imported or loaded: a refused image costs nothing
        bgr = read_image(args.image, args.max_image_pixels)
        depth = None if args.depth is None else read_depth(args.depth, args.camera_k, (bgr.shape[1], bgr.shape[0]),
                                                           args.max_image_pixels)
    except (OSError, ValueError) as exc:
        print(f"refseg predict: {exc}", file=sys.stderr)
        return 1
    import cv2
    import numpy as np

    from refseg_ros.model.checkpoint import CheckpointError
    from refseg_ros.model.predictor import GroundingPredictor
    from refseg_ros.utils.device import resolve_device
    from refseg_ros.utils.overlay import answers, draw_groundings

    apply_threads(args)
    expressions = [e.strip() for e in args.expr if e.strip()]
    if not expressions:
        print("refseg predict: --expr is empty", file=sys.stderr)
        return 1
    if args.found_threshold is not None and not 0.0 <= args.found_threshold <= 1.0:
        print(f"refseg predict: --found-threshold must lie in [0, 1], not {args.found_threshold}", file=sys.stderr)
        return 1
    try:
        device, _ = resolve_device(args.device, strict=True)
        predictor = GroundingPredictor.from_checkpoint(args.checkpoint, device=device)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"refseg predict: {exc}", file=sys.stderr)
        return 1
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    predictor.set_command(expressions)
    results = predictor.predict(rgb, predictor.post.with_(found_threshold=args.found_threshold), depth)
    rows = [{"expression": a.expression, "found": a.found, "score": round(a.score, 4),
             "box": [round(v, 1) for v in a.box] if a.found else None,
             "mask_pixels": int(a.mask.sum()) if a.found and a.mask is not None else 0,
             "instance": a.instance, "instances": a.of if a.found else 0} for a in answers(results)]
    if args.json:
        print(json.dumps({"image": str(args.image), "width": rgb.shape[1], "height": rgb.shape[0],
                          "results": rows}, indent=2))
    else:
        for r in rows:
            if not r["found"]:
                print(f"{r['expression']!r}: not found (score {r['score']:.3f})")
                continue
            x0, y0, x1, y1 = r["box"]
            which = f" [{r['instance'] + 1} of {r['instances']}]" if r["instances"] > 1 else ""
            print(f"{r['expression']!r}{which}: box ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) score {r['score']:.3f} "
                  f"mask {r['mask_pixels']} px")
    if args.out:
        overlay = draw_groundings(bgr, results, channel_order="bgr")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.out), overlay)
    if args.mask_out and results:
        first = results[0].mask if results[0].found else np.zeros(rgb.shape[:2], bool)
        cv2.imwrite(str(args.mask_out), first.astype(np.uint8) * 255)
    return 0
