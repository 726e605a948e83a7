"""REFER segmentations -> masks, exactly as the REFER toolkit's ``getMask`` makes them.

The published RefCOCO-family numbers were computed on masks from pycocotools: polygons are
rasterised by ``frPyObjects`` (a pixel belongs to the mask when its centre is inside, roughly),
the parts of one object are summed (so overlapping parts stay filled), and ReferIt's RLE lists
are decoded as they are. Any other rasteriser (``cv2.fillPoly`` includes boundary pixels) makes
small objects visibly bigger and shifts training targets and IoU, so pycocotools is used here.

:func:`segmentation_problem` says what would make a segmentation unreadable, or read differently
from what its author meant, before anything is decoded: pycocotools checks nothing, and a wrong
RLE can make it write past its buffer.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from refseg_ros.data.masks import string_to_counts

# pycocotools' decode converts its RLE object through the numpy 1 ``__array__`` signature; numpy 2
# warns on every call but converts the same. Silenced for that message only.
warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                        category=DeprecationWarning, module="pycocotools")


def is_polygons(segmentation) -> bool:
    """Whether a segmentation is a polygon list (the toolkit's test: its first part is a list)."""
    return isinstance(segmentation, list) and bool(segmentation) and \
        isinstance(segmentation[0], list)


def _rle_problem(rle, height: int, width: int, what: str) -> str | None:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        return f"{what} is not an RLE dict with 'size' and 'counts'"
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or \
            [int(v) if isinstance(v, (int, float)) else None for v in size] != [height, width]:
        return f"{what} has size {size!r}, the image is {[height, width]}"
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        try:
            counts = string_to_counts(counts)
        except (IndexError, UnicodeDecodeError, ValueError):
            return f"{what} has a malformed counts string"
    elif not isinstance(counts, list) or not all(isinstance(c, int) for c in counts):
        return f"{what} counts are neither a string nor a list of integers"
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        return f"{what} counts cover {sum(counts)} pixels with {min(counts, default=0)} as the " \
               f"smallest run; the image has {height}x{width}={height * width}"
    return None


def _polygon_problem(poly, k: int, height: int, width: int) -> str | None:
    if not isinstance(poly, list) or not all(isinstance(v, (int, float)) for v in poly):
        return f"polygon {k} is not a list of numbers"
    if len(poly) % 2:
        return f"polygon {k} has an odd number of coordinates ({len(poly)})"
    if k == 0 and len(poly) < 6:  # pycocotools reads a short first part as a box, or refuses it
        return f"polygon 0 has {len(poly) // 2} point(s); at least 3 are needed"
    if poly and not math.isfinite(sum(poly)):
        return f"polygon {k} has coordinates that are not finite numbers"
    # pycocotools walks every edge at 5x resolution: far-away vertices cost memory, not pixels
    reach = 2 * max(height, width)
    if poly and (min(poly) < -reach or max(poly) > reach + max(height, width)):
        return f"polygon {k} reaches ({min(poly)}, {max(poly)}), far outside the " \
               f"{width}x{height} image"
    return None


def segmentation_problem(segmentation, height: int, width: int) -> str | None:
    """What is wrong with a REFER/COCO ``segmentation`` for an image of ``height`` x ``width``,
    or ``None``: polygon lists (even length, finite, near the image), RLE dicts or lists of RLE
    dicts (string or list counts that cover the image exactly)."""
    if isinstance(segmentation, dict):
        return _rle_problem(segmentation, height, width, "RLE")
    if not isinstance(segmentation, list):
        return f"segmentation is a {type(segmentation).__name__}, not a polygon list or RLE"
    if not segmentation:
        return "segmentation is empty"
    if is_polygons(segmentation):
        for k, poly in enumerate(segmentation):
            problem = _polygon_problem(poly, k, height, width)
            if problem:
                return problem
        return None
    for k, rle in enumerate(segmentation):
        problem = _rle_problem(rle, height, width, f"RLE part {k}")
        if problem:
            return problem
    return None


def _to_rles(segmentation, height: int, width: int) -> list[dict]:
    from pycocotools import mask as cocomask

    if is_polygons(segmentation):
        return cocomask.frPyObjects(segmentation, height, width)
    parts = segmentation if isinstance(segmentation, list) else [segmentation]
    # string counts are already compressed RLE; list counts ("uncompressed") are converted
    return [p if isinstance(p["counts"], (str, bytes)) else
            cocomask.frPyObjects(p, height, width) for p in parts]


def refer_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Binary uint8 ``(height, width)`` mask of a segmentation, pixel-equal to the REFER toolkit's
    ``getMask`` (which sums the parts; here they are merged, the same pixels as 0/1).

    Raises ``ValueError`` naming the problem when :func:`segmentation_problem` finds one.
    """
    from pycocotools import mask as cocomask

    problem = segmentation_problem(segmentation, height, width)
    if problem:
        raise ValueError(problem)
    rles = _to_rles(segmentation, height, width)
    merged = cocomask.merge(rles) if len(rles) > 1 else rles[0]
    return np.ascontiguousarray(cocomask.decode(merged), dtype=np.uint8)
