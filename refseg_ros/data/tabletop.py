"""Photo-like tabletop scenes rendered with pybullet, with exact masks, depth and intrinsics.

One scene is a table with 3-8 objects (models bundled in ``pybullet_data``, recoloured, two sizes)
placed without overlap inside the view of a robot's-eye camera and settled by the physics, lit
from a random direction and rendered by the CPU TinyRenderer (``p.DIRECT``, soft shadows), then
lightly blurred, vignetted and given sensor noise. Everything about a scene follows from its seed:
:func:`render_scene` is what both the dataset generator and the demo's simulated camera call.

Frames: the *table frame* has its origin at the centre of the table top, z up; the camera looks
from the near (-y) side of the table. Object positions are given in the table frame and in the
camera's optical frame (x right, y down, z forward; see :mod:`refseg_ros.data.geometry`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from refseg_ros.data import geometry
from refseg_ros.data.catalog import CATEGORIES, COLOURS, HELD_OUT_PAIRS, Category
from refseg_ros.data.masks import mask_to_box
from refseg_ros.language import grammar

TABLE_SCALE = 1.3
TABLE_TOP = 0.625 * TABLE_SCALE  # pybullet's table.urdf top is at 0.625 m
TABLE_HALF = (0.75 * TABLE_SCALE, 0.5 * TABLE_SCALE)  # half length (x) and depth (y)
NEAR, FAR = 0.05, 6.0
CAMERA_DISTANCE = (0.4, 1.2)  # metres, camera to the point it looks at
CAMERA_PITCH = (40.0, 78.0)  # degrees below the horizontal
CAMERA_YAW = (-45.0, 45.0)  # degrees around the table's vertical axis
SETTLE_STEPS = 30  # 0.125 s at pybullet's 240 Hz
MIN_GAP = 0.015  # metres between object footprints
TABLE_TINTS = ((1.0, 1.0, 1.0), (0.85, 0.72, 0.58), (0.62, 0.5, 0.4), (0.82, 0.82, 0.85),
               (0.58, 0.58, 0.62), (0.95, 0.9, 0.8))
FLOOR_COLOURS = ((0.35, 0.33, 0.3), (0.55, 0.5, 0.45), (0.25, 0.27, 0.3), (0.6, 0.6, 0.62),
                 (0.42, 0.3, 0.22))


@contextlib.contextmanager
def _quiet_stderr():
    """Silence fd 2 for a moment: pybullet writes a build-time banner there on import."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_pybullet():
    with _quiet_stderr():
        import pybullet
    return pybullet


class _BoundClient:
    """The pybullet module with every call sent to one physics client.

    pybullet calls without ``physicsClientId`` go to client 0, whichever renderer connected it, so
    two renderers in one process would share one simulation, and closing the first would break
    the second.
    """

    def __init__(self, module, client: int) -> None:
        self._module, self._client = module, client

    def __getattr__(self, name: str):
        attr = getattr(self._module, name)
        return functools.partial(attr, physicsClientId=self._client) if callable(attr) else attr


class RenderedViews:
    """What a rendered scene's arrays give (v1 and v2 scenes): sizes, intrinsics, per-object masks,
    depth in millimetres. Needs ``image``, ``depth``, ``instances``, ``camera_info``, ``objects``."""

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def K(self) -> np.ndarray:
        return geometry.K_from_camera_info(self.camera_info)

    def mask(self, k: int) -> np.ndarray:
        """``uint8 (H, W)`` visible mask of object ``k``."""
        return (self.instances == k + 1).astype(np.uint8)

    @property
    def masks(self) -> np.ndarray:
        return np.stack([self.mask(k) for k in range(len(self.objects))]) if self.objects else \
            np.zeros((0,) + self.instances.shape, np.uint8)

    @property
    def depth_mm(self) -> np.ndarray:
        return geometry.depth_to_mm(self.depth)


