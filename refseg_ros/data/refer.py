"""RefCOCO, RefCOCO+, RefCOCOg and ReferItGame (RefCLEF), read as the REFER toolkit reads them.

Layout (as distributed with the REFER toolkit)::

    <root>/refcoco/refs(unc).p        <root>/refcoco/refs(google).p   <root>/refcoco/instances.json
    <root>/refcoco+/refs(unc).p       <root>/refcoco+/instances.json
    <root>/refcocog/refs(umd).p       <root>/refcocog/refs(google).p  <root>/refcocog/instances.json
    <root>/refclef/refs(berkeley).p   <root>/refclef/refs(unc).p      <root>/refclef/instances.json
    <root>/images/mscoco/images/train2014/<file_name>   (REFER's own place; images/train2014,
                                                         images/mscoco/train2014, train2014 too)
    <root>/images/saiapr_tc-12/<file_name>              (RefCLEF)

What the published numbers depend on is done as the toolkit does it: masks come from pycocotools
(:mod:`refseg_ros.data.refer_masks`), a split is chosen by the toolkit's rule (``test`` is every
``test*`` split, ``testA`` every split with an ``A``, ...), the text is each sentence's ``sent``,
the box the annotation's ``bbox`` and the image ``instances.json``'s ``file_name``.

The ``refs`` pickles are read by :func:`refseg_ros.data.safe_pickle.load_pickle`, which runs
nothing from the file (a file that tries is refused with :class:`UnsafePickleError`) and decodes
Python 2 strings as UTF-8, else Latin-1. A dataset is checked when it is opened: a missing
annotation or image, an odd-length polygon or a non-finite box is a :class:`ReferDataError`
naming the file and the ref, not a crash in the middle of an epoch. :func:`check_refer` runs the
same checks over every split and summarises them (``refseg data check --format refer``).
"""
from __future__ import annotations

import json
import math
import os
import pickle
from typing import Callable

import numpy as np

from refseg_ros.data.dataset import ExpressionDataset
from refseg_ros.data.masks import xywh_to_xyxy
from refseg_ros.data.refer_masks import is_polygons, refer_mask, segmentation_problem
from refseg_ros.data.safe_pickle import RestrictedUnpickler, UnsafePickleError, load_pickle

__all__ = ["DATASETS", "ALIASES", "ReferDataError", "ReferDataset", "UnsafePickleError",
           "RestrictedUnpickler", "load_refs", "load_instances", "select_split", "check_refer",
           "format_check"]

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
#: how many problems an error message lists before "... and N more"
SHOWN_PROBLEMS = 10


class ReferDataError(ValueError):
    """A REFER file that cannot be read, or refs that point at something missing or malformed."""


def load_refs(path: str) -> list[dict]:
    """The list of ref dicts in a REFER ``refs(*).p`` file (see :mod:`~refseg_ros.data.safe_pickle`).

    Raises :class:`UnsafePickleError` for a file that asks to run anything and
    :class:`ReferDataError` for one that is damaged or is not a list of refs.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        refs = load_pickle(data, source=path)
    except UnsafePickleError:
        raise
    except pickle.UnpicklingError as exc:
        raise ReferDataError(f"{exc} (a damaged or truncated download?)") from None
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise ReferDataError(f"{path}: expected a list of ref dicts, got {type(refs).__name__}")
    return refs


def load_instances(path: str) -> tuple[dict, dict, dict]:
    """``(images, annotations, categories)`` of an ``instances.json``, each keyed by id."""
    try:
        with open(path, encoding="utf-8") as f:
            instances = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReferDataError(f"{path}: not valid JSON ({exc}); a damaged or truncated "
                             "download?") from None
    if not isinstance(instances, dict):
        raise ReferDataError(f"{path}: expected a JSON object, got {type(instances).__name__}")
    tables = []
    for key, required in (("images", True), ("annotations", True), ("categories", False)):
        if key not in instances and required:
            raise ReferDataError(f"{path}: no '{key}' list")
        items = instances.get(key, [])
        if not isinstance(items, list) or not all(isinstance(x, dict) and "id" in x for x in items):
            raise ReferDataError(f"{path}: '{key}' must be a list of objects with an 'id'")
        tables.append({x["id"]: x for x in items})
    images, annotations, categories = tables
    return images, annotations, {k: c.get("name") for k, c in categories.items()}


def select_split(refs: list[dict], split: str) -> list[dict]:
    """The refs the REFER toolkit's ``getRefIds(split=...)`` returns, in file order.

    ``train``/``val``/``testAB``/``testBC``/``testAC``: that split exactly; ``test``: every split
    whose name contains ``test``; ``testA``/``testB``/``testC``: every split whose name contains
    the letter (so ``testAB`` counts for both ``testA`` and ``testB``).
    """
    if split in ("train", "val", "testAB", "testBC", "testAC"):
        return [r for r in refs if r.get("split") == split]
    if split == "test":
        return [r for r in refs if "test" in str(r.get("split"))]
    if split in ("testA", "testB", "testC"):
        return [r for r in refs if split[-1] in str(r.get("split"))]
    raise ValueError(f"unknown split {split!r}: the REFER splits are train, val, test, testA, "
                     "testB, testC, testAB, testBC and testAC")


def sentence_text(sent) -> str | None:
    """A sentence's text as the toolkit shows it (``sent``; else ``raw`` or the tokens)."""
    if not isinstance(sent, dict):
        return None
    text = sent.get("sent") or sent.get("raw") or " ".join(map(str, sent.get("tokens") or []))
    return text if isinstance(text, str) and text.strip() else None


