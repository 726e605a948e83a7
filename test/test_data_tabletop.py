"""Tabletop data: real pybullet scenes and their expressions, the on-disk format, the Dataset,
augmentation and determinism. Scenes are small (320x240) and few, to keep this file fast."""
from __future__ import annotations

import filecmp
import json
import os

import numpy as np
import pytest

pytest.importorskip("pybullet")

from refseg_ros.data import catalog, geometry  # noqa: E402
from refseg_ros.data.augment import hflip_sample, photometric_jitter  # noqa: E402
from refseg_ros.data.masks import (decode_rle, encode_rle, mask_to_box,  # noqa: E402
                                   rle_counts, string_to_counts, counts_to_string)
from refseg_ros.language import flip, grammar, semantics  # noqa: E402

SEEDS = [11, 12, 13, 14, 15, 16, 17, 18]


@pytest.fixture(scope="module")
def renderer():
    from refseg_ros.data.tabletop import TabletopRenderer

    r = TabletopRenderer()
    yield r
    r.close()


@pytest.fixture(scope="module")
def scenes(renderer):
    return [renderer.render(s) for s in SEEDS]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from refseg_ros.cli.main import main

    root = tmp_path_factory.mktemp("tabletop")
    assert main(["data", "tabletop", "--out", str(root / "a"), "--scenes", "4", "--seed", "5",
                 "--split", "val", "--workers", "1", "--no-progress"]) == 0
    return root


# ----------------------------------------------------------------------------- the scene itself
def test_scene_contents(scenes):
    for sc in scenes:
        assert sc.image.shape == (240, 320, 3) and sc.image.dtype == np.uint8
        assert sc.depth.shape == (240, 320) and sc.depth.dtype == np.float32
        assert 3 <= len(sc.objects) <= 8
        for o in sc.objects:
            assert o["category"] in catalog.CATEGORY_BY_NAME
            assert o["colour"] in catalog.COLOURS and o["size"] in ("small", "large")
            assert (o["colour"], o["category"]) not in catalog.HELD_OUT_PAIRS
        info = sc.camera_info
        assert info["width"] == 320 and info["height"] == 240
        assert info["distortion_model"] == "plumb_bob" and len(info["D"]) == 5
        assert len(info["K"]) == 9 and len(info["P"]) == 12
        # a robot's-eye camera 0.4-1.2 m from the table's centre of view, looking down
        cam = sc.T_table_camera
        assert 0.2 < cam[2, 3] < 1.25 and cam[2, 2] < -0.5


def test_masks_and_boxes_match_renderer_segmentation(renderer):
    """Re-render the last scene's segmentation from the stored camera: masks and boxes agree."""
    sc = renderer.render(SEEDS[0])
    p = renderer.p
    K = sc.K
    vfov = float(np.degrees(2 * np.arctan((sc.height / 2) / K[1, 1])))
    T_world = sc.T_table_camera.copy()
    from refseg_ros.data.tabletop import FAR, NEAR, TABLE_TOP

    T_world[2, 3] += TABLE_TOP
    view, proj = geometry.pybullet_view_projection(T_world, sc.width, sc.height, vfov, NEAR, FAR)
    _, _, _, _, seg = p.getCameraImage(sc.width, sc.height, view, proj,
                                       renderer=p.ER_TINY_RENDERER)
    seg = np.reshape(seg, (sc.height, sc.width))
    for k, body in enumerate(renderer.bodies):
        truth = seg == body
        assert truth.sum() > 100
        np.testing.assert_array_equal(sc.mask(k).astype(bool), truth)
        np.testing.assert_array_equal(np.asarray(sc.objects[k]["bbox"]), mask_to_box(truth))
        assert sc.objects[k]["area"] == int(truth.sum())


def _touches_other_object(sc, k: int) -> bool:
    import cv2

    grown = cv2.dilate(sc.mask(k), np.ones((5, 5), np.uint8)).astype(bool)
    return bool(((sc.instances > 0) & (sc.instances != k + 1) & grown).any())


