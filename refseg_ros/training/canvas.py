"""Images of several sizes on the cached training path: every image and target put on the model's
input canvas first, the way inference letterboxes them.

The cached path keeps one feature row per image and decodes targets at one image size. A split
whose scenes have different aspects (tabletop v2: 4:3, 16:9 and portrait 3:4) is therefore seen
through :class:`ModelCanvasView`: each image scaled to fit the model input keeping its aspect,
placed top-left, the rest the pixel mean (``refseg_ros.model.letterbox``), and each target's mask
and box moved with it. The model's own letterbox of such a canvas is the identity, so training
sees what inference sees.
"""
from __future__ import annotations

import numpy as np
import torch

from refseg_ros.model.letterbox import Letterbox, letterbox_images, masks_to_input

__all__ = ["ModelCanvasView", "on_model_canvas"]


def image_sizes(dataset) -> list[tuple[int, int]] | None:
    """``(width, height)`` of every image from the index (v1/v2 tabletop ``images`` records), or
    None when the index does not say."""
    records = getattr(dataset, "images", None)
    if not isinstance(records, list) or not records or not all("width" in r and "height" in r for r in records):
        return None
    return [(int(r["width"]), int(r["height"])) for r in records]


class ModelCanvasView:
    """``dataset`` with every image and target on a ``model.input_size`` canvas (see the module).

    Exposes what the cached path reads (``image_paths``, ``load_image``, ``expressions``,
    ``image_index``, ``expression_index``, ``target_keys``, ``target``, ``__len__``); anything else
    is the wrapped dataset's. ``image_paths`` carry a ``#canvas WxH`` suffix so feature caches of
    the view and of the raw images never mix.
    """

    def __init__(self, dataset, input_size: tuple[int, int], fill_rgb: tuple[float, float, float],
                 sizes: list[tuple[int, int]]) -> None:
        self.dataset = dataset
        self.input_size = tuple(int(v) for v in input_size)
        self.fill = torch.tensor(fill_rgb, dtype=torch.float32)
        self.sizes = sizes
        w, h = self.input_size
        self.image_paths = [f"{p}#canvas {w}x{h}" for p in dataset.image_paths]
        # a target's image: from the samples that refer to it
        self._key_image = dict(zip(dataset.target_keys, (int(i) for i in dataset.image_index)))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        if name == "dataset":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def load_image(self, image_index: int) -> np.ndarray:
        """``uint8 (H, W, 3)`` RGB canvas of the model input's size."""
        image = self.dataset.load_image(image_index)
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255)
        canvas, _ = letterbox_images(t, self.input_size, fill=self.fill)
        return (canvas[0].permute(1, 2, 0).clamp_(0, 1).mul_(255).round_().to(torch.uint8)).numpy()

    def target(self, key, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """A target's box (canvas pixels, xyxy) and ``uint8`` mask on the canvas; ``height`` and
        ``width`` are the canvas's (the cached path asks at the size of ``load_image``)."""
        if (width, height) != self.input_size:
            raise ValueError(f"targets are on the {self.input_size} canvas; asked for {(width, height)}")
        w, h = self.sizes[self._key_image[key]]
        box, mask = self.dataset.target(key, h, w)
        lb = Letterbox.fit((w, h), self.input_size)
        sx, sy = lb.scale_xy
        on_canvas, _ = masks_to_input(torch.from_numpy(mask.astype(np.float32))[None], self.input_size)
        box = np.asarray(box, np.float32) * np.array([sx, sy, sx, sy], np.float32)
        return box, (on_canvas[0].numpy() >= 0.5).astype(np.uint8)


def on_model_canvas(dataset, model):
    """``dataset`` itself when all its images have one size (or the index does not list sizes),
    else a :class:`ModelCanvasView` of it for ``model``."""
    sizes = image_sizes(dataset)
    if sizes is None or len(set(sizes)) <= 1:
        return dataset
    return ModelCanvasView(dataset, model.input_size, tuple(float(v) for v in model.pixel_mean.flatten()), sizes)
