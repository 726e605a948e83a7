"""PyTorch Datasets of referring expressions; every item is a Sample (docs/architecture.md).

Both datasets here (and :class:`refseg_ros.data.refer.ReferDataset`) share one indexing scheme,
for training code that caches per image and per expression:

* ``dataset.image_paths``: the distinct images, ``image_index`` positions into it;
* ``dataset.expressions``: the distinct expression strings (sorted);
* ``dataset.image_index[i]`` / ``dataset.expression_index[i]``: sample ``i``'s image and
  expression (numpy int64 arrays, one entry per sample);
* ``dataset.target_keys[i]`` and ``dataset.target(key, h, w)``: sample ``i``'s target and its
  box and mask, without reading the image.

Augmentation changes a sample's image and expression (a flip swaps left and right), so caches keyed
by these indices are for un-augmented samples.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Callable, Iterable, Sequence

import numpy as np

from refseg_ros.data.masks import segmentation_to_mask, xywh_to_xyxy

try:  # a torch Dataset when torch is there; the class works the same without it
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object


#: Parsed split indexes, shared by the datasets that read the same file (a training mixture opens
#: one v2 index up to seven times, once per type-filtered part; 0.3 GB each for 6,000 scenes).
_INDEXES: OrderedDict = OrderedDict()
#: How many parsed indexes stay shared (the least recently opened is let go first).
INDEX_CACHE_SIZE = 4


def load_index(path: str) -> dict:
    """The parsed JSON of a split index, shared with every other dataset that opened the same
    unchanged file (by path, size and modification time). Read-only: datasets build their own
    lookups from it and never modify it."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key in _INDEXES:
        _INDEXES.move_to_end(key)
        return _INDEXES[key]
    with open(path) as f:
        index = json.load(f)
    _INDEXES[key] = index
    while len(_INDEXES) > INDEX_CACHE_SIZE:
        _INDEXES.popitem(last=False)
    return index


def read_rgb(path: str) -> np.ndarray:
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ExpressionDataset(_TorchDataset):
    """One sample per (target, expression); subclasses fill the index in ``__init__`` through
    :meth:`_build_index` and implement :meth:`_target`.
    """

    image_paths: list[str]
    expressions: list[str]
    image_index: np.ndarray
    expression_index: np.ndarray

    def __init__(self, augment: Callable[[dict], dict] | None = None):
        self.augment = augment

    def _build_index(self, image_paths: list[str], samples: Sequence[tuple]) -> None:
        """``samples``: ``(image index, expression, type, ref_id, ann key)`` per sample."""
        self.image_paths = image_paths
        self.expressions = sorted({s[1] for s in samples})
        position = {e: i for i, e in enumerate(self.expressions)}
        self.image_index = np.array([s[0] for s in samples], dtype=np.int64)
        self.expression_index = np.array([position[s[1]] for s in samples], dtype=np.int64)
        self._samples = list(samples)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def types(self) -> list[str]:
        """Expression type of every sample."""
        return [s[2] for s in self._samples]

    @property
    def target_keys(self) -> list:
        """The target (annotation id) of every sample; samples about one object share it."""
        return [s[4] for s in self._samples]

    def target(self, key, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(box ``x_min, y_min, x_max, y_max`` float32, mask uint8 (H, W)) of a target key,
        without reading its image (for caching targets)."""
        return self._target(key, np.empty((height, width, 0), np.uint8))

    def load_image(self, image_index: int) -> np.ndarray:
        return read_rgb(self.image_paths[image_index])

    def _target(self, ann_key, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box xyxy float32, mask uint8) of a target."""
        raise NotImplementedError

    def _image_id(self, image_index: int) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        image_idx, expression, kind, ref_id, ann_key = self._samples[i]
        image = self.load_image(image_idx)
        box, mask = self._target(ann_key, image)
        sample = {"image": image, "expression": expression, "box": box, "mask": mask,
                  "type": kind, "ref_id": int(ref_id), "image_id": self._image_id(image_idx)}
        if self.augment is not None:
            sample = self.augment(sample)
        return sample


def read_depth(path: str) -> np.ndarray:
    """A generated split's depth PNG (uint16 millimetres) as ``float32 (H, W)`` metres (0 = invalid)."""
    import cv2

    from refseg_ros.data.geometry import mm_to_depth

    depth = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise FileNotFoundError(path)
    return mm_to_depth(depth)


class TabletopRefDataset(ExpressionDataset):
    """The generated tabletop data (``refseg data tabletop``), one sample per expression.

    Args:
        root: the ``--out`` directory (holding ``<split>.json``).
        split: ``train``, ``val``, ``test``, ``compositional`` or any generated split name.
        types: keep only expressions of these types (default: all).
        augment: called on every Sample (e.g. :class:`refseg_ros.data.augment.Augment`).
    """

    def __init__(self, root: str, split: str = "train", types: Iterable[str] | None = None,
                 augment: Callable[[dict], dict] | None = None):
        super().__init__(augment)
        self.root = os.fspath(root)
        self.split = split
        path = os.path.join(self.root, f"{split}.json")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} not found: generate it with `refseg data tabletop --out {self.root} "
                f"--split {split} --scenes N`")
        index = load_index(path)
        self.info = index["info"]
        self.images = index["images"]
        self.annotations = {a["id"]: a for a in index["annotations"]}
        self.refs = index["refs"]
        keep = set(types) if types is not None else None
        position = {img["id"]: i for i, img in enumerate(self.images)}
        samples = []
        for ref in self.refs:
            for s in ref["sentences"]:
                if keep is None or s["type"] in keep:
                    samples.append((position[ref["image_id"]], s["sent"], s["type"],
                                    ref["ref_id"], ref["ann_id"]))
        self._build_index([os.path.join(self.root, img["file_name"]) for img in self.images],
                          samples)

    def _image_id(self, image_index: int) -> int:
        return int(self.images[image_index]["id"])

    def _target(self, ann_id, image):
        ann = self.annotations[ann_id]
        mask = segmentation_to_mask(ann["segmentation"], image.shape[0], image.shape[1])
        return xywh_to_xyxy(ann["bbox"]), mask

    def sentence(self, i: int) -> dict:
        """The full record of sample ``i``'s expression (``sent``, ``type``, ``structure``)."""
        _, expression, _, ref_id, _ = self._samples[i]
        ref = next(r for r in self.refs if r["ref_id"] == ref_id)
        return next(s for s in ref["sentences"] if s["sent"] == expression)

    def scene(self, image_index: int) -> dict:
        """An image's record (camera_info, pose, ...) with its ``annotations``."""
        image = dict(self.images[image_index])
        image["annotations"] = [a for a in self.annotations.values()
                                if a["image_id"] == image["id"]]
        return image

    def load_depth(self, image_index: int) -> np.ndarray:
        """``float32 (H, W)`` depth in metres (0 = invalid) of an image."""
        return read_depth(os.path.join(self.root, self.images[image_index]["depth_file"]))
