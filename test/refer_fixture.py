"""A small dataset in the REFER toolkit's layout, written as its files were: refs pickles made by
Python 2 (byte strings and unicode, protocols 0 and 2, written here opcode by opcode since no
Python 2 is at hand), a Python 3 refs file with numpy ids, ``instances.json`` with polygons
(multi-part, overlapping, repeated, slivers) and RLE (string and list counts, ReferIt's lists
of RLE dicts), and the images. All four datasets and every split scheme.

:func:`build` returns the truth the files were written from, so a test can read the files back
with the code under test and compare with what the reference tools would give (pycocotools for
the masks, the toolkit's documented split rule for the splits).
"""
from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np


class Py2Str(bytes):
    """A Python 2 ``str`` (bytes) in a structure given to :func:`py2_pickle`; plain ``str`` values
    are written as Python 2 ``unicode``."""


def py2_pickle(obj, protocol: int) -> bytes:
    """``obj`` pickled as Python 2's cPickle writes it at protocol 0 or 2 (containers, numbers,
    None, bools, Py2Str, str), memoizing containers and strings like cPickle does."""
    out: list[bytes] = [b"\x80\x02"] if protocol == 2 else []
    memo = [0]

    def put():
        idx = memo[0]
        memo[0] += 1
        if protocol == 0:
            out.append(b"p%d\n" % idx)
        else:
            out.append(b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx))

    def write(x):
        if x is None:
            out.append(b"N")
        elif isinstance(x, bool):
            out.append((b"I01\n" if x else b"I00\n") if protocol == 0 else (b"\x88" if x else b"\x89"))
        elif isinstance(x, int):
            if protocol == 0:
                out.append(b"I%d\n" % x)
            elif 0 <= x < 256:
                out.append(b"K" + bytes([x]))
            elif 0 <= x < 65536:
                out.append(b"M" + struct.pack("<H", x))
            else:
                out.append(b"J" + struct.pack("<i", x))
        elif isinstance(x, float):
            out.append(b"F%r\n" % x if protocol == 0 else b"G" + struct.pack(">d", x))
        elif isinstance(x, Py2Str):
            if protocol == 0:
                out.append(b"S" + repr(bytes(x))[1:].encode("ascii") + b"\n")
            elif len(x) < 256:
                out.append(b"U" + bytes([len(x)]) + bytes(x))
            else:
                out.append(b"T" + struct.pack("<i", len(x)) + bytes(x))
            put()
        elif isinstance(x, str):
            if protocol == 0:
                esc = x.replace("\\", "\\u005c").replace("\n", "\\u000a")
                out.append(b"V" + esc.encode("raw-unicode-escape") + b"\n")
            else:
                data = x.encode("utf-8")
                out.append(b"X" + struct.pack("<I", len(data)) + data)
            put()
        elif isinstance(x, list):
            out.append(b"(l" if protocol == 0 else b"]")
            put()
            if protocol == 0:
                for v in x:
                    write(v)
                    out.append(b"a")
            elif x:
                out.append(b"(")
                for v in x:
                    write(v)
                out.append(b"e")
        elif isinstance(x, dict):
            out.append(b"(d" if protocol == 0 else b"}")
            put()
            if protocol == 0:
                for k, v in x.items():
                    write(k)
                    write(v)
                    out.append(b"s")
            elif x:
                out.append(b"(")
                for k, v in x.items():
                    write(k)
                    write(v)
                out.append(b"u")
        elif isinstance(x, tuple):
            out.append(b"(")
            for v in x:
                write(v)
            out.append(b"t")
            put()
        else:
            raise TypeError(type(x))

    write(obj)
    out.append(b".")
    return b"".join(out)


# --- segmentations ------------------------------------------------------------------------------
def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's "uncompressed" RLE (list counts, column-major, starting with zeros) of a mask."""
    flat = mask.reshape(-1, order="F").astype(bool)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": [int(c) for c in counts]}


def string_rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as cocomask

    rle = cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def random_polygon(rng, cx, cy, radius, n=12) -> list[float]:
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.5, 1.0, n)
    xy = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    return [round(float(v), 2) for v in xy.ravel()]


