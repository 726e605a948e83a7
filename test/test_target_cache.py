"""TargetCache keeps each target mask as the bits of its bounding rectangle: every mask comes back
exactly (empty, whole-image, one corner pixel, several parts; mirrored or not; two image sizes),
and small targets take a small share of what whole-image masks would."""
from __future__ import annotations

import numpy as np
import torch

from refseg_ros.data.augment import hflip_box
from refseg_ros.model.letterbox import masks_to_input
from refseg_ros.training.caches import TargetCache


def _masks(h: int, w: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = [np.zeros((h, w), np.uint8), np.ones((h, w), np.uint8)]
    corner = np.zeros((h, w), np.uint8)
    corner[-1, -1] = 1
    out.append(corner)
    parts = np.zeros((h, w), np.uint8)
    parts[2:9, 3:5] = 1
    parts[h - 6:h - 1, w - 12:w - 3] = 1  # a second object far from the first (a multi-target union)
    out.append(parts)
    for _ in range(6):  # random blobs with holes
        m = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        m[y:y + rng.integers(3, 20), x:x + rng.integers(3, 20)] = rng.random() > 0.0
        m &= (rng.random((h, w)) > 0.2).astype(np.uint8)
        out.append(m)
    return out


class Targets:
    """Two images (240x320 and 180x320), each with the masks above; sample j -> target j."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.sizes = [(240, 320), (180, 320)]
        self.masks = {}
        self.image_index = []
        for i, (h, w) in enumerate(self.sizes):
            for k, m in enumerate(_masks(h, w, rng)):
                self.masks[(i, k)] = m
                self.image_index.append(i)
        self.target_keys = list(self.masks)
        self.images = [{"height": h, "width": w} for h, w in self.sizes]
        self.image_paths = [f"image{i}.png" for i in range(len(self.sizes))]  # sizes come from the index

    def target(self, key, h, w):
        m = self.masks[key]
        assert m.shape == (h, w)
        ys, xs = np.nonzero(m)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(ys) else [0, 0, 0, 0], np.float32)
        return box, m


def test_every_mask_comes_back_exactly_mirrored_or_not():
    data = Targets()
    cache = TargetCache(data, progress=False)
    assert cache.hw is None
    for j, key in enumerate(data.target_keys):
        expected_box, expected = data.target(key, *data.masks[key].shape)
        for flip in (False, True):
            box, mask = cache._target(int(cache.sample_row[j]), flip)
            w = expected.shape[1]
            np.testing.assert_array_equal(mask, expected[:, ::-1] if flip else expected)
            np.testing.assert_array_equal(box, hflip_box(expected_box, w) if flip else expected_box)
            _, on_input = cache.gather_input(np.array([j]), np.array([flip]), (320, 240))
            seen = np.ascontiguousarray(expected[:, ::-1] if flip else expected)
            torch.testing.assert_close(on_input[0], masks_to_input(torch.from_numpy(seen)[None], (320, 240))[0][0])


def test_one_size_gathers_and_small_targets_stay_small():
    data = Targets()
    data.target_keys = [k for k in data.target_keys if k[0] == 0]
    data.image_index = [0] * len(data.target_keys)
    cache = TargetCache(data, (240, 320), progress=False)
    boxes, masks = cache.gather(np.arange(len(data.target_keys)), np.zeros(len(data.target_keys), bool))
    for j, key in enumerate(data.target_keys):
        np.testing.assert_array_equal(masks[j], data.masks[key])
    # whole-image bits would be 9,600 bytes a target; the small ones here take a few dozen
    small = [j for j, key in enumerate(data.target_keys) if data.masks[key].sum() and key[1] >= 4]
    assert all(cache.offsets[j + 1] - cache.offsets[j] <= 50 for j in small)
    assert cache.offsets[1] - cache.offsets[0] == 0  # the empty mask takes nothing
    assert cache.nbytes < len(data.target_keys) * 240 * 320 // 8
