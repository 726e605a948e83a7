"""Write tabletop scenes to disk in the format of ``docs/data-format.md``.

Scene ``i`` of split ``s`` under ``--seed S`` is rendered from :func:`scene_seed` ``(S, s, i)``,
so the files do not depend on the number of workers or on which scenes were already written.
Each scene is written as ``<split>/rgb/NNNNNN.jpg``, ``<split>/depth/NNNNNN.png`` and, last, its
record ``<split>/scenes/NNNNNN.json`` (the marker a resumed run skips on). When all scenes exist
the COCO-style index ``<split>.json`` is assembled from the records and replaced atomically.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter

import numpy as np

from refseg_ros.data import catalog
from refseg_ros.data.masks import encode_rle

FORMAT_VERSION = 1
#: bump when a change to the generator alters the scenes a seed produces
GENERATOR_VERSION = 1
JPEG_QUALITY = 95
PNG_COMPRESSION = 3
MAX_OBJECTS = 100  # annotation id = image id * MAX_OBJECTS + object index


def scene_seed(seed: int, split: str, index: int, generator: str = "refseg-tabletop") -> int:
    """The seed of scene ``index`` of ``split``: a hash, so splits, indices and generators never collide."""
    digest = hashlib.sha256(f"{generator}/{int(seed)}/{split}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def scene_files(split: str, index: int) -> dict[str, str]:
    name = f"{index:06d}"
    return {"rgb": f"{split}/rgb/{name}.jpg", "depth": f"{split}/depth/{name}.png",
            "record": f"{split}/scenes/{name}.json"}


def _atomic_write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _round(values, digits: int = 5) -> list[float]:
    return [round(float(v), digits) for v in values]


def scene_record(scene, split: str, index: int) -> dict:
    """The JSON record of one scene: its ``image`` entry, ``annotations`` and ``refs``."""
    files = scene_files(split, index)
    image_id = int(index)
    image = {
        "id": image_id, "file_name": files["rgb"], "depth_file": files["depth"],
        "width": scene.width, "height": scene.height, "scene_seed": int(scene.seed),
        "camera_info": scene.camera_info,
        "T_table_camera": [_round(row, 6) for row in np.asarray(scene.T_table_camera)],
        "light": scene.light,
    }
    annotations, refs = [], []
    for k, obj in enumerate(scene.objects):
        ann_id = image_id * MAX_OBJECTS + k
        x0, y0, x1, y1 = (float(v) for v in obj["bbox"])
        annotations.append({
            "id": ann_id, "image_id": image_id,
            "category_id": catalog.CATEGORY_IDS[obj["category"]], "category": obj["category"],
            "colour": obj["colour"], "size": obj["size"],
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(obj["area"]), "iscrowd": 0,
            "segmentation": encode_rle(scene.mask(k)),
            "position_cam": _round(obj["position_cam"]),
            "position_table": _round(obj["position_table"]),
            "orientation_table": _round(obj["orientation_table"], 6),
            "dimensions": _round(obj["dimensions"]),
            "radius": round(float(obj["radius"]), 5),
            "center_px": _round(obj["center_px"], 3),
            "distance": round(float(obj["distance"]), 5),
            "ground_distance": round(float(obj["ground_distance"]), 5),
            "held_out_pair": bool(obj["held_out_pair"]),
        })
        sentences = scene.expressions.get(k) or []
        if sentences:
            refs.append({"ref_id": ann_id, "ann_id": ann_id, "image_id": image_id,
                         "category_id": catalog.CATEGORY_IDS[obj["category"]], "split": split,
                         "sentences": [dict(s) for s in sentences]})
    return {"image": image, "annotations": annotations, "refs": refs}


def write_scene(root: str, split: str, index: int, scene) -> dict:
    """Write one rendered scene's files; the record goes last and atomically."""
    import cv2

    files = scene_files(split, index)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    _atomic_write(os.path.join(root, files["rgb"]), jpg.tobytes())
    ok, png = cv2.imencode(".png", scene.depth_mm, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    _atomic_write(os.path.join(root, files["depth"]), png.tobytes())
    record = scene_record(scene, split, index)
    _atomic_write(os.path.join(root, files["record"]),
                  json.dumps(record, separators=(",", ":")).encode())
    return record


# ------------------------------------------------------------------ workers
def _render_and_write(task: tuple) -> tuple[int, int]:
    root, split, index, seed, width, height = task
    from refseg_ros.data.tabletop import render_scene

    scene = render_scene(scene_seed(seed, split, index), width, height,
                         compositional=(split == catalog.COMPOSITIONAL_SPLIT))
    record = write_scene(root, split, index, scene)
    return index, sum(len(r["sentences"]) for r in record["refs"])


def single_threaded() -> None:
    """A rendering worker's start: numpy/cv2 on one thread, so two workers use two cores, not
    four threads fighting over them."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2
        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass


def _worker_init() -> None:
    single_threaded()
    from refseg_ros.data.tabletop import render_scene  # noqa: F401  (one pybullet import, up front)


def render_tasks(tasks: list, render, worker_init, workers: int, desc: str, progress: bool,
                 chunksize: int = 4) -> float:
    """Run ``render(task)`` for every task, in this process (``workers <= 1``, leaving its thread
    settings alone) or in ``workers`` spawned processes started by ``worker_init``; a tqdm bar;
    returns the seconds taken."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), desc=desc, unit="scene", smoothing=0.05)
    start = time.perf_counter()
    if tasks and workers <= 1:
        for task in tasks:
            render(task)
            if bar:
                bar.update(1)
    elif tasks:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=worker_init) as pool:
            for _ in pool.imap_unordered(render, tasks, chunksize=chunksize):
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return time.perf_counter() - start