#: name -> (segmentation builder(h, w, rng), what it exercises)
def coco_segmentations(h: int, w: int, rng) -> dict[str, object]:
    blob = np.zeros((h, w), np.uint8)
    blob[10:30, 60:75] = 1
    blob[25:40, 70:90] = 1
    ring = np.zeros((h, w), np.uint8)
    cv2.circle(ring, (30, 60), 14, 1, -1)
    cv2.circle(ring, (30, 60), 6, 0, -1)
    return {
        "square10": [[10.0, 10.0, 20.0, 10.0, 20.0, 20.0, 10.0, 20.0]],
        "sliver": [[40.0, 5.0, 41.3, 5.2, 41.1, 45.0, 40.2, 44.7]],
        "two_parts": [[5.0, 50.0, 25.0, 50.0, 25.0, 70.0, 5.0, 70.0],
                      [60.0, 60.0, 80.5, 61.0, 70.0, 85.0]],
        "overlapping": [[50.0, 50.0, 80.0, 50.0, 80.0, 70.0, 50.0, 70.0],
                        [65.0, 55.0, 95.0, 55.0, 95.0, 75.0, 65.0, 75.0]],
        "repeated": [[30.0, 30.0, 45.0, 32.0, 40.0, 48.0], [30.0, 30.0, 45.0, 32.0, 40.0, 48.0]],
        "random_small": [random_polygon(rng, 100, 40, 5)],
        "random_large": [random_polygon(rng, 64, 48, 30, n=24)],
        "crowd_list_counts": uncompressed_rle(blob),
        "string_counts": string_rle(ring),
    }


def clef_segmentations(h: int, w: int) -> dict[str, object]:
    a = np.zeros((h, w), np.uint8)
    a[5:25, 10:40] = 1
    b = np.zeros((h, w), np.uint8)
    cv2.ellipse(b, (60, 40), (20, 10), 30, 0, 360, 1, -1)
    c = np.zeros((h, w), np.uint8)
    c[40:60, 20:30] = 1
    return {"clef_box": [string_rle(a)], "clef_ellipse": [string_rle(b)],
            "clef_two_rles": [string_rle(c), string_rle(a)],
            "clef_list_counts": [uncompressed_rle(c)]}


def box_of(seg, h, w) -> list[float]:
    from pycocotools import mask as cocomask

    rles = (cocomask.frPyObjects(seg, h, w) if isinstance(seg, list) and isinstance(seg[0], list)
            else [s if isinstance(s["counts"], str) else cocomask.frPyObjects(s, h, w)
                  for s in (seg if isinstance(seg, list) else [seg])])
    return [round(float(v), 2) for v in cocomask.toBbox(cocomask.merge(rles))]


# --- the layout -----------------------------------------------------------------------------------
COCO_HW = (96, 128)
CLEF_HW = (80, 100)
SENTENCES = ["the man on the left", "red cup", "zebra behind the fence", "small square thing",
             "the one in the middle", "blue umbrella", "left giraffe", "dog near the door"]
#: dataset -> scheme -> (refs file writer: "py2-0", "py2-2" or "py3-numpy", split names cycled)
SCHEMES = {
    "refcoco": {"unc": ("py2-2", ["train", "train", "val", "testA", "testB", "testB"]),
                "google": ("py2-0", ["train", "val", "test", "train"])},
    "refcoco+": {"unc": ("py2-0", ["train", "val", "testA", "testB", "train"])},
    "refcocog": {"umd": ("py2-2", ["train", "val", "test", "test"]),
                 "google": ("py3-numpy", ["train", "val", "train"])},
    "refclef": {"berkeley": ("py2-2", ["train", "val", "test", "train"]),
                "unc": ("py2-0", ["train", "val", "testA", "testB", "testC", "testAB"])},
}


def _text(s: str, kind: str, k: int):
    """Sentence text as the writer stores it: py2 byte strings, except every third as unicode."""
    if kind == "py3-numpy" or k % 3 == 2:
        return s
    return Py2Str(s.encode("utf-8"))


