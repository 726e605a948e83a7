"""Samples from a v2 split: one per expression, including those with no or several targets.

The Sample contract (docs/architecture.md) holds: ``mask`` is the union of the targets' masks
(all zeros for a no-target expression), ``box`` their union box (zeros when there is none). Extra
keys: ``targets`` (annotation ids), ``target_masks`` ``uint8 (K, H, W)``, ``target_boxes``
``float32 (K, 4)``, ``no_target``.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

import numpy as np

from refseg_ros.data.dataset import ExpressionDataset, load_index, read_depth
from refseg_ros.data.masks import segmentation_to_mask, xywh_to_xyxy


class TabletopV2Dataset(ExpressionDataset):
    def __init__(self, root: str, split: str = "train", types: Iterable[str] | None = None,
                 augment: Callable[[dict], dict] | None = None):
        super().__init__(augment)
        self.root, self.split = os.fspath(root), split
        path = os.path.join(self.root, f"{split}.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: generate it with `refseg data "
                                    f"tabletop-v2 --out {self.root} --split {split} --scenes N`")
        index = load_index(path)
        if index["info"].get("format_version") != 2:
            raise ValueError(f"{path} is not a tabletop v2 index")
        self.info, self.images = index["info"], index["images"]
        self.annotations = {a["id"]: a for a in index["annotations"]}
        self.records = {e["expr_id"]: e for e in index["expressions"]}
        position = {img["id"]: i for i, img in enumerate(self.images)}
        keep = set(types) if types is not None else None
        samples = [(position[e["image_id"]], e["sent"], e["type"], e["expr_id"], e["expr_id"])
                   for e in index["expressions"] if keep is None or e["type"] in keep]
        self._build_index([os.path.join(self.root, img["file_name"]) for img in self.images],
                          samples)

    def _image_id(self, image_index: int) -> int:
        return int(self.images[image_index]["id"])

    def target_masks(self, expr_id: int, height: int, width: int):
        ids = self.records[expr_id]["target_ann_ids"]
        masks = np.zeros((len(ids), height, width), np.uint8)
        boxes = np.zeros((len(ids), 4), np.float32)
        for k, a in enumerate(ids):
            ann = self.annotations[a]
            masks[k] = segmentation_to_mask(ann["segmentation"], height, width)
            boxes[k] = xywh_to_xyxy(ann["bbox"])
        return ids, masks, boxes

    def _target(self, expr_id, image):
        _, masks, boxes = self.target_masks(expr_id, image.shape[0], image.shape[1])
        if not len(boxes):
            return np.zeros(4, np.float32), np.zeros(image.shape[:2], np.uint8)
        box = np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(),
                        boxes[:, 3].max()], np.float32)
        return box, masks.max(0)

    def __getitem__(self, i: int) -> dict:
        image_idx, expression, kind, expr_id, _ = self._samples[i]
        image = self.load_image(image_idx)
        ids, masks, boxes = self.target_masks(expr_id, image.shape[0], image.shape[1])
        box, mask = self._target(expr_id, image)
        sample = {"image": image, "expression": expression, "box": box, "mask": mask,
                  "type": kind, "ref_id": int(expr_id), "image_id": self._image_id(image_idx),
                  "targets": ids, "target_masks": masks, "target_boxes": boxes,
                  "no_target": not ids}
        if not ids:
            sample["reason"] = no_target_reason(self.records[expr_id])
        if self.augment is not None:
            sample = self.augment(sample)
        return sample

    def camera_info(self, image_index: int) -> dict:
        return self.images[image_index]["camera_info"]

    def depth_frame(self, image_index: int):
        """The image's depth (metres) with its intrinsics, as the node gets them from a camera
        (``model.ground_plane.DepthFrame``)."""
        from refseg_ros.model.ground_plane import DepthFrame

        depth = read_depth(os.path.join(self.root, self.images[image_index]["depth_file"]))
        return DepthFrame.from_k(depth, self.camera_info(image_index)["K"])


def no_target_reason(record: dict) -> str | None:
    """Why an expression record has no target: its structure's ``reason`` ("absent_category",
    "absent_colour"; a relation that holds for nothing as "relation:<name>", e.g.
    "relation:next_to"), or None when it does not say."""
    structure = record.get("structure") or {}
    reason = structure.get("reason")
    if reason == "relation":
        name = ((structure.get("form") or {}).get("relation") or {}).get("name")
        return f"relation:{name}" if name else reason
    return reason
