"""The no-target output end to end in the model package: the presence head (folded = unfolded, in
the ONNX graph), its loss, the post-processing's found/instances decisions, the number rule that
picks one or every part of a mask, calibration."""
import numpy as np
import pytest
import torch

from refseg_ros.language.number import asks_for_many, stated_count
from refseg_ros.model.heads import GroundingOutput
from refseg_ros.model.letterbox import Letterbox
from refseg_ros.model.losses import GroundingLoss
from refseg_ros.model.postprocess import PostProcess


@pytest.mark.parametrize("text, many", [
    ("all the red cubes", True), ("both mugs", True), ("Every duck.", True), ("the 3 cups", True),
    ("grab the two bowls", True), ("the bowls that aren't white", True), ("everything that is not a cube", True),
    ("the thing that isn't a mug", True),
    ("the red mug", False), ("the mug that is not red", False), ("the second cube from the left", False),
    ("the mug between both ducks", False), ("the cup next to all the plates", False), ("", False),
    ("not", False), ("all", True),
])
def test_asks_for_many(text, many):
    assert asks_for_many(text) is many


@pytest.mark.parametrize("text, count", [
    ("both mugs", 2), ("Can you pass me both footballs?", 2), ("grab the two bowls", 2), ("the 3 cups", 3),
    ("the pair of cups", 2), ("four red cubes, please", 4), ("the two cups that are not red", 2),
    ("all the red cubes", None), ("the mug between both ducks", None), ("the second of the two mugs", None),
    ("the cup left of both mugs", None), ("the mug that is 2 cm tall", None), ("", None), ("two", 2),
])
def test_stated_count(text, count):
    assert stated_count(text) == count


def _outputs(logits: np.ndarray, presence):
    n = logits.shape[0]
    return (torch.full((n, 4), 0.5), torch.as_tensor(logits, dtype=torch.float32)[:, None],
            None if presence is None else torch.as_tensor(presence, dtype=torch.float32))


def _two_blobs(n: int) -> np.ndarray:
    logits = np.full((n, 16, 16), -8.0, np.float32)
    logits[:, 2:6, 2:6] = 8.0   # larger part
    logits[:, 10:13, 10:13] = 8.0  # smaller part, far from the first
    return logits


def test_presence_decides_found_and_empties_the_mask():
    lb = Letterbox.fit((64, 64), (64, 64))
    boxes, logits, presence = _outputs(_two_blobs(2), [-4.0, 4.0])
    post = PostProcess(box_source="mask", mask_components="auto", found_threshold=0.5)
    absent, present = post(boxes, logits, lb, ["the green mug", "the red mug"], presence)
    assert not absent.found and absent.score == pytest.approx(torch.sigmoid(torch.tensor(-4.0)).item())
    assert not absent.mask.any() and absent.instances == []
    assert present.found and present.score > 0.98 and len(present.instances) == 1
    # a single referent under "auto": only the largest part, the instance is the whole result
    assert np.array_equal(present.instances[0].mask, present.mask) and present.box == (8.0, 8.0, 24.0, 24.0)
    assert not present.mask[32:, 32:].any()
    # without presence logits: the mask score decides and the mask is kept (old checkpoints)
    old = post(boxes, logits, lb, ["the green mug", "the red mug"])
    assert all(g.found and g.mask.any() for g in old)


def test_every_part_is_an_instance_when_the_expression_asks_for_all():
    lb = Letterbox.fit((64, 64), (64, 64))
    boxes, logits, presence = _outputs(_two_blobs(1), [5.0])
    post = PostProcess(box_source="mask", mask_components="auto")
    (g,) = post(boxes, logits, lb, ["all the red cubes"], presence)
    assert g.multi and len(g.instances) == 2
    big, small = g.instances
    assert big.mask.sum() > small.mask.sum() > 100 and g.mask.sum() == big.mask.sum() + small.mask.sum()
    assert big.box == (8.0, 8.0, 24.0, 24.0) and small.box == (40.0, 40.0, 52.0, 52.0)
    assert not (big.mask & small.mask).any()
    # "largest" overrides the number rule
    (one,) = PostProcess(box_source="mask", mask_components="largest")(boxes, logits, lb, ["all the red cubes"],
                                                                       presence)
    assert np.array_equal(one.mask, big.mask) and len(one.instances) == 1


def test_a_stated_count_keeps_that_many_parts():
    """"both cubes" over three blobs: the two largest are the instances, and the mask and box are
    theirs alone (the node publishes one result per instance); "all the cubes" keeps all three."""
    lb = Letterbox.fit((64, 64), (64, 64))
    logits = _two_blobs(2)
    logits[:, 2:4, 12:14] = 8.0  # a third, smallest part (but no speck)
    boxes, logits, presence = _outputs(logits, [5.0, 5.0])
    post = PostProcess(box_source="mask", mask_components="auto")
    both, every = post(boxes, logits, lb, ["both cubes", "all the cubes"], presence)
    assert len(every.instances) == 3 and len(both.instances) == 2
    assert [i.box for i in both.instances] == [(8.0, 8.0, 24.0, 24.0), (40.0, 40.0, 52.0, 52.0)]
    assert np.array_equal(both.mask, both.instances[0].mask | both.instances[1].mask)
    assert not both.mask[:32, 32:].any() and every.mask[10:14, 50:54].all()  # the third part, top right
    assert both.box == (8.0, 8.0, 52.0, 52.0) and every.box[2] > 52.0
    # fewer parts than said: every part stays
    (three,) = post(boxes[:1], logits[:1], lb, ["the three cubes"], presence[:1])
    assert len(three.instances) == 3 and np.array_equal(three.mask, every.mask)


