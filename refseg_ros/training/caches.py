"""The cached training path's data: what the frozen parts of the model compute, computed once.

* :class:`FeatureCache`: the frozen CNN's stride-4/8/16 features of every training image and of its
  mirror image (and optionally of camera variants of each, with their mirrors), in memory-mapped
  fp16 files next to the data (shared by runs, resumable);
* :class:`TextCache`: the frozen text encoder's token features per distinct expression (and its
  left/right-swapped twin, for mirrored images), computed on first use;
* :class:`TargetCache`: every target's box and mask (the bits of its bounding rectangle), decoded once.

A step then runs only the trainable part of the model on gathered rows (``Trainer._cached_batch``).
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from refseg_ros.model.inference import fast_image_features
from refseg_ros.model.letterbox import letterbox_images

__all__ = ["FeatureCache", "MixedFeatureCache", "TargetCache", "TextCache"]

log = logging.getLogger("refseg.cache")


def _cache_key(model, dataset, augment=None) -> str:
    """Identifies the frozen CNN, the image list and the variants, so a cache is reused only when valid.

    Without variants the key is what it was before variants existed, so those caches stay valid.
    """
    h = hashlib.sha256()
    frozen = {"backbone": model.cfg.backbone, "input_size": model.cfg.input_size,
              "mean": model.cfg.pixel_mean, "std": model.cfg.pixel_std}
    if model.cfg.cnn_scale != 1:   # only then: the caches made before the option stay valid
        frozen["cnn_scale"] = model.cfg.cnn_scale
    h.update(json.dumps(frozen).encode())
    for path in dataset.image_paths:
        h.update(path.encode())
    if augment is not None and augment.count > 0:
        h.update(json.dumps(augment.key(), sort_keys=True).encode())
    return h.hexdigest()[:16]


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` across processes (held for file creation and progress records)."""
    import fcntl

    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _indexed_sizes(dataset) -> np.ndarray | None:
    """``(h, w)`` of every image as the dataset's index records it (``images[i]``), if it does."""
    images = getattr(dataset, "images", None)
    if not isinstance(images, list) or len(images) != len(dataset.image_paths):
        return None
    if not all(isinstance(im, dict) and "height" in im and "width" in im for im in images):
        return None
    return np.array([[int(im["height"]), int(im["width"])] for im in images], dtype=np.int64)


def image_sizes(dataset) -> np.ndarray:
    """``(h, w)`` of every image of ``dataset``: from its index where it has them, else read."""
    sizes = _indexed_sizes(dataset)
    if sizes is None:
        sizes = np.array([dataset.load_image(i).shape[:2] for i in range(len(dataset.image_paths))], np.int64)
    return sizes


