"""Models from Debian's ``sweethome3d-furniture`` (Sweet Home 3D furniture libraries).

Each library is a zip (``.sh3f``) with OBJ/MTL models and a ``PluginFurnitureCatalog.properties``
that gives every model its size in centimetres (``width``, ``depth``, ``height``; y is up in the
model). A model is extracted once into the v2 cache folder (:mod:`.meshcache`), stood upright
and scaled to its catalogued height.
"""
from __future__ import annotations

import functools
import os
import re
import zipfile

FURNITURE_DIR = "/usr/share/sweethome3d/furniture"
LICENCES = {
    "BlendSwap-CC-0.sh3f": "CC0 (BlendSwap contributors, collected by eTeks)",
    "BlendSwap-CC-BY.sh3f": "CC-BY-3.0 (BlendSwap contributors; authors in each model's folder)",
    "KatorLegaz.sh3f": "CC-BY-3.0-US (Andrew Kator & Jennifer Legaz)",
}


def installed() -> bool:
    return os.path.isdir(FURNITURE_DIR)


@functools.lru_cache(maxsize=None)
def catalog(archive: str) -> dict[str, dict]:
    """model path inside the archive (no leading slash) -> its catalogue entry."""
    with zipfile.ZipFile(os.path.join(FURNITURE_DIR, archive)) as z:
        text = z.read("PluginFurnitureCatalog.properties").decode("utf-8", "replace")
    entries: dict[int, dict] = {}
    for line in text.splitlines():
        m = re.match(r"(\w+)#(\d+)=(.*)", line)
        if m:
            entries.setdefault(int(m.group(2)), {})[m.group(1)] = m.group(3).strip()
    return {e["model"].lstrip("/"): e for e in entries.values() if "model" in e}


@functools.lru_cache(maxsize=None)
def extract(archive: str, model: str) -> tuple[str, float] | None:
    """(extracted OBJ path, scale to metres at its catalogued height) or None."""
    from refseg_ros.data.v2.meshcache import _atomic, cache_dir

    path = os.path.join(FURNITURE_DIR, archive)
    if not os.path.exists(path):
        return None
    entry = catalog(archive).get(model)
    if entry is None:
        return None
    folder = os.path.join(cache_dir(), "sh3d", os.path.splitext(archive)[0])
    prefix = os.path.dirname(model) + "/"
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                out = os.path.join(folder, name)
                if not os.path.exists(out):
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    _atomic(out, z.read(name))
    obj = os.path.join(folder, model)
    ys = []
    with open(obj, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                ys.append(float(line.split()[2]))
    if not ys or max(ys) <= min(ys):
        return None
    return obj, float(entry["height"]) / 100.0 / (max(ys) - min(ys))


def licence(archive: str) -> str:
    return LICENCES.get(archive, "see /usr/share/doc/sweethome3d-furniture/copyright")
