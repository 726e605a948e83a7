"""Camera variants for the cached training path: reproducible per (seed, image, variant), different
from the clean image, photometric only (colour words stay true), and a recipe whose every range is
part of the feature cache's key."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from refseg_ros.data.augment import CachedVariants, CameraParams, camera_variant
from refseg_ros.training.caches import _cache_key
from refseg_ros.training.config import TrainConfig, load_train_config

PATCHES = {"red": (200, 25, 25), "green": (30, 150, 40), "blue": (25, 55, 210)}


def _scene(seed: int = 0) -> np.ndarray:
    """A textured grey table with three saturated patches and a bright one (some highlights clip)."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(120, 12, (96, 128, 3)), 0, 255).astype(np.uint8)
    for k, rgb in enumerate(PATCHES.values()):
        img[20:50, 10 + 38 * k:40 + 38 * k] = rgb
    img[60:90, 40:90] = 235
    return img


def test_variants_are_reproducible_and_distinct():
    img = _scene()
    cv = CachedVariants(count=3, seed=7)
    first = cv.image(img, 5, 2)
    np.testing.assert_array_equal(first, cv.image(img.copy(), 5, 2))
    assert cv.image(img, 5, 0) is img
    others = [cv.image(img, 5, 1), cv.image(img, 6, 2), CachedVariants(count=3, seed=8).image(img, 5, 2)]
    for other in others:
        assert not np.array_equal(first, other)
    with pytest.raises(IndexError):
        cv.image(img, 5, 4)


def test_every_variant_differs_from_the_clean_image_and_keeps_its_geometry():
    img = _scene()
    cv = CachedVariants(count=2)
    for i in range(20):
        for v in (1, 2):
            out = cv.image(img, i, v)
            assert out.shape == img.shape and out.dtype == np.uint8
            assert np.abs(out.astype(np.int16) - img).mean() > 1.0
            # the patches are where they were: each patch's centre is still its most saturated channel
            for k, name in enumerate(PATCHES):
                centre = out[30:40, 20 + 38 * k:30 + 38 * k].reshape(-1, 3).mean(0)
                assert int(np.argmax(centre)) == k, (i, v, name, centre)


def test_draws_cover_the_ranges():
    img = _scene()
    p = CameraParams()
    infos = [camera_variant(img, np.random.default_rng([0, i, 1]), p)[1] for i in range(300)]
    gains = np.array([d["exposure"] for d in infos])
    assert gains.min() >= p.exposure[0] and gains.max() <= p.exposure[1]
    assert (gains < 0.6).mean() > 0.03 and (gains > 1.4).mean() > 0.05  # low light and overexposure occur
    for key, prob in [("jpeg_quality", p.p_jpeg), ("read_noise", p.p_noise)]:
        assert abs(np.mean([key in d for d in infos]) - prob) < 0.1, key
    blurred = np.mean(["blur_sigma" in d or "motion_px" in d for d in infos])
    assert abs(blurred - p.p_blur) < 0.1
    qualities = [d["jpeg_quality"] for d in infos if "jpeg_quality" in d]
    assert min(qualities) >= 30 and max(qualities) <= 90
    # a dark variant is noisier than its clean image where the table is flat
    dark = camera_variant(img, np.random.default_rng(1), dataclasses.replace(
        p, exposure=(0.45, 0.45), p_noise=1.0, p_blur=0.0, p_jpeg=0.0))[0]
    assert dark[:, :, 1].mean() < 0.8 * img[:, :, 1].mean()


def test_none_of_the_effects_when_switched_off_is_nearly_identity():
    img = _scene()
    off = CameraParams(exposure=(1.0, 1.0), white_balance=0.0, contrast=0.0, saturation=0.0,
                       p_blur=0.0, p_noise=0.0, p_jpeg=0.0)
    out, info = camera_variant(img, np.random.default_rng(0), off)
    assert np.abs(out.astype(np.int16) - img).max() <= 1  # only the gamma round trip's rounding
    assert set(info) == {"exposure", "white_balance", "contrast", "saturation"}


@pytest.mark.parametrize("bad", [dict(exposure=(1.8, 1.2)), dict(exposure=(0.0, 1.8)), dict(jpeg_quality=(90, 30)), dict(p_blur=1.5),
                                 dict(motion_px=2), dict(read_noise=-0.1)])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValueError):
        CameraParams(**bad)


def test_train_config_defaults_keep_todays_cache_and_map_every_range():
    cfg = load_train_config("tabletop")
    assert cfg.augment_variants == 0 and cfg.cache_augment().count == 0
    names = {f.name for f in dataclasses.fields(CameraParams)}
    assert {f"augment_{n}" for n in names} <= {f.name for f in dataclasses.fields(TrainConfig)}
    assert cfg.augment_p_clean_colour is None and cfg.cache_augment().p_clean_colour is None
    cfg = load_train_config("tabletop", augment_variants=2, augment_jpeg_quality=[40, 80], augment_p_clean=0.5,
                            augment_p_clean_colour=1.0)
    cv = cfg.cache_augment()
    assert cv.count == 2 and cv.p_clean == 0.5 and cv.params.jpeg_quality == (40, 80) and cv.p_clean_colour == 1.0
    assert TrainConfig(**cfg.to_dict()) == cfg  # a checkpoint's train_config rebuilds the config
    with pytest.raises(ValueError):
        load_train_config("tabletop", augment_exposure=[0.9, 0.5])
    with pytest.raises(ValueError):
        load_train_config("tabletop", augment_variants=-1)
    with pytest.raises(ValueError):
        load_train_config("tabletop", augment_p_clean_colour=1.5)


def test_cache_key_changes_with_variants_seed_and_every_range_but_not_p_clean():
    model = SimpleNamespace(cfg=SimpleNamespace(backbone="mobilenetv2", input_size=[320, 240],
                                                pixel_mean=[0.5] * 3, pixel_std=[0.25] * 3, cnn_scale=1))
    data = SimpleNamespace(image_paths=["a.png", "b.png"])
    base = _cache_key(model, data)
    assert _cache_key(model, data, CachedVariants(count=0)) == base  # today's caches stay valid
    two = _cache_key(model, data, CachedVariants(count=2))
    keys = {base, two, _cache_key(model, data, CachedVariants(count=3)),
            _cache_key(model, data, CachedVariants(count=2, seed=1))}
    default = CameraParams()
    for f in dataclasses.fields(CameraParams):
        value = getattr(default, f.name)
        if isinstance(value, tuple):  # widen the range
            changed = (value[0] - 1, value[1] + 1) if isinstance(value[0], int) else (value[0] * 0.9, value[1] * 1.1)
        else:
            changed = value + 1 if isinstance(value, int) else value / 2
        keys.add(_cache_key(model, data, CachedVariants(count=2, params=dataclasses.replace(default, **{f.name: changed}))))
    assert len(keys) == 4 + len(dataclasses.fields(CameraParams))
    assert _cache_key(model, data, CachedVariants(count=2, p_clean=0.9)) == two
    assert _cache_key(model, data, CachedVariants(count=2, p_clean_colour=1.0)) == two