def _image_dir_candidates(root: str, dataset: str) -> list[str]:
    if dataset == "refclef":
        return [os.path.join(root, "images", "saiapr_tc-12"), os.path.join(root, "saiapr_tc-12")]
    return [os.path.join(root, "images", "mscoco", "images", "train2014"),
            os.path.join(root, "images", "train2014"),
            os.path.join(root, "images", "mscoco", "train2014"),
            os.path.join(root, "train2014")]


def _finite_box(box) -> bool:
    return isinstance(box, (list, tuple)) and len(box) == 4 and \
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in box) and \
        box[2] >= 0 and box[3] >= 0


class _Checker:
    """The checks run when a dataset is opened; each problem names the refs file and the ref."""

    def __init__(self, refs_name: str, images: dict, annotations: dict, image_dir: str | None):
        self.refs_name, self.images, self.annotations = refs_name, images, annotations
        self.image_dir = image_dir
        self.checked_anns: dict = {}
        self.checked_images: dict = {}

    def image_problem(self, image_id) -> str | None:
        if image_id not in self.checked_images:
            info = self.images.get(image_id)
            problem = None
            if info is None:
                problem = f"image {image_id!r} is not in instances.json"
            elif not all(isinstance(info.get(k), int) and info[k] > 0 for k in ("height", "width")):
                problem = f"image {image_id!r} has no positive integer height and width"
            elif not isinstance(info.get("file_name"), str):
                problem = f"image {image_id!r} has no file_name"
            elif self.image_dir is not None and \
                    not os.path.isfile(os.path.join(self.image_dir, info["file_name"])):
                problem = f"image file {os.path.join(self.image_dir, info['file_name'])} not found"
            self.checked_images[image_id] = problem
        return self.checked_images[image_id]

    def annotation_problem(self, ann_id, image_id) -> str | None:
        key = (ann_id, image_id)
        if key not in self.checked_anns:
            ann = self.annotations.get(ann_id)
            info = self.images.get(image_id) or {}
            problem = None
            if ann is None:
                problem = f"annotation {ann_id!r} is not in instances.json"
            elif ann.get("image_id") != image_id:
                problem = f"annotation {ann_id!r} is on image {ann.get('image_id')!r}, not " \
                          f"{image_id!r}"
            elif not _finite_box(ann.get("bbox")):
                problem = f"annotation {ann_id!r} has bbox {ann.get('bbox')!r}, not 4 finite " \
                          "numbers x, y, w >= 0, h >= 0"
            elif "segmentation" not in ann:
                problem = f"annotation {ann_id!r} has no segmentation"
            elif info.get("height") and info.get("width"):
                seg = segmentation_problem(ann["segmentation"], info["height"], info["width"])
                problem = f"annotation {ann_id!r}: {seg}" if seg else None
            self.checked_anns[key] = problem
        return self.checked_anns[key]

    def ref_problems(self, ref: dict, index: int) -> list[str]:
        ref_id = ref.get("ref_id", f"#{index}")
        where = f"{self.refs_name} ref {ref_id!r}"
        missing = [k for k in ("ref_id", "ann_id", "image_id", "split", "sentences") if k not in ref]
        if missing:
            return [f"{where}: no {', '.join(missing)}"]
        if not isinstance(ref["ref_id"], int) or not isinstance(ref["image_id"], int):
            return [f"{where}: ref_id and image_id must be integers"]
        problems = [f"{where}: {p}" for p in (self.image_problem(ref["image_id"]),
                                             self.annotation_problem(ref["ann_id"], ref["image_id"]))
                    if p]
        sents = ref["sentences"]
        if not isinstance(sents, list):
            problems.append(f"{where}: sentences is a {type(sents).__name__}, not a list")
        else:
            problems += [f"{where}: sentence {k} has no text" for k, s in enumerate(sents)
                         if sentence_text(s) is None]
        return problems


