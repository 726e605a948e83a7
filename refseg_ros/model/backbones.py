"""Language-aware visual backbones behind a small registry.

Every backbone is split by cost, so training can cache what is frozen:

- ``image_features(images) -> dict[str, Tensor]``: the expression-independent part (the frozen
  MobileNetV2 for ``mobilenetv2_vit``; patch + position embedding for ``vit``). Images are
  normalised ``(B, 3, H, W)``.
- ``forward(features, phi, words, word_mask) -> BackboneOutput``: the language-adaptive transformer
  blocks. ``features`` may hold one image for many expressions (it is broadcast after the stem).

Backbones:

- ``vit``: timm's ``VisionTransformer`` (ViT-B/16 for the ``paper`` preset) with ViTDet-style
  windowed attention (Li et al., ECCV 2022) in all blocks but a few global ones; absolute position
  embeddings resampled to the input grid (ViTDet's relative position biases are not used).
- ``mobilenetv2_vit``: ImageNet MobileNetV2 (torchvision) to stride 16, x/y coordinate channels,
  a 1x1 conv to the transformer width, fixed 2-D sine position encodings, and timm blocks. Its
  stride-4 and stride-8 maps go to the skip mask decoder.

In both, each block's ``attn.qkv`` is an :class:`~refseg_ros.model.law.AdaptiveLinear` when
``law`` is on, and a plain ``nn.Linear`` (identical architecture, static weights) when off.
The blocks, the word attention and the position inputs are in :mod:`refseg_ros.model.layers`.
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.nn import functional as F

from refseg_ros.model.config import ModelConfig
from refseg_ros.model.law import AdaptiveLinear, LowRankBasis, adaptation, make_adaptive
from refseg_ros.model.layers import (ViTDetBlock, WordAttention, coordinate_channels, init_linear,
                                     sine_position_encoding)

if TYPE_CHECKING:
    from refseg_ros.model.vglaw import FoldedCommand


@dataclass
class BackboneOutput:
    """F_v as tokens ``(B, h*w, C)`` on a ``grid_hw`` grid (stride 16) plus finer CNN maps, if any
    (``skips``: per image, so batch 1 when one image serves all expressions)."""

    tokens: torch.Tensor
    grid_hw: tuple[int, int]
    skips: dict[str, torch.Tensor] = field(default_factory=dict)

    def feature_map(self) -> torch.Tensor:
        b, _, c = self.tokens.shape
        return self.tokens.transpose(1, 2).reshape(b, c, *self.grid_hw)


def broadcast_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """One image's features for ``batch`` expressions (a view, no copy)."""
    if x.shape[0] == batch:
        return x
    if x.shape[0] != 1:
        raise ValueError(f"features for {x.shape[0]} images cannot pair with {batch} expressions "
                         "(give one image, or one image per expression)")
    return x.expand(batch, *x.shape[1:])


