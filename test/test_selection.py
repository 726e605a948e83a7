"""Ordinals and nearest-to-a-landmark picked among the head's objects: the text split
(``language/selection.py``), the pick (``model/compose.py``) and the predictor on rendered scenes
with the shipped weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from refseg_ros.language.selection import Selection, split_selection
from refseg_ros.model.compose import Composition, pick_part
from refseg_ros.model.heads import GroundingOutput


@pytest.mark.parametrize("text, want", [
    ("the second mug from the left", Selection("ordinal", "all the mugs", k=2, side="left")),
    ("Could you pass me the red mug second from the right, please?",
     Selection("ordinal", "all the red mugs", k=2, side="right")),
    ("counting from the left, the third cup", Selection("ordinal", "all the cups", k=3, side="left")),
    ("the third cup starting from the left", Selection("ordinal", "all the cups", k=3, side="left")),
    ("ball second from left", Selection("ordinal", "all the balls", k=2, side="left")),
    ("the fourth box from the rigth", Selection("ordinal", "all the boxes", k=4, side="right")),
    ("the second object from the left", Selection("ordinal", "all the objects", k=2, side="left")),
    ("the mug closest to the duck", Selection("nearest", "all the mugs", landmark="the duck")),
    ("where is the nearest white mug to the bottle of wine?",
     Selection("nearest", "all the white mugs", landmark="the bottle of wine")),
    ("Nearest White Plate To Coffee Pot", Selection("nearest", "all the white plates", landmark="the coffee pot")),
    ("the mug nearest the duck", Selection("nearest", "all the mugs", landmark="the duck")),
    ("the cube that is closest to the black tray", Selection("nearest", "all the cubes", landmark="the black tray")),
    ("the mug farthest from the duck", Selection("farthest", "all the mugs", landmark="the duck")),
    ("the mug clsoest to the duck", Selection("nearest", "all the mugs", landmark="the duck")),
])
def test_selections_split(text, want):
    assert split_selection(text) == want


@pytest.mark.parametrize("text", [
    "", "second", "the second", "from the left", "the second from the left", "the mug on the left",
    "the leftmost mug", "the nearest mug", "the mug closest to me", "the mug closest to the camera",
    "the mug closest to the camear", "the object closest to the duck", "the mug furthest to the right",
    "the mug furthest to the riglt", "the second mug from the left of the duck", "the second mug",
    "the mug closest to the duck and the cup", "the second mug from the left that is not red",
    "all the mugs closest to the duck", "the mug closest to the front", "the mug left of the duck",
    "the second mug from the third cup from the left",
])
def test_other_expressions_are_not_split(text):
    assert split_selection(text) is None


def test_every_generated_ordinal_and_nearest_splits():
    """Every ordinal and nearest-to-a-landmark template, both sides (train and held-out), with the
    generator's request wrappers."""
    from refseg_ros.data.v2 import assets as A
    from refseg_ros.data.v2 import wording

    rng = np.random.default_rng(0)
    cats = sorted(A.CATEGORY_V2)
    seen = set()
    for i in range(400):
        cat, other = cats[i % len(cats)], cats[(i * 7 + 3) % len(cats)]
        if other == cat:
            continue
        held_out = bool(i % 2)
        if i % 3:
            k, side = 2 + (i // 2) % 2, ("left", "right")[(i // 4) % 2]
            s = {"type": "ordinal", "head": {"category": cat}, "ordinal": {"k": k, "from": side}}
        else:
            s = {"type": "proximity", "head": {"category": cat},
                 "proximity": {"extreme": "closest", "landmark": {"category": other}}}
        clean, template = wording.realise(s, rng, held_out)
        seen.add(template)
        sel = split_selection(wording._pick(wording.WRAPPERS, rng, held_out).format(e=clean))
        assert sel is not None and sel.head.startswith("all the "), clean
        if s["type"] == "ordinal":
            assert (sel.kind, sel.k, sel.side) == ("ordinal", k, side), (clean, sel)
        else:
            assert sel.kind == "nearest" and sel.landmark[4:] in clean, (clean, sel)
    assert len(seen) == 8  # 4 ordinal templates, 4 nearest-to-a-landmark ones


def _map(cols: list[tuple[int, int]], rows: tuple[int, int] = (3, 6), h: int = 12, w: int = 24) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for c0, c1 in cols:
        m[rows[0]:rows[1], c0:c1] = True
    return m


def test_pick_part_takes_the_kth_from_its_side_and_the_nearest_to_the_landmark():
    mugs = _map([(1, 3), (8, 10), (15, 18)])
    second_left = pick_part(Selection("ordinal", "all the mugs", k=2, side="left"), mugs)
    assert np.array_equal(second_left, _map([(8, 10)]))
    third_right = pick_part(Selection("ordinal", "all the mugs", k=3, side="right"), mugs)
    assert np.array_equal(third_right, _map([(1, 3)]))
    # fewer objects than asked for: nothing is picked, the model's answer stands
    assert pick_part(Selection("ordinal", "all the mugs", k=4, side="left"), mugs) is None
    assert pick_part(Selection("ordinal", "all the mugs", k=2, side="left"), np.zeros((12, 24), bool)) is None
    duck = _map([(19, 22)], rows=(8, 11))
    near = Selection("nearest", "all the mugs", landmark="the duck")
    far = Selection("farthest", "all the mugs", landmark="the duck")
    assert np.array_equal(pick_part(near, mugs, duck), _map([(15, 18)]))
    assert np.array_equal(pick_part(far, mugs, duck), _map([(1, 3)]))
    # the landmark's own cells are not one of the head's objects; no landmark: nothing picked
    assert np.array_equal(pick_part(near, mugs | duck, duck), _map([(15, 18)]))
    assert pick_part(near, mugs, np.zeros((12, 24), bool)) is None and pick_part(near, mugs) is None


def test_composition_puts_the_picked_part_in_the_expressions_row():
    comp = Composition.of(["the second mug from the left", "the mug closest to the duck"])
    assert comp.model_expressions == ("the second mug from the left", "the mug closest to the duck",
                                      "all the mugs", "all the mugs", "the duck")
    assert comp.selection_rows[0][1:] == (2, -1) and comp.selection_rows[1][1:] == (3, 4)
    assert comp.source_rows() == [0, 1, 0, 1, 1]
    mugs, duck = _map([(1, 3), (8, 10), (15, 18)]), _map([(19, 22)], rows=(8, 11))
    own = _map([(1, 3)])  # the model's own answers: the first mug, for both
    logits = [np.where(m, 3.0, -3.0) for m in (own, own, mugs, mugs, duck)]
    out = comp.combine(GroundingOutput(
        box=torch.full((5, 4), 0.5), mask_logits=torch.tensor(np.stack(logits), dtype=torch.float32).unsqueeze(1),
        attention=torch.zeros(5, 6), grid_hw=(2, 3), presence=torch.tensor([2.0, 1.5, 4.0, 4.0, 4.0])))
    assert out.mask_logits.shape == (2, 1, 12, 24)
    assert np.array_equal((out.mask_logits[0, 0] > 0).numpy(), _map([(8, 10)]))
    assert np.array_equal((out.mask_logits[1, 0] > 0).numpy(), _map([(15, 18)]))
    # the box of the part (cells 8-10 of 24, rows 3-6 of 12), the presence the model's own
    assert torch.allclose(out.box[0], torch.tensor([9 / 24, 4.5 / 12, 2 / 24, 3 / 12]))
    assert out.presence.tolist() == [2.0, 1.5]
    text = "the second mug from the left"
    assert Composition.of([text], pick=False).model_expressions == (text,)


def test_any_word_salad_gives_none_or_a_whole_selection():
    words = ["second", "third", "fifth", "from", "the", "left", "right", "closest", "nearest", "farthest", "to",
             "mug", "mugs", "duck", "red", "of", "and", "counting", "starting", "object", "me", "that", "is",
             "not", "a", "", "'s", "please", "camera"]
    rng = np.random.default_rng(2)
    for _ in range(3000):
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 9))))
        sel = split_selection(text)
        if sel is None:
            continue
        assert len(sel.head.split()) > 2 and sel.head.split()[-1] not in ("the", "of", "and"), (text, sel)
        if sel.kind == "ordinal":
            assert sel.k >= 2 and sel.side in ("left", "right") and not sel.landmark, (text, sel)
        else:
            assert len(sel.landmark.split()) > 1 and sel.landmark.split()[-1] not in ("the", "of", "and"), (text, sel)


