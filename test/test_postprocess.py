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