@dataclass
class TabletopScene(RenderedViews):
    """A rendered scene, in memory.

    Attributes:
        seed: the scene seed it was rendered from.
        image: ``uint8 (H, W, 3)`` RGB.
        depth: ``float32 (H, W)`` metres along the optical axis; 0 = no valid depth.
        instances: ``uint8 (H, W)``, 0 = not an object, ``k + 1`` = ``objects[k]`` (visible part).
        camera_info: the fields of ``sensor_msgs/CameraInfo`` (``K``, ``D``, ``R``, ``P``,
            ``width``, ``height``, ``distortion_model``, ``frame_id``).
        T_table_camera: 4x4 pose of the optical frame in the table frame.
        objects: one record per object (see ``docs/data-format.md``); ``bbox`` is
            ``x_min, y_min, x_max, y_max`` in pixel-edge coordinates.
        expressions: ``{object index: [{"sent", "type", "structure"}, ...]}``.
        light: the lighting parameters used.
    """

    seed: int
    image: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    camera_info: dict
    T_table_camera: np.ndarray
    objects: list[dict]
    expressions: dict[int, list[dict]] = field(default_factory=dict)
    light: dict = field(default_factory=dict)
    body_ids: tuple[int, ...] = ()  # the renderer's pybullet bodies of ``objects`` (for render_view)


class SceneRejected(RuntimeError):
    """A sampled layout failed a check (fell over, hidden, outside the view); resample."""


@dataclass
class _Mesh:
    """A category's mesh, upright and centred: scale factor for extent 1 and shape facts."""

    unit_scale: float  # mesh scale giving largest extent 1 m
    centre: np.ndarray  # rotated-frame centre of the unscaled (stretched) mesh
    dims: np.ndarray  # upright extents at largest extent 1 m
    radius: float  # footprint bounding-circle radius at largest extent 1 m


def _read_obj_vertices(path: str) -> np.ndarray:
    verts = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
    return np.asarray(verts, dtype=np.float64)


