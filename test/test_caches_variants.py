"""FeatureCache with camera variants on freshly rendered scenes and the real frozen CNN: the row
layout (variants and their mirrors), a resume after an interruption, and how ``rows`` picks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pybullet")

from refseg_ros.data.augment import CachedVariants  # noqa: E402
from refseg_ros.model.letterbox import letterbox_images  # noqa: E402
from refseg_ros.training.caches import FeatureCache  # noqa: E402

pytestmark = pytest.mark.slow  # renders scenes and runs the CNN on every variant

V = 2
R = 2 * (V + 1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from refseg_ros.cli.main import main
    from refseg_ros.data import TabletopRefDataset

    root = tmp_path_factory.mktemp("tabletop")
    assert main(["data", "tabletop", "--out", str(root), "--scenes", "3", "--seed", "21",
                 "--split", "val", "--workers", "1", "--no-progress"]) == 0
    return TabletopRefDataset(root, "val")


@pytest.fixture(scope="module")
def model():
    from refseg_ros.model import build_model

    torch.manual_seed(0)
    return build_model("tabletop").eval()


@pytest.fixture(scope="module")
def cache(data, model, tmp_path_factory):
    return FeatureCache(model, data, tmp_path_factory.mktemp("cache"), progress=False,
                        augment=CachedVariants(count=V, seed=3))


def _features(model, image: np.ndarray) -> dict[str, np.ndarray]:
    batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255)
    canvas, _ = letterbox_images(batch, model.input_size, fill=model.pixel_mean)
    with torch.no_grad():
        return {k: v[0].numpy() for k, v in model.image_features(canvas).items()}


def _close(cached: np.ndarray, fresh: np.ndarray) -> bool:
    return bool(np.abs(cached.astype(np.float32) - fresh).max() <= 0.02 * np.abs(fresh).max() + 1e-3)


def test_layout_variants_and_mirrors(cache, data, model):
    n = len(data.image_paths)
    meta = json.loads((cache.dir / "meta.json").read_text())
    assert meta["rows"] == meta["done"] == R * n and meta["augment"]["variants"] == V
    assert all(a.shape[0] == R * n for a in cache.arrays.values())
    assert cache.bytes_per_row == sum(int(np.prod(a.shape[1:])) * 2 for a in cache.arrays.values())
    i = 1
    img = data.load_image(i)
    for v in range(V + 1):
        view = cache.augment.image(img, i, v)
        for flip, seen in ((0, view), (1, view[:, ::-1])):
            fresh = _features(model, seen)
            row = i * R + 2 * v + flip
            assert all(_close(cache.arrays[k][row], fresh[k]) for k in fresh), (v, flip)
            # ... and not the other member of the pair, nor the clean image's row
            assert not _close(cache.arrays["s4"][i * R + 2 * v + 1 - flip], fresh["s4"])
            if v:
                assert not _close(cache.arrays["s4"][i * R + flip], fresh["s4"])


def test_without_variants_the_layout_and_key_are_todays(data, model, cache, tmp_path):
    plain = FeatureCache(model, data, tmp_path, progress=False)
    assert plain.rows_per_image == 2 and plain.dir.name != cache.dir.name
    assert "augment" not in json.loads((plain.dir / "meta.json").read_text())
    for k in plain.arrays:  # the clean rows are the same numbers
        for i in range(len(data.image_paths)):
            np.testing.assert_array_equal(plain.arrays[k][2 * i:2 * i + 2], cache.arrays[k][i * R:i * R + 2])
    rng = np.random.default_rng(0)
    idx, flipped = np.array([0, 2, 1]), np.array([True, False, True])
    np.testing.assert_array_equal(plain.rows(idx, flipped, rng), [1, 4, 3])
    assert rng.random() == np.random.default_rng(0).random()  # drew nothing: old runs see the same stream


class _Interrupted(Exception):
    pass


class _FailsAt:
    """The dataset, with a power cut while loading image ``at``."""

    def __init__(self, data, at: int) -> None:
        self.data, self.at, self.image_paths, self.loaded = data, at, data.image_paths, []

    def load_image(self, i: int) -> np.ndarray:
        if i == self.at and self.at >= 0:
            raise _Interrupted
        self.loaded.append(i)
        return self.data.load_image(i)


def test_resume_after_interruption_gives_identical_files(cache, data, model, tmp_path, monkeypatch):
    monkeypatch.setattr(FeatureCache, "flush_every", 1)
    aug = CachedVariants(count=V, seed=3)
    with pytest.raises(_Interrupted):
        FeatureCache(model, _FailsAt(data, 2), tmp_path, progress=False, augment=aug)
    cut = json.loads(next(tmp_path.glob("features_*/meta.json")).read_text())
    assert cut["done"] == 2 * R
    np.testing.assert_array_equal(np.load(next(tmp_path.glob("features_*/filled.npy"))), [1, 1, 0])
    again = _FailsAt(data, -1)
    resumed = FeatureCache(model, again, tmp_path, progress=False, augment=aug)
    assert again.loaded == [0, 2]  # the shape probe, then only what was missing
    assert resumed.dir.name == cache.dir.name
    for k in cache.arrays:
        assert (resumed.dir / f"{k}.npy").read_bytes() == (cache.dir / f"{k}.npy").read_bytes(), k


_SHARD = """
import sys, torch
from pathlib import Path
from refseg_ros.data import TabletopRefDataset
from refseg_ros.data.augment import CachedVariants
from refseg_ros.model import build_model
from refseg_ros.training.caches import FeatureCache
torch.set_num_threads(1)
root, out, k = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
FeatureCache(build_model("tabletop").eval(), TabletopRefDataset(root, "val"), out, progress=False,
             augment=CachedVariants(count=%d, seed=3), shard=(k, 2))
