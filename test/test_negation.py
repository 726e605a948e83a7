"""Negations grounded by composition: the text split (``language/negation.py``), the combination of
the two parts' outputs (``model/compose.py``) and the predictor's three paths on the shipped weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from refseg_ros.language.negation import Negation, all_of, split_negation
from refseg_ros.model.compose import DROP_SHARE, OUTSIDE_LOGIT, Composition
from refseg_ros.model.heads import GroundingOutput


@pytest.mark.parametrize("text, keep, drop", [
    ("the mug that is not red", "all the mugs", "all the red mugs"),
    ("Could you hand me the mugs that aren't red?", "all the mugs", "all the red mugs"),
    ("all cups that aren't blue", "all the cups", "all the blue cups"),
    ("the cup other than blue ones", "all the cups", "all the blue cups"),
    ("every cup except blue ones", "all the cups", "all the blue cups"),
    ("the big dish rack that is not yellow, please", "all the big dish racks", "all the yellow big dish racks"),
    ("the object that is not a duck", "all the objects", "all the ducks"),
    ("The Thing That Isn'T A Soccer Ball!", "all the objects", "all the soccer balls"),
    ("whatever is not a duck", "all the objects", "all the ducks"),
    ("everything that is not a can of soup", "all the objects", "all the cans of soup"),
    ("all the objects that aren't cans of soup", "all the objects", "all the cans of soup"),
    ("anything but mugs", "all the objects", "all the mugs"),
    ("the glass that isn't green", "all the glasses", "all the green glasses"),
    ("the battery that is not black", "all the batteries", "all the black batteries"),
    ("the one that is not green", "all the objects", "all the green objects"),
    # typos the generator (and a keyboard) makes in the words that carry the structure
    ("the mug thta is not red", "all the mugs", "all the red mugs"),
    ("the objcet that is not a plate", "all the objects", "all the plates"),
    ("object that is not a bread", "all the objects", "all the breads"),
])
def test_negations_split_into_keep_and_drop(text, keep, drop):
    assert split_negation(text) == Negation(keep=keep, drop=drop)


@pytest.mark.parametrize("text", [
    "", "not", "all", "the red mug", "the mug on the left", "not the duck", "the mug is not red",
    "the mug that is not on the left", "the mug that isn't a cup", "all the red cubes",
    "the mug that is not", "the mug next to the duck that is not red on the far left of the tray",
    "the object that is not of", "the object that is not of red", "everything that isn't and", "whatever isn't",
    "anything but", "but", "is not", "that is not a", "the a that is not red", "all the of that are not red",
])
def test_other_expressions_are_not_split(text):
    assert split_negation(text) is None


def test_every_generated_negation_splits_and_names_its_parts():
    """Every template, both sides (train and held-out), with the generator's request wrappers."""
    from refseg_ros.data.v2 import assets as A
    from refseg_ros.data.v2 import wording

    rng = np.random.default_rng(0)
    cats = sorted(A.CATEGORY_V2)
    seen = set()
    for i in range(600):
        cat = cats[i % len(cats)]
        held_out = bool(i % 2)
        if i % 3:
            s = {"type": "negation", "head": {"category": cat}, "exclude": {"colour": "red"}}
        else:
            s = {"type": "negation", "head": {}, "exclude": {"category": cat}}
        clean, template = wording.realise(s, rng, held_out)
        seen.add(template)
        wrapper = wording._pick(wording.WRAPPERS, rng, held_out)
        neg = split_negation(wrapper.format(e=clean))
        assert neg is not None, clean
        said = s["head"].get("category") or s["exclude"]["category"]
        plurals = {f"all the {form}" for n in A.nouns_for(said, held_out) if f" {n} " in f" {clean} "
                   or f" {A.plural(n, said)} " in f" {clean} " for form in (A.plural(n, said), all_of(n.split())[8:])}
        if "colour" in s["exclude"]:  # all the mugs / all the red mugs
            assert neg.keep in plurals and neg.drop == neg.keep.replace("all the ", "all the red ", 1), (clean, neg)
        else:  # all the objects / all the mugs
            assert neg.keep == "all the objects" and neg.drop in plurals, (clean, neg)
    assert len(seen) == 12  # every negation template was said


def _out(masks: list[np.ndarray], presence: list[float]) -> GroundingOutput:
    m = torch.tensor(np.stack(masks), dtype=torch.float32).unsqueeze(1)
    n = len(masks)
    return GroundingOutput(box=torch.full((n, 4), 0.5), mask_logits=m, attention=torch.zeros(n, 6),
                           grid_hw=(2, 3), presence=torch.tensor(presence))


