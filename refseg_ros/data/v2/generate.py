"""Write Tabletop v2 splits to disk (``docs/data-format.md``, format version 2).

The layout, resuming and determinism follow v1 (:mod:`refseg_ros.data.generate`): scene ``i`` of
split ``s`` is rendered from :func:`scene_seed_v2` ``(seed, s, i)``; each scene's record file is
written last and marks it done; the index ``<split>.json`` is assembled from the records and
replaced atomically. v2 adds ``expressions`` (every expression with its target list, possibly
empty) and per-image ``camera`` and ``surfaces``; ``refs`` keeps the single-target expressions in
v1's shape, so v1 readers still load a v2 split.
"""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np

from refseg_ros.data.generate import (JPEG_QUALITY, MAX_OBJECTS, PNG_COMPRESSION, _atomic_write,
                                      _check_params, _round, render_tasks, scene_files, scene_seed,
                                      single_threaded)
from refseg_ros.data.masks import encode_rle
from refseg_ros.data.v2 import assets as A

FORMAT_VERSION = 2
GENERATOR_VERSION = 1


def scene_seed_v2(seed: int, split: str, index: int) -> int:
    return scene_seed(seed, split, index, generator="refseg-tabletop-v2")


def category_ids() -> dict[str, int]:
    return {c.name: i + 1 for i, c in enumerate(A.CATEGORIES_V2)}


def scene_record(scene, split: str, index: int) -> dict:
    files = scene_files(split, index)
    image_id = int(index)
    cat_ids = category_ids()
    image = {"id": image_id, "file_name": files["rgb"], "depth_file": files["depth"],
             "width": scene.width, "height": scene.height, "scene_seed": int(scene.seed),
             "camera_info": scene.camera_info, "camera": scene.camera,
             "T_table_camera": [_round(r, 6) for r in np.asarray(scene.T_table_camera)],
             "light": scene.light, "surfaces": scene.surfaces}
    annotations = []
    for k, o in enumerate(scene.objects):
        x0, y0, x1, y1 = (float(v) for v in o["bbox"])
        annotations.append({
            "id": image_id * MAX_OBJECTS + k, "image_id": image_id,
            "category_id": cat_ids[o["category"]], "category": o["category"],
            "colour": o["colour"], "size": o["size"], "asset": o["asset"], "source": o["source"],
            "textured": bool(o["textured"]), "appearance": o["appearance"],
            "colour_share": o.get("colour_share"),
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(o["area"]), "iscrowd": 0,
            "segmentation": encode_rle(scene.mask(k)),
            "position_cam": _round(o["position_cam"]), "position_table": _round(o["position_table"]),
            "orientation_table": _round(o["orientation_table"], 6),
            "dimensions": _round(o["dimensions"]), "radius": round(float(o["radius"]), 5),
            "center_px": _round(o["center_px"], 3), "distance": round(float(o["distance"]), 5),
            "ground_distance": round(float(o["ground_distance"]), 5),
            "held_out_pair": bool(o["held_out_pair"])})
    expressions, by_target = [], {}
    for j, e in enumerate(scene.expressions):
        ann_ids = [image_id * MAX_OBJECTS + t for t in e["targets"]]
        expressions.append({"expr_id": image_id * 1000 + j, "image_id": image_id,
                            "sent": e["sent"], "clean": e["clean"], "type": e["type"],
                            "structure": e["structure"], "target_ann_ids": ann_ids,
                            "wording": e["wording"]})
        if len(ann_ids) == 1 and e["type"] not in ("negation", "multi_target"):
            by_target.setdefault(ann_ids[0], []).append(
                {"sent": e["sent"], "type": e["type"], "structure": e["structure"]})
    refs = [{"ref_id": a, "ann_id": a, "image_id": image_id,
             "category_id": annotations[a - image_id * MAX_OBJECTS]["category_id"],
             "split": split, "sentences": s} for a, s in sorted(by_target.items())]
    return {"image": image, "annotations": annotations, "refs": refs, "expressions": expressions}