def test_a_stated_count_keeps_the_most_probable_parts():
    """"both cubes" over three parts where the largest is the least sure (mask probability about
    0.6): the two sure parts are the instances, the sure larger one first; "all the cubes" keeps
    all three, largest first."""
    lb = Letterbox.fit((64, 64), (64, 64))
    logits = _two_blobs(2)
    logits[:, 8:14, 1:7] = 0.5  # the largest part, bottom left, barely above the mask threshold
    boxes, logits, presence = _outputs(logits, [5.0, 5.0])
    post = PostProcess(box_source="mask", mask_components="auto")
    both, every = post(boxes, logits, lb, ["both cubes", "all the cubes"], presence)
    assert len(every.instances) == 3 and every.instances[0].box[0] < 8.0 and every.instances[0].box[1] > 24.0
    assert [i.box for i in both.instances] == [(8.0, 8.0, 24.0, 24.0), (40.0, 40.0, 52.0, 52.0)]
    assert not both.mask[32:, :32].any() and every.mask[36:52, 8:24].all()


def test_loss_trains_no_target_samples_on_mask_and_presence_only():
    torch.manual_seed(0)
    crit = GroundingLoss(attn=0.5, presence=1.0)
    box = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.9, 0.9]], requires_grad=True)
    mask_logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    attention = torch.full((2, 4), 0.25, requires_grad=True)
    presence = torch.tensor([2.0, 2.0], requires_grad=True)
    out = GroundingOutput(box, mask_logits, attention, (2, 2), presence)
    masks = torch.zeros(2, 8, 8)
    masks[0, 2:4, 2:4] = 1  # sample 1 has no target
    targets = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]])
    terms = crit(out, targets, masks)
    assert all(torch.isfinite(v) for v in terms.values())
    assert float(terms["l1"].detach()) == pytest.approx(0.0) and float(terms["giou"].detach()) == pytest.approx(0.0, abs=1e-6)
    terms["loss"].backward()
    assert box.grad[1].abs().sum() == 0 and attention.grad[1].abs().sum() == 0  # box/attn: present only
    assert mask_logits.grad[1].abs().sum() > 0  # the mask learns to be empty
    # presence: pushed up where there is a target, down where there is none
    assert presence.grad[0] < 0 < presence.grad[1]
    # a batch of only no-target samples stays finite
    terms = crit(out, targets, torch.zeros(2, 8, 8))
    assert all(torch.isfinite(v) for v in terms.values())
    with pytest.raises(ValueError, match="presence head"):
        crit(GroundingOutput(box, mask_logits, attention, (2, 2)), targets, masks)


@pytest.mark.slow
def test_presence_head_folded_unfolded_and_onnx_agree(tmp_path):
    from refseg_ros.model.build import build_model
    from refseg_ros.model.export import check_onnx, export_onnx

    torch.manual_seed(0)
    model = build_model("tabletop", word_attention=True, presence_head=True).eval()
    images = torch.rand(2, 3, 240, 320)
    expressions = ["the red mug", "all the ducks"]
    with torch.no_grad():
        plain = model(images, expressions)
        folded = model(images, model.fold(model.command(expressions)))
    assert plain.presence.shape == (2,)
    assert torch.allclose(plain.presence, folded.presence, atol=1e-4)
    diffs = check_onnx(model, export_onnx(model, tmp_path / "p.onnx"), expressions)
    assert diffs["presence_max_abs_diff"] < 1e-3
    # training: every trainable parameter gets a gradient (DDP refuses unused parameters)
    model.train()
    out = model(images, expressions)
    masks = torch.zeros(2, 60, 80)
    masks[0, 10:20, 10:20] = 1
    GroundingLoss.from_config(model.cfg)(out, torch.tensor([[0.2, 0.25, 0.1, 0.15], [0.0] * 4]), masks)["loss"].backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    # the checkpoint's found threshold is the predictor's default
    from refseg_ros.model.predictor import GroundingPredictor

    assert GroundingPredictor(build_model("tabletop", found_threshold=0.7)).post.found_threshold == 0.7
    # a model without the head has no presence output anywhere
    assert build_model("tabletop").eval()(images[:1], ["the duck"]).presence is None


def test_expected_calibration_error():
    from helpers.paths import load_tool

    calibration = load_tool("calibration")
    rng = np.random.default_rng(0)
    scores = rng.random(20000)
    calibrated = rng.random(20000) < scores
    ece, table = calibration.expected_calibration_error(scores, calibrated)
    assert ece < 0.02 and sum(r["count"] for r in table) == 20000
    overconfident = np.where(scores > 0.5, 0.99, 0.01)
    ece_bad, _ = calibration.expected_calibration_error(overconfident, calibrated)
    assert ece_bad > 0.2
    assert calibration.auroc(scores, calibrated) > 0.8
    assert calibration.auroc(np.array([0.1, 0.9, 0.5, 0.5]), np.array([False, True, True, False])) == 0.875
    assert calibration.auroc(scores, np.ones(len(scores), bool)) is None
    sweep = calibration.threshold_sweep(scores, calibrated)
    assert sweep[0]["t_acc"] > sweep[-1]["t_acc"] and sweep[0]["n_acc"] < sweep[-1]["n_acc"]