def test_composition_keeps_what_the_drop_part_does_not_cover():
    comp = Composition.of(["the duck", "the cube that is not red"])
    assert comp.model_expressions == ("the duck", "all the cubes", "all the red cubes")
    assert comp.drop_rows == (-1, 2) and comp.source_rows() == [0, 1, 1]
    duck = np.full((8, 12), -3.0)
    duck[1:3, 1:3] = 4.0
    cubes = np.full((8, 12), -5.0)
    cubes[2:4, 6:8] = 3.0   # the red cube
    cubes[5:8, 0:4] = 2.0   # the other cube
    red = np.full((8, 12), -4.0)
    red[2:4, 6:8] = 6.0
    out = comp.combine(_out([duck, cubes, red], [3.0, 5.0, 4.0]))
    assert out.mask_logits.shape == (2, 1, 8, 12) and out.attention.shape == (2, 6)
    assert torch.equal(out.mask_logits[0, 0], torch.tensor(duck, dtype=torch.float32))  # passes through
    kept = (out.mask_logits[1, 0] > 0).numpy()
    want = np.zeros((8, 12), bool)
    want[5:8, 0:4] = True
    assert np.array_equal(kept, want)
    # the box of the cells left, normalised cxcywh: x 0..4 of 12, y 5..8 of 8
    assert torch.allclose(out.box[1], torch.tensor([2 / 12, 6.5 / 8, 4 / 12, 3 / 8]))
    assert torch.allclose(out.box[0], torch.full((4,), 0.5))
    # found when the head's objects are there (5.0) and something is left (its highest logit, 2.0)
    assert float(out.presence[1]) == pytest.approx(2.0) and float(out.presence[0]) == 3.0


def test_composition_drops_objects_whole_by_their_share_in_the_drop_part():
    """A part of "all the cubes" mostly inside "all the red cubes" goes with its fringe; a part the
    drop mask only grazes stays whole (logits untouched), so neither a red cube's rim nor half a
    neighbour is the answer."""
    comp = Composition.of(["the cube that is not red"])
    cubes = np.full((8, 12), -5.0)
    cubes[0:4, 0:5] = 3.0     # the red cube, 20 cells: the drop mask covers 16 (0.8)
    cubes[5:8, 7:12] = 2.0    # the other cube, 15 cells: the drop mask grazes 3 (0.2)
    red = np.full((8, 12), -4.0)
    red[0:4, 0:4] = 6.0
    red[5:8, 7:8] = 1.0
    out = comp.combine(_out([cubes, red], [5.0, 4.0]))
    logits = out.mask_logits[0, 0]
    assert bool((logits[0:4, 0:5] == OUTSIDE_LOGIT).all())   # the rim column 4 went with it
    assert torch.equal(logits[5:8, 7:12], torch.full((3, 5), 2.0))
    assert torch.equal(logits[4], torch.full((12,), -5.0))    # cells outside both parts keep their logits
    assert torch.allclose(out.box[0], torch.tensor([9.5 / 12, 6.5 / 8, 5 / 12, 3 / 8]))
    assert float(out.presence[0]) == pytest.approx(2.0)
    # at exactly the share the part goes; one cell under it, it stays
    for covered, gone in ((int(np.ceil(DROP_SHARE * 20)), True), (int(np.ceil(DROP_SHARE * 20)) - 1, False)):
        red = np.full((8, 12), -4.0)
        red.reshape(-1)[[r * 12 + c for r in range(4) for c in range(5)][:covered]] = 6.0
        out = comp.combine(_out([cubes, red], [5.0, 4.0]))
        assert bool((out.mask_logits[0, 0, 0:4, 0:5] == OUTSIDE_LOGIT).all()) == gone, covered


def test_composition_with_nothing_left_is_not_present():
    comp = Composition.of(["the cube that is not red"])
    cubes = np.full((4, 4), -5.0)
    cubes[0:2, 0:2] = 3.0
    red = np.full((4, 4), -4.0)
    red[0:3, 0:3] = 2.0
    out = comp.combine(_out([cubes, red], [6.0, 5.0]))
    assert not bool((out.mask_logits > 0).any()) and float(out.presence[0]) < 0


