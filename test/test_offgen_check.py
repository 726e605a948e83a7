"""tools/offgen_check.py: its own MuJoCo scenes have sound ground truth and unambiguous expressions.

Renders two scenes with the tool's functions (no model): masks, boxes, placement and each
expression's meaning are checked against the scene itself; the scoring is checked with a stand-in
predictor that answers with the ground truth.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "offgen_check.py"


def _load_tool():
    # not importorskip: importing mujoco here would fix its OpenGL backend before the tool
    # picks headless EGL
    if importlib.util.find_spec("mujoco") is None:
        pytest.skip("mujoco is not installed (requirements/offgen.txt)")
    spec = importlib.util.spec_from_file_location("offgen_check", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["offgen_check"] = module   # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    oc = _load_tool()
    renderer = oc.TableRenderer(tmp_path_factory.mktemp("offgen"))
    available = oc.available_models()
    try:
        built = [oc.build_scene(renderer, i, 11, available) for i in range(2)]
        again = oc.build_scene(renderer, 0, 11, available)
    finally:
        renderer.close()
    return oc, renderer, built, again


@pytest.mark.slow
def test_masks_and_boxes_come_from_the_render(scenes):
    oc, _, built, again = scenes
    for scene, render, _ in built:
        rgb = render["rgb"]
        assert rgb.dtype == np.uint8 and rgb.shape == (oc.HEIGHT, oc.WIDTH, 3)
        assert rgb.std() > 5, "a blank frame"
        assert 3 <= len(scene.objects) <= 7
        owner = np.zeros(rgb.shape[:2], int)
        for vis, full in zip(render["masks"], render["full"]):
            assert vis.shape == rgb.shape[:2] and vis.sum() > 0
            assert not (vis & ~full).any(), "visible pixels outside the object's own silhouette"
            owner += vis
            x0, y0, x1, y1 = oc.mask_box(vis)
            assert 0 <= x0 < x1 <= oc.WIDTH and 0 <= y0 < y1 <= oc.HEIGHT
            ys, xs = np.nonzero(vis)   # the box is the mask's tight box
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            assert oc.ok_in_view(vis), "an object touches the image border"
        assert owner.max() == 1, "a pixel belongs to two objects"
    # deterministic for a seed: the same scene renders to the same pixels
    assert np.array_equal(again[1]["rgb"], built[0][1]["rgb"])


@pytest.mark.slow
def test_objects_stand_apart_on_the_table(scenes):
    oc, renderer, built, _ = scenes
    for scene, _, _ in built:
        discs = [(o.xy, oc.radius_of(o, renderer.radius)) for o in scene.objects]
        for (p, r) in discs:
            assert abs(p[0]) + r <= oc.REGION_HALF[0] + 1e-9 and abs(p[1]) + r <= oc.REGION_HALF[1] + 1e-9
        for (p, r), (q, s) in itertools.combinations(discs, 2):
            assert math.dist(p, q) > r + s, "footprints overlap"


@pytest.mark.slow
def test_each_expression_names_exactly_its_target(scenes):
    oc, _, built, _ = scenes
    kinds = set()
    for scene, render, exprs in built:
        geo = oc.geometry(render)
        objs = scene.objects
        assert any(e.target is not None for e in exprs) and any(e.target is None for e in exprs)
        for e in exprs:
            kinds.add(e.kind)
            d = e.desc
            nouns = oc.NOUNS.get(d["category"], (d["category"],))
            assert any(n in e.text for n in nouns), e.text
            if e.target is None:   # absent: nothing on the table could be meant
                assert not any(o.category == d["category"] and (d.get("colour") is None
                               or o.colour in (None, d["colour"])) for o in objs), e.text
                continue
            t = objs[e.target]
            assert t.category == d["category"]
            assert geo[e.target]["visible"] >= oc.MIN_VISIBLE
            same = [i for i, o in enumerate(objs) if o.category == t.category and i != e.target]
            if e.kind == "category":
                assert not same, e.text
            if e.kind == "attribute":
                assert t.colour == d["colour"] and d["colour"] in e.text
                assert all(objs[i].colour not in (None, t.colour) for i in same), e.text
            if e.kind == "location":
                assert same
                sign = {"left": 1, "right": -1}.get(d["where"])
                if sign:   # clearly further left (right) than every other one of its kind
                    assert all(sign * (geo[i]["cx"] - geo[e.target]["cx"]) >= 0.05 * oc.WIDTH for i in same)
                else:
                    sign = 1 if d["where"] == "front" else -1
                    assert all(sign * (geo[i]["depth"] - geo[e.target]["depth"]) >= 0.05 for i in same)
            if e.kind == "relation":
                anchors = [i for i, o in enumerate(objs) if o.category == d["anchor"]]
                assert len(anchors) == 1
                sign = 1 if d["relation"] == "left of" else -1
                assert sign * (geo[anchors[0]]["cx"] - geo[e.target]["cx"]) >= 0.05 * oc.WIDTH
                assert all(sign * (geo[i]["cx"] - geo[anchors[0]]["cx"]) >= 0.05 * oc.WIDTH for i in same)
            assert oc.referents(d, objs, geo) == [e.target]
    assert {"absent"} < kinds


@pytest.mark.slow
def test_scoring_with_a_perfect_stand_in(scenes):
    oc, _, built, _ = scenes
    scene, render, exprs = built[0]

    class Oracle:
        def predict_once(self, image, texts):
            out = []
            for text in texts:
                e = next(x for x in exprs if x.text == text)
                if e.target is None:
                    out.append(SimpleNamespace(box=(0.0, 0.0, 1.0, 1.0), mask=np.zeros(image.shape[:2], bool),
                                               found=False, score=0.0))
                else:
                    m = render["masks"][e.target]
                    out.append(SimpleNamespace(box=oc.mask_box(m), mask=m, found=True, score=1.0))
            return out

    records = oc.score_expressions(Oracle(), scene, render, exprs)
    assert len(records) == len(exprs) and all(r["correct"] for r in records)
    assert all(r["box_iou"] == 1.0 and r["mask_iou"] == 1.0 for r in records if r["target"] is not None)
    summary = oc.summarize(records)
    assert summary["overall"]["accuracy"] == 100.0 and summary["overall"]["n"] == len(exprs)
    assert oc.size_bucket((0, 0, 20, 20))[1] == "<15"       # 20 px at 640x480 = 10 px at 320x240
    assert oc.size_bucket((0, 0, 100, 100))[1] == ">=45"


def test_a_cached_scene_scores_as_the_rendered_one(scenes, tmp_path):
    """--scene-cache: a scene saved and loaded again gives the same records as the one rendered."""
    oc, _, built, _ = scenes
    scene, render, exprs = built[1]

    class Corner:  # a predictor that answers every expression with one fixed region
        def predict_once(self, image, texts):
            mask = np.zeros(image.shape[:2], bool)
            mask[: image.shape[0] // 2, : image.shape[1] // 2] = True
            return [SimpleNamespace(box=oc.mask_box(mask), mask=mask, found=len(t) % 2 == 0, score=0.5)
                    for t in texts]

    path = tmp_path / "scene_0001.npz"
    oc.save_scene(path, scene, render, exprs)
    assert not list(tmp_path.glob("*.tmp.npz"))
    scene2, render2, exprs2 = oc.load_scene(path)
    assert np.array_equal(render2["rgb"], render["rgb"])
    assert all(np.array_equal(a, b) for a, b in zip(render2["masks"], render["masks"]))
    assert [e.text for e in exprs2] == [e.text for e in exprs]
    fresh = json.loads(json.dumps(oc.score_expressions(Corner(), scene, render, exprs)))
    assert oc.score_expressions(Corner(), scene2, render2, exprs2) == fresh
    # the cache is keyed by the tool's own code and the installed models
    available = oc.available_models()
    assert oc.scene_cache_dir(tmp_path, 7, available) == oc.scene_cache_dir(tmp_path, 7, set(available))
    assert oc.scene_cache_dir(tmp_path, 7, available) != oc.scene_cache_dir(tmp_path, 8, available)
    assert oc.scene_cache_dir(tmp_path, 7, available) != oc.scene_cache_dir(tmp_path, 7, available - {"duck"})
