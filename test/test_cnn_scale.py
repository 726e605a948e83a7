"""``cnn_scale``: the frozen CNN on the input upsampled k times, its feature maps pooled back to
their usual shapes; the same on every image path, in the caches' key and through a checkpoint."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from refseg_ros.model.build import build_model
from refseg_ros.model.config import load_config


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    one = build_model("tabletop").eval()
    two = build_model("tabletop", cnn_scale=2).eval()
    two.load_state_dict(one.state_dict())  # the same weights: only the option differs
    return one, two


@pytest.mark.parametrize("bad", [0, 5, -1, 1.5, True, "2"])
def test_out_of_range_scales_are_refused(bad):
    with pytest.raises(ValueError, match="cnn_scale"):
        load_config("tabletop", cnn_scale=bad)


def test_only_the_mobilenet_backbone_takes_a_scale():
    with pytest.raises(ValueError, match="mobilenetv2_vit"):
        load_config("paper", cnn_scale=2)


def test_features_keep_their_shapes_and_are_the_pooled_features_of_the_upsampled_image(models):
    one, two = models
    image = torch.rand(2, 3, 240, 320, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = one.image_features(image), two.image_features(image)
        # the definition, written out: the CNN on the normalised image at twice the size
        big = F.interpolate(one.normalize(image), scale_factor=2, mode="bilinear", align_corners=False)
        x, expected = big, {}
        for start, stop, name, _ in type(one.backbone).STAGES:
            x = one.backbone.cnn[start:stop](x)
            expected[name] = F.avg_pool2d(x, 2)
    assert a.keys() == b.keys() == expected.keys()
    for k in a:
        assert b[k].shape == a[k].shape
        assert torch.allclose(b[k], expected[k], atol=1e-5), k
        assert (b[k] - a[k]).abs().mean() > 0.05, k   # not the scale-1 features


def test_fast_image_path_and_predictor_follow_the_scale(models):
    from refseg_ros.model.inference import fast_image_features
    from refseg_ros.model.predictor import GroundingPredictor

    one, two = models
    image = torch.rand(1, 3, 240, 320, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref, got = two.image_features(image), fast_image_features(two)(image)
    for k in ref:
        assert torch.allclose(got[k], ref[k], atol=1e-4, rtol=1e-4), k
    frame = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    boxes = []
    for m in (one, two):
        p = GroundingPredictor(m, optimize=True)
        p.set_command(["the red mug on the left"])
        (r,) = p.predict(frame)
        assert r.mask.shape == frame.shape[:2] and np.isfinite(r.box).all()
        boxes.append(r.box)
    assert not np.allclose(boxes[0], boxes[1])   # the option reaches the predictor's frames


def test_cache_key_names_the_scale_only_when_it_is_not_one():
    from refseg_ros.training.caches import _cache_key

    def model(scale):
        return SimpleNamespace(cfg=SimpleNamespace(backbone="mobilenetv2_vit", input_size=(320, 240),
                                                   pixel_mean=(0.5,) * 3, pixel_std=(0.25,) * 3,
                                                   cnn_scale=scale))
    data = SimpleNamespace(image_paths=["a.png", "b.png"])
    keys = {s: _cache_key(model(s), data) for s in (1, 2, 3)}
    assert len(set(keys.values())) == 3
    # scale 1 hashes what it hashed before the option existed: those caches stay valid
    import hashlib
    import json
    h = hashlib.sha256()
    h.update(json.dumps({"backbone": "mobilenetv2_vit", "input_size": (320, 240), "mean": (0.5,) * 3,
                         "std": (0.25,) * 3}).encode())
    for path in data.image_paths:
        h.update(path.encode())
    assert keys[1] == h.hexdigest()[:16]


def test_a_checkpoint_keeps_its_scale(models, tmp_path):
    from refseg_ros.model.checkpoint import load_checkpoint, save_checkpoint

    _, two = models
    path = save_checkpoint(two, tmp_path / "scaled.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.cfg.cnn_scale == 2 and loaded.backbone.cnn_scale == 2
    image = torch.rand(1, 3, 240, 320, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        a, b = two.image_features(image), loaded.image_features(image)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_onnx_export_of_a_scaled_model_matches_pytorch(models, tmp_path):
    pytest.importorskip("onnxruntime")
    from refseg_ros.model.export import check_onnx, export_onnx

    _, two = models
    out = export_onnx(two, tmp_path / "scaled.onnx", ["the red mug on the left"])
    diff = check_onnx(two, out, ["the red mug on the left", "the duck"], seed=3, threads=1)
    assert diff["box_max_abs_diff"] < 1e-4, diff
    assert diff["mask_logits_max_abs_diff"] < 1e-3, diff
