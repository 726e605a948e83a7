"""`refseg data stats`: what a generated split holds, and a contact sheet of its scenes."""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np


def load_index(root: str, split: str) -> dict:
    with open(os.path.join(root, f"{split}.json")) as f:
        return json.load(f)


def split_stats(index: dict) -> dict:
    """The fields of ``refseg data stats --json`` for one loaded index (v1 or v2)."""
    from refseg_ros.data.v2.assets import LICENCES

    images, anns = index["images"], index["annotations"]
    v2 = index["info"].get("format_version") == 2
    if v2:
        exprs = index["expressions"]
        by_type = Counter(e["type"] for e in exprs)
        multi = sum(1 for e in exprs if len(e["target_ann_ids"]) > 1)
        wording = Counter(n for e in exprs for n in e["wording"]["noise"])
        wrapped = sum(1 for e in exprs if e["wording"]["wrapper"] != "{e}")
    else:
        exprs = [s for r in index["refs"] for s in r["sentences"]]
        by_type, multi, wording, wrapped = Counter(s["type"] for s in exprs), 0, Counter(), 0
    for key in ("no_target", "multi_target", "negation"):
        by_type.setdefault(key, 0)
    hfov = [float(i["camera"]["hfov_deg"]) for i in images if "camera" in i]
    if not hfov:  # v1 records K only
        hfov = [float(np.degrees(2 * np.arctan(i["width"] / 2 / i["camera_info"]["K"][0])))
                for i in images]
    dist = [float(i["camera"]["distance_m"]) for i in images if "camera" in i]
    pitch = [float(i["camera"]["pitch_deg"]) for i in images if "camera" in i]
    if not dist and images:  # v1: from the pose (distance to where the optical axis meets the table)
        from refseg_ros.data.sim_scene import look_at_point

        for i in images:
            T = np.asarray(i["T_table_camera"], float)
            dist.append(float(np.linalg.norm(T[:3, 3] - look_at_point(T))))
            pitch.append(float(np.degrees(np.arcsin(-T[2, 2]))))
    roll = [abs(float(i["camera"]["roll_deg"])) for i in images if "camera" in i]
    aspects = sorted({i["camera"]["aspect"] if "camera" in i else f"{i['width']}x{i['height']}"
                      for i in images})
    sources = Counter(a.get("source", "pybullet_data") for a in anns)
    textured = sum(1 for a in anns if a.get("textured"))

    def span(v):
        return [round(min(v), 3), round(max(v), 3)] if v else None

    return {
        "format_version": index["info"].get("format_version", 1),
        "scenes": len(images), "expressions": len(exprs),
        "objects": len(anns), "categories": len({a["category"] for a in anns}),
        "by_type": dict(sorted(by_type.items())),
        "expressions_with_several_targets": multi,
        "hfov_deg": span(hfov), "distance_m": span(dist), "pitch_deg": span(pitch),
        "roll_deg": span(roll), "aspects": aspects,
        "textured_objects": round(textured / len(anns), 4) if anns else 0.0,
        "assets": {s: {"count": n, "licence": LICENCES.get(s, "unknown")}
                   for s, n in sorted(sources.items())},
        "wording": {"wrapped": wrapped, "noise": dict(sorted(wording.items()))},
    }


def contact_sheet(root: str, index: dict, out: str, n: int = 16, seed: int = 0,
                  tile: int = 240) -> str:
    """A 4x4 PNG of ``n`` random scenes, each with its targets outlined and one expression."""
    import cv2

    from refseg_ros.data.masks import segmentation_to_mask

    rng = np.random.default_rng(seed)
    images = index["images"]
    pick = rng.choice(len(images), min(n, len(images)), replace=False) if images else []
    anns: dict[int, list] = {}
    for a in index["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    exprs: dict[int, list] = {}
    for e in index.get("expressions", []):
        exprs.setdefault(e["image_id"], []).append(e)
    by_id = {a["id"]: a for a in index["annotations"]}
    cols = 4
    rows = max(1, int(np.ceil(len(pick) / cols)))
    sheet = np.full((rows * (tile + 20), cols * tile, 3), 30, np.uint8)
    for k, i in enumerate(pick):
        img = images[int(i)]
        bgr = cv2.imread(os.path.join(root, img["file_name"]))
        if bgr is None:
            continue
        text = ""
        elist = exprs.get(img["id"], [])
        if elist:
            e = elist[int(rng.integers(len(elist)))]
            text = f"[{len(e['target_ann_ids'])}] {e['sent']}"
            for a in e["target_ann_ids"]:
                m = segmentation_to_mask(by_id[a]["segmentation"], img["height"], img["width"])
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(bgr, contours, -1, (0, 255, 0), 1)
        s = tile / max(img["width"], img["height"])
        small = cv2.resize(bgr, (int(img["width"] * s), int(img["height"] * s)),
                           interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        y, x = r * (tile + 20), c * tile
        sheet[y:y + small.shape[0], x:x + small.shape[1]] = small
        cv2.putText(sheet, text[:44], (x + 2, y + tile + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                    (255, 255, 255), 1, cv2.LINE_AA)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    cv2.imwrite(out, sheet)
    return out
