"""Letterboxing between camera images (any size and aspect) and the fixed model input.

The image is scaled to fit the model input keeping its aspect ratio, placed at the top-left corner,
and the rest is filled with the pixel mean (zero after normalisation). Predictor, training and
evaluation share these functions so the geometry is defined once.
All functions take tensors on any device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refseg_ros.model.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, clip_boxes


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one image placed in the model input.

    ``image_size``/``input_size``/``resized_size`` are ``(width, height)``; the image occupies
    ``[0, resized_w) x [0, resized_h)`` of the input.
    """

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    resized_size: tuple[int, int]

    @classmethod
    def fit(cls, image_size: tuple[int, int], input_size: tuple[int, int]) -> "Letterbox":
        (w, h), (iw, ih) = image_size, input_size
        if w < 1 or h < 1:
            raise ValueError(f"empty image {image_size}")
        scale = min(iw / w, ih / h)
        rw = min(iw, max(1, round(w * scale)))
        rh = min(ih, max(1, round(h * scale)))
        return cls((int(w), int(h)), (int(iw), int(ih)), (rw, rh))

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Input pixels per image pixel, per axis (exact after rounding)."""
        return self.resized_size[0] / self.image_size[0], self.resized_size[1] / self.image_size[1]


def letterbox_images(images: torch.Tensor, input_size: tuple[int, int],
                     fill: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, Letterbox]:
    """``(B, C, h, w)`` float images of one size -> ``(B, C, H, W)`` canvas and its geometry.

    ``fill`` is a scalar or a per-channel ``(C,)``/``(1, C, 1, 1)`` tensor (use the pixel mean).
    """
    b, c, h, w = images.shape
    box = Letterbox.fit((w, h), input_size)
    (iw, ih), (rw, rh) = box.input_size, box.resized_size
    if (rw, rh) != (w, h):
        images = F.interpolate(images, size=(rh, rw), mode="bilinear", align_corners=False,
                               antialias=rw < w or rh < h)
    return _on_canvas(images, box, fill), box


def letterbox_uint8_in_strips(image: torch.Tensor, input_size: tuple[int, int], fill: torch.Tensor | float = 0.0,
                              rows: int = 256) -> tuple[torch.Tensor, Letterbox]:
    """``letterbox_images`` of one ``(h, w, 3)`` uint8 image scaled to [0, 1], converting ``rows``
    image rows to float at a time instead of the whole image (12 bytes a pixel).

    The same values on the CPU: PyTorch's antialiased bilinear resize there is separable, rows first
    (each output row from its input row alone), then columns, and skips a pass whose size does not
    change; so the row pass is run strip by strip and the column pass on the narrow result. Only for
    an image that gets narrower (``letterbox_images`` otherwise).
    """
    h, w = image.shape[:2]
    box = Letterbox.fit((w, h), input_size)
    rw, rh = box.resized_size
    if rw >= w:
        return letterbox_images(image.permute(2, 0, 1).unsqueeze(0).float().div_(255.0), input_size, fill)
    parts = []
    for y in range(0, h, rows):
        strip = image[y:y + rows].permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        parts.append(F.interpolate(strip, size=(strip.shape[2], rw), mode="bilinear", align_corners=False,
                                   antialias=True))
    narrow = torch.cat(parts, dim=2)
    del parts
    if rh != h:
        narrow = F.interpolate(narrow, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    return _on_canvas(narrow, box, fill), box


def _on_canvas(images: torch.Tensor, box: Letterbox, fill: torch.Tensor | float) -> torch.Tensor:
    """Resized ``(B, C, rh, rw)`` images placed top-left on the ``(B, C, H, W)`` model input."""
    b, c = images.shape[:2]
    (iw, ih), (rw, rh) = box.input_size, box.resized_size
    if (rw, rh) == (iw, ih):
        return images
    if isinstance(fill, torch.Tensor):
        canvas = fill.to(images).reshape(1, -1, 1, 1).expand(b, c, ih, iw).clone()
    else:
        canvas = images.new_full((b, c, ih, iw), float(fill))
    canvas[:, :, :rh, :rw] = images
    return canvas


def boxes_to_image(boxes_cxcywh: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """Normalised ``cxcywh`` on the model input -> ``xyxy`` image pixels, clipped to the image."""
    iw, ih = box.input_size
    sx, sy = box.scale_xy
    xyxy = box_cxcywh_to_xyxy(boxes_cxcywh.float())
    scale = xyxy.new_tensor([iw / sx, ih / sy, iw / sx, ih / sy])
    return clip_boxes(xyxy * scale, *box.image_size)


def boxes_to_input(boxes_xyxy: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """``xyxy`` image pixels -> normalised ``cxcywh`` on the model input (training targets)."""
    iw, ih = box.input_size
    sx, sy = box.scale_xy
    scale = boxes_xyxy.new_tensor([sx / iw, sy / ih, sx / iw, sy / ih])
    return box_xyxy_to_cxcywh(boxes_xyxy.float() * scale)


def mask_logits_to_image(logits: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """``(B, 1, h, w)`` logits covering the model input -> ``(B, H_img, W_img)`` on the image.

    One bilinear resampling (``grid_sample``) from the logit map straight to the image pixels,
    equivalent to upsampling to the input size, cropping the letterbox and resizing.
    """
    w, h = box.image_size
    iw, ih = box.input_size
    sx, sy = box.scale_xy
    dev = logits.device
    # image pixel centre -> input coordinate -> [-1, 1] over the logit map (align_corners=False)
    gx = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) * sx / iw * 2 - 1
    gy = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) * sy / ih * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
    grid = grid.unsqueeze(0).expand(logits.shape[0], h, w, 2)
    out = F.grid_sample(logits.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, 0]


def masks_to_input(masks: torch.Tensor, input_size: tuple[int, int]) -> tuple[torch.Tensor, Letterbox]:
    """``(B, h, w)`` {0, 1} image masks -> ``(B, H, W)`` float masks on the model input (targets)."""
    canvas, box = letterbox_images(masks[:, None].float(), input_size, fill=0.0)
    return canvas[:, 0], box