class FeatureCache:
    """Frozen image features of every image, its camera variants and their mirrors (memory-mapped fp16).

    With ``V`` variants each image ``i`` owns ``R = 2 * (V + 1)`` consecutive rows: row
    ``i * R + 2 * v`` holds variant ``v`` (0: the image itself) and the next row its horizontal
    mirror; without variants that is row ``2 * i`` and ``2 * i + 1``. Built once and shared by
    concurrent runs; resumable (each variant is drawn from its own seeded stream, and
    ``filled.npy`` records which images are written out); several processes may build one cache
    together, each its ``shard``.

    Args:
        model: the model whose frozen ``image_features`` are cached.
        dataset: exposes ``image_paths`` and ``load_image(i)`` (one image size).
        cache_dir: the directory that holds one sub-directory per cache key.
        augment: a ``CachedVariants`` (``TrainConfig.cache_augment()``); ``None`` or 0 variants:
            the clean images and their mirrors only.
        mixed_sizes: accept images of several sizes (each letterboxed on its own; the features
            have the model input's size either way). Only for a caller whose targets follow each
            image's size (:meth:`TargetCache.gather_input`); otherwise one size is required.
        shard: ``(k, m)``: fill only images ``k, k + m, k + 2m, ...`` (run ``m`` processes with
            ``k = 0..m-1`` to build a cache on ``m`` cores). ``complete`` says whether all are in.
    """

    flush_every = 200  # images between progress records: what an interruption can cost

    def __init__(self, model, dataset, cache_dir: Path, progress: bool = True, augment=None,
                 mixed_sizes: bool = False, shard: tuple[int, int] = (0, 1)) -> None:
        part, parts = (int(v) for v in shard)
        if not 0 <= part < parts:
            raise ValueError(f"shard must be (k, m) with 0 <= k < m; got {shard}")
        self.mixed_sizes = mixed_sizes
        self.augment = augment if augment is not None and augment.count > 0 else None
        self.variants = self.augment.count if self.augment else 0
        self.p_clean = self.augment.p_clean if self.augment else 1.0
        self.p_clean_colour = self.augment.p_clean_colour if self.augment else None
        self.rows_per_image = 2 * (self.variants + 1)
        self.dir = Path(cache_dir) / f"features_{_cache_key(model, dataset, self.augment)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(dataset.image_paths)
        first = dataset.load_image(0)
        self.image_hw = first.shape[:2]
        canvas, _ = letterbox_images(torch.zeros(1, 3, *self.image_hw), model.input_size)
        with torch.no_grad():
            shapes = {k: tuple(v.shape[1:]) for k, v in model.image_features(canvas).items()}
        total = self.rows_per_image * n
        self._meta_path = self.dir / "meta.json"
        with _locked(self.dir / ".lock"):  # the processes of a sharded build create the files once
            if self._meta_path.exists():
                meta = json.loads(self._meta_path.read_text())
            else:
                meta = {"rows": total, "shapes": shapes, "done": 0}
                if self.augment:
                    meta["augment"] = self.augment.key()
                self._meta_path.write_text(json.dumps(meta))
            if meta["rows"] != total:
                raise ValueError(f"feature cache {self.dir} holds {meta['rows']} rows, expected {total}; remove it")
            self.shapes = {k: tuple(v) for k, v in meta["shapes"].items()}
            self.complete = meta["done"] >= meta["rows"]

            def _open(key: str, shape: tuple) -> np.memmap:
                path = self.dir / f"{key}.npy"
                if not path.exists():
                    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(total, *shape))
                return np.load(path, mmap_mode="r" if self.complete else "r+")

            self.arrays = {k: _open(k, s) for k, s in self.shapes.items()}
            filled = None if self.complete else self._filled(meta, n)
        if filled is not None:
            self._fill(model, dataset, filled, progress, part, parts)

    def _filled(self, meta: dict, n: int) -> np.memmap:
        """Which images are in the files (one byte each); a cache from before this record kept
        only a count of rows filled in order."""
        path = self.dir / "filled.npy"
        if path.exists():
            return np.load(path, mmap_mode="r+")
        filled = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n,))
        filled[: meta["done"] // self.rows_per_image] = 1
        filled.flush()
        return filled

    @property
    def bytes_per_row(self) -> int:
        return sum(int(np.prod(s)) * 2 for s in self.shapes.values())

    def rows(self, image_index: np.ndarray, flipped: np.ndarray, rng: np.random.Generator,
             colour: np.ndarray | None = None) -> np.ndarray:
        """The cache row of each sample: its image's clean form with probability ``p_clean``
        (``p_clean_colour`` where ``colour``, the samples whose expression says a colour, when that
        is set), else one of its variants at random; the mirror of that form where ``flipped``.

        Without variants this draws nothing from ``rng``, so such runs see the same random stream;
        ``p_clean_colour`` changes which rows are taken, not what is drawn.
        """
        image_index = np.asarray(image_index, dtype=np.int64)
        flipped = np.asarray(flipped).astype(np.int64)
        if self.variants == 0:
            return 2 * image_index + flipped
        p_clean = np.full(len(image_index), self.p_clean)
        if colour is not None and self.p_clean_colour is not None:
            p_clean[np.asarray(colour, bool)] = self.p_clean_colour
        clean = rng.random(len(image_index)) < p_clean
        variant = np.where(clean, 0, rng.integers(1, self.variants + 1, len(image_index)))
        return image_index * self.rows_per_image + 2 * variant + flipped

    @torch.no_grad()
    def _fill(self, model, dataset, filled: np.memmap, progress: bool, part: int, parts: int) -> None:
        """Compute the missing images of shard ``part`` of ``parts`` (every ``parts``-th image)."""
        from tqdm import tqdm

        n = len(dataset.image_paths)
        per = self.rows_per_image
        todo = [i for i in range(part, n, parts) if not filled[i]]
        bar = tqdm(total=len(todo), desc="caching frozen features", unit="img", disable=not progress)
        model_was_training = model.training
        model.eval()
        # The BatchNorm-folded, channels-last CNN where the backbone allows it (the same features
        # up to float rounding, about 2.3x faster on this CPU at cnn_scale 2; docs/training.md)
        features = fast_image_features(model)
        sizes = _indexed_sizes(dataset) if self.mixed_sizes else None
        pending: list[int] = []
        for j, i in enumerate(todo):
            img = dataset.load_image(i)
            if self.mixed_sizes:
                if sizes is not None and tuple(img.shape[:2]) != tuple(sizes[i]):
                    raise ValueError(f"{dataset.image_paths[i]} is {img.shape[1]}x{img.shape[0]}, its index "
                                     f"says {sizes[i][1]}x{sizes[i][0]}: targets would not match it")
            elif img.shape[:2] != self.image_hw:
                raise ValueError(f"cached training needs one image size; {dataset.image_paths[i]} is "
                                 f"{img.shape[1]}x{img.shape[0]}, others {self.image_hw[1]}x{self.image_hw[0]}. "
                                 "Use --cache-features off.")
            # One forward per view and its mirror, whatever the variant count: the clean rows are
            # then bit-identical to a cache without variants, and a resume repeats the same batches.
            for v in range(self.variants + 1):
                view = img if v == 0 else self.augment.image(img, i, v)
                pair = np.ascontiguousarray(np.stack([view, view[:, ::-1]]))
                batch = torch.from_numpy(pair).permute(0, 3, 1, 2).float().div_(255)
                canvas, _ = letterbox_images(batch, model.input_size, fill=model.pixel_mean)
                row = per * i + 2 * v
                for k, f in features(canvas).items():
                    self.arrays[k][row:row + 2] = f.to(torch.float16).numpy()
            pending.append(i)
            if len(pending) >= self.flush_every or j == len(todo) - 1:
                self._record(filled, pending)
                pending = []
            bar.update(1)
        bar.close()
        if todo:
            log.info("%s: computed the features of %d images (shard %d of %d)", self.dir.name, len(todo),
                     part + 1, parts)
        model.train(model_was_training)
        if not todo:
            self._record(filled, [])

    def _record(self, filled: np.memmap, images: list[int]) -> None:
        """Mark ``images`` as in the files (after they are written out) and, once every image is,
        the cache as complete."""
        for a in self.arrays.values():
            a.flush()
        filled[images] = 1
        filled.flush()
        with _locked(self.dir / ".lock"):
            meta = json.loads(self._meta_path.read_text())
            missing = np.flatnonzero(filled[:] == 0)
            # "done" stays what it always meant: rows filled in order from the start
            meta["done"] = self.rows_per_image * (int(missing[0]) if len(missing) else len(filled))
            self._meta_path.write_text(json.dumps(meta))
            self.complete = not len(missing)

    def gather(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        order = np.argsort(rows)  # sorted reads are faster on a memmap
        out = {}
        for k, a in self.arrays.items():
            block = np.empty((len(rows), *a.shape[1:]), dtype=np.float16)
            block[order] = a[rows[order]]
            out[k] = torch.from_numpy(block).to(device=device, dtype=torch.float32)
        return out


class TextCache:
    """Frozen text-encoder token features, computed on first use and kept (fp16) per expression.

    Lazy, because a short CPU run sees only part of a large split, and encoding every distinct
    expression (and its left/right-swapped twin) of a large split up front takes many minutes.
    """

    def __init__(self, model, expressions: list[str], device: torch.device) -> None:
        self.model = model
        self.expressions = list(expressions)
        self.n = len(self.expressions)
        self.device = device
        self._rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _text(self, row: int) -> str:
        from refseg_ros.language.flip import flip_text

        return self.expressions[row] if row < self.n else flip_text(self.expressions[row - self.n])

    def gather(self, expr_idx: np.ndarray, flipped: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [int(r) for r in expr_idx + self.n * flipped.astype(np.int64)]
        missing = list(dict.fromkeys(r for r in rows if r not in self._rows))
        if missing:
            with torch.no_grad():
                tf = self.model.encode_text([self._text(r) for r in missing])
            for j, r in enumerate(missing):
                keep = int(tf.mask[j].sum())
                self._rows[r] = (tf.tokens[j, :keep].to(torch.float16).cpu(), tf.mask[j, :keep].cpu())
        length = max(self._rows[r][0].shape[0] for r in rows)
        dim = self._rows[rows[0]][0].shape[1]
        tokens = torch.zeros(len(rows), length, dim, dtype=torch.float32)
        mask = torch.zeros(len(rows), length, dtype=self._rows[rows[0]][1].dtype)
        for j, r in enumerate(rows):
            t, m = self._rows[r]
            tokens[j, :t.shape[0]] = t
            mask[j, :m.shape[0]] = m
        return tokens.to(self.device), mask.to(self.device)


class TargetCache:
    """Every target's box and mask at its image's resolution, decoded once. A mask is kept as the
    bits of its bounding rectangle (its cells above zero), so memory follows the targets' sizes,
    not the images': 424,000 targets of 320x240 images take about 0.2 GB, not 4 GB.

    Args:
        dataset: exposes ``target_keys``, ``target(key, h, w)`` and ``image_index``.
        image_hw: the one size of every image; ``None``: each target at its own image's size
            (:func:`image_sizes`), for datasets of several image sizes.
    """

    def __init__(self, dataset, image_hw: tuple[int, int] | None = None, progress: bool = True) -> None:
        from tqdm import tqdm

        keys = list(dataset.target_keys)
        unique = list(dict.fromkeys(keys))
        row_of = {k: i for i, k in enumerate(unique)}
        self.sample_row = np.array([row_of[k] for k in keys], dtype=np.int64)
        if image_hw is not None:
            hw = np.tile(np.asarray(image_hw, dtype=np.int64), (len(unique), 1))
        else:
            first_sample: dict = {}
            for j, k in enumerate(keys):
                first_sample.setdefault(k, j)
            image_of = np.asarray(dataset.image_index)[[first_sample[k] for k in unique]]
            hw = image_sizes(dataset)[image_of]
        self.target_hw = hw
        self.hw = (int(hw[0, 0]), int(hw[0, 1])) if len(hw) and (hw == hw[0]).all() else None
        #: per target: the mask's bounding rectangle (y0, x0, height, width) in its image
        self.crops = np.zeros((len(unique), 4), np.int32)
        self.boxes = np.zeros((len(unique), 4), np.float32)
        packed = []
        for i, k in enumerate(tqdm(unique, desc="decoding target masks", disable=not progress)):
            h, w = (int(v) for v in hw[i])
            box, mask = dataset.target(k, h, w)
            self.boxes[i] = box
            mask = np.asarray(mask).astype(bool)
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            if len(rows):
                y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
                self.crops[i] = (y0, x0, y1 - y0, x1 - x0)
                packed.append(np.packbits(mask[y0:y1, x0:x1].ravel()))
            else:
                packed.append(np.zeros(0, np.uint8))
        self.offsets = np.concatenate([[0], np.cumsum([len(b) for b in packed])]).astype(np.int64)
        self.bits = np.concatenate(packed) if packed else np.zeros(0, np.uint8)

    @property
    def nbytes(self) -> int:
        """Memory of the boxes and masks, in bytes."""
        return int(self.bits.nbytes + self.offsets.nbytes + self.crops.nbytes + self.boxes.nbytes
                   + self.target_hw.nbytes + self.sample_row.nbytes)

    def _target(self, row: int, flipped: bool) -> tuple[np.ndarray, np.ndarray]:
        from refseg_ros.data.augment import hflip_box

        h, w = (int(v) for v in self.target_hw[row])
        y0, x0, ch, cw = (int(v) for v in self.crops[row])
        mask = np.zeros((h, w), np.uint8)
        if ch and cw:
            crop = np.unpackbits(self.bits[self.offsets[row]:self.offsets[row + 1]], count=ch * cw)
            mask[y0:y0 + ch, x0:x0 + cw] = crop.reshape(ch, cw)
        box = self.boxes[row].copy()
        if flipped:
            mask = np.ascontiguousarray(mask[:, ::-1])
            box = hflip_box(box, w)
        return box, mask

    def gather(self, sample_idx: np.ndarray, flipped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (image pixels, xyxy) and masks at image resolution; every image of one size."""
        if self.hw is None:
            raise ValueError("targets of several image sizes: use gather_input")
        pairs = [self._target(self.sample_row[j], bool(f)) for j, f in zip(sample_idx, flipped)]
        return np.stack([b for b, _ in pairs]), np.stack([m for _, m in pairs])

    def gather_input(self, sample_idx: np.ndarray, flipped: np.ndarray,
                     input_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training targets on the model input: normalised ``cxcywh`` boxes and float masks, each
        sample letterboxed from its own image size (mirrored first where ``flipped``, as its image)."""
        from refseg_ros.model.letterbox import Letterbox, boxes_to_input, masks_to_input

        boxes, masks = [], []
        for j, f in zip(sample_idx, flipped):
            box, mask = self._target(self.sample_row[j], bool(f))
            h, w = mask.shape
            boxes.append(boxes_to_input(torch.from_numpy(box)[None], Letterbox.fit((w, h), input_size))[0])
            masks.append(masks_to_input(torch.from_numpy(mask)[None], input_size)[0][0])
        return torch.stack(boxes), torch.stack(masks)


class MixedFeatureCache:
    """The feature caches of a :class:`~refseg_ros.data.mixed.MixedDataset`'s parts, as one.

    Each part keeps its own cache next to its data, so a mixture reuses what training on each part
    alone already computed. Rows are numbered part after part, each part's as its own cache numbers them.
    """

    def __init__(self, model, dataset, progress: bool = True, augment=None,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.image_offsets = np.asarray(dataset.image_offsets, np.int64)
        self.parts = [FeatureCache(model, part, Path(part.root) / "cache", progress=progress, augment=augment,
                                   mixed_sizes=True, shard=shard) for part in dataset.parts]
        self.row_offsets = np.cumsum([0] + [len(p.image_paths) * c.rows_per_image
                                            for p, c in zip(dataset.parts, self.parts)]).astype(np.int64)
        self.shapes = self.parts[0].shapes
        if any(c.shapes != self.shapes for c in self.parts):
            raise ValueError("the parts' feature caches differ in shape: one model input size for all")

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.parts)

    def rows(self, image_index: np.ndarray, flipped: np.ndarray, rng: np.random.Generator,
             colour: np.ndarray | None = None) -> np.ndarray:
        image_index = np.asarray(image_index, np.int64)
        flipped = np.asarray(flipped)
        colour = None if colour is None else np.asarray(colour, bool)
        part = np.searchsorted(self.image_offsets, image_index, side="right") - 1
        out = np.empty(len(image_index), np.int64)
        for k, cache in enumerate(self.parts):
            sel = np.flatnonzero(part == k)
            if len(sel):
                local = image_index[sel] - self.image_offsets[k]
                out[sel] = cache.rows(local, flipped[sel], rng,
                                      None if colour is None else colour[sel]) + self.row_offsets[k]
        return out

    def gather(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        rows = np.asarray(rows, np.int64)
        part = np.searchsorted(self.row_offsets, rows, side="right") - 1
        out = {k: torch.empty((len(rows), *s), dtype=torch.float32, device=device) for k, s in self.shapes.items()}
        for p, cache in enumerate(self.parts):
            sel = np.flatnonzero(part == p)
            if len(sel):
                block = cache.gather(rows[sel] - self.row_offsets[p], device)
                index = torch.from_numpy(sel).to(device)
                for k, v in block.items():
                    out[k][index] = v
        return out