def _check_params(root: str, split: str, params: dict) -> None:
    path = os.path.join(root, split, "params.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != params:
            raise ValueError(
                f"{path} was written with {old}, this run asks for {params}: resuming would mix "
                "scenes; use another --out (or delete that split)")
    else:
        _atomic_write(path, json.dumps(params, indent=1, sort_keys=True).encode())


def generate_split(root: str, split: str, scenes: int, seed: int, workers: int = 2,
                   width: int = 320, height: int = 240, progress: bool = True) -> dict:
    """Render the missing scenes ``0 .. scenes-1`` of ``split`` and (re)write its index.

    Returns statistics: scenes rendered now and skipped, seconds, scenes/s, and the index counts.
    """
    params = {"seed": int(seed), "width": int(width), "height": int(height),
              "format_version": FORMAT_VERSION, "generator_version": GENERATOR_VERSION}
    os.makedirs(os.path.join(root, split), exist_ok=True)
    _check_params(root, split, params)
    todo = [i for i in range(scenes)
            if not os.path.exists(os.path.join(root, scene_files(split, i)["record"]))]
    tasks = [(root, split, i, int(seed), int(width), int(height)) for i in todo]
    seconds = render_tasks(tasks, _render_and_write, _worker_init, workers, f"{split} scenes", progress)
    index = build_index(root, split, scenes, params)
    return {"split": split, "rendered": len(tasks), "skipped": scenes - len(tasks),
            "seconds": round(seconds, 2),
            "scenes_per_second": round(len(tasks) / seconds, 2) if tasks and seconds > 0 else None,
            "index": os.path.join(root, f"{split}.json"), **index["info"]["counts"]}


def build_index(root: str, split: str, scenes: int, params: dict) -> dict:
    """Assemble ``<split>.json`` from the scene records ``0 .. scenes-1`` (atomic replace)."""
    images, annotations, refs = [], [], []
    for i in range(scenes):
        with open(os.path.join(root, scene_files(split, i)["record"])) as f:
            record = json.load(f)
        images.append(record["image"])
        annotations.extend(record["annotations"])
        refs.extend(record["refs"])
    sent_id = 0
    per_type: Counter = Counter()
    for ref in refs:
        for s in ref["sentences"]:
            s["sent_id"] = sent_id
            sent_id += 1
            per_type[s["type"]] += 1
    index = {
        "info": {
            "description": "refseg_ros tabletop referring expressions (pybullet)",
            "split": split, "scenes": scenes, **params,
            "depth": "16-bit PNG, millimetres along the optical axis, 0 = invalid",
            "bbox": "COCO [x, y, width, height], pixel-edge coordinates",
            "segmentation": "COCO RLE (compressed string counts, column-major)",
            "camera_frame": "optical: x right, y down, z forward, metres",
            "counts": {"images": len(images), "annotations": len(annotations),
                       "refs": len(refs), "sentences": sent_id,
                       "sentences_per_type": dict(sorted(per_type.items()))},
        },
        "categories": catalog.coco_categories(),
        "colours": {k: list(v) for k, v in catalog.COLOURS.items()},
        "held_out_pairs": sorted([list(p) for p in catalog.HELD_OUT_PAIRS]),
        "images": images, "annotations": annotations, "refs": refs,
    }
    _atomic_write(os.path.join(root, f"{split}.json"),
                  json.dumps(index, separators=(",", ":")).encode())
    return index
