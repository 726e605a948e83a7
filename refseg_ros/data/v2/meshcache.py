"""Render-ready copies of the asset wheels' models: one mesh, one small texture, fewer triangles.

pybullet gives a mesh shape one texture and copies that texture and converts the mesh for every
body it creates; the scanned models carry tens of thousands of triangles and large textures that
a 320-pixel image cannot show, and some models come in parts or with several materials. So each
model is prepared once per machine (:func:`merged`):

* its parts are scaled (the MJCF's mesh scale) and joined into one mesh;
* every (part, material) gets a tile of one texture atlas: its own texture scaled down, or a
  swatch of its diffuse colour; texture coordinates are moved into their tile;
* above :data:`MAX_FACES` triangles the mesh is simplified by vertex clustering (positions merged
  on a grid; each corner keeps its texture coordinate and normal, so seams stay).

Copies live in a cache folder (``REFSEG_CACHE`` or ``~/.cache/refseg_ros``), written atomically,
so parallel workers share them. A copy depends only on the source files: scenes stay deterministic.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

TILE = 256  # atlas tile side (pixels)
TEXTURE_SIDE = 512  # photo textures (table, floor, wall) are scaled to at most this
MAX_FACES = 8000
CACHE_VERSION = 2


def cache_dir() -> str:
    base = os.environ.get("REFSEG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "refseg_ros")
    return os.path.join(base, f"tabletop_v2_models_{CACHE_VERSION}")


def _materials(mtl_path: str) -> dict[str, dict]:
    """name -> {"map": texture path or None, "kd": (r, g, b)} of an .mtl file."""
    out: dict[str, dict] = {}
    if not mtl_path or not os.path.exists(mtl_path):
        return out
    folder, cur = os.path.dirname(mtl_path), None
    with open(mtl_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.strip().split(None, 1)
            if not words:
                continue
            if words[0] == "newmtl":
                cur = out.setdefault(words[1].strip() if len(words) > 1 else "", {"map": None,
                                                                                  "kd": (1, 1, 1)})
            elif cur is not None and words[0] == "Kd" and len(words) > 1:
                cur["kd"] = tuple(float(x) for x in words[1].split()[:3])
            elif cur is not None and words[0] == "map_Kd" and len(words) > 1:
                tex = os.path.join(folder, words[1].strip())
                cur["map"] = tex if os.path.exists(tex) else None
    return out


def _parse(path: str):
    """(v, vt, vn, faces (F, 3, 3) 1-based v/vt/vn indices (0 = none), face materials, mtl)."""
    v, vt, vn, faces, mats = [], [], [], [], []
    mtl, mat = None, ""
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
                    mats.append(mat)
            elif line.startswith("usemtl"):
                mat = line.split(None, 1)[1].strip() if len(line.split()) > 1 else ""
            elif line.startswith("mtllib") and mtl is None:
                mtl = os.path.join(os.path.dirname(path), line.split(None, 1)[1].strip())
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3, 3)
    for j, n in ((0, len(v)), (1, len(vt)), (2, len(vn))):  # negative = relative indices
        neg = faces[:, :, j] < 0
        faces[:, :, j][neg] += n + 1
    return (np.asarray(v, float).reshape(-1, 3), np.asarray(vt, float).reshape(-1, 2),
            np.asarray(vn, float).reshape(-1, 3), faces, mats, mtl)


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


def _atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _tile(material: dict) -> np.ndarray:
    import cv2

    if material.get("map"):
        tex = cv2.imread(material["map"], cv2.IMREAD_COLOR)
        if tex is not None:
            return cv2.resize(tex, (TILE, TILE), interpolation=cv2.INTER_AREA)
    bgr = np.clip(np.asarray(material.get("kd", (1, 1, 1)))[::-1] * 255, 0, 255).astype(np.uint8)
    return np.broadcast_to(bgr, (TILE, TILE, 3)).copy()


def merged(parts: list[tuple[str, float]]) -> str:
    """Path of the render-ready OBJ of a model made of ``(obj path, scale)`` parts."""
    import cv2

    ident = "|".join(f"{p}:{os.path.getsize(p)}:{s}" for p, s in parts)
    key = hashlib.sha256(f"{ident}|{TILE}|{MAX_FACES}".encode()).hexdigest()[:16]
    folder = os.path.join(cache_dir(), key)
    out = os.path.join(folder, "model.obj")
    if os.path.exists(out):
        return out
    os.makedirs(folder, exist_ok=True)
    tiles, tile_of = [], {}
    vs, uvs, vns, fs = [], [], [], []
    nv = nn = nuv = 0
    for path, scale in parts:
        v, vt, vn, faces, mats, mtl = _parse(path)
        materials = _materials(mtl)
        if not materials:
            materials = {"": {"map": None, "kd": (1, 1, 1)}}
        fallback = next(iter(materials))
        tile_ids = []
        for m in mats:
            name = m if m in materials else fallback
            if (path, name) not in tile_of:
                tile_of[(path, name)] = len(tiles)
                tiles.append(_tile(materials[name]))
            tile_ids.append(tile_of[(path, name)])
        tile_ids = np.asarray(tile_ids, np.int64)
        # one texture coordinate per corner, inside its tile (v up, tile 0 at the top)
        if len(vt):
            uv = np.where(faces[:, :, 1:2] > 0, vt[np.maximum(faces[:, :, 1] - 1, 0)], 0.5)
        else:
            uv = np.full(faces.shape[:2] + (2,), 0.5)
        frac = uv % 1.0
        frac = np.where((uv > 0) & (frac == 0), 1.0, frac)
        uvs.append(np.stack([frac[..., 0], frac[..., 1], np.repeat(tile_ids[:, None], 3, 1)], -1))
        f2 = faces.copy()
        f2[:, :, 0] += nv
        f2[:, :, 2] = np.where(faces[:, :, 2] > 0, faces[:, :, 2] + nn, 0)
        f2[:, :, 1] = nuv + 1 + np.arange(len(faces) * 3).reshape(-1, 3)
        fs.append(f2)
        vs.append(v * scale)
        vns.append(vn)
        nv, nn, nuv = nv + len(v), nn + len(vn), nuv + len(faces) * 3
    v, faces = np.concatenate(vs), np.concatenate(fs)
    uv = np.concatenate(uvs).reshape(-1, 3)
    n = len(tiles)
    atlas_uv = np.stack([0.01 + 0.98 * uv[:, 0], (n - 1 - uv[:, 2] + 0.01 + 0.98 * uv[:, 1]) / n], 1)
    if len(faces) > MAX_FACES:
        v, faces = simplify(v, faces, MAX_FACES)
        used, inverse = np.unique(faces[:, :, 1], return_inverse=True)  # drop unused corners
        atlas_uv = atlas_uv[used - 1]
        faces[:, :, 1] = inverse.reshape(faces.shape[:2]) + 1
    ok, png = cv2.imencode(".png", np.concatenate(tiles, 0))
    _atomic(os.path.join(folder, "texture.png"), png.tobytes())
    _atomic(os.path.join(folder, "model.mtl"), b"newmtl material_0\nKd 1 1 1\nmap_Kd texture.png\n")
    lines = ["mtllib model.mtl", "usemtl material_0"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.5f} {b:.5f}" for a, b in atlas_uv]
    lines += [f"vn {a:.5f} {b:.5f} {c:.5f}" for a, b, c in np.concatenate(vns).reshape(-1, 3)]
    for tri in faces:
        lines.append("f " + " ".join(f"{c[0]}/{c[1]}/{c[2]}" if c[2] else f"{c[0]}/{c[1]}"
                                      for c in tri))
    _atomic(out, ("\n".join(lines) + "\n").encode())
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