class LanguageAwareBackbone(nn.Module):
    """Shared part of the backbones: language-adaptive blocks and their P, Q basis.

    Subclasses set ``self.embed_dim`` and ``self.blocks`` (or a ``blocks`` property) and provide
    ``image_features``, ``_stem`` and ``_final_norm``.
    """

    embed_dim: int
    #: inference knock-out (``VGLAW.knock_out``): skip the word attention entirely
    word_attention_off: bool = False
    #: names of submodules whose weights come from a pinned weight package (not stored when frozen)
    pinned_modules: tuple[str, ...] = ()

    def _setup_language(self, cfg: ModelConfig, text_dim: int) -> None:
        self.law_basis = None
        if cfg.law:
            make_adaptive(self.blocks)
            qkv = self.adaptive_layers[0]
            self.law_basis = LowRankBasis(qkv.in_features, qkv.out_features, cfg.law_rank)
        self.word_attn = nn.ModuleList(
            WordAttention(self.embed_dim, text_dim, cfg.num_heads) for _ in range(len(self.blocks))
        ) if cfg.word_attention else None

    blocks: nn.Module  # the transformer blocks, in order

    @property
    def adaptive_layers(self) -> list[AdaptiveLinear]:
        return [b.attn.qkv for b in self.blocks if isinstance(b.attn.qkv, AdaptiveLinear)]

    @property
    def num_adapted_layers(self) -> int:
        return len(self.adaptive_layers)

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _stem(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple[int, int]]:
        raise NotImplementedError

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _skips(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def forward(self, features: dict[str, torch.Tensor], batch: int, phi: torch.Tensor | None = None,
                words: torch.Tensor | None = None, word_mask: torch.Tensor | None = None,
                folded: FoldedCommand | None = None) -> BackboneOutput:
        """Run the blocks for ``batch`` expressions; ``phi`` is ``(batch, layers, d_w, d_w)`` or None.

        ``folded`` (``VGLAW.fold``, inference) replaces what it holds: ``qkv`` the generated weights
        summed into the adapted layers (then ``phi`` is not used), ``word_*`` the words folded into
        the word attention (then ``words`` is not used).
        """
        x, hw = self._stem(features)
        x = broadcast_batch(x, batch)
        qkv = folded.qkv if folded is not None else None
        folded_words = folded is not None and folded.word_keys is not None
        if (phi is not None or qkv is not None) and not self.adaptive_layers:
            raise ValueError("this backbone was built with law=False; it takes no generated weights")
        if self.word_attn is not None and words is None and not folded_words:
            raise ValueError("word_attention is on: the token features are needed")
        with adaptation(self.adaptive_layers, phi, self.law_basis, qkv):
            for i, block in enumerate(self.blocks):
                x = block(x, hw=hw)
                if self.word_attn is None or self.word_attention_off:
                    continue
                if folded_words:
                    x = self.word_attn[i].forward_folded(x, folded.word_keys[:, i], folded.word_bias[:, i],
                                                         folded.word_values[:, i])
                else:
                    x = self.word_attn[i](x, words, word_mask)
        return BackboneOutput(self._final_norm(x), hw, self._skips(features))


class MobileNetV2ViT(LanguageAwareBackbone):
    """Frozen ImageNet MobileNetV2 to stride 16 + a few language-adaptive transformer blocks.

    Args:
        cfg: ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ``drop_path``, ``cnn_trainable``,
            ``coord_channels``, ``sine_pos``, ``law``, ``law_rank``, ``word_attention``.
        text_dim: d_l (for word attention).
        pretrained: load the torchvision ImageNet weights from the pinned package.
    """

    #: torchvision ``features`` indices: [0:4] -> stride 4 (24 ch), [4:7] -> 8 (32), [7:14] -> 16 (96)
    STAGES = ((0, 4, "s4", 24), (4, 7, "s8", 32), (7, 14, "s16", 96))
    pinned_modules = ("cnn",)

    def __init__(self, cfg: ModelConfig, text_dim: int, pretrained: bool = True) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        net = mobilenet_v2(weights=None)
        if pretrained:
            from refseg_ros.utils.weights import mobilenet_v2_path

            net.load_state_dict(torch.load(mobilenet_v2_path(), map_location="cpu", weights_only=True))
        self.cnn = net.features[:14]
        self.cnn_trainable = cfg.cnn_trainable
        self.cnn_scale = cfg.cnn_scale
        self.cnn.requires_grad_(cfg.cnn_trainable)
        if not cfg.cnn_trainable:
            self.cnn.eval()
        self.embed_dim = cfg.embed_dim
        self.use_coords, self.use_sine = cfg.coord_channels, cfg.sine_pos
        self.input_proj = nn.Conv2d(96 + (2 if cfg.coord_channels else 0), cfg.embed_dim, 1)
        dpr = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        self.blocks = nn.ModuleList(
            ViTDetBlock(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, qkv_bias=True, drop_path=dpr[i])
            for i in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.blocks.apply(init_linear)
        self._setup_language(cfg, text_dim)

    def train(self, mode: bool = True) -> "MobileNetV2ViT":
        super().train(mode)
        if not self.cnn_trainable:
            self.cnn.eval()  # frozen BatchNorm statistics: cached features stay valid
        return self

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frozen part: ``{"s4": (B, 24, H/4, W/4), "s8": (B, 32, ..), "s16": (B, 96, ..)}``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.cnn_trainable):
            return self.run_stages(self.cnn, images, self.cnn_scale)

    @classmethod
    def run_stages(cls, cnn: nn.Module, images: torch.Tensor, scale: int = 1) -> dict[str, torch.Tensor]:
        """``cnn`` (``self.cnn`` or an inference copy of it, e.g. BatchNorm folded) by ``STAGES``.

        ``scale`` > 1 (``cnn_scale``): the CNN runs on ``images`` upsampled that many times and each
        stage's output is average-pooled back, so the shapes are those of ``scale`` 1.
        """
        out = {}
        x = images
        if scale != 1:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        for start, stop, name, _ in cls.STAGES:
            for layer in cnn[start:stop]:
                x = layer(x)
            out[name] = x if scale == 1 else F.avg_pool2d(x, scale)
        return out

    def _stem(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple[int, int]]:
        dtype = self.input_proj.weight.dtype
        x = features["s16"].to(dtype) if not torch.is_autocast_enabled() else features["s16"]
        b, _, h, w = x.shape
        if self.use_coords:
            x = torch.cat((x, coordinate_channels(b, h, w, x.device, x.dtype)), dim=1)
        x = self.input_proj(x).flatten(2).transpose(1, 2)
        if self.use_sine:
            x = x + sine_position_encoding(h, w, self.embed_dim, x.device, x.dtype)
        return x, (h, w)

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def _skips(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Not broadcast to the expressions: the decoder's lateral convolutions then run once per
        # image, and their output broadcasts in the addition.
        return {k: features[k] for k in ("s4", "s8")}


class ViTBackbone(LanguageAwareBackbone):
    """timm ViT with ViTDet windowed attention and language-adaptive qkv.

    Args:
        cfg: ``input_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``,
            ``drop_path``, ``window_size``, ``global_blocks``, ``vit_checkpoint``, ``law``, ...
        text_dim: d_l (for word attention).
        pretrained: load ``cfg.vit_checkpoint`` if set (else random init, with a warning).
    """

    def __init__(self, cfg: ModelConfig, text_dim: int, pretrained: bool = True) -> None:
        super().__init__()
        width, height = cfg.input_size
        self.vit = VisionTransformer(
            img_size=(height, width), patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
            depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=True,
            class_token=False, global_pool="", num_classes=0, dynamic_img_size=True,
            drop_path_rate=cfg.drop_path, block_fn=ViTDetBlock)
        for i, block in enumerate(self.vit.blocks):
            block.window_size = 0 if (not cfg.window_size or i in cfg.global_blocks) else cfg.window_size
        self.embed_dim = cfg.embed_dim
        if pretrained:
            if cfg.vit_checkpoint:
                load_vit_weights(self.vit, cfg.vit_checkpoint)
            else:
                warnings.warn("vit backbone: no vit_checkpoint given, starting from random weights "
                              "(no registry package ships ViT weights)", stacklevel=5)
        self._setup_language(cfg, text_dim)

    @property
    def blocks(self) -> nn.Sequential:
        return self.vit.blocks

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Patch embedding + resampled absolute positions, as a ``(B, C, h, w)`` map."""
        x = self.vit.patch_embed(images)  # (B, h, w, C) with dynamic_img_size
        b, h, w, c = x.shape
        pos = resample_abs_pos_embed(self.vit.pos_embed, new_size=(h, w),
                                     old_size=self.vit.patch_embed.grid_size, num_prefix_tokens=0)
        x = self.vit.norm_pre(x.reshape(b, h * w, c) + pos)
        return {"patches": x.transpose(1, 2).reshape(b, c, h, w)}

    def _stem(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple[int, int]]:
        x = features["patches"]
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.norm(x)


#: prefixes of a ViT's weights inside a detector's state dict (detectron2 ViTDet: ``backbone.net.``)
_VIT_PREFIXES = ("backbone.net.", "backbone.bottom_up.net.", "net.", "backbone.")
#: timm/DeiT/MAE entries this model has no slot for (class and register tokens, classifiers)
_VIT_DROP = ("cls_token", "reg_token", "dist_token", "mask_token", "head.", "head_dist.", "fc_norm.",
             "attn_pool.", "decoder")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a weights-only torch file (``model``/``state_dict``/
    ``model_ema`` wrappers unwrapped). detectron2's ``.pkl`` files are pickles of numpy arrays,
    which are never unpickled here: convert them to safetensors first."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"vit_checkpoint {path} does not exist")
    if path.suffix == ".pkl":
        raise ValueError(f"vit_checkpoint {path}: pickled numpy files are not loaded; convert it once with "
                         "detectron2's own tools to a .pth or .safetensors state dict")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_ema", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError(f"vit_checkpoint {path} holds no state dict")
    return {k: torch.as_tensor(v) for k, v in state.items()}


def vit_state_from(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """The ViT's own entries of ``state`` under timm names, the layout found, and the keys left
    behind (a detector's pyramid and heads, classifiers). Layouts: timm (``blocks.0.attn.qkv...``),
    detectron2 ViTDet (``backbone.net.blocks.0...``), DataParallel's ``module.`` in front of either."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    layout, prefix = "timm", ""
    for candidate in _VIT_PREFIXES:
        if any(k.startswith(candidate + "blocks.") for k in state):
            layout, prefix = ("detectron2" if "net." in candidate else "prefixed"), candidate
            break
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    left = [k for k in state if not k.startswith(prefix)]
    left += [prefix + k for k in own if k.startswith(_VIT_DROP)]
    own = {k: v for k, v in own.items() if not k.startswith(_VIT_DROP)}
    return own, layout, left


def load_vit_weights(vit: VisionTransformer, path: str | Path) -> dict[str, int]:
    """Load a user-supplied ViT state dict: timm or detectron2 ViTDet layout, safetensors or a
    weights-only torch file.

    The position grid is resampled to this model's (class/register slots dropped); ViTDet's
    relative position tables have no slot here and count as unexpected. Prints the matched,
    missing and unexpected counts; raises ``ValueError`` when nothing matches (a wrong file) or a
    matching name has another shape (patch size or width). Returns the counts.
    """
    path = Path(path).expanduser()
    state, layout, left = vit_state_from(read_state_dict(path))
    if "pos_embed" in state:
        pos = state["pos_embed"]
        n = pos.shape[1]
        side = math.isqrt(n)
        while side * side != n and n > 0:  # strip prefix-token slots (class, register, distill)
            n -= 1
            side = math.isqrt(n)
        pos = pos[:, pos.shape[1] - n:]
        state["pos_embed"] = resample_abs_pos_embed(pos, new_size=list(vit.patch_embed.grid_size),
                                                    old_size=[side, side], num_prefix_tokens=0)
    own = vit.state_dict()
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f"vit_checkpoint {path} does not fit this ViT (patch size or width?): {bad[:5]}")
    matched = [k for k in state if k in own]
    if not matched:
        raise ValueError(f"vit_checkpoint {path}: no key matches this ViT ({layout} layout guessed; first "
                         f"keys {list(state)[:3] or left[:3]}); expected timm names or detectron2's "
                         "backbone.net.*")
    missing, unexpected = vit.load_state_dict(state, strict=False)
    counts = {"matched": len(matched), "missing": len(missing), "unexpected": len(unexpected) + len(left)}
    print(f"vit_checkpoint {path.name} ({layout} layout): {counts['matched']} matched, "
          f"{counts['missing']} missing {list(missing)[:4]}, {counts['unexpected']} unexpected "
          f"{(list(unexpected) + left)[:4]}", file=sys.stderr)
    return counts


#: backbone name -> builder(cfg, text_dim, pretrained)
BACKBONES: dict[str, Callable[..., LanguageAwareBackbone]] = {
    "mobilenetv2_vit": MobileNetV2ViT,
    "vit": ViTBackbone,
}


def build_backbone(cfg: ModelConfig, text_dim: int, pretrained: bool = True) -> LanguageAwareBackbone:
    try:
        builder = BACKBONES[cfg.backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; available: {', '.join(BACKBONES)}") from None
    return builder(cfg, text_dim, pretrained=pretrained)