def _open_files(root: str, dataset: str, split_by: str | None):
    dataset = ALIASES.get(dataset.lower(), dataset.lower())
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASETS)}")
    schemes = DATASETS[dataset]
    split_by = split_by or next(iter(schemes))
    if split_by not in schemes:
        raise ValueError(f"{dataset} has split schemes {sorted(schemes)}, not {split_by!r}")
    refs_path = os.path.join(root, dataset, f"refs({split_by}).p")
    instances_path = os.path.join(root, dataset, "instances.json")
    for path in (refs_path, instances_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found (expected the REFER layout)")
    return dataset, split_by, refs_path, instances_path


def _find_image_dir(root: str, dataset: str, image_dir: str | None) -> str:
    if image_dir is not None:
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"image folder {image_dir} not found")
        return image_dir
    candidates = _image_dir_candidates(root, dataset)
    found = next((d for d in candidates if os.path.isdir(d)), None)
    if found is None:
        raise FileNotFoundError(f"no image folder found; tried {candidates}")
    return found


def _raise_problems(problems: list[str], header: str, hint: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        raise ReferDataError(f"{header}: {len(problems)} problem(s)\n  {shown}" +
                             (f"\n  ... and {more} more" if more > 0 else "") + f"\n{hint}")


class ReferDataset(ExpressionDataset):
    """One REFER dataset split as Samples (``type`` = the dataset name, e.g. ``"refcoco"``).

    Args:
        root: the REFER data folder (holding ``refcoco/``, ``images/``, ...).
        dataset: ``refcoco``, ``refcoco+``, ``refcocog`` or ``refclef`` (``referitgame``).
        split: ``train``, ``val``, ``test``, ``testA``, ... with the toolkit's meaning
            (:func:`select_split`); must select at least one ref.
        split_by: ``unc``, ``google``, ``umd`` or ``berkeley``; default: the dataset's usual one
            (unc, unc, umd, berkeley).
        image_dir: where the images are; default: the first of the usual places that exists.
        augment: called on every Sample.

    Raises:
        FileNotFoundError: a file or the image folder is missing.
        UnsafePickleError: the refs file asks to run something.
        ReferDataError: a file is damaged, or a ref of the split is malformed or points at a
            missing annotation or image (every problem is listed, with the file and ref id).
    """

    def __init__(self, root: str, dataset: str = "refcoco", split: str = "val",
                 split_by: str | None = None, image_dir: str | None = None,
                 augment: Callable[[dict], dict] | None = None):
        super().__init__(augment)
        self.root = os.fspath(root)
        dataset, split_by, refs_path, instances_path = _open_files(self.root, dataset, split_by)
        self.dataset, self.split, self.split_by = dataset, split, split_by
        refs = load_refs(refs_path)
        self.refs = select_split(refs, split)
        if not self.refs:
            available = sorted({str(r.get("split")) for r in refs})
            raise ValueError(f"{refs_path} has no refs in split {split!r}; its splits are "
                             f"{available}")
        self.images, self.annotations, self.categories = load_instances(instances_path)
        self.image_dir = _find_image_dir(self.root, dataset, image_dir)

        checker = _Checker(os.path.basename(refs_path), self.images, self.annotations,
                           self.image_dir)
        problems = [p for i, ref in enumerate(self.refs) for p in checker.ref_problems(ref, i)]
        _raise_problems(problems, f"{dataset} ({split_by}) split {split!r}, {refs_path} with "
                        f"{instances_path}", f"(`refseg data check --format refer --data {self.root}"
                        f" --dataset {dataset} --split-by {split_by}` lists every split's problems)")

        image_ids: list[int] = []
        position: dict[int, int] = {}
        samples = []
        for ref in self.refs:
            image_id = ref["image_id"]
            if image_id not in position:
                position[image_id] = len(image_ids)
                image_ids.append(image_id)
            for sent in ref["sentences"]:
                samples.append((position[image_id], sentence_text(sent), dataset, ref["ref_id"],
                                ref["ann_id"]))
        self.image_ids = image_ids
        self._build_index([self._image_path(i) for i in image_ids], samples)

    def _image_path(self, image_id: int) -> str:
        return os.path.join(self.image_dir, self.images[image_id]["file_name"])

    def _image_id(self, image_index: int) -> int:
        return int(self.image_ids[image_index])

    def _target(self, ann_id, image: np.ndarray):
        ann = self.annotations[ann_id]
        info = self.images[ann["image_id"]]
        h, w = info["height"], info["width"]
        if image.shape[:2] != (h, w):
            raise ReferDataError(
                f"{self._image_path(ann['image_id'])} is {image.shape[1]}x{image.shape[0]} but "
                f"instances.json says {w}x{h} (image {ann['image_id']!r}, annotation {ann_id!r})")
        try:
            mask = refer_mask(ann["segmentation"], h, w)
        except ValueError as exc:
            raise ReferDataError(f"annotation {ann_id!r}: {exc}") from None
        return xywh_to_xyxy(ann["bbox"]), mask


def check_refer(root: str, dataset: str = "refcoco", split_by: str | None = None,
                image_dir: str | None = None) -> dict:
    """Every check :class:`ReferDataset` runs, over every split of a dataset's scheme.

    Returns ``{"dataset", "split_by", "refs_file", "instances_file", "image_dir", "splits":
    {split: {"refs", "sentences", "images", "annotations"}}, "polygon_masks", "rle_masks",
    "problems": [str]}``; a file that cannot be read at all is the only problem reported then.
    """
    root = os.fspath(root)
    dataset, split_by, refs_path, instances_path = _open_files(root, dataset, split_by)
    report = {"dataset": dataset, "split_by": split_by, "refs_file": refs_path,
              "instances_file": instances_path, "image_dir": None, "splits": {},
              "polygon_masks": 0, "rle_masks": 0, "problems": []}
    try:
        refs = load_refs(refs_path)
        images, annotations, _ = load_instances(instances_path)
    except (ReferDataError, UnsafePickleError) as exc:
        report["problems"].append(str(exc))
        return report
    try:
        report["image_dir"] = _find_image_dir(root, dataset, image_dir)
    except FileNotFoundError as exc:
        report["problems"].append(str(exc))
    checker = _Checker(os.path.basename(refs_path), images, annotations, report["image_dir"])
    for i, ref in enumerate(refs):
        report["problems"] += checker.ref_problems(ref, i)
    for name in sorted({str(r.get("split")) for r in refs}):
        chosen = [r for r in refs if str(r.get("split")) == name]
        report["splits"][name] = {
            "refs": len(chosen),
            "sentences": sum(len(r.get("sentences") or []) for r in chosen),
            "images": len({r.get("image_id") for r in chosen}),
            "annotations": len({r.get("ann_id") for r in chosen})}
    used = {r.get("ann_id") for r in refs} & set(annotations)
    polygons = sum(is_polygons(annotations[a].get("segmentation")) for a in used)
    report["polygon_masks"], report["rle_masks"] = polygons, len(used) - polygons
    return report


def format_check(report: dict, max_problems: int = 50) -> str:
    """The summary ``refseg data check`` prints for a :func:`check_refer` report."""
    lines = [f"{report['dataset']} ({report['split_by']}): {report['refs_file']}",
             f"  instances: {report['instances_file']}",
             f"  images:    {report['image_dir'] or 'not found'}"]
    if report["splits"]:
        lines.append(f"  {'split':<8} {'refs':>8} {'sentences':>10} {'images':>8} "
                     f"{'objects':>8}")
        for name, c in report["splits"].items():
            lines.append(f"  {name:<8} {c['refs']:>8} {c['sentences']:>10} {c['images']:>8} "
                         f"{c['annotations']:>8}")
        lines.append(f"  masks: {report['polygon_masks']} polygon, {report['rle_masks']} RLE "
                     "(decoded with pycocotools)")
    problems = report["problems"]
    lines.append(f"  problems: {len(problems)}" + ("" if problems else " (ok)"))
    lines += [f"    {p}" for p in problems[:max_problems]]
    if len(problems) > max_problems:
        lines.append(f"    ... and {len(problems) - max_problems} more")
    return "\n".join(lines)