def build(root: Path, seed: int = 0) -> dict:
    """Write the fixture under ``root``; return ``{(dataset, scheme): [truth ref, ...]}``, each
    truth ref with ``ref_id, ann_id, image_id, split, texts, segmentation, bbox, hw, path``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    coco_dir = root / "images" / "mscoco" / "images" / "train2014"
    clef_dir = root / "images" / "saiapr_tc-12"
    truth: dict = {}
    for dataset, schemes in SCHEMES.items():
        clef = dataset == "refclef"
        h, w = CLEF_HW if clef else COCO_HW
        segs = clef_segmentations(h, w) if clef else coco_segmentations(h, w, rng)
        images, annotations = [], []
        for k, (name, seg) in enumerate(segs.items()):
            image_id = (25000 if clef else 480000) + 7 * k + len(dataset)
            file_name = (f"{image_id // 1000}/images/{image_id}.jpg" if clef
                         else f"COCO_train2014_{image_id:012d}.jpg")
            path = (clef_dir if clef else coco_dir) / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
            annotations.append({"id": 1000 * image_id + k, "image_id": image_id, "category_id": 1,
                                "iscrowd": int(name.startswith("crowd")), "name": name,
                                "segmentation": seg, "bbox": box_of(seg, h, w), "area": 1.0})
        (root / dataset).mkdir(parents=True, exist_ok=True)
        (root / dataset / "instances.json").write_text(json.dumps(
            {"images": images, "annotations": annotations,
             "categories": [{"id": 1, "name": "thing", "supercategory": "thing"}]}))
        for scheme, (kind, splits) in schemes.items():
            refs, rows = [], []
            sent_id = 0
            for ref_id, ann in enumerate(annotations * 2):  # two refs per object, as in RefCOCO
                n_sent = 1 + (ref_id % 3)
                texts = [SENTENCES[(ref_id + j) % len(SENTENCES)] for j in range(n_sent)]
                if dataset == "refcoco" and scheme == "unc" and ref_id == 1:
                    texts[0] = "caf\xe9 sign"  # a Python 2 byte string that is Latin-1, not UTF-8
                split = splits[ref_id % len(splits)]
                image = next(i for i in images if i["id"] == ann["image_id"])
                sents = []
                for j, t in enumerate(texts):
                    stored = (Py2Str(t.encode("latin-1")) if t.startswith("caf")
                              else _text(t, kind, sent_id))
                    sents.append({"tokens": [_text(x, kind, sent_id) for x in t.split()],
                                  "raw": _text(t.upper(), kind, sent_id), "sent_id": sent_id,
                                  "sent": stored})
                    sent_id += 1
                ref = {"sent_ids": [s["sent_id"] for s in sents], "file_name":
                       _text(image["file_name"].replace(".jpg", f"_{ref_id}.jpg"), kind, ref_id),
                       "ann_id": ann["id"], "ref_id": ref_id, "image_id": ann["image_id"],
                       "split": _text(split, kind, 0), "sentences": sents, "category_id": 1}
                refs.append(ref)
                rows.append({"ref_id": ref_id, "ann_id": ann["id"], "image_id": ann["image_id"],
                             "split": split, "texts": texts, "segmentation": ann["segmentation"],
                             "bbox": ann["bbox"], "hw": (h, w), "name": ann["name"],
                             "path": str((clef_dir if clef else coco_dir) / image["file_name"])})
            path = root / dataset / f"refs({scheme}).p"
            if kind == "py3-numpy":
                for ref in refs:  # ids regenerated with numpy, as some preprocessing scripts do
                    ref["ref_id"], ref["ann_id"] = np.int64(ref["ref_id"]), np.int64(ref["ann_id"])
                    ref["image_id"] = np.int32(ref["image_id"])
                path.write_bytes(pickle.dumps(refs, protocol=4))
            else:
                path.write_bytes(py2_pickle(refs, protocol=int(kind[-1])))
            truth[(dataset, scheme)] = rows
    return truth