def _rotation_rpy(rpy) -> np.ndarray:
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _write_texture(path: str, base: float, noise: float, grain: int, seed: int) -> None:
    """A near-white texture with a little structure: it reads as a material, the colour comes
    from rgbaColor (the renderer multiplies the two)."""
    import cv2

    rng = np.random.default_rng(seed)
    size = 128
    coarse = rng.normal(0.0, 1.0, (size // grain, size // grain))
    coarse = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0.0, 1.0, (size, size))
    tex = base + noise * (0.6 * coarse + 0.4 * fine)
    tex = np.clip(tex, 0.0, 1.0)
    img = np.repeat((tex * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    cv2.imwrite(path, img)


class TabletopRenderer:
    """A pybullet client (``p.DIRECT``) that renders scenes one after another.

    Each :meth:`render` resets the simulation, so a scene depends only on its seed, not on what
    the client rendered before. Not thread-safe; use one renderer per process.
    """

    def __init__(self):
        pybullet = import_pybullet()
        import pybullet_data

        self.data_path = pybullet_data.getDataPath()
        self.client = pybullet.connect(pybullet.DIRECT)
        self.p = _BoundClient(pybullet, self.client)
        self._meshes: dict[str, _Mesh] = {}
        self.bodies: list[int] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="refseg_textures_")
        self._textures = {}
        for name, base, noise, grain, seed in (("matte", 0.93, 0.025, 16, 1),
                                               ("plush", 0.86, 0.07, 4, 2),
                                               ("floor", 0.85, 0.06, 8, 3)):
            path = os.path.join(self._tmp.name, f"{name}.png")
            _write_texture(path, base, noise, grain, seed)
            self._textures[name] = path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.p.disconnect()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ assets
    def _mesh(self, cat: Category) -> _Mesh:
        if cat.name not in self._meshes:
            if cat.primitive == "cylinder":
                # height 1, radius 0.35: a can
                self._meshes[cat.name] = _Mesh(1.0, np.zeros(3), np.array([0.7, 0.7, 1.0]), 0.35)
            else:
                v = _read_obj_vertices(os.path.join(self.data_path, cat.mesh))
                v = v * np.asarray(cat.stretch)
                R = _rotation_rpy(cat.rpy)
                vr = v @ R.T
                lo, hi = vr.min(0), vr.max(0)
                extent = float((hi - lo).max())
                centre_r = (lo + hi) / 2
                radius = float(np.hypot(*(vr[:, :2] - centre_r[:2]).T).max())
                self._meshes[cat.name] = _Mesh(1.0 / extent, centre_r, (hi - lo) / extent,
                                               radius / extent)
        return self._meshes[cat.name]

    def _create_object(self, cat: Category, extent: float, rgba, position, yaw: float,
                       textures: dict, specular: float) -> int:
        p = self.p
        mesh = self._mesh(cat)
        q_yaw = p.getQuaternionFromEuler([0.0, 0.0, yaw])
        if cat.primitive == "cylinder":
            radius, height = 0.35 * extent, extent
            vis = p.createVisualShape(p.GEOM_CYLINDER, radius=radius, length=height,
                                      rgbaColor=rgba)
            col = p.createCollisionShape(p.GEOM_CYLINDER, radius=radius, height=height)
        else:
            s = mesh.unit_scale * extent
            scale = (np.asarray(cat.stretch) * s).tolist()
            q = p.getQuaternionFromEuler(cat.rpy)
            offset = (-mesh.centre * s).tolist()
            mesh_path = os.path.join(self.data_path, cat.mesh)
            vis = p.createVisualShape(p.GEOM_MESH, fileName=mesh_path, meshScale=scale,
                                      visualFramePosition=offset, visualFrameOrientation=q,
                                      rgbaColor=rgba)
            dims = mesh.dims * extent
            if cat.collision == "box":
                col = p.createCollisionShape(p.GEOM_BOX, halfExtents=(dims / 2).tolist())
            elif cat.collision == "sphere":
                col = p.createCollisionShape(p.GEOM_SPHERE, radius=float(dims[0] / 2))
            else:
                col = p.createCollisionShape(p.GEOM_MESH, fileName=mesh_path, meshScale=scale,
                                             collisionFramePosition=offset,
                                             collisionFrameOrientation=q)
        body = p.createMultiBody(baseMass=cat.mass, baseCollisionShapeIndex=col,
                                 baseVisualShapeIndex=vis, basePosition=list(position),
                                 baseOrientation=q_yaw)
        p.changeVisualShape(body, -1, textureUniqueId=textures[cat.texture], rgbaColor=rgba,
                            specularColor=[specular] * 3)
        p.changeDynamics(body, -1, lateralFriction=0.9, rollingFriction=0.002,
                         spinningFriction=0.002, restitution=0.0)
        return body

    # ------------------------------------------------------------------ sampling
    @staticmethod
    def _sample_contents(rng: np.random.Generator, compositional: bool) -> list[dict]:
        n = int(rng.integers(3, 9))
        k_cat = int(min(n, rng.choice([1, 2, 3, 4], p=[0.05, 0.35, 0.35, 0.25])))
        cats = [CATEGORIES[i].name for i in rng.choice(len(CATEGORIES), k_cat, replace=False)]
        colour_names = list(COLOURS)
        k_col = int(rng.integers(2, 6))
        palette = [colour_names[i] for i in rng.choice(len(colour_names), k_col, replace=False)]
        objects: list[dict] = []
        if compositional:
            colour, category = sorted(HELD_OUT_PAIRS)[int(rng.integers(len(HELD_OUT_PAIRS)))]
            other = [c for c in colour_names if c != colour]
            objects.append({"category": category, "colour": colour})
            objects.append({"category": category, "colour": other[int(rng.integers(len(other)))]})
            if category not in cats:
                cats[int(rng.integers(len(cats)))] = category
            if colour not in palette:
                palette.append(colour)
        for i in range(len(objects), n):
            category = cats[i] if i < len(cats) else cats[int(rng.integers(len(cats)))]
            allowed = [c for c in palette if compositional or (c, category) not in HELD_OUT_PAIRS]
            if not allowed:
                allowed = [c for c in colour_names if (c, category) not in HELD_OUT_PAIRS]
            objects.append({"category": category,
                            "colour": allowed[int(rng.integers(len(allowed)))]})
        for o in objects:
            o["size"] = "large" if rng.random() < 0.5 else "small"
        order = rng.permutation(len(objects))
        return [objects[i] for i in order]

    @staticmethod
    def _sample_camera(rng: np.random.Generator, n_objects: int):
        target = np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.12, 0.12), 0.0])
        distance = rng.uniform(*CAMERA_DISTANCE)
        pitch = np.radians(rng.uniform(*CAMERA_PITCH))
        yaw = np.radians(rng.uniform(*CAMERA_YAW))
        heading = -np.pi / 2 + yaw  # direction from the target to the camera, on the table
        eye = target + distance * np.array([np.cos(pitch) * np.cos(heading),
                                            np.cos(pitch) * np.sin(heading), np.sin(pitch)])
        T = geometry.look_at(eye, target)
        # the width of table the image spans at the target: small, so objects are large in view
        view_width = 0.28 + 0.03 * n_objects + rng.uniform(-0.03, 0.05)
        return T, target, distance, view_width

    @staticmethod
    def _vfov(view_width: float, distance: float, width: int, height: int) -> float:
        hfov = 2 * np.arctan(view_width / 2 / distance)
        return float(np.degrees(2 * np.arctan(np.tan(hfov / 2) * height / width)))

    @staticmethod
    def _place(rng, contents, T_table_cam, K, width, height, target, view_width) -> bool:
        """Non-overlapping positions on the table whose bounds project inside the image.

        Sets ``xy`` of every object; False if some object found no place.
        """
        T_cam_table = np.linalg.inv(T_table_cam)
        placed_xy: list[np.ndarray] = []
        placed_r: list[float] = []
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)
        margin_u, margin_v = 0.04 * width, 0.04 * height
        tries = 64
        for i in sorted(range(len(contents)), key=lambda i: -contents[i]["extent"]):
            o = contents[i]
            r, h = o["radius"], o["dims"][2]
            xy = target[:2] + rng.uniform(-0.75, 0.75, (tries, 2)) * view_width  # (N, 2)
            ok = (np.abs(xy[:, 0]) < TABLE_HALF[0] - r - 0.03) & \
                 (np.abs(xy[:, 1]) < TABLE_HALF[1] - r - 0.03)
            for q, rq in zip(placed_xy, placed_r):
                ok &= np.hypot(*(xy - q).T) >= r + rq + MIN_GAP
            pts = xy[:, None, :] + r * ring[None]  # (N, 8, 2)
            pts = np.concatenate([np.concatenate([pts, np.full(pts.shape[:2] + (1,), z)], axis=2)
                                  for z in (0.0, h)], axis=1).reshape(-1, 3)
            pc = geometry.transform(T_cam_table, pts)
            front = (pc[:, 2] > 0.1).reshape(tries, -1).all(axis=1)
            pc[:, 2] = np.maximum(pc[:, 2], 0.1)
            uv = geometry.project(K, pc).reshape(tries, -1, 2)
            inside = (uv[..., 0] >= margin_u).all(1) & (uv[..., 0] <= width - 1 - margin_u).all(1) \
                & (uv[..., 1] >= margin_v).all(1) & (uv[..., 1] <= height - 1 - margin_v).all(1)
            ok &= front & inside
            if not ok.any():
                return False
            o["xy"] = xy[int(np.argmax(ok))]
            placed_xy.append(o["xy"])
            placed_r.append(r)
        return True

    # ------------------------------------------------------------------ rendering
    def render(self, seed: int, width: int = 320, height: int = 240, compositional: bool = False,
               with_expressions: bool = True, max_attempts: int = 30) -> TabletopScene:
        """Render the scene of ``seed``. ``compositional``: include a held-out colour-category
        pair and make only held-out pairs targets (see :mod:`refseg_ros.data.catalog`)."""
        rng = np.random.default_rng(int(seed))
        last = None
        for _ in range(max_attempts):
            try:
                return self._render_once(rng, int(seed), width, height, compositional,
                                         with_expressions)
            except SceneRejected as exc:
                last = exc
        raise RuntimeError(f"scene {seed}: no valid layout in {max_attempts} attempts ({last})")

    def _render_once(self, rng, seed, width, height, compositional, with_expressions):
        p = self.p
        contents = self._sample_contents(rng, compositional)
        for o in contents:
            cat = next(c for c in CATEGORIES if c.name == o["category"])
            base = cat.large if o["size"] == "large" else cat.small
            o["extent"] = base * rng.uniform(0.93, 1.07)
            mesh = self._mesh(cat)
            o["dims"] = mesh.dims * o["extent"]
            o["radius"] = mesh.radius * o["extent"]
            o["yaw"] = rng.uniform(-np.pi, np.pi)
        T_table_cam, target, distance, view_width = self._sample_camera(rng, len(contents))
        for _ in range(4):  # widen the view until everything fits
            vfov = self._vfov(view_width, distance, width, height)
            K = geometry.intrinsics(width, height, vfov)
            if self._place(rng, contents, T_table_cam, K, width, height, target, view_width):
                break
            view_width *= 1.15
        else:
            raise SceneRejected("no free place for an object")

        p.resetSimulation()
        p.setGravity(0, 0, -9.81)
        textures = {name: p.loadTexture(path) for name, path in self._textures.items()}
        floor = p.loadURDF(os.path.join(self.data_path, "plane.urdf"))
        floor_rgb = FLOOR_COLOURS[int(rng.integers(len(FLOOR_COLOURS)))]
        p.changeVisualShape(floor, -1, textureUniqueId=textures["floor"],
                            rgbaColor=list(floor_rgb) + [1.0], specularColor=[0.05] * 3)
        table = p.loadURDF(os.path.join(self.data_path, "table/table.urdf"), useFixedBase=True,
                           globalScaling=TABLE_SCALE)
        tint = np.asarray(TABLE_TINTS[int(rng.integers(len(TABLE_TINTS)))])
        tint = np.clip(tint * rng.uniform(0.92, 1.04), 0, 1)
        p.changeVisualShape(table, -1, rgbaColor=tint.tolist() + [1.0],
                            specularColor=[rng.uniform(0.05, 0.3)] * 3)

        self.bodies = bodies = []  # pybullet ids of the objects, kept for inspection
        for o in contents:
            cat = next(c for c in CATEGORIES if c.name == o["category"])
            rgb = np.clip(np.asarray(COLOURS[o["colour"]]) * rng.uniform(0.94, 1.04), 0, 1)
            specular = rng.uniform(0.02, 0.1) if cat.texture == "plush" else rng.uniform(0.2, 0.7)
            z = TABLE_TOP + o["dims"][2] / 2 + 0.002
            self.bodies.append(self._create_object(cat, o["extent"], rgb.tolist() + [1.0],
                                              [o["xy"][0], o["xy"][1], z], o["yaw"], textures,
                                              specular))
        for _ in range(SETTLE_STEPS):
            p.stepSimulation()

        K_info = geometry.camera_info(width, height, K)
        T_cam_table = np.linalg.inv(T_table_cam)
        records = []
        for o, body in zip(contents, bodies):
            pos, orn = p.getBasePositionAndOrientation(body)
            pos_table = np.array(pos) - np.array([0.0, 0.0, TABLE_TOP])
            R = np.array(p.getMatrixFromQuaternion(orn)).reshape(3, 3)
            if np.hypot(*(pos_table[:2] - o["xy"])) > 0.03 or R[2, 2] < np.cos(np.radians(20)):
                raise SceneRejected("an object moved or tipped over while settling")
            if abs(pos_table[2] - o["dims"][2] / 2) > 0.03:
                raise SceneRejected("an object is not resting on the table")
            pos_cam = geometry.transform(T_cam_table, pos_table[None])[0]
            records.append({
                "category": o["category"], "colour": o["colour"], "size": o["size"],
                "position_table": pos_table, "orientation_table": list(orn), "R": R,
                "position_cam": pos_cam,
                "center_px": geometry.project(K, pos_cam[None])[0],
                "dimensions": o["dims"], "radius": o["radius"],
                "distance": float(np.linalg.norm(pos_cam)),
                "ground_distance": float(np.hypot(*(pos_table[:2] - T_table_cam[:2, 3]))),
                "held_out_pair": (o["colour"], o["category"]) in HELD_OUT_PAIRS,
            })

        light = self._sample_light(rng)
        T_world_cam = T_table_cam.copy()
        T_world_cam[2, 3] += TABLE_TOP
        view, proj = geometry.pybullet_view_projection(T_world_cam, width, height, vfov, NEAR, FAR)
        rgb, depth_buffer, seg = self._render_soft_shadows(view, proj, width, height, light)
        depth = geometry.depth_buffer_to_metres(depth_buffer, NEAR, FAR)
        instances = np.zeros((height, width), dtype=np.uint8)
        min_area = 0.002 * width * height
        for k, (body, rec) in enumerate(zip(bodies, records)):
            m = seg == body
            instances[m] = k + 1
            area = int(m.sum())
            box = mask_to_box(m)
            if area < min_area:
                raise SceneRejected("an object is (nearly) hidden")
            if box[0] < 1 or box[1] < 1 or box[2] > width - 1 or box[3] > height - 1:
                raise SceneRejected("an object touches the image border")
            if area < 0.3 * self._projected_box_area(rec, T_cam_table, K):
                raise SceneRejected("an object is mostly occluded")
            rec["bbox"] = box
            rec["area"] = area
        # its own stream: the noise drawn depends on the image size, and the expressions drawn
        # after it should not
        image = _photo_finish(rgb, np.random.default_rng(int(rng.integers(2**63))))

        expressions: dict[int, list[dict]] = {}
        if with_expressions:
            targets = [k for k, r in enumerate(records) if r["held_out_pair"]] if compositional \
                else None
            expressions = grammar.generate(records, width, rng, targets=targets)
            if compositional and not any(expressions.get(k) for k in targets):
                raise SceneRejected("no expression for the held-out target")
            if not any(expressions.values()):
                raise SceneRejected("no target has a unique expression")
        for rec in records:
            rec.pop("R")
        self._last_rendered = (seed, width, height)  # what render_view may re-render
        return TabletopScene(seed=seed, image=image, depth=depth, instances=instances,
                             camera_info=K_info, T_table_camera=T_table_cam,
                             objects=[_plain(r) for r in records], expressions=expressions,
                             light={k: _plain(v) for k, v in light.items()},
                             body_ids=tuple(int(b) for b in bodies))

    def render_view(self, scene: TabletopScene, T_table_camera: np.ndarray) -> TabletopScene:
        """``scene`` (the last one this renderer rendered) seen from another camera pose.

        Same objects, intrinsics and light; nothing is re-simulated. The object records get the
        new camera-frame positions, pixel centres, distances and boxes (``bbox`` None and
        ``area`` 0 for an object out of view). Expressions are kept as generated for the original
        view: for a small camera motion they still hold, but left/right near-ties may not.
        """
        if getattr(self, "_last_rendered", None) != (scene.seed, scene.width, scene.height) \
                or [int(b) for b in self.bodies] != [int(b) for b in scene.body_ids]:
            raise ValueError(f"scene {scene.seed} is not the one this renderer rendered last")
        width, height = scene.width, scene.height
        K = scene.K
        vfov = float(np.degrees(2 * np.arctan((height / 2.0) / K[1, 1])))
        T_world_cam = np.array(T_table_camera, dtype=np.float64)
        T_world_cam[2, 3] += TABLE_TOP
        view, proj = geometry.pybullet_view_projection(T_world_cam, width, height, vfov, NEAR, FAR)
        rgb, depth_buffer, seg = self._render_soft_shadows(view, proj, width, height, scene.light)
        T_cam_table = np.linalg.inv(T_table_camera)
        instances = np.zeros((height, width), dtype=np.uint8)
        objects = []
        for k, (body, rec) in enumerate(zip(self.bodies, scene.objects)):
            m = seg == body
            instances[m] = k + 1
            rec = dict(rec)
            pos_cam = geometry.transform(T_cam_table, np.asarray(rec["position_table"])[None])[0]
            rec["position_cam"] = pos_cam.tolist()
            rec["center_px"] = geometry.project(K, pos_cam[None])[0].tolist()
            rec["distance"] = float(np.linalg.norm(pos_cam))
            rec["ground_distance"] = float(np.hypot(*(np.asarray(rec["position_table"][:2])
                                                      - T_table_camera[:2, 3])))
            rec["area"] = int(m.sum())
            rec["bbox"] = _plain(mask_to_box(m)) if rec["area"] else None
            objects.append(rec)
        image = _photo_finish(rgb, np.random.default_rng(scene.seed))
        return TabletopScene(seed=scene.seed, image=image,
                             depth=geometry.depth_buffer_to_metres(depth_buffer, NEAR, FAR),
                             instances=instances, camera_info=dict(scene.camera_info),
                             T_table_camera=np.array(T_table_camera, dtype=np.float64), objects=objects,
                             expressions=scene.expressions, light=scene.light, body_ids=scene.body_ids)

    def _render_soft_shadows(self, view, proj, width: int, height: int, light: dict):
        """RGB with soft shadows, the z-buffer and the segmentation (all full resolution).

        TinyRenderer's shadow map is coarse: its shadows have jagged, blocky edges and speckle
        ("acne") on lit surfaces. So the image is rendered without shadows, the shadows alone are
        measured at half resolution (shadowed / unshadowed brightness, only where both passes
        see the same surface), blurred into soft shadows and multiplied in. That is also cheaper
        than one full-resolution shadowed pass.
        """
        import cv2

        p = self.p
        kw = dict(renderer=p.ER_TINY_RENDERER, lightDirection=light["direction"],
                  lightColor=light["color"], lightDistance=light["distance"],
                  lightAmbientCoeff=light["ambient"], lightDiffuseCoeff=light["diffuse"],
                  lightSpecularCoeff=light["specular"])
        _, _, rgba, depth_buffer, seg = p.getCameraImage(width, height, view, proj, shadow=0, **kw)
        rgb = np.reshape(np.asarray(rgba, dtype=np.uint8), (height, width, 4))[:, :, :3]
        seg = np.reshape(np.asarray(seg), (height, width))
        depth_buffer = np.reshape(np.asarray(depth_buffer), (height, width))
        hw, hh = max(width // 2, 8), max(height // 2, 8)
        _, _, rgba_s, _, seg_s = p.getCameraImage(hw, hh, view, proj, shadow=1, **kw)
        lit = np.reshape(np.asarray(rgba_s, dtype=np.uint8), (hh, hw, 4))[:, :, :3]
        seg_s = np.reshape(np.asarray(seg_s), (hh, hw))
        plain = cv2.resize(rgb, (hw, hh), interpolation=cv2.INTER_AREA)
        seg_small = cv2.resize(seg.astype(np.float32), (hw, hh), interpolation=cv2.INTER_NEAREST)
        same = (seg_small == seg_s).astype(np.uint8)
        same = cv2.erode(same, np.ones((3, 3), np.uint8)).astype(np.float32)  # not at edges
        ratio = (lit.astype(np.float32).sum(2) + 6.0) / (plain.astype(np.float32).sum(2) + 6.0)
        ratio = np.clip(ratio, 0.0, 1.0)
        sigma = 1.2 * hw / 160.0  # ~2.5 full-resolution pixels at 320 wide
        num = cv2.GaussianBlur(ratio * same, (0, 0), sigma)
        den = cv2.GaussianBlur(same, (0, 0), sigma)
        soft = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 1.0).astype(np.float32)
        soft = cv2.resize(soft, (width, height), interpolation=cv2.INTER_LINEAR)
        shaded = np.clip(rgb.astype(np.float32) * soft[:, :, None], 0, 255).astype(np.uint8)
        return shaded, depth_buffer, seg

    @staticmethod
    def _projected_box_area(rec: dict, T_cam_table: np.ndarray, K: np.ndarray) -> float:
        import cv2

        half = np.asarray(rec["dimensions"]) / 2
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        pts = (corners * half) @ rec["R"].T + rec["position_table"]
        uv = geometry.project(K, geometry.transform(T_cam_table, pts)).astype(np.float32)
        return float(cv2.contourArea(cv2.convexHull(uv)))

    @staticmethod
    def _sample_light(rng) -> dict:
        elevation = np.radians(rng.uniform(35, 80))
        azimuth = rng.uniform(-np.pi, np.pi)
        direction = [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                     np.sin(elevation)]
        warmth = rng.uniform(-0.05, 0.05)
        return {"direction": [float(v) for v in direction],
                "color": [1.0, float(1.0 - abs(warmth) / 2), float(1.0 - warmth)],
                "distance": 4.0,
                "ambient": float(rng.uniform(0.45, 0.65)),
                "diffuse": float(rng.uniform(0.35, 0.55)),
                "specular": float(rng.uniform(0.1, 0.4))}


