"""Model configuration: one flat dataclass, filled from a preset YAML plus keyword overrides.

The YAML files under ``presets/`` are the single source of the values (every field is set there);
``ModelConfig`` is the schema that checks them. A preset is a name plus overrides, so a checkpoint
only needs to record ``(preset, overrides)`` to rebuild its model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "tabletop"

_CHOICES = {
    "backbone": ("mobilenetv2_vit", "vit"),
    "sentence_feature": ("cls", "mean"),
    "box_head": ("lap_mlp", "attn_centre"),
    "mask_decoder": ("deconv", "skip"),
    "box_source": ("head", "mask"),
    "mask_components": ("all", "largest", "auto"),
    "mask_kernel": ("linear", "sentence"),
}


@dataclass
class ModelConfig:
    """Every knob of a VG-LAW model. See ``presets/*.yaml`` for the values and the reasons."""

    name: str
    input_size: tuple[int, int]  # model input (width, height); images are letterboxed to it
    pixel_mean: tuple[float, float, float]  # in [0, 1] units, RGB
    pixel_std: tuple[float, float, float]
    # language backbone
    text_encoder: str  # "minilm-l6" (the pinned weight package) or a local transformers folder
    max_tokens: int  # including [CLS] and [SEP]
    text_train_layers: int  # 0 frozen, -1 all layers, N the top N layers
    sentence_feature: str  # F_l^1 for the heads: "cls" (published) or masked "mean"
    # visual backbone
    backbone: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    drop_path: float
    patch_size: int  # vit only
    window_size: int  # vit only; 0 = every block global
    global_blocks: tuple[int, ...]  # vit only; blocks with global attention when windowed
    vit_checkpoint: str | None  # vit only; a timm state dict (safetensors or weights-only torch)
    cnn_trainable: bool  # mobilenetv2_vit only
    coord_channels: bool  # mobilenetv2_vit only: x/y channels concatenated before the 1x1 conv
    sine_pos: bool  # mobilenetv2_vit only: fixed 2-D sine position encoding added to tokens
    word_attention: bool  # NOT published: cross-attention to token features after each block
    # language-adaptive weights
    law: bool  # False = identical architecture, static weights (the paper's ablation)
    law_groups: int  # G
    law_reduction: int  # r: d_h = d_l / r
    law_rank: int  # d_w
    # multi-task head
    box_head: str
    lap_dim: int  # k
    mask_decoder: str
    mask_dim: int  # channels of the stride-4 map dotted with the projected sentence feature
    decoder_width: int  # skip decoder only
    mask_threshold: float
    # score at or above which a result is "found" (chosen on validation data for checkpoints with a
    # presence head; the node's found_threshold parameter overrides it)
    found_threshold: float
    # loss weights (L = l1 * L1 + giou * GIoU + focal * focal + dice * Dice)
    loss_l1: float
    loss_giou: float
    loss_focal: float
    loss_dice: float
    focal_alpha: float
    focal_gamma: float
    # Auxiliary: cross-entropy of the LAP attention against the target mask pooled to the stride-16
    # grid (not in the paper; 0 = off). It tells the box branch *where* the object is at every
    # position instead of only through the attention-weighted box centre.
    loss_attn: float = 0.0
    # inference post-processing (refseg_ros/model/postprocess.py): where the reported box comes from
    # (the box head as published, or the predicted mask) and whether only the mask's largest
    # connected component is kept
    box_source: str = "head"
    mask_components: str = "all"
    # Paper-faithful options; the defaults are the repository's earlier forms.
    text_layers: int = 0  # keep the encoder's first N layers (0 = all): a 12-layer BERT-base as 6 layers
    law_pool_scale: bool = False  # word-pooling scores scaled by 1/sqrt(d_l / G)
    law_norm: bool = False  # LayerNorm on the pooled feature before the reduction's GELU
    box_mlp_dim: int = 0  # hidden width of the box MLP (0 = embed_dim)
    # the mask's 1x1 kernel: "linear" (a projection of the sentence feature, scaled, with a bias) or
    # "sentence" (the sentence feature itself, as published; the mask map then has d_l channels)
    mask_kernel: str = "linear"
    deconv_width: int = 0  # deconv decoder's middle width (0 = max(mask_dim, embed_dim / 2))
    # No-target output (generalised referring expressions): a logit that the expression has a
    # referent, from the language-adaptive pooled feature, the folded sentence query and the mask's
    # peak; its sigmoid is the result's score. Trained with ``loss_presence`` (binary cross-entropy).
    presence_head: bool = False
    loss_presence: float = 1.0
    # mobilenetv2_vit only: the CNN sees the letterboxed input upsampled ``cnn_scale`` times
    # (bilinear) and each stage's output is average-pooled back by as much, so every feature map
    # keeps its shape (and a feature cache its size) while small objects cover more of the CNN's
    # ImageNet-sized receptive fields. 1 = the input as it is (every checkpoint before it).
    cnn_scale: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into checkpoints

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)
        self.global_blocks = tuple(int(v) for v in self.global_blocks)
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ValueError(f"{key}={getattr(self, key)!r}: expected one of {choices}")
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ValueError(f"input_size must be (width, height), each >= 32; got {self.input_size}")
        if any(v % 16 for v in self.input_size):
            raise ValueError(f"input_size {self.input_size} must be multiples of 16 (the stride of F_v)")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.mask_decoder == "skip" and self.backbone != "mobilenetv2_vit":
            raise ValueError("mask_decoder='skip' needs the stride-4/8 CNN features of mobilenetv2_vit")
        if not 0.0 <= self.found_threshold <= 1.0:
            raise ValueError(f"found_threshold must lie in [0, 1]; got {self.found_threshold}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must lie in (0, 1); got {self.mask_threshold}")
        if self.max_tokens < 3:
            raise ValueError("max_tokens must leave room for [CLS], one word and [SEP]")
        if min(self.text_layers, self.box_mlp_dim, self.deconv_width) < 0:
            raise ValueError("text_layers, box_mlp_dim and deconv_width must be >= 0 (0 = the default)")
        if not isinstance(self.cnn_scale, int) or isinstance(self.cnn_scale, bool) or not 1 <= self.cnn_scale <= 4:
            raise ValueError(f"cnn_scale must be an integer in [1, 4]; got {self.cnn_scale!r}")
        if self.cnn_scale != 1 and self.backbone != "mobilenetv2_vit":
            raise ValueError("cnn_scale applies to the mobilenetv2_vit backbone only")
        if any(not 0 <= i < self.depth for i in self.global_blocks):
            raise ValueError(f"global_blocks {self.global_blocks} outside 0..{self.depth - 1}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ModelConfig)]


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_values(preset: str) -> dict[str, Any]:
    import yaml

    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(available_presets())}")
    values = yaml.safe_load(path.read_text()) or {}
    values.setdefault("name", preset)
    return values


def load_config(preset: str = DEFAULT_PRESET, **overrides: Any) -> ModelConfig:
    """The preset's values with ``overrides`` applied; unknown override names are an error."""
    values = preset_values(preset)
    unknown = sorted(set(overrides) - set(field_names()))
    if unknown:
        raise TypeError(f"unknown model option(s) {unknown}; valid: {', '.join(field_names())}")
    values.update(overrides)
    missing = sorted(set(field_names()) - set(values) - {"extra"})
    if missing:
        raise ValueError(f"preset {preset!r} does not set {missing}")
    return ModelConfig(**values)