def test_depth_backprojects_to_known_positions(scenes):
    checked = 0
    for sc in scenes:
        for k, o in enumerate(sc.objects):
            pts = geometry.backproject(sc.depth, sc.K, sc.mask(k))
            centre = np.asarray(o["position_cam"])
            # every back-projected point lies inside the object's oriented box (1 cm slack)
            R = geometry.quaternion_matrix(o["orientation_table"])
            local = (geometry.transform(sc.T_table_camera, pts) - o["position_table"]) @ R
            inside = (np.abs(local) <= np.asarray(o["dimensions"]) / 2 + 0.01).all(axis=1)
            assert inside.mean() > 0.97, (sc.seed, k)
            # the stored pixel centre is the projection of the 3D centre
            np.testing.assert_allclose(geometry.project(sc.K, centre[None])[0], o["center_px"],
                                       atol=1e-6)
            if _touches_other_object(sc, k):
                continue  # a partly hidden object's visible centroid is off its centre
            checked += 1
            # the visible surface is centred on the camera ray through the object's centre
            # (within 2.5 cm), less than half its size in front of (or, a tray's floor, behind) it
            mean = pts.mean(axis=0)
            ray = centre / np.linalg.norm(centre)
            assert np.linalg.norm(mean - (mean @ ray) * ray) < 0.025, (sc.seed, k)
            assert abs(np.linalg.norm(centre) - mean @ ray) < 0.5 * max(o["dimensions"])
    assert checked > 20


def test_objects_are_large_in_view(scenes):
    areas = [o["area"] for sc in scenes for o in sc.objects]
    assert np.median(areas) > 1200  # about 35 x 35 px or more at 320x240


def test_same_seed_same_scene_any_history(renderer, scenes):
    from refseg_ros.data.tabletop import TabletopRenderer

    with TabletopRenderer() as fresh:
        again = fresh.render(SEEDS[2])
    sc = scenes[2]
    np.testing.assert_array_equal(again.image, sc.image)
    np.testing.assert_array_equal(again.depth, sc.depth)
    assert again.objects == sc.objects and again.expressions == sc.expressions


# ----------------------------------------------------------------------------- expressions
def test_every_expression_is_unique_and_needs_its_distinguishing_part(scenes):
    seen_types = set()
    for sc in scenes:
        assert sc.expressions, sc.seed
        for t, sentences in sc.expressions.items():
            assert 1 <= len(sentences) <= 4
            assert len({s["sent"] for s in sentences}) == len(sentences)
            for s in sentences:
                seen_types.add(s["type"])
                structure = grammar.parse(s["sent"])  # the text itself, not only the intent
                assert structure == s["structure"] and structure["type"] == s["type"]
                assert semantics.select(structure, sc.objects, sc.width) == [t]
                assert semantics.resolve(structure, sc.objects, sc.width) == t
                for reduced in semantics.ablate(structure):
                    assert len(semantics.select(reduced, sc.objects, sc.width)) >= 2, s
    assert seen_types == set(semantics.TYPES)


def test_most_targets_get_two_to_four_expressions(scenes):
    counts = [len(v) for sc in scenes for v in sc.expressions.values()]
    assert np.mean([2 <= c <= 4 for c in counts]) > 0.9


# ----------------------------------------------------------------------------- augmentation
def test_flip_keeps_expressions_true(scenes):
    for sc in scenes[:4]:
        flipped = flip.flip_objects(sc.objects, sc.width)
        for t, sentences in sc.expressions.items():
            for s in sentences:
                text = flip.flip_text(s["sent"])
                assert grammar.parse(text) == flip.flip_structure(s["structure"])
                assert semantics.resolve(grammar.parse(text), flipped, sc.width) == t, s["sent"]


def test_hflip_sample_mirrors_image_box_mask_and_words(dataset_dir):
    from refseg_ros.data import TabletopRefDataset

    ds = TabletopRefDataset(dataset_dir / "a", "val")
    lr = [i for i in range(len(ds)) if "left" in ds[i]["expression"]
          or "right" in ds[i]["expression"]]
    assert lr
    s = ds[lr[0]]
    f = hflip_sample(s)
    np.testing.assert_array_equal(f["image"], s["image"][:, ::-1])
    np.testing.assert_array_equal(f["mask"], s["mask"][:, ::-1])
    np.testing.assert_array_equal(f["box"], mask_to_box(f["mask"]))
    assert f["box"].dtype == np.float32
    assert f["expression"] == flip.flip_text(s["expression"]) != s["expression"]
    np.testing.assert_array_equal(hflip_sample(f)["box"], s["box"])


def test_photometric_jitter_keeps_hue():
    import cv2

    rng = np.random.default_rng(0)
    img = np.zeros((8, len(catalog.COLOURS), 3), np.uint8)
    for j, rgb in enumerate(catalog.COLOURS.values()):
        img[:, j] = np.round(np.asarray(rgb) * 200 + 20)
    for _ in range(20):
        out = photometric_jitter(img, rng)
        h0 = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)[..., 0].astype(int)
        h1 = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)[..., 0].astype(int)
        sat = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)[..., 1] > 80
        diff = np.abs((h1 - h0 + 128) % 256 - 128)
        assert diff[sat].max() <= 6  # of 256; rounding only


