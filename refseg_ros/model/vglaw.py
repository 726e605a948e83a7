"""The VG-LAW model: text encoder -> language-adaptive weights -> language-aware backbone -> head.

The forward is split where the costs split, so each caller caches at the right boundary:

====================  ============================  =========================================
call                  depends on                    cached by
====================  ============================  =========================================
``encode_text``       expression                    training (frozen encoder), predictor
``condition``         text features                 predictor (``set_command``)
``image_features``    image                         training (frozen CNN)
``ground``            image features + command      nothing: this is the per-frame work
====================  ============================  =========================================

Images enter as float RGB in [0, 1], ``(B, 3, H, W)``; normalisation uses the ``pixel_mean`` /
``pixel_std`` buffers, so it follows the model's device.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from refseg_ros.model.backbones import LanguageAwareBackbone
from refseg_ros.model.config import ModelConfig
from refseg_ros.model.heads import GroundingHead, GroundingOutput
from refseg_ros.model.law import LanguageAdaptiveWeights, fold_weights
from refseg_ros.model.text_encoder import TextEncoder, TextFeatures


def _map_fields(obj, fn):
    """A copy of dataclass ``obj`` with ``fn`` applied to every field that is not None."""
    return replace(obj, **{f.name: fn(getattr(obj, f.name)) for f in fields(obj) if getattr(obj, f.name) is not None})


@dataclass
class FoldedCommand:
    """A command's per-frame constants for inference (``VGLAW.fold``): everything in ``ground`` that
    depends only on the expression is computed once per command, so a frame does only the work
    that depends on the image. Same results as the unfolded command up to float rounding.

    ``box_query``: ``(B, C)`` the sentence folded into the LAP projection; ``mask_kernel``, ``mask_bias``:
    ``(B, K)``, ``(B,)`` the sentence kernel of the mask head (moved through its final 1x1
    convolution when the decoder has one); ``qkv``: ``(B, layers, out, in)`` the adapted layers'
    weights W0 + P Phi Q^T (None: the frame uses Phi's low-rank path); ``word_keys``,
    ``word_values``: ``(B, blocks, heads, T, C)`` and ``word_bias``: ``(B, blocks, heads, T)``
    (-inf at padding) the words folded into each block's word attention (word-attention models).
    """

    box_query: torch.Tensor
    mask_kernel: torch.Tensor
    mask_bias: torch.Tensor
    qkv: torch.Tensor | None = None
    word_keys: torch.Tensor | None = None
    word_bias: torch.Tensor | None = None
    word_values: torch.Tensor | None = None

    #: the word-attention fields (padded along T in :meth:`cat`; ONNX inputs of the same names)
    WORD_FIELDS = ("word_keys", "word_bias", "word_values")

    @staticmethod
    def cat(items: list["FoldedCommand"]) -> "FoldedCommand":
        """Concatenate along the expressions; word tensors are padded to the longest (-inf bias)."""
        first = items[0]
        out = {}
        for f in fields(first):
            parts = [getattr(c, f.name) for c in items]
            if parts[0] is None:
                out[f.name] = None
                continue
            if f.name in FoldedCommand.WORD_FIELDS:
                length = max(p.shape[3] for p in parts)
                fill = float("-inf") if f.name == "word_bias" else 0.0
                parts = [torch.cat((p, p.new_full((*p.shape[:3], length - p.shape[3], *p.shape[4:]), fill)), 3)
                         for p in parts]
            out[f.name] = torch.cat(parts)
        return FoldedCommand(**out)


@dataclass
class Command:
    """What B expressions contribute to every frame, computed once per expression.

    ``phi``: ``(B, layers, d_w, d_w)`` generated weights (None when ``law`` is off);
    ``sentence``: ``(B, d_l)`` F_l^1 for the heads; ``words``/``word_mask``: token features, only
    kept when the optional word attention is on; ``folded``: the inference constants of
    ``VGLAW.fold``, used instead of what they were computed from.
    """

    phi: torch.Tensor | None
    sentence: torch.Tensor
    words: torch.Tensor | None = None
    word_mask: torch.Tensor | None = None
    folded: FoldedCommand | None = None

    def __len__(self) -> int:
        return self.sentence.shape[0]

    def _map(self, fn) -> "Command":
        return _map_fields(self, lambda v: _map_fields(v, fn) if isinstance(v, FoldedCommand) else fn(v))

    def index(self, idx) -> "Command":
        """Rows ``idx`` (an int keeps the batch dimension)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return self._map(lambda t: t[idx])

    def to(self, device: torch.device | str) -> "Command":
        return self._map(lambda t: t.to(device))

    def detach(self) -> "Command":
        return self._map(lambda t: t.detach())

    @staticmethod
    def cat(items: list["Command"]) -> "Command":
        first = items[0]
        words = mask = None
        if first.words is not None:
            text = TextFeatures.cat([TextFeatures(c.words, c.word_mask) for c in items])
            words, mask = text.tokens, text.mask
        return Command(
            phi=None if first.phi is None else torch.cat([c.phi for c in items]),
            sentence=torch.cat([c.sentence for c in items]), words=words, word_mask=mask,
            folded=None if any(c.folded is None for c in items) else FoldedCommand.cat([c.folded for c in items]))


class VGLAW(nn.Module):
    """VG-LAW (Su et al., CVPR 2023) with injectable parts; build it with ``build_model``.

    Args:
        cfg: the model configuration (kept for checkpoints and the predictor).
        text_encoder: BERT-family encoder producing F_l.
        backbone: language-aware visual backbone.
        head: box + mask head.
        law: weight generator (None when ``cfg.law`` is off).
    """

    def __init__(self, cfg: ModelConfig, text_encoder: TextEncoder, backbone: LanguageAwareBackbone,
                 head: GroundingHead, law: LanguageAdaptiveWeights | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.text_encoder = text_encoder
        self.law = law
        self.backbone = backbone
        self.head = head
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False)
        #: how this model was built (recorded in checkpoints)
        self.preset: str = cfg.name
        self.overrides: dict[str, Any] = {}
        #: inference knock-outs (:meth:`knock_out`); never stored in checkpoints
        self.knocked_out: frozenset[str] = frozenset()

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input ``(width, height)``."""
        return self.cfg.input_size

    def run_at(self, input_size: tuple[int, int]) -> "VGLAW":
        """Run at another input ``(width, height)`` than the one trained at (multiples of 16).

        Every weight is size-agnostic (convolutions, token-wise layers, sine positions over the grid),
        so this is valid, but accuracy at an untrained size is for measuring (``refseg eval
        --input-size``), not a guarantee. Clear a predictor's command cache after it.
        """
        self.cfg = replace(self.cfg, input_size=tuple(int(v) for v in input_size))
        return self

    KNOCK_OUTS = ("law", "word_attention")

    def knock_out(self, *parts: str) -> "VGLAW":
        """Switch parts of the language path off at inference, to measure what each one carries.

        ``"law"``: Phi = 0, so every adapted layer runs its static weight W0; ``"word_attention"``:
        the word cross-attention adds nothing (as if its output projection were zero). No argument
        restores the model. Commands computed before the call keep their old Phi: clear caches.
        """
        unknown = sorted(set(parts) - set(self.KNOCK_OUTS))
        if unknown:
            raise ValueError(f"unknown knock-out {unknown}; choose from {self.KNOCK_OUTS}")
        self.knocked_out = frozenset(parts)
        self.backbone.word_attention_off = "word_attention" in self.knocked_out
        return self

    # ---- language side: once per expression ----------------------------------------------------
    def encode_text(self, expressions: list[str]) -> TextFeatures:
        return self.text_encoder(expressions)

    def condition(self, text: TextFeatures) -> Command:
        """Generated weights and sentence feature from (possibly cached) text features."""
        tokens, mask = text.tokens, text.mask.to(text.tokens.device)
        if self.cfg.sentence_feature == "cls":
            sentence = tokens[:, 0]
        else:
            w = mask.unsqueeze(-1).to(tokens.dtype)
            sentence = (tokens * w).sum(1) / w.sum(1).clamp(min=1)
        phi = self.law(tokens, mask) if self.law is not None else None
        if phi is not None and "law" in self.knocked_out:
            phi = torch.zeros_like(phi)
        if self.backbone.word_attn is None:
            return Command(phi, sentence)
        trimmed = text.trimmed()
        return Command(phi, sentence, trimmed.tokens, trimmed.mask)

    def command(self, expressions: list[str]) -> Command:
        return self.condition(self.encode_text(expressions))

    @torch.no_grad()
    def fold(self, command: Command, weights: bool = True) -> Command:
        """``command`` with its :class:`FoldedCommand`: the inference path of a cached command
        (gradients do not flow through it). ``weights``: also sum the generated weights into the
        adapted layers' weights (``qkv``), so those layers cost per frame what static ones do;
        ``False`` keeps Phi's low-rank path (a smaller per-frame input: the ONNX graph)."""
        backbone = self.backbone
        parts = self.head.fold(command.sentence)
        if weights and command.phi is not None and backbone.adaptive_layers:
            parts["qkv"] = fold_weights(backbone.adaptive_layers, command.phi, backbone.law_basis)
        if backbone.word_attn is not None:
            if command.words is None:
                raise ValueError("word_attention is on: the command needs its token features")
            folded = [attn.fold(command.words, command.word_mask) for attn in backbone.word_attn]
            for i, name in enumerate(FoldedCommand.WORD_FIELDS):
                parts[name] = torch.stack([f[i] for f in folded], dim=1)
        return replace(command, folded=FoldedCommand(**parts))

    # ---- image side ----------------------------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Expression-independent features of float [0, 1] RGB images (frozen parts run without grad)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W); got {tuple(images.shape)}")
        return self.backbone.image_features(self.normalize(images))

    def ground(self, features: dict[str, torch.Tensor], command: Command) -> GroundingOutput:
        """Per-frame work: features of 1 image (broadcast) or of ``len(command)`` images."""
        out = self.backbone(features, len(command), phi=command.phi, words=command.words,
                            word_mask=command.word_mask, folded=command.folded)
        return self.head(out, command.sentence, folded=command.folded)

    def forward(self, images: torch.Tensor, command: Command | list[str]) -> GroundingOutput:
        if not isinstance(command, Command):
            command = self.command(list(command))
        return self.ground(self.image_features(images), command)

    # ---- checkpoints -----------------------------------------------------------------------------
    def pinned_modules(self) -> dict[str, nn.Module]:
        """Submodules whose weights come from pinned weight packages, by state-dict prefix."""
        mods = {"text_encoder.model": self.text_encoder.model}
        for name in self.backbone.pinned_modules:
            mods[f"backbone.{name}"] = getattr(self.backbone, name)
        return mods

    def pinned_state_keys(self) -> set[str]:
        """State-dict keys identical to the pinned packages: frozen parts of pinned modules.

        A module with any trainable parameter is stored whole (its buffers may have changed too).
        """
        keys = set()
        for prefix, module in self.pinned_modules().items():
            trained = {name for name, m in module.named_modules()
                       if any(p.requires_grad for p in m.parameters(recurse=False))}
            for key in module.state_dict():
                owner = key.rpartition(".")[0]
                if owner not in trained:
                    keys.add(f"{prefix}.{key}")
        return keys

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: every state-dict entry not identical to a pinned package."""
        pinned = self.pinned_state_keys()
        return {k: v for k, v in self.state_dict().items() if k not in pinned}
