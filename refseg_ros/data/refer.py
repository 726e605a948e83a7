"""RefCOCO, RefCOCO+, RefCOCOg and ReferItGame (RefCLEF) in the standard REFER layout.

Layout (as distributed with the REFER toolkit)::

    <root>/refcoco/refs(unc).p        <root>/refcoco/refs(google).p   <root>/refcoco/instances.json
    <root>/refcoco+/refs(unc).p       <root>/refcoco+/instances.json
    <root>/refcocog/refs(umd).p       <root>/refcocog/refs(google).p  <root>/refcocog/instances.json
    <root>/refclef/refs(berkeley).p   <root>/refclef/refs(unc).p      <root>/refclef/instances.json
    <root>/images/train2014/COCO_train2014_%012d.jpg    (REFER's own images/mscoco/images/train2014
                                                         is found too)
    <root>/images/saiapr_tc-12/...                      (RefCLEF)

The ``refs`` files are pickles. They are read by :class:`RestrictedUnpickler`, which resolves no
global other than plain containers (dict, list, tuple, set, ...), strings and numbers, so a file
that tries to call anything (``os.system`` through ``__reduce__``, say) is refused with
:class:`UnsafePickleError` instead of run.
"""
from __future__ import annotations

import io
import json
import os
import pickle
from typing import Callable

import numpy as np

from refseg_ros.data.dataset import ExpressionDataset
from refseg_ros.data.masks import segmentation_to_mask, xywh_to_xyxy

#: dataset -> its split schemes (first = default) -> the splits each defines
DATASETS: dict[str, dict[str, tuple[str, ...]]] = {
    "refcoco": {"unc": ("train", "val", "testA", "testB"), "google": ("train", "val", "test")},
    "refcoco+": {"unc": ("train", "val", "testA", "testB")},
    "refcocog": {"umd": ("train", "val", "test"), "google": ("train", "val")},
    "refclef": {"berkeley": ("train", "val", "test"),
                "unc": ("train", "val", "testA", "testB", "testC")},
}
#: the same datasets under the names papers use
ALIASES = {"referitgame": "refclef", "referit": "refclef", "refcocoplus": "refcoco+"}


class UnsafePickleError(pickle.UnpicklingError):
    """A refs pickle asked for a global that is not a plain container, string or number."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only plain containers, strings and numbers.

    Python 2 pickles name the builtins module ``__builtin__``; both spellings are accepted.
    """

    ALLOWED = frozenset({"dict", "list", "tuple", "set", "frozenset", "str", "bytes",
                         "bytearray", "int", "float", "complex", "bool", "unicode", "long"})
    ALLOWED_OTHER = frozenset({("collections", "OrderedDict")})

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module in ("builtins", "__builtin__") and name in self.ALLOWED) or \
                (module, name) in self.ALLOWED_OTHER:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to unpickle global '{module}.{name}' in {self.source}: REFER refs files "
            "hold only containers, strings and numbers; this file may be malicious or not a "
            "refs file")


def load_refs(path: str) -> list[dict]:
    """The list of ref dicts in a REFER ``refs(*).p`` file, read with :class:`RestrictedUnpickler`.

    Python 2 byte strings are decoded as UTF-8 (undecodable bytes replaced).
    """
    with open(path, "rb") as f:
        data = f.read()
    refs = RestrictedUnpickler(io.BytesIO(data), source=path, encoding="utf-8",
                               errors="replace").load()
    if not isinstance(refs, list):
        raise ValueError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def _image_dir_candidates(root: str, dataset: str) -> list[str]:
    if dataset == "refclef":
        return [os.path.join(root, "images", "saiapr_tc-12"), os.path.join(root, "saiapr_tc-12")]
    return [os.path.join(root, "images", "train2014"),
            os.path.join(root, "images", "mscoco", "images", "train2014"),
            os.path.join(root, "images", "mscoco", "train2014"),
            os.path.join(root, "train2014")]


class ReferDataset(ExpressionDataset):
    """One REFER dataset split as Samples (``type`` = the dataset name, e.g. ``"refcoco"``).

    Args:
        root: the REFER data folder (holding ``refcoco/``, ``images/``, ...).
        dataset: ``refcoco``, ``refcoco+``, ``refcocog`` or ``refclef`` (``referitgame``).
        split: ``train``, ``val``, ``testA``, ``testB``, ``test``, ... as the scheme defines.
        split_by: ``unc``, ``google``, ``umd`` or ``berkeley``; default: the dataset's usual one
            (unc, unc, umd, berkeley).
        image_dir: where the images are; default: the first of the usual places that exists.
        augment: called on every Sample.
    """

    def __init__(self, root: str, dataset: str = "refcoco", split: str = "val",
                 split_by: str | None = None, image_dir: str | None = None,
                 augment: Callable[[dict], dict] | None = None):
        super().__init__(augment)
        dataset = ALIASES.get(dataset.lower(), dataset.lower())
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASETS)}")
        schemes = DATASETS[dataset]
        split_by = split_by or next(iter(schemes))
        if split_by not in schemes:
            raise ValueError(f"{dataset} has split schemes {sorted(schemes)}, not {split_by!r}")
        self.root, self.dataset, self.split, self.split_by = os.fspath(root), dataset, split, \
            split_by
        refs_path = os.path.join(self.root, dataset, f"refs({split_by}).p")
        instances_path = os.path.join(self.root, dataset, "instances.json")
        for path in (refs_path, instances_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} not found (expected the REFER layout)")
        refs = load_refs(refs_path)
        available = sorted({r.get("split") for r in refs})
        if split not in available:
            raise ValueError(f"{dataset} ({split_by}) has splits {available}, not {split!r}")
        with open(instances_path) as f:
            instances = json.load(f)
        self.images = {img["id"]: img for img in instances["images"]}
        self.annotations = {ann["id"]: ann for ann in instances["annotations"]}
        self.categories = {c["id"]: c["name"] for c in instances.get("categories", [])}

        if image_dir is None:
            candidates = _image_dir_candidates(self.root, dataset)
            image_dir = next((d for d in candidates if os.path.isdir(d)), None)
            if image_dir is None:
                raise FileNotFoundError(f"no image folder found; tried {candidates}")
        self.image_dir = image_dir

        self.refs = [r for r in refs if r.get("split") == split]
        image_ids: list[int] = []
        position: dict[int, int] = {}
        samples = []
        for ref in self.refs:
            image_id = int(ref["image_id"])
            if image_id not in position:
                position[image_id] = len(image_ids)
                image_ids.append(image_id)
            for sent in ref["sentences"]:
                text = sent.get("sent") or sent.get("raw") or " ".join(sent.get("tokens", []))
                samples.append((position[image_id], text, dataset, int(ref["ref_id"]),
                                int(ref["ann_id"])))
        self.image_ids = image_ids
        self._build_index([self._image_path(i) for i in image_ids], samples)

    def _image_path(self, image_id: int) -> str:
        info = self.images.get(image_id, {})
        name = info.get("file_name") or f"COCO_train2014_{image_id:012d}.jpg"
        return os.path.join(self.image_dir, name)

    def _image_id(self, image_index: int) -> int:
        return int(self.image_ids[image_index])

    def _target(self, ann_id, image: np.ndarray):
        ann = self.annotations[ann_id]
        mask = segmentation_to_mask(ann["segmentation"], image.shape[0], image.shape[1])
        return xywh_to_xyxy(ann["bbox"]), mask