def test_composition_off_or_without_negations_changes_nothing():
    out = _out([np.zeros((4, 4)), np.ones((4, 4))], [1.0, 2.0])
    for comp in (Composition.of(["the duck", "all the mugs"]), Composition.of(["the mug that is not red"], False)):
        assert not comp.composed and comp.combine(out) is out
    assert Composition.of(["the mug that is not red"], False).model_expressions == ("the mug that is not red",)


@pytest.mark.slow
def test_predictor_paths_agree_and_stay_inside_keep_without_drop(shipped_predictor, frames):
    """The node's path (set_command + predict), predict_once and predict_batch give the same
    answers for negations (real weights, a frame with three red cubes and four mugs, one red): "the
    mugs that aren't red" lies in "all the mugs", mostly outside "all the red mugs"; "the cube that
    is not red" is not there."""
    predictor = shipped_predictor
    image = np.ascontiguousarray(frames[0])
    exprs = ["all the mugs that aren't red", "the cube that is not red", "the duck"]
    predictor.set_command(exprs)
    streamed = predictor.predict(image)
    once = predictor.predict_once(image, exprs)
    batch = predictor.predict_batch([image] * len(exprs), exprs)
    for a, b, c in zip(streamed, once, batch):
        assert a.expression == b.expression == c.expression
        assert np.array_equal(a.mask, b.mask) and np.array_equal(a.mask, c.mask)
        assert a.score == pytest.approx(b.score, abs=1e-5) and a.score == pytest.approx(c.score, abs=1e-5)
    keep, drop = predictor.predict_once(image, ["all the mugs", "all the red mugs"])
    mugs, cube = streamed[0], streamed[1]
    assert mugs.found and len(mugs.instances) >= 2 and not (mugs.mask & ~keep.mask).any()
    assert (mugs.mask & drop.mask).sum() < DROP_SHARE * mugs.mask.sum()
    cubes, red_cubes = predictor.predict_once(image, ["all the cubes", "all the red cubes"])
    assert len(cubes.instances) == len(red_cubes.instances) == 3  # the frame's premise
    assert not cube.found and not cube.mask.any()
    # the other expression is what the model says for it alone
    alone = predictor.predict_once(image, ["the duck"])[0]
    assert np.array_equal(alone.mask, streamed[2].mask)


def test_any_word_salad_gives_none_or_two_parts():
    """Commands reach the node from speech and keyboards: no arrangement of the words the rules
    look at raises, and every split names something on both sides."""
    words = ["not", "that", "thta", "which", "of", "and", "is", "are", "isn't", "aren't", "but", "except",
             "for", "other", "than", "a", "the", "all", "every", "everything", "whatever", "object", "things",
             "ones", "one", "mug", "mugs", "red", "big", "left", "on", "please", "can", "soup", "", "'"]
    rng = np.random.default_rng(1)
    for _ in range(3000):
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 9))))
        neg = split_negation(text)
        assert neg is None or (neg.keep.split()[-1] not in ("the", "every", "of", "and")
                               and neg.drop.split()[-1] not in ("the", "every", "of", "and")), (text, neg)


def test_a_speck_of_the_keep_part_outside_the_drop_part_is_not_an_answer():
    """"The cube that is not red" with every cube red: the keep part's objects all lie in the drop
    part, and a speck of a few cells left outside it (smaller than any instance the
    post-processing would keep) is dropped too, so nothing is left; an object-sized part stays."""
    import torch

    from refseg_ros.model.compose import OUTSIDE_LOGIT, _without_dropped
    from refseg_ros.model.postprocess import INSTANCE_MIN_SHARE

    keep = torch.full((1, 40, 40), -5.0)
    drop = torch.full((1, 40, 40), -5.0)
    for y, x in ((2, 2), (2, 20), (25, 5)):  # three 10x10 cubes, all red
        keep[0, y:y + 10, x:x + 10] = 5.0
        drop[0, y:y + 10, x:x + 10] = 5.0
    keep[0, 30:32, 30:32] = 5.0  # a 4-cell speck, not in the drop part
    assert 4 < INSTANCE_MIN_SHARE * 100
    out = _without_dropped(keep, drop, 0.0)
    assert not (out > 0).any() and (out[keep > 0] == OUTSIDE_LOGIT).all()
    keep[0, 30:38, 30:38] = 5.0  # an object-sized part outside the drop part stays, logits unchanged
    out = _without_dropped(keep, drop, 0.0)
    assert (out > 0).sum() == 64 and torch.equal(out[0, 30:38, 30:38], keep[0, 30:38, 30:38])
