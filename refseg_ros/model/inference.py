"""Inference-only rewrites of the frozen image path; the model and its checkpoints stay unchanged.

Profiling ``GroundingPredictor.predict`` on a CPU puts the frozen MobileNetV2 first: its
convolutions and BatchNorm layers are the largest share of a frame. Two rewrites that change no
result beyond float rounding:

- **BatchNorm folded into the preceding convolution** (eval statistics are constants, so
  ``bn(conv(x))`` is one convolution with rescaled weights and a bias);
- **channels-last** memory format for the CNN, which lets oneDNN run the depthwise and pointwise
  convolutions without layout conversions.

They are applied to a private copy of the CNN (the model keeps its state-dict keys and shapes, so
it can still be trained or saved), and only when the CNN is frozen: a trainable CNN would make the
copy stale. ``test/test_perf.py`` checks the outputs against ``VGLAW.image_features`` and
``VGLAW.ground``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from refseg_ros.model.backbones import MobileNetV2ViT


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential``
    into that convolution, in place (the BatchNorm becomes ``nn.Identity``). Returns ``module``.

    This covers torchvision's MobileNetV2 (``Conv2dNormActivation`` and the last conv + BN of each
    ``InvertedResidual`` are Sequentials). Call it on a copy: the folded module has other keys.
    """
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return module


class FastImageFeatures(nn.Module):
    """``VGLAW.image_features`` with the frozen MobileNetV2 BatchNorm-folded and channels-last.

    Use :func:`fast_image_features` to get it only where it applies.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        backbone = model.backbone
        self.stages = type(backbone)
        self.scale = backbone.cnn_scale
        cnn = fold_batchnorm(copy.deepcopy(backbone.cnn).eval())
        self.cnn = cnn.to(memory_format=torch.channels_last).requires_grad_(False)
        self.normalize = model.normalize

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W); got {tuple(images.shape)}")
        x = self.normalize(images).contiguous(memory_format=torch.channels_last)
        return self.stages.run_stages(self.cnn, x, self.scale)


def fast_image_features(model: nn.Module):
    """The fastest exact image path of ``model``: :class:`FastImageFeatures` for a frozen
    MobileNetV2 backbone, else ``model.image_features`` itself."""
    backbone = model.backbone
    if isinstance(backbone, MobileNetV2ViT) and not backbone.cnn_trainable:
        return FastImageFeatures(model).to(model.device)
    return model.image_features
