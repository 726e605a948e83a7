"""Tabletop v2 rendered: determinism by seed, exact masks, intrinsics, target lists on disk,
the Dataset contract, v1 readers on v2 data, and `refseg data stats`."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from refseg_ros.data import geometry
from refseg_ros.data.masks import decode_rle
from refseg_ros.data.v2 import cameras, targets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory):
    from refseg_ros.data.v2.generate import generate_split_v2

    root = str(tmp_path_factory.mktemp("v2"))
    generate_split_v2(root, "train", 3, seed=5, workers=1, long_side=160, progress=False)
    generate_split_v2(root, "cameras", 2, seed=5, workers=1, long_side=160, progress=False)
    return root


def _index(root, split):
    with open(os.path.join(root, f"{split}.json")) as f:
        return json.load(f)


def test_same_seed_same_scene_any_history(v2_dir):
    from refseg_ros.data.v2.generate import scene_record, scene_seed_v2
    from refseg_ros.data.v2.scene import render_scene_v2
    from refseg_ros.data.v2.splits import rules_for

    seed = scene_seed_v2(5, "train", 1)
    a = render_scene_v2(seed, rules_for("train"), 160)
    render_scene_v2(seed + 1, rules_for("train"), 160)
    b = render_scene_v2(seed, rules_for("train"), 160)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instances, b.instances)
    with open(os.path.join(v2_dir, "train/scenes/000001.json")) as f:
        on_disk = json.load(f)
    assert json.loads(json.dumps(scene_record(a, "train", 1))) == on_disk


def test_masks_are_exact_and_intrinsics_match_the_image(v2_dir):
    import cv2

    index = _index(v2_dir, "train")
    for img in index["images"]:
        info = img["camera_info"]
        assert (info["width"], info["height"]) == (img["width"], img["height"])
        rgb = cv2.imread(os.path.join(v2_dir, img["file_name"]))
        assert rgb.shape[:2] == (img["height"], img["width"])
        K = geometry.K_from_camera_info(info)
        assert cameras.hfov_from_K(K, img["width"]) == pytest.approx(img["camera"]["hfov_deg"],
                                                                     abs=1e-3)
        assert cameras.in_ranges(img["camera"], cameras.TRAIN_RANGES)
        depth = cv2.imread(os.path.join(v2_dir, img["depth_file"]), cv2.IMREAD_UNCHANGED)
        anns = [a for a in index["annotations"] if a["image_id"] == img["id"]]
        union = np.zeros((img["height"], img["width"]), np.int32)
        for a in anns:
            m = decode_rle(a["segmentation"])
            assert int(m.sum()) == a["area"] > 0
            ys, xs = np.nonzero(m)
            assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()] == a["bbox"]
            union += m
            # projection of the stored 3D centre is the stored pixel centre (K is the lens)
            uv = geometry.project(K, np.array([a["position_cam"]]))[0]
            assert np.allclose(uv, a["center_px"], atol=0.05)
            # the object's depth pixels lie near its centre's depth
            z = depth[m.astype(bool)] / 1000.0
            assert abs(np.median(z[z > 0]) - a["position_cam"][2]) < 0.5 * max(a["dimensions"]) + 0.05
        assert union.max() <= 1  # instance masks never overlap


def test_target_lists_on_disk_are_exact(v2_dir):
    for split in ("train", "cameras"):
        index = _index(v2_dir, split)
        anns = {a["id"]: a for a in index["annotations"]}
        for img in index["images"]:
            objs = [a for a in index["annotations"] if a["image_id"] == img["id"]]
            for e in [e for e in index["expressions"] if e["image_id"] == img["id"]]:
                got = targets.evaluate(e["structure"], objs, img["width"])
                assert [objs[i]["id"] for i in got] == e["target_ann_ids"], e
                assert all(anns[a]["image_id"] == img["id"] for a in e["target_ann_ids"])
    cams = _index(v2_dir, "cameras")
    assert all(not cameras.in_ranges(i["camera"], cameras.TRAIN_RANGES) for i in cams["images"])


def test_dataset_samples_and_v1_reader(v2_dir):
    from refseg_ros.data import TabletopRefDataset
    from refseg_ros.data.v2.dataset import TabletopV2Dataset

    ds = TabletopV2Dataset(v2_dir, "train")
    assert len(ds) == len(_index(v2_dir, "train")["expressions"])
    seen = set()
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].dtype == np.uint8 and s["mask"].shape == s["image"].shape[:2]
        assert s["target_masks"].shape[0] == len(s["targets"])
        if s["no_target"]:
            assert s["mask"].sum() == 0 and not s["box"].any()
        else:
            assert np.array_equal(s["mask"], s["target_masks"].max(0))
        seen.add(s["type"])
    v1 = TabletopRefDataset(v2_dir, "train")  # single-target expressions, v1's shape
    assert len(v1) > 0 and set(v1.types) <= seen - {"no_target", "multi_target", "negation"}


def test_stats_command_and_sheet(v2_dir, tmp_path, capsys):
    from refseg_ros.cli.main import main

    sheet = str(tmp_path / "sheet.png")
    assert main(["data", "stats", "--data", v2_dir, "--split", "train", "--json",
                 "--sheet", sheet]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["scenes"] == 3 and st["expressions"] > 0 and st["categories"] >= 2
    assert {"no_target", "multi_target", "negation"} <= set(st["by_type"])
    assert 55 <= st["hfov_deg"][0] <= st["hfov_deg"][1] <= 90
    assert 0.3 <= st["distance_m"][0] <= st["distance_m"][1] <= 2.0
    assert os.path.getsize(sheet) > 1000
    assert main(["data", "stats", "--data", str(tmp_path), "--split", "nope"]) == 1


def test_colour_variety_is_recorded_and_changes_only_what_it_should(v2_dir, tmp_path):
    """--colour-variety: other paints, recorded in the split's params (a resume with another
    value is refused); 0 renders exactly what the catalogue paints give (the v2_dir fixture)."""
    from refseg_ros.data.v2.generate import generate_split_v2

    root = str(tmp_path)
    generate_split_v2(root, "train", 2, seed=5, workers=1, long_side=160, progress=False, colour_variety=1.0)
    with open(os.path.join(root, "train", "params.json")) as f:
        assert json.load(f)["colour_variety"] == 1.0
    with open(os.path.join(v2_dir, "train", "params.json")) as f:
        assert "colour_variety" not in json.load(f)
    with pytest.raises(ValueError, match="resuming would mix"):
        generate_split_v2(root, "train", 3, seed=5, workers=1, long_side=160, progress=False)
    with pytest.raises(ValueError, match="colour_variety"):
        generate_split_v2(root, "val", 1, seed=5, workers=1, long_side=160, progress=False, colour_variety=2.0)
    import cv2

    assert any(not np.array_equal(*(cv2.imread(os.path.join(r, _index(r, "train")["images"][i]["file_name"]))
                                     for r in (root, v2_dir))) for i in range(2))
