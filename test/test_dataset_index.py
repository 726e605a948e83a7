"""Datasets that read the same split index share its parsed JSON (a training mixture opens one v2
index once per type-filtered part); a rewritten index is read again."""
from __future__ import annotations

import json
import os

from refseg_ros.data import dataset as dataset_module
from refseg_ros.data.dataset import TabletopRefDataset, load_index
from refseg_ros.data.v2.dataset import TabletopV2Dataset


def _v2_index(n_expressions: int) -> dict:
    exprs = [{"expr_id": i, "image_id": 0, "sent": f"the mug {i}", "type": "category" if i % 2 else "no_target",
              "target_ann_ids": [0] if i % 2 else []} for i in range(n_expressions)]
    return {"info": {"format_version": 2}, "images": [{"id": 0, "file_name": "rgb/0.png", "width": 320, "height": 240}],
            "annotations": [{"id": 0, "bbox": [1, 2, 3, 4]}], "expressions": exprs}


def test_parts_of_one_split_share_its_index_and_a_rewrite_is_read_again(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(_v2_index(4)))
    everything = TabletopV2Dataset(tmp_path, "train")
    some = TabletopV2Dataset(tmp_path, "train", types=["no_target"])
    assert (len(everything), len(some)) == (4, 2)
    assert some.images is everything.images and some.info is everything.info
    assert load_index(str(path)) is load_index(os.path.join(str(tmp_path), ".", "train.json"))

    path.write_text(json.dumps(_v2_index(6)))  # regenerated: another size, a newer time
    assert len(TabletopV2Dataset(tmp_path, "train")) == 6


def test_v1_index_shared_and_the_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "INDEX_CACHE_SIZE", 2)
    index = {"info": {}, "images": [{"id": 0, "file_name": "a.png"}], "annotations": [],
             "refs": [{"ref_id": 0, "ann_id": 0, "image_id": 0, "sentences": [{"sent": "the duck", "type": "category"}]}]}
    roots = []
    for k in range(3):
        root = tmp_path / f"split{k}"
        root.mkdir()
        (root / "val.json").write_text(json.dumps(index))
        roots.append(root)
    a, b = TabletopRefDataset(roots[0], "val"), TabletopRefDataset(roots[0], "val", types=["category"])
    assert a.images is b.images and len(a) == len(b) == 1
    for root in roots[1:]:
        TabletopRefDataset(root, "val")
    assert len(dataset_module._INDEXES) == 2  # the first split's index was let go
    assert TabletopRefDataset(roots[0], "val").images is not a.images
