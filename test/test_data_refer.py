"""REFER-layout datasets (RefCOCO, RefCOCO+, RefCOCOg, RefCLEF) on a tiny fixture written here,
and the restricted unpickler that reads their ``refs`` pickles."""
from __future__ import annotations

import json
import os
import pickle

import cv2
import numpy as np
import pytest

from refseg_ros.data.masks import counts_to_string, decode_rle, rle_counts
from refseg_ros.data.refer import ReferDataset, UnsafePickleError, load_refs

H, W = 30, 40


def _ref(ref_id, ann_id, image_id, split, sentences):
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split,
            "category_id": 1, "file_name": f"COCO_train2014_{image_id:012d}_{ref_id}.jpg",
            "sent_ids": list(range(len(sentences))),
            "sentences": [{"sent_id": i, "sent": s, "raw": s.upper(), "tokens": s.split()}
                          for i, s in enumerate(sentences)]}


def _square_mask(x0, y0, x1, y1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


@pytest.fixture(scope="module")
def refer_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refer")
    img_dir = root / "images" / "train2014"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for image_id in (1, 2):
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        cv2.imwrite(str(img_dir / f"COCO_train2014_{image_id:012d}.jpg"), img)
    crowd = _square_mask(20, 5, 30, 25)
    instances = {
        "images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": H,
                    "width": W} for i in (1, 2)],
        "annotations": [
            # polygon: the square 2..12 x 4..14
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
             "bbox": [2, 4, 10, 10], "segmentation": [[2, 4, 12, 4, 12, 14, 2, 14]]},
            # uncompressed RLE (list counts), as COCO stores crowds
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 200.0,
             "bbox": [20, 5, 10, 20], "segmentation": {"size": [H, W],
                                                       "counts": rle_counts(crowd)}},
            # compressed RLE (string counts)
            {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 36.0,
             "bbox": [0, 0, 6, 6], "segmentation": {
                 "size": [H, W], "counts": counts_to_string(rle_counts(_square_mask(0, 0, 6, 6)))}},
        ],
        "categories": [{"id": 1, "name": "thing", "supercategory": "thing"}],
    }
    refs_unc = [
        _ref(0, 10, 1, "train", ["left square", "the small one"]),
        _ref(1, 11, 1, "train", ["right block"]),
        _ref(2, 12, 2, "val", ["corner", "top left", "tiny"]),
        _ref(3, 10, 1, "testA", ["man on the left"]),
        _ref(4, 11, 1, "testB", ["red thing", "the tall box"]),
    ]
    refs_umd = [_ref(5, 10, 1, "train", ["a square"]), _ref(6, 12, 2, "val", ["x"]),
                _ref(7, 11, 1, "test", ["y", "z"])]
    for dataset, name, refs, protocol in [("refcoco", "refs(unc).p", refs_unc, 2),
                                          ("refcoco+", "refs(unc).p", refs_unc, 0),
                                          ("refcocog", "refs(umd).p", refs_umd, 4),
                                          ("refcocog", "refs(google).p", refs_umd[:2], 2)]:
        (root / dataset).mkdir(exist_ok=True)
        with open(root / dataset / name, "wb") as f:
            pickle.dump(refs, f, protocol=protocol)
        (root / dataset / "instances.json").write_text(json.dumps(instances))
    return root


@pytest.mark.parametrize("dataset,split,count,images", [
    ("refcoco", "train", 3, 1), ("refcoco", "val", 3, 1), ("refcoco", "testA", 1, 1),
    ("refcoco", "testB", 2, 1), ("refcoco+", "train", 3, 1), ("refcocog", "train", 1, 1),
    ("refcocog", "val", 1, 1), ("refcocog", "test", 2, 1)])
def test_counts_per_split(refer_root, dataset, split, count, images):
    ds = ReferDataset(refer_root, dataset, split)
    assert len(ds) == count
    assert len(ds.image_paths) == images and all(os.path.exists(p) for p in ds.image_paths)
    assert len(ds.image_index) == len(ds.expression_index) == count