def write_scene(root: str, split: str, index: int, scene) -> dict:
    import cv2

    files = scene_files(split, index)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    ok2, png = cv2.imencode(".png", scene.depth_mm, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not (ok and ok2):
        raise RuntimeError("image encoding failed")
    _atomic_write(os.path.join(root, files["rgb"]), jpg.tobytes())
    _atomic_write(os.path.join(root, files["depth"]), png.tobytes())
    record = scene_record(scene, split, index)
    _atomic_write(os.path.join(root, files["record"]),
                  json.dumps(record, separators=(",", ":")).encode())
    return record


def _render_and_write(task: tuple) -> int:
    root, split, index, seed, long_side, colour_variety = task
    from dataclasses import replace

    from refseg_ros.data.v2.scene import render_scene_v2
    from refseg_ros.data.v2.splits import rules_for

    rules = replace(rules_for(split), colour_variety=colour_variety)
    scene = render_scene_v2(scene_seed_v2(seed, split, index), rules, long_side)
    write_scene(root, split, index, scene)
    return index


def generate_split_v2(root: str, split: str, scenes: int, seed: int, workers: int = 2,
                      long_side: int = 320, progress: bool = True, colour_variety: float = 0.0) -> dict:
    """Render the missing scenes ``0 .. scenes-1`` of a v2 split and (re)write its index.

    ``colour_variety`` in [0, 1]: how far painted objects stray from their colour's catalogue
    paint (``SplitRules.colour_variety``; 0 renders exactly what earlier versions did)."""
    if not 0.0 <= colour_variety <= 1.0:
        raise ValueError(f"colour_variety must be in [0, 1]; got {colour_variety}")
    textured = any(a.textured for a in A.available_assets())
    params = {"seed": int(seed), "long_side": int(long_side), "format_version": FORMAT_VERSION,
              "generator_version": GENERATOR_VERSION, "textured_assets": textured}
    if colour_variety > 0:  # recorded only when used, so earlier splits still resume
        params["colour_variety"] = float(colour_variety)
    os.makedirs(os.path.join(root, split), exist_ok=True)
    _check_params(root, split, params)
    todo = [i for i in range(scenes)
            if not os.path.exists(os.path.join(root, scene_files(split, i)["record"]))]
    tasks = [(root, split, i, int(seed), int(long_side), float(colour_variety)) for i in todo]
    seconds = render_tasks(tasks, _render_and_write, single_threaded, workers, f"{split} v2 scenes", progress,
                           chunksize=2)
    index = build_index(root, split, scenes, params)
    return {"split": split, "rendered": len(tasks), "skipped": scenes - len(tasks),
            "seconds": round(seconds, 2),
            "seconds_per_scene": round(seconds / len(tasks), 3) if tasks else None,
            "index": os.path.join(root, f"{split}.json"), **index["info"]["counts"]}


def build_index(root: str, split: str, scenes: int, params: dict) -> dict:
    images, annotations, refs, expressions = [], [], [], []
    for i in range(scenes):
        with open(os.path.join(root, scene_files(split, i)["record"])) as f:
            record = json.load(f)
        images.append(record["image"])
        annotations.extend(record["annotations"])
        refs.extend(record["refs"])
        expressions.extend(record["expressions"])
    sent_id = 0
    for ref in refs:
        for s in ref["sentences"]:
            s["sent_id"] = sent_id
            sent_id += 1
    by_type = Counter(e["type"] for e in expressions)
    ids = category_ids()
    index = {
        "info": {"description": "refseg_ros tabletop v2 referring expressions (pybullet)",
                 "split": split, "scenes": scenes, **params,
                 "depth": "16-bit PNG, millimetres along the optical axis, 0 = invalid",
                 "bbox": "COCO [x, y, width, height], pixel-edge coordinates",
                 "segmentation": "COCO RLE (compressed string counts, column-major)",
                 "counts": {"images": len(images), "annotations": len(annotations),
                            "refs": len(refs), "sentences": sent_id,
                            "expressions": len(expressions), "by_type": dict(sorted(by_type.items()))}},
        "categories": [{"id": ids[c.name], "name": c.name, "supercategory": "tabletop",
                        "synonyms": list(c.nouns), "held_out_synonyms": list(c.held_out_nouns)}
                       for c in A.CATEGORIES_V2],
        "licences": A.LICENCES,
        "images": images, "annotations": annotations, "refs": refs, "expressions": expressions,
    }
    _atomic_write(os.path.join(root, f"{split}.json"),
                  json.dumps(index, separators=(",", ":")).encode())
    return index
