"""Training on several datasets at once (`refseg train --mix`): one index over the parts, each part's
own feature cache reused, every sample's image, expression and target those of its part."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pybullet")

from refseg_ros.data.mixed import MixedDataset  # noqa: E402

pytestmark = pytest.mark.slow  # renders scenes and runs the CNN

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from refseg_ros.cli.main import main
    from refseg_ros.data import TabletopRefDataset

    roots = []
    for seed in (201, 202):
        root = tmp_path_factory.mktemp(f"tabletop{seed}")
        assert main(["data", "tabletop", "--out", str(root), "--scenes", "2", "--seed", str(seed),
                     "--split", "train", "--workers", "1", "--no-progress"]) == 0
        roots.append(root)
    return [TabletopRefDataset(r, "train") for r in roots]


def test_one_index_over_the_parts(parts):
    a, b = parts
    mixed = MixedDataset(parts, ["a", "b"])
    assert len(mixed) == len(a) + len(b)
    assert mixed.image_paths == a.image_paths + b.image_paths
    assert len(mixed.images) == len(mixed.image_paths)
    for i in [0, len(a) - 1, len(a), len(mixed) - 1]:
        part, j = (a, i) if i < len(a) else (b, i - len(a))
        assert mixed.image_paths[mixed.image_index[i]] == part.image_paths[part.image_index[j]]
        assert mixed.expressions[mixed.expression_index[i]] == part.expressions[part.expression_index[j]]
        assert mixed.types[i] == part.types[j]
        key = mixed.target_keys[i]
        image = mixed.load_image(int(mixed.image_index[i]))
        box, mask = mixed.target(key, *image.shape[:2])
        want_box, want_mask = part.target(part.target_keys[j], *image.shape[:2])
        np.testing.assert_array_equal(box, want_box)
        np.testing.assert_array_equal(mask, want_mask)
        sample = mixed[i]
        assert sample["expression"] == mixed.expressions[mixed.expression_index[i]]
        assert sample["source"] == ("a" if part is a else "b")
        np.testing.assert_array_equal(sample["image"], image)
    # annotation ids restart in every generated split: the mixture keeps them apart
    assert len(set(mixed.target_keys)) == len(set(a.target_keys)) + len(set(b.target_keys))
    with pytest.raises(IndexError):
        mixed[len(mixed)]


def test_feature_cache_of_a_mixture_is_its_parts_caches(parts):
    from refseg_ros.model import build_model
    from refseg_ros.training.caches import FeatureCache, MixedFeatureCache

    torch.manual_seed(0)
    model = build_model("tabletop").eval()
    a, b = parts
    alone = FeatureCache(model, a, Path(a.root) / "cache", progress=False, mixed_sizes=True)
    files_before = sorted(p.name for p in (Path(a.root) / "cache").iterdir())
    mixed_set = MixedDataset(parts)
    mixed = MixedFeatureCache(model, mixed_set, progress=False)
    assert mixed.complete
    assert sorted(p.name for p in (Path(a.root) / "cache").iterdir()) == files_before  # part a's cache reused
    assert mixed.parts[0].dir == alone.dir
    other = FeatureCache(model, b, Path(b.root) / "cache", progress=False, mixed_sizes=True)

    rng = np.random.default_rng(0)
    images = np.array([0, len(a.image_paths), 1, len(a.image_paths) + 1, 0])
    flipped = np.array([0, 1, 1, 0, 1])
    rows = mixed.rows(images, flipped, rng)
    got = mixed.gather(rows, torch.device("cpu"))
    own = [(alone, 0), (other, len(a.image_paths)), (alone, 1), (other, len(a.image_paths) + 1), (alone, 0)]
    for j, (cache, image) in enumerate(own):
        local = image - (len(a.image_paths) if cache is other else 0)
        want = cache.gather(cache.rows(np.array([local]), flipped[j:j + 1], rng), torch.device("cpu"))
        for k in want:
            assert torch.equal(got[k][j], want[k][0]), (j, k)
    assert not torch.equal(got["s16"][0], got["s16"][4])  # a mirror is not its image


def test_train_cli_mixes_and_refuses_a_bad_spec(parts, tmp_path):
    a, b = parts
    run = tmp_path / "run"
    out = subprocess.run([str(VENV_BIN / "refseg"), "train", "--data", a.root, "--mix", f"tabletop:{b.root}",
                          "--mix", f"tabletop:{a.root}:location", "--out", str(run), "--epochs", "1", "--epoch-samples", "8", "--batch-size", "4",
                          "--val-split", "", "--no-progress", "--threads", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"tabletop:{b.root} ({len(b)} expressions)" in out.stderr
    # a type named: that part is the type's expressions alone (an oversampling of them)
    assert f"tabletop:{a.root}:location ({a.types.count('location')} expressions)" in out.stderr
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert any((Path(b.root) / "cache").glob("features_*/s16.npy"))  # the mixed-in part cached beside its data

    bad = subprocess.run([str(VENV_BIN / "refseg"), "train", "--data", a.root, "--mix", str(b.root),
                          "--out", str(tmp_path / "bad"), "--epochs", "1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--mix expects FORMAT:DIR" in bad.stderr


def test_absent_objects_are_absent_and_share_the_images(parts):
    from refseg_ros.data.absent import AbsentObjectDataset
    from refseg_ros.language.vocabulary import COLOURS, NOUNS
    from refseg_ros.training.caches import _cache_key

    base = parts[0]
    absent = AbsentObjectDataset(base, per_image=3, seed=4)
    assert len(absent) >= len(base.images) and set(absent.types) == {"no_target"}
    assert absent.image_paths == base.image_paths and _cache_key(_Model, absent) == _cache_key(_Model, base)
    on_image = {}
    for ann in base.annotations.values():
        on_image.setdefault(ann["image_id"], []).append((ann["category"], ann["colour"]))
    for i in range(len(absent)):
        sample = absent[i]
        words = sample["expression"]
        _, category = max((len(n), c) for c, nouns in NOUNS.items() for n in nouns if words.endswith(n))
        colour = next((c for c in COLOURS if f"{c} " in f"{words} "), None)
        objects = on_image[sample["image_id"]]
        assert not any(c == category and colour in (None, col) for c, col in objects), (words, objects)
        assert sample["no_target"] and sample["mask"].sum() == 0 and sample["mask"].shape == sample["image"].shape[:2]
    assert AbsentObjectDataset(base, per_image=3, seed=4).expressions == absent.expressions  # seeded


class _Model:  # what the feature-cache key reads of a model
    class cfg:
        backbone, input_size, pixel_mean, pixel_std = "mobilenetv2", (320, 240), (0.5,), (0.5,)
        cnn_scale = 1
