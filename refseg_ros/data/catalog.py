"""What a tabletop scene can contain: object categories, colours, sizes, and the held-out pairs.

Everything here is plain data (no pybullet), shared by the renderer, the command language, the
split rules and the Datasets. Names in this module are the canonical values written to disk
(``category``, ``colour``, ``size`` of an annotation). A category's nouns stay on its record (they
are written to disk as COCO synonyms); every other word (size words, generic nouns, place words)
lives in :mod:`refseg_ros.language.vocabulary`, which reads the names and nouns from here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """One object category and how to build it from a ``pybullet_data`` model.

    Args:
        name: canonical name written to disk (COCO ``categories[].name``).
        nouns: words the grammar may use for it; the first is the canonical noun.
        mesh: path of the mesh inside ``pybullet_data``; ``None`` for a primitive (``primitive``).
        rpy: rotation that stands the mesh upright (z up) on the table.
        small, large: the object's largest extent in metres at each size.
        stretch: per-axis scale applied to the mesh before sizing (a unit-cube mesh made a bar).
        texture: which neutral surface texture replaces the model's own ("matte" or "plush").
        mass: kilograms, only used to settle the scene.
        primitive: ``"cylinder"`` for a pybullet primitive instead of a mesh.
        collision: ``"box"`` (the upright bounding box), ``"sphere"`` or ``"mesh"`` (convex hull).
            Objects never touch each other, only the table, so a box settles a mesh as well as
            its hull would, at a fraction of the cost.
    """

    name: str
    nouns: tuple[str, ...]
    mesh: str | None
    rpy: tuple[float, float, float]
    small: float
    large: float
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)
    texture: str = "matte"
    mass: float = 0.15
    primitive: str | None = None
    collision: str = "box"


_HALF_PI = 1.5707963267948966

#: Every category, in the order of their COCO ids (1-based).
CATEGORIES: tuple[Category, ...] = (
    Category("mug", ("mug", "cup", "coffee mug"), "objects/mug.obj", (0.0, 0.0, 0.0), 0.085, 0.125),
    Category("cube", ("cube", "block"), "cube.obj", (0.0, 0.0, 0.0), 0.050, 0.075),
    Category("ball", ("ball", "sphere"), "sphere_smooth.obj", (0.0, 0.0, 0.0), 0.060, 0.090,
             collision="sphere"),
    Category("duck", ("duck", "rubber duck"), "duck.obj", (_HALF_PI, 0.0, 0.0), 0.085, 0.125),
    Category("teddy bear", ("teddy bear", "teddy", "bear"), "teddy2_VHACD_CHs.obj",
             (_HALF_PI, 0.0, 0.0), 0.120, 0.170, texture="plush"),
    Category("lego brick", ("lego brick", "lego", "brick"), "lego/lego.obj", (_HALF_PI, 0.0, 0.0),
             0.060, 0.090),
    Category("jenga block", ("jenga block", "jenga piece", "bar"), "jenga/jenga.obj",
             (0.0, 0.0, 0.0), 0.100, 0.150, stretch=(1.0, 1 / 3, 0.2)),
    Category("torus", ("ring", "torus", "donut"), "torus/torus_textured.obj", (_HALF_PI, 0.0, 0.0),
             0.085, 0.125),
    Category("cylinder", ("cylinder", "can"), None, (0.0, 0.0, 0.0), 0.065, 0.095,
             primitive="cylinder"),
    Category("tray", ("tray", "dish"), "tray/tray_textured.obj", (0.0, 0.0, 0.0), 0.120, 0.170),
)

CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
CATEGORY_IDS: dict[str, int] = {c.name: i + 1 for i, c in enumerate(CATEGORIES)}

#: Named colours and the RGB (0-1) an object of that colour is painted with. Chosen to stay
#: distinct under the renderer's lighting (checked by eye on rendered scenes).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.82, 0.07, 0.07),
    "orange": (0.98, 0.42, 0.04),
    "yellow": (0.96, 0.86, 0.08),
    "green": (0.09, 0.58, 0.14),
    "blue": (0.07, 0.22, 0.88),
    "purple": (0.45, 0.12, 0.68),
    "pink": (0.98, 0.52, 0.74),
    "white": (0.95, 0.95, 0.94),
    "black": (0.07, 0.07, 0.08),
}

#: Colour-category pairs that never occur in the train/val/test splits (nor in any split other
#: than ``compositional``); every compositional scene has at least one of them as a target.
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("blue", "mug"), ("yellow", "cube"), ("green", "ball"), ("red", "duck"),
    ("purple", "teddy bear"), ("black", "lego brick"), ("orange", "jenga block"),
    ("pink", "torus"), ("white", "cylinder"), ("green", "tray"),
})

#: Achromatic colour words: no hue of their own (:func:`vary_paint` tints them only slightly).
ACHROMATIC = frozenset({"white", "black"})


def vary_paint(rgb, colour: str, rng, amount: float = 1.0) -> tuple[float, float, float]:
    """Another paint that its colour word still names: at ``amount`` 1 the hue turns by up to
    +-0.02 of a full turn (about 7 degrees: red, orange and yellow stay apart), saturation drops
    by up to 20 % and value by up to 10 %; white becomes an off-white with a faint cast, black a near-black.
    ``amount`` 0 returns ``rgb`` unchanged and draws nothing from ``rng``."""
    import colorsys

    if amount <= 0:
        return tuple(float(v) for v in rgb)
    h, s, v = colorsys.rgb_to_hsv(*(float(c) for c in rgb))
    if colour in ACHROMATIC:
        h = float(rng.uniform(0.0, 1.0))
        s = s + float(rng.uniform(0.0, 0.08)) * amount
        v = v * (1.0 - float(rng.uniform(-0.5, 0.2)) * amount) if colour == "black" \
            else v * (1.0 - float(rng.uniform(0.0, 0.2)) * amount)
    else:
        h = (h + float(rng.uniform(-0.02, 0.02)) * amount) % 1.0
        s = s * (1.0 - float(rng.uniform(0.0, 0.2)) * amount)
        v = v * (1.0 - float(rng.uniform(0.0, 0.1)) * amount)  # darker orange reads as brown
    return tuple(min(1.0, max(0.0, c)) for c in colorsys.hsv_to_rgb(h, min(1.0, s), min(1.0, v)))


COMPOSITIONAL_SPLIT = "compositional"
STANDARD_SPLITS = ("train", "val", "test", COMPOSITIONAL_SPLIT)


def coco_categories() -> list[dict]:
    """The ``categories`` list of a COCO-style index (with the grammar's nouns as synonyms)."""
    return [{"id": CATEGORY_IDS[c.name], "name": c.name, "supercategory": "tabletop",
             "synonyms": list(c.nouns)} for c in CATEGORIES]
