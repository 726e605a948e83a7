"""PostProcess owns every box and mask guarantee: mapped to the image, finite, clipped, >= 1 px."""
import math

import numpy as np
import pytest
import torch

from refseg_ros.model.letterbox import Letterbox
from refseg_ros.model.postprocess import PostProcess, mask_box, sanitize_box, sanitize_score


@pytest.mark.parametrize("box, expected", [
    ((10, 20, 30, 40), (10, 20, 30, 40)),
    ((-5, -5, 700, 500), (0, 0, 640, 480)),  # clipped
    ((float("nan"), 2, float("inf"), 3), (0, 2, 1, 3)),  # non-finite -> 0, then >= 1 px
    ((639.8, 479.9, 640, 480), (639, 479, 640, 480)),  # too small at the border: kept inside
    ((50, 50, 50, 50), (50, 50, 51, 51)),
    ((900, 900, 950, 950), (639, 479, 640, 480)),
])
def test_sanitize_box(box, expected):
    assert sanitize_box(box, 640, 480) == pytest.approx(expected)


def test_sanitize_box_on_tiny_images():
    assert sanitize_box((0, 0, 0, 0), 1, 1) == (0, 0, 1, 1)
    assert sanitize_box((3, 3, 2, 2), 1, 1) == (0, 0, 1, 1)


def test_sanitize_score():
    assert sanitize_score(float("nan")) == 0.0
    assert sanitize_score(1.7) == 1.0 and sanitize_score(-3) == 0.0 and sanitize_score(0.25) == 0.25


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="box_source"):
        PostProcess(box_source="centre")
    with pytest.raises(ValueError, match="mask_threshold"):
        PostProcess(mask_threshold=1.5)
    with pytest.raises(ValueError, match="found_threshold"):
        PostProcess(found_threshold=float("nan"))
    post = PostProcess(mask_threshold=0.3)
    assert post.with_(mask_threshold=None, found_threshold=0.9) == PostProcess(mask_threshold=0.3,
                                                                                 found_threshold=0.9)


def _outputs(logit_map: np.ndarray, boxes):
    return torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(logit_map, dtype=torch.float32)[:, None]


def test_maps_back_to_the_image_and_decides_found():
    # A 320x240 frame letterboxed onto a 64x64 input: resized to 64x48, bottom rows padding.
    lb = Letterbox.fit((320, 240), (64, 64))
    logits = np.full((2, 16, 16), -8.0, np.float32)
    logits[0, 4:8, 4:8] = 8.0  # a confident blob; expression 1 has nothing
    boxes, logit_t = _outputs(logits, [[0.5, 0.4, 0.2, 0.2], [float("nan"), 0.5, 0.1, 0.1]])
    strict = PostProcess(box_source="mask", mask_components="largest", found_threshold=0.5)
    a, b = strict(boxes, logit_t, lb, ["the duck", "the mug"])
    assert a.mask.shape == (240, 320) and a.mask.dtype == bool and a.found and a.score > 0.9
    x0, y0, x1, y1 = a.box
    assert (x0, y0, x1, y1) == mask_box(a.mask)
    assert 60 < x0 < 100 and 60 < y0 < 100  # the blob's quarter of the map, in image pixels
    assert not b.found and b.score < 0.5 and not b.mask.any()
    assert all(math.isfinite(v) for v in b.box) and b.box[2] - b.box[0] >= 1 and b.box[3] - b.box[1] >= 1
    assert 0 <= b.box[0] < b.box[2] <= 320 and 0 <= b.box[1] < b.box[3] <= 240
    lenient = strict.with_(found_threshold=0.0)
    assert all(r.found for r in lenient(boxes, logit_t, lb, ["the duck", "the mug"]))


def test_largest_component_and_head_box():
    lb = Letterbox.fit((64, 64), (64, 64))
    logits = np.full((1, 64, 64), -8.0, np.float32)
    logits[0, 2:6, 2:6] = 8.0
    logits[0, 30:50, 30:50] = 8.0
    boxes, logit_t = _outputs(logits, [[0.5, 0.5, 0.5, 0.5]])
    every = PostProcess(box_source="head", mask_components="all")(boxes, logit_t, lb, ["x"])[0]
    largest = PostProcess(box_source="mask", mask_components="largest")(boxes, logit_t, lb, ["x"])[0]
    assert every.box == pytest.approx((16, 16, 48, 48))  # the head's box, in pixels
    assert every.mask[3, 3] and not largest.mask[3, 3] and largest.mask[40, 40]
    assert largest.box == pytest.approx((30, 30, 50, 50))