def test_samples_follow_the_contract(refer_root):
    ds = ReferDataset(refer_root, "refcoco", "train")
    assert ds.expressions == ["left square", "right block", "the small one"]
    by_text = {ds[i]["expression"]: ds[i] for i in range(len(ds))}
    s = by_text["left square"]
    assert set(s) == {"image", "expression", "box", "mask", "type", "ref_id", "image_id"}
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    assert s["mask"].shape == (H, W) and s["mask"].dtype == np.uint8
    assert s["box"].dtype == np.float32
    np.testing.assert_array_equal(s["box"], [2, 4, 12, 14])
    assert s["type"] == "refcoco" and s["ref_id"] == 0 and s["image_id"] == 1
    assert 90 <= s["mask"].sum() <= 121  # the polygon's square, edges included or not
    crowd = by_text["right block"]["mask"]
    np.testing.assert_array_equal(crowd, _square_mask(20, 5, 30, 25))
    val = ReferDataset(refer_root, "refcoco", "val")
    np.testing.assert_array_equal(val[0]["mask"], _square_mask(0, 0, 6, 6))


def test_split_schemes_and_errors(refer_root):
    assert len(ReferDataset(refer_root, "refcocog", "val", split_by="google")) == 1
    with pytest.raises(ValueError, match="testA"):
        ReferDataset(refer_root, "refcoco", "test")  # unc has testA/testB, not test
    with pytest.raises(ValueError):
        ReferDataset(refer_root, "refcoco+", "val", split_by="google")
    with pytest.raises(FileNotFoundError):
        ReferDataset(refer_root, "referitgame", "test")  # refclef not in this fixture


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_forbidden_global_is_refused(refer_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "refs(unc).p"
    with open(evil, "wb") as f:
        pickle.dump([{"ref_id": 0, "payload": _Evil()}], f, protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        load_refs(str(evil))
    assert not (tmp_path / "pwned_by_pickle").exists()
    # through the dataset too: a refs file swapped for a malicious one is refused
    bad_root = tmp_path / "root"
    (bad_root / "refcoco").mkdir(parents=True)
    (bad_root / "refcoco" / "refs(unc).p").write_bytes(evil.read_bytes())
    (bad_root / "refcoco" / "instances.json").write_text(
        (refer_root / "refcoco" / "instances.json").read_text())
    with pytest.raises(UnsafePickleError):
        ReferDataset(bad_root, "refcoco", "val", image_dir=str(tmp_path))
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_other_globals_are_refused(tmp_path):
    import collections

    path = tmp_path / "refs.p"
    path.write_bytes(pickle.dumps([collections.Counter(a=1)]))
    with pytest.raises(UnsafePickleError, match="Counter"):
        load_refs(str(path))
    path.write_bytes(pickle.dumps([collections.OrderedDict(a=1), {1, 2}, (1.5, "x")]))
    assert load_refs(str(path)) == [collections.OrderedDict(a=1), {1, 2}, (1.5, "x")]


def test_python2_style_pickle(tmp_path):
    # protocol 2 with py2 `__builtin__` global names and byte strings, as REFER files were made
    data = (b"\x80\x02]q\x00}q\x01(U\x05splitq\x02U\x05trainq\x03U\x06ref_idq\x04K\x07"
            b"U\x03setq\x05c__builtin__\nset\nq\x06]q\x07K\x01a\x85q\x08Rq\tua.")
    path = tmp_path / "refs.p"
    path.write_bytes(data)
    assert load_refs(str(path)) == [{"split": "train", "ref_id": 7, "set": {1}}]


def test_rle_decoder_reads_string_and_list_counts():
    m = _square_mask(3, 2, 9, 11)
    assert np.array_equal(decode_rle({"size": [H, W], "counts": rle_counts(m)}), m)
    assert np.array_equal(decode_rle({"size": [H, W], "counts": counts_to_string(rle_counts(m))}),
                          m)
    with pytest.raises(ValueError):
        decode_rle({"size": [H, W], "counts": [5, 5]})
