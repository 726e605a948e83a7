"""Render-ready copies of the textured models: fewer triangles and smaller textures.

pybullet copies a model's texture and converts its mesh for every body it creates, and the
scanned models carry tens of thousands of triangles and large textures that a 320-pixel image
cannot show. So each textured model is prepared once per machine: its texture scaled down to at
most :data:`TEXTURE_SIDE` pixels and, above :data:`MAX_FACES` triangles, its mesh simplified by
vertex clustering (positions merged on a grid; each corner keeps its own texture coordinate and
normal, so texture seams stay). The copies live in a cache folder (``REFSEG_CACHE`` or
``~/.cache/refseg_ros``), written atomically, so parallel workers can share it. A copy depends
only on the source files, so scenes stay deterministic.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

TEXTURE_SIDE = 512
MAX_FACES = 8000
CACHE_VERSION = 1


def cache_dir() -> str:
    base = os.environ.get("REFSEG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "refseg_ros")
    return os.path.join(base, f"tabletop_v2_models_{CACHE_VERSION}")


def _parse(path: str):
    v, vt, vn, faces = [], [], [], []
    mtl = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                v.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("vt "):
                vt.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("vn "):
                vn.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                corners = []
                for c in line.split()[1:]:
                    parts = (c.split("/") + ["", ""])[:3]
                    corners.append([int(p) if p else 0 for p in parts])
                for k in range(1, len(corners) - 1):  # fan triangulation
                    faces.append([corners[0], corners[k], corners[k + 1]])
            elif line.startswith("mtllib") and mtl is None:
                mtl = line.split(None, 1)[1].strip()
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3, 3)
    for j, n in ((0, len(v)), (1, len(vt)), (2, len(vn))):  # negative = relative indices
        neg = faces[:, :, j] < 0
        faces[:, :, j][neg] += n + 1
    return np.asarray(v, float), np.asarray(vt, float), np.asarray(vn, float), faces, mtl


def simplify(v: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: (new positions, faces with position indices remapped), at most about
    ``max_faces`` triangles (the grid is refined until it fits)."""
    extent = float((v.max(0) - v.min(0)).max())
    cells = 96
    while True:
        cell = extent / cells
        keys = np.floor((v - v.min(0)) / cell).astype(np.int64)
        _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        cluster = cluster.reshape(-1)
        sums = np.zeros((len(counts), 3))
        np.add.at(sums, cluster, v)
        centres = sums / counts[:, None]
        idx = cluster[faces[:, :, 0] - 1]
        keep = (idx[:, 0] != idx[:, 1]) & (idx[:, 1] != idx[:, 2]) & (idx[:, 0] != idx[:, 2])
        if keep.sum() <= max_faces or cells <= 12:
            out = faces[keep].copy()
            out[:, :, 0] = idx[keep] + 1
            return centres, out
        cells = int(cells * 0.8)


def _write_obj(path: str, v, vt, vn, faces, mtl_name: str) -> None:
    lines = [f"mtllib {mtl_name}", "usemtl material_0"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in vt]
    lines += [f"vn {a:.5f} {b:.5f} {c:.5f}" for a, b, c in vn]
    for tri in faces:
        lines.append("f " + " ".join("/".join(str(int(x)) if x else "" for x in c).rstrip("/")
                                      for c in tri))
    _atomic(path, ("\n".join(lines) + "\n").encode())


def _atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def prepared(obj_path: str, texture_path: str | None) -> str:
    """Path of the render-ready copy of a textured OBJ (made on first use)."""
    import cv2

    key = hashlib.sha256(f"{obj_path}|{os.path.getsize(obj_path)}|{TEXTURE_SIDE}|{MAX_FACES}"
                         .encode()).hexdigest()[:16]
    folder = os.path.join(cache_dir(), key)
    out = os.path.join(folder, "model.obj")
    if os.path.exists(out):
        return out
    os.makedirs(folder, exist_ok=True)
    v, vt, vn, faces, _ = _parse(obj_path)
    if len(faces) > MAX_FACES:
        v, faces = simplify(v, faces, MAX_FACES)
    mtl = ["newmtl material_0", "Kd 1.0 1.0 1.0"]
    if texture_path:
        tex = cv2.imread(texture_path, cv2.IMREAD_COLOR)
        if tex is not None:
            s = TEXTURE_SIDE / max(tex.shape[:2])
            if s < 1:
                tex = cv2.resize(tex, (max(1, int(tex.shape[1] * s)), max(1, int(tex.shape[0] * s))),
                                 interpolation=cv2.INTER_AREA)
            ok, png = cv2.imencode(".png", tex)
            _atomic(os.path.join(folder, "texture.png"), png.tobytes())
            mtl.append("map_Kd texture.png")
    _atomic(os.path.join(folder, "model.mtl"), ("\n".join(mtl) + "\n").encode())
    _write_obj(out, v, vt, vn, faces, "model.mtl")
    return out


def prepared_texture(path: str) -> str:
    """A copy of a photo texture scaled to at most :data:`TEXTURE_SIDE` pixels (made once)."""
    import cv2

    key = hashlib.sha256(f"{path}|{os.path.getsize(path)}|{TEXTURE_SIDE}".encode()).hexdigest()[:16]
    out = os.path.join(cache_dir(), "textures", f"{key}.png")
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tex = cv2.imread(path, cv2.IMREAD_COLOR)
    if tex is None:
        return path
    s = TEXTURE_SIDE / max(tex.shape[:2])
    if s < 1:
        tex = cv2.resize(tex, (max(1, int(tex.shape[1] * s)), max(1, int(tex.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", tex)
    _atomic(out, png.tobytes())
    return out