def _full_resolution_reference(post, boxes, logits, lb, n):
    """The earlier post-processing, float32 probabilities over the whole image per expression: what
    the crop-wise one must reproduce (masks and boxes exactly, scores to float rounding)."""
    from refseg_ros.model.letterbox import mask_logits_to_image
    from refseg_ros.model.postprocess import largest_component

    prob = torch.nan_to_num_(mask_logits_to_image(logits, lb).sigmoid_(), nan=0.0)
    masks = prob > post.mask_threshold
    if post.mask_components == "largest":
        masks = torch.from_numpy(np.stack([largest_component(m) for m in masks.numpy()]))
    area = masks.flatten(1).sum(1)
    inside = (prob * masks).flatten(1).sum(1) / area.clamp(min=1)
    scores = torch.where(area > 0, inside, prob.flatten(1).amax(1)).numpy()
    return masks.numpy(), scores


@pytest.mark.parametrize("seed", range(6))
def test_crop_wise_masks_equal_the_full_resolution_ones(seed):
    rng = np.random.default_rng(seed)
    sizes = [(320, 240), (97, 211), (640, 480), (1, 1), (1000, 3)]
    w, h = sizes[seed % len(sizes)]
    lb = Letterbox.fit((w, h), (64, 64))
    n = 3
    logits = rng.normal(-4, 3, (n, 16, 16)).astype(np.float32)
    logits[0, 3:7, 5:9] += 12  # a blob
    logits[1] = -30.0  # nothing anywhere: the score is the highest probability
    logits[1, 8, 2] = -2.0
    if seed == 5:
        logits[2, 0, 0] = np.nan
        logits[2, 4, 4] = np.inf
    boxes = torch.as_tensor(rng.uniform(0.2, 0.8, (n, 4)), dtype=torch.float32)
    logit_t = torch.as_tensor(logits)[:, None]
    for post in (PostProcess(), PostProcess(box_source="mask", mask_components="largest"),
                 PostProcess(mask_threshold=0.0), PostProcess(mask_threshold=1.0), PostProcess(mask_threshold=0.05)):
        results = post(boxes, logit_t, lb, ["a", "b", "c"])
        masks, scores = _full_resolution_reference(post, boxes, logit_t, lb, n)
        for r, m, s in zip(results, masks, scores):
            assert r.mask.shape == (h, w) and r.mask.dtype == bool
            np.testing.assert_array_equal(r.mask, m)
            assert r.score == pytest.approx(float(s), rel=1e-5, abs=1e-6)
            if post.box_source == "mask" and m.any():
                assert r.box == mask_box(m)


def test_post_processing_memory_is_a_bool_mask_per_expression(tmp_path):
    """Five expressions on a 4096 x 4096 image: the masks themselves (5 x 16.8 MB of bool) plus
    bounded work, not float32 probabilities at full resolution per expression."""
    import subprocess
    import sys

    code = r'''
import resource, sys, numpy as np, torch
torch.set_num_threads(1)
from refseg_ros.model.letterbox import Letterbox
from refseg_ros.model.postprocess import PostProcess
lb = Letterbox.fit((4096, 4096), (320, 320))
logits = torch.full((5, 1, 80, 80), -6.0)
logits[:, 0, 10:30, 10:30] = 6.0   # objects of a twentieth of the image
logits[0, 0, 5:75, 5:75] = 6.0     # and one of most of it
post = PostProcess(box_source="mask", mask_components="largest")
post(torch.rand(5, 4), logits, Letterbox.fit((64, 64), (320, 320)), list("abcde"))  # warm-up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = post(torch.rand(5, 4), logits, lb, list("abcde"))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
assert out[0].mask.mean() > 0.5 and all(r.mask.shape == (4096, 4096) for r in out)
print(grown // 1024)
'''
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    grown_mb = int(run.stdout.split()[-1])
    masks_mb = 5 * 4096 * 4096 / 2**20
    assert grown_mb < masks_mb + 150, f"peak RSS grew by {grown_mb} MB for {masks_mb:.0f} MB of masks"