# ----------------------------------------------------------------------------- format
def test_rle_roundtrip_and_known_values():
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (5, 7), (24, 32)]:
        for density in (0.0, 0.3, 1.0):
            m = (rng.random(shape) < density).astype(np.uint8)
            rle = encode_rle(m)
            np.testing.assert_array_equal(decode_rle(rle), m)
            np.testing.assert_array_equal(decode_rle({"size": list(shape),
                                                      "counts": rle_counts(m)}), m)
    assert encode_rle(np.array([[0, 1], [1, 1]]))["counts"] == "13"  # runs 1 zero, 3 ones
    assert counts_to_string([0, 10, 3, 2]) == "0:3H"  # 2 - 10 = -8 encodes as one char
    assert string_to_counts("0:3H") == [0, 10, 3, 2]


def test_split_rules():
    from refseg_ros.data.tabletop import TabletopRenderer

    rng = np.random.default_rng(3)
    for _ in range(2000):
        contents = TabletopRenderer._sample_contents(rng, compositional=False)
        assert not any((o["colour"], o["category"]) in catalog.HELD_OUT_PAIRS for o in contents)
    for _ in range(200):
        contents = TabletopRenderer._sample_contents(rng, compositional=True)
        assert any((o["colour"], o["category"]) in catalog.HELD_OUT_PAIRS for o in contents)


def test_compositional_scene_targets_held_out_pairs(renderer):
    sc = renderer.render(5, compositional=True)
    assert sc.expressions
    for t, sentences in sc.expressions.items():
        assert sc.objects[t]["held_out_pair"] and sentences


def test_scene_seed_is_stable_and_distinct():
    from refseg_ros.data.generate import scene_seed

    seeds = {scene_seed(0, split, i) for split in catalog.STANDARD_SPLITS for i in range(100)}
    assert len(seeds) == 400
    assert scene_seed(0, "train", 0) == scene_seed(0, "train", 0)
    assert scene_seed(0, "train", 0) != scene_seed(1, "train", 0)


def test_on_disk_format_and_dataset(dataset_dir):
    from refseg_ros.data import TabletopRefDataset

    root = dataset_dir / "a"
    index = json.loads((root / "val.json").read_text())
    assert index["info"]["format_version"] == 1 and len(index["images"]) == 4
    ds = TabletopRefDataset(root, "val")
    assert len(ds) == index["info"]["counts"]["sentences"] == len(ds.image_index)
    assert len(ds.image_paths) == 4 and all(os.path.exists(p) for p in ds.image_paths)
    assert len(set(ds.expressions)) == len(ds.expressions)
    for i in range(0, len(ds), 7):
        s = ds[i]
        assert set(s) == {"image", "expression", "box", "mask", "type", "ref_id", "image_id"}
        assert s["image"].shape == (240, 320, 3) and s["image"].dtype == np.uint8
        assert s["mask"].shape == (240, 320) and s["mask"].dtype == np.uint8
        assert s["box"].shape == (4,) and s["box"].dtype == np.float32
        assert s["type"] in semantics.TYPES and isinstance(s["ref_id"], int)
        np.testing.assert_array_equal(s["box"], mask_to_box(s["mask"]))
        assert s["expression"] == ds.expressions[ds.expression_index[i]]
        assert s["image_id"] == ds.images[ds.image_index[i]]["id"]
        box, mask = ds.target(ds.target_keys[i], 240, 320)
        np.testing.assert_array_equal(box, s["box"])
        np.testing.assert_array_equal(mask, s["mask"])
        # the expression's structured form picks this target among the image's objects
        scene = ds.scene(int(ds.image_index[i]))
        objs = scene["annotations"]
        t = next(k for k, a in enumerate(objs) if a["id"] == s["ref_id"])
        assert semantics.resolve(ds.sentence(i)["structure"], objs, 320) == t
    depth = ds.load_depth(0)
    assert depth.dtype == np.float32 and 0.2 < np.median(depth[depth > 0]) < 3.0
    only = TabletopRefDataset(root, "val", types=["relation"])
    assert 0 < len(only) < len(ds) and set(only.types) == {"relation"}


def test_generation_is_deterministic_across_workers_and_resumes(dataset_dir):
    from refseg_ros.data.generate import generate_split

    a, b = dataset_dir / "a", dataset_dir / "b"
    stats = generate_split(str(b), "val", 4, 5, workers=2, progress=False)
    assert stats["rendered"] == 4
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert filecmp.cmp(a / f, b / f, shallow=False), f
    # resuming renders nothing and changes nothing
    before = (a / "val.json").read_bytes()
    assert generate_split(str(a), "val", 4, 5, workers=1, progress=False)["rendered"] == 0
    assert (a / "val.json").read_bytes() == before
    # a different seed into the same folder is refused instead of mixing scenes
    with pytest.raises(ValueError):
        generate_split(str(a), "val", 4, 6, workers=1, progress=False)
