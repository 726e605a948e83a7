"""The cached path over images of several sizes (as v2 splits have: 4:3, 16:9 and portrait): each
image letterboxed on its own, each target brought to the model input from its own image's size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pybullet")

from refseg_ros.data.augment import hflip_box  # noqa: E402
from refseg_ros.data.masks import mask_to_box  # noqa: E402
from refseg_ros.model.box_ops import box_cxcywh_to_xyxy  # noqa: E402
from refseg_ros.model.letterbox import Letterbox, boxes_to_input, letterbox_images, masks_to_input  # noqa: E402
from refseg_ros.training.caches import FeatureCache, TargetCache, image_sizes  # noqa: E402

pytestmark = pytest.mark.slow  # renders scenes and runs the CNN

INPUT = (320, 240)
# (rows, cols) kept of each rendered 240x320 image: whole, a 16:9 band, a centred square (scaled up
# x1.6 on the input and padded on the right, as a portrait image is padded)
CROPS = [(slice(0, 240), slice(0, 320)), (slice(30, 210), slice(0, 320)), (slice(45, 195), slice(85, 235))]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from refseg_ros.cli.main import main
    from refseg_ros.data import TabletopRefDataset

    root = tmp_path_factory.mktemp("tabletop")
    assert main(["data", "tabletop", "--out", str(root), "--scenes", "3", "--seed", "31",
                 "--split", "val", "--workers", "1", "--no-progress"]) == 0
    return TabletopRefDataset(root, "val")


class Cropped:
    """The rendered split with image ``i`` cropped to ``CROPS[i]``, targets cropped alike."""

    def __init__(self, base, sizes_in_index: bool = True) -> None:
        self.base = base
        self.image_paths = base.image_paths
        self.image_index = base.image_index
        self.target_keys = base.target_keys
        self._image_of = {k: int(base.image_index[j]) for j, k in enumerate(base.target_keys)}
        if sizes_in_index:
            self.images = [{"height": c[0].stop - c[0].start, "width": c[1].stop - c[1].start} for c in CROPS]

    def load_image(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self.base.load_image(i)[CROPS[i]])

    def target(self, key, h: int, w: int):
        crop = CROPS[self._image_of[key]]
        mask = np.ascontiguousarray(self.base.target(key, 240, 320)[1][crop])
        assert mask.shape == (h, w)
        return mask_to_box(mask), mask


@pytest.fixture(scope="module")
def model():
    from refseg_ros.model import build_model

    torch.manual_seed(0)
    return build_model("tabletop").eval()


def test_features_of_every_size(base, model, tmp_path):
    data = Cropped(base)
    np.testing.assert_array_equal(image_sizes(data), [[240, 320], [180, 320], [150, 150]])
    with pytest.raises(ValueError, match="one image size"):
        FeatureCache(model, data, tmp_path / "one", progress=False)
    cache = FeatureCache(model, data, tmp_path / "mixed", progress=False, mixed_sizes=True)
    for i in range(3):
        img = data.load_image(i)
        for flip, seen in ((0, img), (1, img[:, ::-1])):
            batch = torch.from_numpy(np.ascontiguousarray(seen)).permute(2, 0, 1)[None].float().div_(255)
            canvas, _ = letterbox_images(batch, model.input_size, fill=model.pixel_mean)
            with torch.no_grad():
                fresh = model.image_features(canvas)["s8"][0].numpy()
            cached = cache.arrays["s8"][2 * i + flip].astype(np.float32)
            assert np.abs(cached - fresh).max() <= 0.02 * np.abs(fresh).max() + 1e-3, (i, flip)


def test_an_index_that_misstates_a_size_is_refused(base, model, tmp_path):
    data = Cropped(base)
    data.images = [dict(im) for im in data.images]
    data.images[2]["width"] = 200
    with pytest.raises(ValueError, match="its index says"):
        FeatureCache(model, data, tmp_path, progress=False, mixed_sizes=True)


def test_targets_follow_their_image_size_and_flip(base):
    data = Cropped(base, sizes_in_index=False)  # sizes read from the images themselves
    targets = TargetCache(data, progress=False)
    assert targets.hw is None
    with pytest.raises(ValueError):
        targets.gather(np.array([0]), np.array([False]))
    checked = set()
    for j in range(len(base)):
        i = int(base.image_index[j])
        _, mask = data.target(base.target_keys[j], *data.load_image(i).shape[:2])
        if mask.sum() < 20:
            continue
        for flip in (False, True):
            boxes, masks = targets.gather_input(np.array([j]), np.array([flip]), INPUT)
            h, w = mask.shape
            seen = mask[:, ::-1] if flip else mask
            expected, box = masks_to_input(torch.from_numpy(np.ascontiguousarray(seen))[None], INPUT)
            np.testing.assert_array_equal(masks[0].numpy(), expected[0].numpy())
            rw, rh = box.resized_size
            assert masks[0, rh:].sum() == 0 and masks[0, :, rw:].sum() == 0  # nothing in the padding
            # the box and the mask on the input agree (to the resize's rounding)
            xyxy = box_cxcywh_to_xyxy(boxes)[0].numpy() * np.array([*INPUT, *INPUT])
            np.testing.assert_allclose(xyxy, mask_to_box(masks[0].numpy() > 0.5), atol=2.0)
            checked.add((i, flip))
    assert checked == {(i, f) for i in range(3) for f in (False, True)}


def test_one_size_gives_todays_targets(base):
    new = TargetCache(base, progress=False)
    old = TargetCache(base, (240, 320), progress=False)
    idx = np.arange(len(base))
    flipped = np.arange(len(base)) % 2 == 1
    boxes, masks = old.gather(idx, flipped)
    np.testing.assert_array_equal(boxes[1], hflip_box(base[1]["box"], 320))
    np.testing.assert_array_equal(masks[1], base[1]["mask"][:, ::-1])
    lb = Letterbox.fit((320, 240), INPUT)
    boxes_t, masks_t = new.gather_input(idx, flipped, INPUT)
    torch.testing.assert_close(boxes_t, boxes_to_input(torch.from_numpy(boxes), lb), rtol=0, atol=0)
    torch.testing.assert_close(masks_t, masks_to_input(torch.from_numpy(masks), INPUT)[0], rtol=0, atol=0)
