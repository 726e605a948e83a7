"""Instance masks: COCO run-length encoding (both count forms), polygons, boxes. numpy (+ cv2).

COCO RLE, as in the COCO API: the mask is flattened in column-major order and ``counts`` holds
alternating run lengths, starting with a run of zeros (possibly empty). ``counts`` is either a
list of ints ("uncompressed", used by COCO for crowd regions) or a string in the COCO compact
form: each count, after the first two, stored as the difference to the count two places before,
then written 5 bits per character (bit 0x20 = "more characters follow", 0x10 in the last
character = sign), offset by 48 so the string is printable ASCII.
"""
from __future__ import annotations

import numpy as np


def rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a binary mask in column-major order, starting with zeros."""
    flat = np.asarray(mask, dtype=bool).reshape(-1, order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return [int(c) for c in counts]


def counts_to_string(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def string_to_counts(s: str | bytes) -> list[int]:
    if isinstance(s, bytes):
        s = s.decode("ascii")
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a binary (h, w) mask."""
    h, w = mask.shape[:2]
    return {"size": [int(h), int(w)], "counts": counts_to_string(rle_counts(mask))}


def decode_rle(rle: dict) -> np.ndarray:
    """Binary uint8 (h, w) mask from a COCO RLE with string or list ``counts``."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h}*{w}={h * w}")
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, counts)
    return flat.reshape((h, w), order="F")


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (``[[x1, y1, x2, y2, ...], ...]``, pixel coordinates)."""
    import cv2

    mask = np.zeros((height, width), dtype=np.uint8)
    shift = 3  # sub-pixel precision: cv2 takes fixed-point vertices
    pts = []
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(xy) >= 3:
            pts.append(np.round(xy * (1 << shift)).astype(np.int32))
    if pts:
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=shift)
    return mask


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Any COCO ``segmentation`` (polygon list, RLE with list or string counts) to a uint8 mask."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        mask = decode_rle(segmentation)
        if mask.shape != (height, width):
            raise ValueError(f"RLE size {mask.shape} != image size {(height, width)}")
        return mask
    raise TypeError(f"unsupported segmentation of type {type(segmentation).__name__}")


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """``x_min, y_min, x_max, y_max`` of a mask in pixel-edge coordinates (x_max = last col + 1).

    All zeros for an empty mask.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def xywh_to_xyxy(box) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    return np.array([x, y, x + w, y + h], dtype=np.float32)