@pytest.mark.slow
def test_shipped_weights_pick_the_named_one_more_often():
    """Rendered tabletop scenes: every "the second <kind> from the left/right" whose order is clear
    (centres 32 px apart) and every "the <kind> closest to the <unique kind>" whose nearest is clear
    (40 px); the answer's box against the named object's (IoU >= 0.5), with and without the pick."""
    from refseg_ros.data.sim_scene import ground_truth
    from refseg_ros.data.tabletop import render_scene
    from refseg_ros.model.predictor import DEFAULT_CHECKPOINT, GroundingPredictor
    from refseg_ros.training.metrics import box_iou_xyxy

    torch.set_num_threads(2)
    on = GroundingPredictor.from_checkpoint(DEFAULT_CHECKPOINT)
    off = GroundingPredictor.from_checkpoint(DEFAULT_CHECKPOINT, pick_instances=False)
    right: dict[str, list[tuple[bool, bool]]] = {"ordinal": [], "nearest": []}

    def centre(o) -> np.ndarray:
        x0, y0, x1, y1 = o["bbox"]
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2])

    def judge(kind: str, image, text: str, target) -> None:
        right[kind].append(tuple(box_iou_xyxy(p.predict_once(image, [text])[0].box, target["bbox"]) >= 0.5
                                 for p in (on, off)))

    for seed in range(8):
        scene = render_scene(seed, 640, 480)
        kinds: dict[str, list[dict]] = {}
        for o in ground_truth(scene, seed, 0, "f", (0, 0))["objects"]:
            if o["bbox"] is not None:
                kinds.setdefault(o["category"], []).append(o)
        for kind, objects in kinds.items():
            if len(objects) < 2:
                continue
            by_x = sorted(objects, key=lambda o: centre(o)[0])
            if min(np.diff([centre(o)[0] for o in by_x])) >= 32:
                judge("ordinal", scene.image, f"the second {kind} from the left", by_x[1])
                judge("ordinal", scene.image, f"the second {kind} from the right", by_x[-2])
            for (landmark,) in (v for k, v in kinds.items() if k != kind and len(v) == 1):
                by_d = sorted(objects, key=lambda o: float(np.linalg.norm(centre(o) - centre(landmark))))
                gap = np.linalg.norm(centre(by_d[1]) - centre(landmark)) - np.linalg.norm(centre(by_d[0]) - centre(landmark))
                if gap >= 40:
                    judge("nearest", scene.image, f"the {kind} closest to the {landmark['category']}", by_d[0])
    ordinal, nearest = np.array(right["ordinal"]), np.array(right["nearest"])
    print(f"\nright with / without the pick: ordinal {ordinal[:, 0].sum()} / {ordinal[:, 1].sum()} of {len(ordinal)}, "
          f"nearest {nearest[:, 0].sum()} / {nearest[:, 1].sum()} of {len(nearest)}")
    assert len(ordinal) >= 15 and len(nearest) >= 6, (len(ordinal), len(nearest))
    assert ordinal[:, 0].sum() > ordinal[:, 1].sum() and nearest[:, 0].sum() > nearest[:, 1].sum()
    assert ordinal[:, 0].mean() >= 0.6 and nearest[:, 0].mean() >= 0.6