""" % V


def test_two_processes_build_one_cache_in_shards(cache, data, model, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "shard.py"
    script.write_text(_SHARD)
    procs = [subprocess.Popen([sys.executable, str(script), str(data.root), str(tmp_path / "c"), str(k)],
                              stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    shared = FeatureCache(model, data, tmp_path / "c", progress=False, augment=CachedVariants(count=V, seed=3))
    assert shared.complete and shared.dir.name == cache.dir.name
    assert json.loads((shared.dir / "meta.json").read_text())["done"] == R * len(data.image_paths)
    # the same rows in the same places; values equal up to float rounding (the processes may run the
    # CNN with other thread counts than this one)
    for k in cache.arrays:
        np.testing.assert_allclose(np.load(shared.dir / f"{k}.npy").astype(np.float32),
                                   np.load(cache.dir / f"{k}.npy").astype(np.float32), rtol=1e-2, atol=1e-2,
                                   err_msg=k)


def test_one_shard_alone_leaves_the_cache_incomplete(data, model, tmp_path):
    aug = CachedVariants(count=V, seed=3)
    half = FeatureCache(model, data, tmp_path, progress=False, augment=aug, shard=(1, 2))
    assert not half.complete
    np.testing.assert_array_equal(np.load(half.dir / "filled.npy"), [0, 1, 0])
    assert json.loads((half.dir / "meta.json").read_text())["done"] == 0
    counting = _FailsAt(data, -1)
    rest = FeatureCache(model, counting, tmp_path, progress=False, augment=aug)
    assert rest.complete and counting.loaded == [0, 0, 2]  # shape probe, then the two missing
    with pytest.raises(ValueError):
        FeatureCache(model, data, tmp_path, progress=False, augment=aug, shard=(2, 2))


def test_rows_honour_p_clean_and_flips(cache):
    rng = np.random.default_rng(1)
    n = 20000
    idx = rng.integers(0, 3, n)
    flipped = rng.random(n) < 0.5
    rows = cache.rows(idx, flipped, rng)
    np.testing.assert_array_equal(rows // R, idx)  # always a row of the sample's own image
    np.testing.assert_array_equal(rows % 2, flipped)  # mirrored exactly when flipped
    variant = (rows % R) // 2
    assert abs((variant == 0).mean() - cache.p_clean) < 0.02
    shares = [(variant == v).mean() for v in range(1, V + 1)]
    assert all(abs(s - (1 - cache.p_clean) / V) < 0.02 for s in shares)
    np.testing.assert_array_equal(cache.rows(idx, flipped, np.random.default_rng(5)),
                                  cache.rows(idx, flipped, np.random.default_rng(5)))
    always = FeatureCache.__new__(FeatureCache)
    always.variants, always.rows_per_image, always.p_clean = V, R, 1.0
    assert (always.rows(idx, flipped, rng) % R < 2).all()


def test_samples_saying_a_colour_take_the_clean_image_at_their_own_rate(cache):
    rng = np.random.default_rng(2)
    n = 20000
    idx, flipped, colour = rng.integers(0, 3, n), rng.random(n) < 0.5, rng.random(n) < 0.3
    # unset: the colour flags change nothing, draw for draw
    assert cache.p_clean_colour is None
    np.testing.assert_array_equal(cache.rows(idx, flipped, np.random.default_rng(7), colour),
                                  cache.rows(idx, flipped, np.random.default_rng(7)))
    keep = FeatureCache.__new__(FeatureCache)
    keep.variants, keep.rows_per_image, keep.p_clean, keep.p_clean_colour = V, R, cache.p_clean, 1.0
    rows = keep.rows(idx, flipped, np.random.default_rng(7), colour)
    variant = (rows % R) // 2
    assert (variant[colour] == 0).all() and np.array_equal(rows % 2, flipped)
    assert abs((variant[~colour] == 0).mean() - cache.p_clean) < 0.02
    # the other samples get the rows they would have got without the option
    np.testing.assert_array_equal(rows[~colour], cache.rows(idx, flipped, np.random.default_rng(7))[~colour])
