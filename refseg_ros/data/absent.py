"""No-target expressions for a split that has none: objects that are not in the picture.

The v1 generator (``refseg data tabletop``) describes only objects that are there. Mixed into a
fine-tune with no-target data from another generator, its scenes would teach the no-target output
that such scenes always hold the referent. :class:`AbsentObjectDataset` names, for every image of a
v1 split, objects that its ground truth says are absent: a category on the table in a colour no
object of it has ("the green mug" beside a red mug only), or a category not on the table at all.
"""
from __future__ import annotations

import numpy as np

from refseg_ros.data.dataset import ExpressionDataset
from refseg_ros.language.number import asks_for_many
from refseg_ros.language.vocabulary import COLOURS, NOUNS

__all__ = ["AbsentObjectDataset"]

NO_TARGET = "no_target"
# Shares of the draw. A missing kind named bare ("the teddy bear") is what a user most often asks for
# when the object is not there; with 0.7 / a tenth of missing kinds bare, a fine-tune still scored such
# requests 0.7-0.95 (docs/training.md, "Mixed fine-tune").
P_WRONG_COLOUR = 0.5  # a kind on the table in a colour none of it has
P_BARE_KIND = 0.5  # a missing kind named without a colour


def absent_expression(objects: list[dict], rng: np.random.Generator) -> str | None:
    """One expression for an object that none of ``objects`` (``category``, ``colour``) is, or None."""
    present = {(o["category"], o["colour"]) for o in objects}
    categories = {c for c, _ in present}
    if rng.random() < P_WRONG_COLOUR and categories:  # the kind is there, not in that colour
        category = sorted(categories)[rng.integers(len(categories))]
        colours = [c for c in COLOURS if (category, c) not in present]
        if not colours:
            return None
        colour = colours[rng.integers(len(colours))]
    else:
        absent = [c for c in NOUNS if c not in categories]
        if not absent:
            return None
        category = absent[rng.integers(len(absent))]
        colour = None if rng.random() < P_BARE_KIND else COLOURS[rng.integers(len(COLOURS))]
    noun = NOUNS[category][rng.integers(len(NOUNS[category]))]
    article = ("the", "the", "a", "")[rng.integers(4)]
    text = " ".join(w for w in (article, colour, noun) if w)
    return None if asks_for_many(text) else text


class AbsentObjectDataset(ExpressionDataset):
    """``per_image`` no-target expressions for every image of a v1 split (seeded: the same each time).

    Shares the base split's images (and so its feature cache). Targets are empty.

    Args:
        base: a :class:`~refseg_ros.data.dataset.TabletopRefDataset`.
        per_image: expressions drawn per image (fewer where no absent object can be named).
        seed: the draw's seed.
    """

    def __init__(self, base, per_image: int = 2, seed: int = 0):
        super().__init__(None)
        self.base, self.root = base, base.root
        self.images = base.images
        objects: dict[int, list[dict]] = {}
        for ann in base.annotations.values():
            objects.setdefault(ann["image_id"], []).append(ann)
        rng = np.random.default_rng(seed)
        samples = []
        for i, image in enumerate(base.images):
            seen = set()
            for _ in range(per_image):
                text = absent_expression(objects.get(image["id"], []), rng)
                if text is not None and text not in seen:
                    seen.add(text)
                    samples.append((i, text, NO_TARGET, -1, ("absent", len(samples))))
        self._build_index(list(base.image_paths), samples)

    def _image_id(self, image_index: int) -> int:
        return self.base._image_id(image_index)

    def _target(self, key, image: np.ndarray):
        return np.zeros(4, np.float32), np.zeros(image.shape[:2], np.uint8)

    def __getitem__(self, i: int) -> dict:
        sample = super().__getitem__(i)
        sample.update(targets=[], no_target=True)
        return sample
