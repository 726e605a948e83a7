"""Tabletop v2 scenes: real textured objects and recoloured primitives on a photo-textured table,
seen through a physical lens, with exact instance masks, depth and intrinsics.

The renderer reuses v1's pybullet client, soft-shadow pass and object conventions
(:class:`refseg_ros.data.tabletop.TabletopRenderer`); what changes is what is in the scene
(:mod:`.assets`), the camera (:mod:`.cameras`), the surroundings (photo textures on table, floor
and wall; light direction, intensity and colour), the photometric finish (exposure, noise, motion
blur) and the expressions (:mod:`.targets`). Objects are placed at rest (upright, on the table top,
footprints apart), so no physics step is needed.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np

from refseg_ros.data import geometry
from refseg_ros.data.catalog import COLOURS, HELD_OUT_PAIRS, vary_paint
from refseg_ros.data.masks import mask_to_box
from refseg_ros.data.tabletop import (NEAR, TABLE_HALF, TABLE_SCALE, TABLE_TOP, RenderedViews, SceneRejected,
                                      TabletopRenderer, _plain, _read_obj_vertices,
                                      _rotation_rpy)
from refseg_ros.data.v2 import assets as A
from refseg_ros.data.v2 import cameras, meshcache

FAR = 12.0
MIN_GAP = 0.012  # metres between footprints
MIN_AREA_PX = 16  # an object smaller than this in the image is rejected
MIN_VISIBLE = 0.3  # share of its projected box an object must show
TEXTURED_SHARE = 0.8  # probability an instance is drawn from the textured assets


@dataclass
class SplitRules:
    """What a split may contain (see :mod:`.splits`)."""

    name: str = "train"
    categories: tuple[str, ...] = ()  # allowed categories; () = every available one
    must_include: tuple[str, ...] = ()  # a scene has at least one object of one of these
    compositional: bool = False  # include a held-out colour-category pair (v1's list)
    held_out_cameras: bool = False
    held_out_wording: bool = False
    target_categories: tuple[str, ...] = ()  # only expressions naming these (categories split)
    # how far painted objects stray from their colour's catalogue paint (0: never, as before;
    # 1: catalog.vary_paint's full range)
    colour_variety: float = 0.0


def _paint(colour: str, rng: np.random.Generator, variety: float) -> tuple[float, float, float]:
    """The RGB an object of ``colour`` is painted with: the catalogue's, a little lighter or
    darker, and with ``variety`` > 0 another paint the word still names (``vary_paint``)."""
    return vary_paint(np.clip(np.asarray(COLOURS[colour]) * rng.uniform(0.94, 1.04), 0, 1), colour, rng, variety)


@dataclass
class SceneV2(RenderedViews):
    """A rendered v2 scene in memory (fields as :class:`refseg_ros.data.tabletop.TabletopScene`,
    plus ``camera`` meta, ``photo`` finish parameters and ``expressions`` as a flat list with
    ``targets``)."""

    seed: int
    image: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    camera_info: dict
    T_table_camera: np.ndarray
    camera: dict
    objects: list[dict]
    expressions: list[dict] = field(default_factory=list)
    light: dict = field(default_factory=dict)
    surfaces: dict = field(default_factory=dict)


class TabletopV2Renderer(TabletopRenderer):
    """One pybullet client rendering v2 scenes one after another (not thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self._photo = A.photo_textures()
        self._tex_ids: dict[str, int] = {}

    # -------------------------------------------------------------- geometry of a model
    @functools.lru_cache(maxsize=None)
    def _shape(self, key: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(centre, dims, footprint radius) of an asset at scale 1 (textured: real metres;
        primitive: largest extent 1)."""
        a = A.ASSET_BY_KEY[key]
        if a.primitive == "cylinder":
            return np.zeros(3), np.array([0.7, 0.7, 1.0]), 0.35
        if a.primitive == "capsule":  # lying on its side: length along x
            return np.zeros(3), np.array([1.0, 0.4, 0.4]), 0.5
        v = _read_obj_vertices(self._mesh_file(a)) * np.asarray(a.stretch) * a.scale
        vr = v @ _rotation_rpy(a.rpy).T
        lo, hi = vr.min(0), vr.max(0)
        centre = (lo + hi) / 2
        radius = float(np.hypot(*(vr[:, :2] - centre[:2]).T).max())
        dims = hi - lo
        if a.extent is None:  # real size (a textured model, or one without its texture)
            return centre, dims, radius
        ext = float(dims.max())
        return centre / ext, dims / ext, radius / ext

    @staticmethod
    def _mesh_file(a: A.Asset) -> str:
        """The file pybullet loads: the render-ready copy for the asset wheels' models."""
        return A.render_file(a.key)

    def _texture(self, path: str) -> int:
        if path not in self._tex_ids:
            self._tex_ids[path] = self.p.loadTexture(meshcache.prepared_texture(path)
                                                     if path in self._photo else path)
        return self._tex_ids[path]

    def _create(self, o: dict, a: A.Asset, position) -> int:
        p = self.p
        q_yaw = p.getQuaternionFromEuler([0.0, 0.0, o["yaw"]])
        rgba = list(o["rgb"]) + [1.0]
        s = o["scale"]
        if a.primitive == "cylinder":
            vis = p.createVisualShape(p.GEOM_CYLINDER, radius=0.35 * s, length=s, rgbaColor=rgba)
        elif a.primitive == "capsule":
            vis = p.createVisualShape(p.GEOM_CAPSULE, radius=0.2 * s, length=0.6 * s,
                                      rgbaColor=rgba,
                                      visualFrameOrientation=p.getQuaternionFromEuler(
                                          [0.0, np.pi / 2, 0.0]))
        else:
            centre, _, _ = self._shape(a.key)
            scale = (np.asarray(a.stretch) * a.scale * s).tolist()
            vis = p.createVisualShape(p.GEOM_MESH, fileName=self._mesh_file(a), meshScale=scale,
                                      visualFramePosition=(-centre * s).tolist(),
                                      visualFrameOrientation=p.getQuaternionFromEuler(a.rpy),
                                      rgbaColor=rgba)
        body = p.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=-1,
                                 baseVisualShapeIndex=vis, basePosition=list(position),
                                 baseOrientation=q_yaw)
        if not a.textured:
            tex = self._textures["plush" if a.category == "teddy bear" else "matte"]
            p.changeVisualShape(body, -1, textureUniqueId=self._texture(tex), rgbaColor=rgba,
                                specularColor=[o["specular"]] * 3)
        else:
            p.changeVisualShape(body, -1, specularColor=[o["specular"]] * 3)
        return body

    # -------------------------------------------------------------- contents
    def _contents(self, rng, rules: SplitRules) -> list[dict]:
        avail = A.available_assets()
        cats = sorted({a.category for a in avail}
                      & (set(rules.categories) if rules.categories else {a.category for a in avail}))
        n = int(rng.integers(3, 10))
        k_cat = int(min(n, rng.choice([1, 2, 3, 4, 5], p=[0.04, 0.26, 0.32, 0.24, 0.14])))
        # categories with textured models drawn more often, so most instances are textured
        has_tex = {a.category for a in avail if a.textured}
        w = np.array([3.0 if c in has_tex else 1.0 for c in cats])
        chosen = [cats[i] for i in rng.choice(len(cats), min(k_cat, len(cats)), replace=False,
                                               p=w / w.sum())]
        must = [c for c in rules.must_include if c in cats]
        if must and not set(must) & set(chosen):
            chosen[int(rng.integers(len(chosen)))] = must[int(rng.integers(len(must)))]
        palette = list(COLOURS)
        palette = [palette[i] for i in rng.choice(len(palette), int(rng.integers(2, 6)),
                                                  replace=False)]
        objs: list[dict] = []
        if rules.compositional:
            prim_cats = {a.category for a in avail if not a.textured}
            pairs = sorted(pr for pr in HELD_OUT_PAIRS if pr[1] in prim_cats)
            colour, cat = pairs[int(rng.integers(len(pairs)))]
            other = [c for c in COLOURS if c != colour]
            objs += [{"category": cat, "colour": colour, "painted": True},
                     {"category": cat, "colour": other[int(rng.integers(len(other)))],
                      "painted": True}]
        for i in range(len(objs), n):
            objs.append({"category": chosen[i] if i < len(chosen) else
                         chosen[int(rng.integers(len(chosen)))]})
        for o in objs:
            options = [a for a in avail if a.category == o["category"]]
            textured = [a for a in options if a.textured and (
                rules.compositional or (A.texture_colour(a.key)[0], a.category) not in HELD_OUT_PAIRS)]
            painted = [a for a in options if not a.textured]
            use_tex = textured and not o.get("painted") and (not painted
                                                              or rng.random() < TEXTURED_SHARE)
            pool = textured if use_tex else painted
            a = pool[int(rng.integers(len(pool)))]
            o["asset"] = a.key
            if a.textured:
                o["colour"], o["colour_share"] = A.texture_colour(a.key)
                o["rgb"], o["size"] = (1.0, 1.0, 1.0), None
                o["scale"] = float(rng.uniform(0.9, 1.1))
            elif a.extent is None:  # a real-size model without its texture: painted
                allowed = [c for c in palette if (c, o["category"]) not in HELD_OUT_PAIRS]
                o["colour"] = (allowed or ["white"])[int(rng.integers(len(allowed or [0])))]
                o["rgb"] = _paint(o["colour"], rng, rules.colour_variety)
                o["size"], o["scale"] = None, float(rng.uniform(0.9, 1.1))
            else:
                if "colour" not in o:
                    allowed = [c for c in palette
                               if rules.compositional or (c, o["category"]) not in HELD_OUT_PAIRS]
                    allowed = allowed or [c for c in COLOURS if (c, o["category"]) not in
                                          HELD_OUT_PAIRS]
                    o["colour"] = allowed[int(rng.integers(len(allowed)))]
                o["rgb"] = _paint(o["colour"], rng, rules.colour_variety)
                o["size"] = "large" if rng.random() < 0.5 else "small"
                o["scale"] = a.extent * (1.0 if o["size"] == "large" else 0.72) \
                    * float(rng.uniform(0.95, 1.05))
            centre, dims, radius = self._shape(a.key)
            o["dims"], o["radius"] = dims * o["scale"], radius * o["scale"]
            o["yaw"] = float(rng.uniform(-np.pi, np.pi))
            o["specular"] = float(rng.uniform(0.02, 0.1) if o["category"] == "teddy bear"
                                  else rng.uniform(0.15, 0.6))
            o["textured"] = bool(a.textured and a.photo)
            o["appearance"] = ("texture" if a.photo else "materials") if a.textured else "painted"
        return [objs[i] for i in rng.permutation(len(objs))]

    @staticmethod
    def _place(rng, objs: list[dict], cam: cameras.Camera) -> list[dict]:
        """Objects that found a free place on the table fully inside the image (largest first)."""
        K, w, h = cam.K, cam.width, cam.height
        T, T_inv = cam.T_table_camera, np.linalg.inv(cam.T_table_camera)
        ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 8, endpoint=False)),
                         np.sin(np.linspace(0, 2 * np.pi, 8, endpoint=False))], 1)
        placed: list[dict] = []
        tries = 48
        for o in sorted(objs, key=lambda o: -o["radius"]):
            uv = np.stack([rng.uniform(0.04 * w, 0.96 * w, tries),
                           rng.uniform(0.04 * h, 0.96 * h, tries)], 1)
            rays = np.concatenate([(uv - K[:2, 2]) / np.diag(K)[:2], np.ones((tries, 1))], 1)
            d = rays @ T[:3, :3].T
            t = -T[2, 3] / np.where(d[:, 2] < -1e-6, d[:, 2], -1e-6)
            xy = T[:2, 3] + t[:, None] * d[:, :2]
            r, hgt = o["radius"], o["dims"][2]
            ok = (d[:, 2] < -1e-6) & (np.abs(xy[:, 0]) < TABLE_HALF[0] - r - 0.02) \
                & (np.abs(xy[:, 1]) < TABLE_HALF[1] - r - 0.02)
            for q in placed:
                ok &= np.hypot(*(xy - q["xy"]).T) >= r + q["radius"] + MIN_GAP
            pts = xy[:, None, :] + r * ring[None]
            pts = np.concatenate([np.concatenate([pts, np.full(pts.shape[:2] + (1,), z)], 2)
                                  for z in (0.0, hgt)], 1).reshape(-1, 3)
            pc = geometry.transform(T_inv, pts)
            front = (pc[:, 2] > NEAR * 2).reshape(tries, -1).all(1)
            pc[:, 2] = np.maximum(pc[:, 2], NEAR)
            puv = geometry.project(K, pc).reshape(tries, -1, 2)
            inside = (puv[..., 0] >= 1).all(1) & (puv[..., 0] <= w - 2).all(1) \
                & (puv[..., 1] >= 1).all(1) & (puv[..., 1] <= h - 2).all(1)
            ok &= front & inside
            if ok.any():
                o["xy"] = xy[int(np.argmax(ok))]
                placed.append(o)
        return placed

    @staticmethod
    def _light(rng) -> dict:
        elevation, azimuth = np.radians(rng.uniform(20, 85)), rng.uniform(-np.pi, np.pi)
        warmth = float(rng.uniform(-0.12, 0.12))
        return {"direction": [float(np.cos(elevation) * np.cos(azimuth)),
                              float(np.cos(elevation) * np.sin(azimuth)), float(np.sin(elevation))],
                "color": [1.0, float(1.0 - abs(warmth) / 2), float(1.0 - warmth)],
                "distance": 4.0, "ambient": float(rng.uniform(0.3, 0.7)),
                "diffuse": float(rng.uniform(0.25, 0.7)), "specular": float(rng.uniform(0.05, 0.4))}

    # -------------------------------------------------------------- one scene
    def render_v2(self, seed: int, rules: SplitRules | None = None, long_side: int = 320,
                  with_expressions: bool = True, max_attempts: int = 40) -> SceneV2:
        rules = rules or SplitRules()
        rng = np.random.default_rng(int(seed))
        last = None
        for _ in range(max_attempts):
            try:
                return self._render_once_v2(rng, int(seed), rules, long_side, with_expressions)
            except SceneRejected as exc:
                last = exc
        raise RuntimeError(f"scene {seed}: no valid scene in {max_attempts} attempts ({last})")

    def _render_once_v2(self, rng, seed, rules, long_side, with_expressions) -> SceneV2:
        from refseg_ros.data.v2 import photo, targets

        p = self.p
        cam = cameras.sample_camera(rng, long_side, held_out=rules.held_out_cameras)
        objs = self._contents(rng, rules)
        objs = self._place(rng, objs, cam)
        if len(objs) < 2:
            raise SceneRejected("fewer than two objects fit in the view")
        if rules.must_include and not any(o["category"] in rules.must_include for o in objs):
            raise SceneRejected("no object of a required category fits")
        if rules.compositional and not any((o["colour"], o["category"]) in HELD_OUT_PAIRS
                                           for o in objs):
            raise SceneRejected("the held-out pair did not fit")
        p.resetSimulation()
        self._tex_ids = {}
        surfaces = {}
        floor = p.loadURDF(os.path.join(self.data_path, "plane.urdf"))
        table = p.loadURDF(os.path.join(self.data_path, "table/table.urdf"), useFixedBase=True,
                           globalScaling=TABLE_SCALE)
        wall_vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[5.0, 0.05, 2.5])
        wall = p.createMultiBody(0.0, -1, wall_vis, [0.0, TABLE_HALF[1] + 1.2 + rng.uniform(0, 1.5),
                                                     2.0])
        for name, body in (("table", table), ("floor", floor), ("wall", wall)):
            if self._photo and rng.random() < 0.9:
                path = self._photo[int(rng.integers(len(self._photo)))]
                tint = np.clip(rng.uniform(0.8, 1.05, 3).mean() * np.ones(3), 0, 1)
                p.changeVisualShape(body, -1, textureUniqueId=self._texture(path),
                                    rgbaColor=tint.tolist() + [1.0],
                                    specularColor=[float(rng.uniform(0.02, 0.25))] * 3)
                surfaces[name] = os.path.basename(path)
            else:
                tex = self._textures["floor"]
                rgb = rng.uniform(0.3, 0.95, 3)
                p.changeVisualShape(body, -1, textureUniqueId=self._texture(tex),
                                    rgbaColor=rgb.tolist() + [1.0], specularColor=[0.05] * 3)
                surfaces[name] = "procedural"
        bodies = []
        for o in objs:
            a = A.ASSET_BY_KEY[o["asset"]]
            z = TABLE_TOP + o["dims"][2] / 2 + 0.001
            bodies.append(self._create(o, a, [o["xy"][0], o["xy"][1], z]))

        T, K = cam.T_table_camera, cam.K
        T_cam_table = np.linalg.inv(T)
        records = []
        for o, body in zip(objs, bodies):
            pos, orn = p.getBasePositionAndOrientation(body)
            pos_table = np.array(pos) - np.array([0.0, 0.0, TABLE_TOP])
            pos_cam = geometry.transform(T_cam_table, pos_table[None])[0]
            records.append({
                "category": o["category"], "colour": o["colour"], "size": o["size"],
                "asset": o["asset"], "source": A.ASSET_BY_KEY[o["asset"]].source,
                "textured": o["textured"], "appearance": o["appearance"],
                "colour_share": o.get("colour_share"),
                "position_table": pos_table, "orientation_table": list(orn),
                "R": np.array(p.getMatrixFromQuaternion(orn)).reshape(3, 3),
                "position_cam": pos_cam, "center_px": geometry.project(K, pos_cam[None])[0],
                "dimensions": o["dims"], "radius": o["radius"],
                "distance": float(np.linalg.norm(pos_cam)),
                "ground_distance": float(np.hypot(*(pos_table[:2] - T[:2, 3]))),
                "held_out_pair": (o["colour"], o["category"]) in HELD_OUT_PAIRS,
            })
        light = self._light(rng)
        T_world = T.copy()
        T_world[2, 3] += TABLE_TOP
        view, proj = geometry.pybullet_view_projection(T_world, cam.width, cam.height,
                                                       cam.vfov_deg, NEAR, FAR)
        rgb, zbuf, seg = self._render_soft_shadows(view, proj, cam.width, cam.height, light)
        depth = geometry.depth_buffer_to_metres(zbuf, NEAR, FAR)
        instances = np.zeros((cam.height, cam.width), np.uint8)
        for k, (body, rec) in enumerate(zip(bodies, records)):
            m = seg == body
            instances[m] = k + 1
            area = int(m.sum())
            if area < MIN_AREA_PX:
                raise SceneRejected("an object is (nearly) hidden or too small")
            if area < MIN_VISIBLE * self._projected_box_area(rec, T_cam_table, K):
                raise SceneRejected("an object is mostly occluded")
            rec["bbox"], rec["area"] = mask_to_box(m), area
        image, finish = photo.finish(rgb, np.random.default_rng(int(rng.integers(2**63))))
        expressions = []
        if with_expressions:
            expressions = targets.generate(records, cam.width, rng, rules)
            if not expressions:
                raise SceneRejected("no expression")
        for rec in records:
            rec.pop("R")
        return SceneV2(seed=seed, image=image, depth=depth, instances=instances,
                       camera_info=geometry.camera_info(cam.width, cam.height, K),
                       T_table_camera=T, camera=cam.meta(),
                       objects=[_plain(r) for r in records], expressions=expressions,
                       light={**_plain(light), **finish}, surfaces=surfaces)


_RENDERER: TabletopV2Renderer | None = None


def render_scene_v2(seed: int, rules: SplitRules | None = None, long_side: int = 320,
                    with_expressions: bool = True) -> SceneV2:
    """One v2 scene in memory, reusing one pybullet client per process."""
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = TabletopV2Renderer()
    return _RENDERER.render_v2(seed, rules, long_side, with_expressions)
