"""Several expression datasets trained on as one (e.g. tabletop v2 with the v1 generator's scenes).

A fine-tune on a new generator's data forgets what only the old data taught; mixing the old data
back in keeps it. :class:`MixedDataset` presents its parts through the shared indexing scheme of
:mod:`refseg_ros.data.dataset`, so the trainer's caches work on it unchanged, and keeps each part
addressable (``parts``, ``image_offsets``) so that per-part feature caches are reused rather than
recomputed for the mixture.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object

__all__ = ["MixedDataset"]


class MixedDataset(_TorchDataset):
    """The samples of every part, in order: part 0's, then part 1's, ...

    Args:
        parts: datasets following the shared indexing scheme (``image_paths``, ``expressions``,
            ``image_index``, ``expression_index``, ``target_keys``, ``target``, ``load_image``).
        names: a label per part (recorded per sample as ``source``; default ``part0``, ...).
    """

    def __init__(self, parts: Sequence, names: Sequence[str] | None = None):
        if not parts:
            raise ValueError("MixedDataset needs at least one dataset")
        self.parts = list(parts)
        self.names = list(names) if names is not None else [f"part{k}" for k in range(len(parts))]
        if len(self.names) != len(self.parts):
            raise ValueError("one name per part")
        self.root = getattr(self.parts[0], "root", None)
        self.image_offsets = np.cumsum([0] + [len(p.image_paths) for p in self.parts]).astype(np.int64)
        self.sample_offsets = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)
        self.image_paths = [path for p in self.parts for path in p.image_paths]
        self.expressions = sorted({e for p in self.parts for e in p.expressions})
        position = {e: i for i, e in enumerate(self.expressions)}
        self.image_index = np.concatenate([np.asarray(p.image_index, np.int64) + off
                                           for p, off in zip(self.parts, self.image_offsets)])
        self.expression_index = np.concatenate([
            np.array([position[e] for e in p.expressions], np.int64)[np.asarray(p.expression_index, np.int64)]
            for p in self.parts])
        images = [getattr(p, "images", None) for p in self.parts]
        if all(isinstance(im, list) and len(im) == len(p.image_paths) for im, p in zip(images, self.parts)):
            self.images = [record for im in images for record in im]  # sizes per image, as the caches read them

    def __len__(self) -> int:
        return int(self.sample_offsets[-1])

    @staticmethod
    def _part_of(offsets: np.ndarray, i: int) -> tuple[int, int]:
        """(part, index within it) of position ``i`` of a run of parts starting at ``offsets``."""
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        return k, i - int(offsets[k])

    @property
    def types(self) -> list[str]:
        return [t for p in self.parts for t in p.types]

    @property
    def target_keys(self) -> list:
        """``(part, key)`` per sample: keys of different parts never collide."""
        return [(k, key) for k, p in enumerate(self.parts) for key in p.target_keys]

    def target(self, key, height: int, width: int):
        k, inner = key
        return self.parts[k].target(inner, height, width)

    def load_image(self, image_index: int) -> np.ndarray:
        k, local = self._part_of(self.image_offsets, image_index)
        return self.parts[k].load_image(local)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k, local = self._part_of(self.sample_offsets, i)
        sample = self.parts[k][local]
        sample["source"] = self.names[k]
        return sample

    @property
    def augment(self):
        return self.parts[0].augment

    @augment.setter
    def augment(self, value) -> None:  # the online path augments every part alike
        for p in self.parts:
            p.augment = value