def _photo_finish(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soften the rasteriser's hard edges and add what a real sensor adds: a little blur,
    vignetting, exposure and noise. No hue change, so colour words stay true."""
    import cv2

    h, w = rgb.shape[:2]
    img = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), rng.uniform(0.45, 0.75))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    img *= (1.0 - rng.uniform(0.0, 0.18) * r2 / 2)[:, :, None] * rng.uniform(0.95, 1.05)
    noise = rng.normal(0.0, rng.uniform(1.0, 3.0), img.shape).astype(np.float32)
    return np.clip(img + noise, 0, 255).round().astype(np.uint8)


def _plain(value):
    """numpy values -> JSON-able Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_RENDERER: TabletopRenderer | None = None


def render_scene(seed: int, width: int = 320, height: int = 240, compositional: bool = False,
                 with_expressions: bool = True) -> TabletopScene:
    """Render one scene in memory (no files), reusing one pybullet client per process.

    The same ``seed`` gives the same scene; at another resolution the layout and expressions are
    the same too, unless a resolution-dependent check (an object's visible area in pixels)
    rejects the first layout.
    """
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = TabletopRenderer()
    return _RENDERER.render(seed, width, height, compositional, with_expressions)


def render_view(scene: TabletopScene, T_table_camera: np.ndarray) -> TabletopScene:
    """:meth:`TabletopRenderer.render_view` on the client :func:`render_scene` uses; ``scene``
    must be the last scene :func:`render_scene` returned in this process."""
    if _RENDERER is None:
        raise ValueError("no scene rendered yet in this process (call render_scene first)")
    return _RENDERER.render_view(scene, T_table_camera)
