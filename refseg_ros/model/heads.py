"""VG-LAW multi-task head: one box (REC) and one mask (RES) per expression, no post-processing.

- Box: language adaptive pooling (LAP) projects F_v per position and the sentence feature F_l^1 to
  k dims; the softmax of their dot products over positions is the attention A; A pools F_v.
  ``lap_mlp`` (published): a 3-layer MLP + sigmoid on the pooled feature gives (cx, cy, w, h).
  ``attn_centre``: the centre is the A-weighted mean of the grid cell centres, only (w, h) come from
  the MLP. It learned faster on the tabletop data: the centre follows the attention directly, so the
  MLP only has to learn the size.
- Mask: F_v goes to stride 4 (``deconv``: the published transposed convolutions; ``skip``: an FPN-like
  decoder fusing the CNN's stride-8 and stride-4 maps), a dot product per position with the projected
  sentence feature gives the stride-4 logits; upsampling to the input size happens outside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from refseg_ros.model.backbones import BackboneOutput

if TYPE_CHECKING:
    from refseg_ros.model.vglaw import FoldedCommand


@dataclass
class GroundingOutput:
    """Raw model output for B expressions.

    ``box``: ``(B, 4)`` normalised ``cxcywh`` in [0, 1] of the model input (letterboxed canvas);
    ``mask_logits``: ``(B, 1, H/4, W/4)``; ``attention``: ``(B, h*w)`` LAP attention at stride 16;
    ``grid_hw``: the stride-16 grid; ``presence``: see the field.
    """

    box: torch.Tensor
    mask_logits: torch.Tensor
    attention: torch.Tensor
    grid_hw: tuple[int, int]
    #: ``(B,)`` logit that the expression has a referent in the image (None: no presence head)
    presence: torch.Tensor | None = None

    def mask_logits_at(self, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling to ``size = (H, W)`` (e.g. the input): ``(B, H, W)``."""
        return F.interpolate(self.mask_logits.float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def _mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 3) -> nn.Sequential:
    mods: list[nn.Module] = []
    dims = [in_dim] + [hidden] * (layers - 1)
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    mods.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*mods)


def grid_centres(h: int, w: int, device, dtype) -> torch.Tensor:
    """Normalised (x, y) of the cell centres of an h x w grid, row-major: ``(h*w, 2)``."""
    y = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    x = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1)


class LanguageAdaptivePooling(nn.Module):
    """LAP: ``A = softmax_n(<W_v f_n, W_l s> / sqrt(k))``, pooled = ``sum_n A_n f_n``."""

    def __init__(self, dim: int, text_dim: int, k: int) -> None:
        super().__init__()
        self.vis = nn.Linear(dim, k)
        self.txt = nn.Linear(text_dim, k)
        self.scale = k ** -0.5

    def forward(self, tokens: torch.Tensor, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        query = self.txt(sentence.to(tokens.dtype))
        logits = torch.einsum("bnk,bk->bn", self.vis(tokens), query) * self.scale
        return self._pool(logits, tokens)

    @staticmethod
    def _pool(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attn = logits.float().softmax(dim=-1)
        pooled = torch.matmul(attn.to(tokens.dtype).unsqueeze(1), tokens).squeeze(1)
        return attn, pooled

    def query(self, sentence: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` the sentence in the token space: ``<W_v f + b_v, W_l s>`` is ``f . (W_v^T W_l s)``
        plus a term that is the same at every position, which the softmax cancels."""
        return (self.txt(sentence.to(self.vis.weight.dtype)) @ self.vis.weight) * self.scale

    @torch.no_grad()
    def fold(self, sentence: torch.Tensor) -> torch.Tensor:
        """:meth:`query` once per command, for :meth:`forward_folded`."""
        return self.query(sentence)

    def forward_folded(self, tokens: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` with the sentence folded in (:meth:`fold`); the same result up to rounding."""
        logits = torch.matmul(tokens, query.to(tokens.dtype).unsqueeze(-1)).squeeze(-1)
        return self._pool(logits, tokens)


class BoxHead(nn.Module):
    """LAP + 3-layer MLP; ``kind`` is ``"lap_mlp"`` (published) or ``"attn_centre"``."""

    def __init__(self, kind: str, dim: int, text_dim: int, k: int, hidden: int = 0) -> None:
        super().__init__()
        self.kind = kind
        self.lap = LanguageAdaptivePooling(dim, text_dim, k)
        self.mlp = _mlp(dim, hidden or dim, 4 if kind == "lap_mlp" else 2)
        last = self.mlp[-1]
        # Start from small centred boxes (objects are small): sigmoid(bias) = (0.5, 0.5, 0.1, 0.1).
        small = math.log(0.1 / 0.9)
        with torch.no_grad():
            if kind == "lap_mlp":
                last.bias.copy_(torch.tensor([0.0, 0.0, small, small]))
            else:
                last.weight.mul_(0.1)
                last.bias.fill_(small)

    def forward(self, tokens: torch.Tensor, grid_hw: tuple[int, int], sentence: torch.Tensor | None,
                query: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``query``: the folded sentence (``LanguageAdaptivePooling.fold``), used instead of it.
        Returns the box, the attention and the pooled feature."""
        attn, pooled = self.lap(tokens, sentence) if query is None else self.lap.forward_folded(tokens, query)
        out = self.mlp(pooled).float().sigmoid()
        if self.kind == "lap_mlp":
            return out, attn, pooled
        centre = attn @ grid_centres(*grid_hw, device=attn.device, dtype=attn.dtype)
        return torch.cat((centre, out), dim=1), attn, pooled


class PresenceHead(nn.Module):
    """Whether the expression has a referent: one logit from what the box head already computed.

    Inputs: the language-adaptive pooled feature (what the attention found), the sentence query in
    the same token space (what was asked for), their product (how well they agree), and two peaks:
    the highest mask logit and the highest attention weight (a sharp, confident match). The peaks
    are detached so the presence loss does not reshape the mask or the attention; the pooled
    feature is not, so the backbone learns to tell a match from a near miss. No cross-modal fusion
    module: the image side is language-aware only through VG-LAW's weights (and the word
    attention when it is on).
    """

    def __init__(self, dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.norm_pooled = nn.LayerNorm(dim)
        self.norm_query = nn.LayerNorm(dim)
        self.mlp = _mlp(3 * dim + 2, hidden or dim, 1, layers=2)

    def forward(self, pooled: torch.Tensor, query: torch.Tensor, mask_logits: torch.Tensor,
                attention: torch.Tensor) -> torch.Tensor:
        p = self.norm_pooled(pooled.float())
        q = self.norm_query(query.float())
        peaks = torch.stack((mask_logits.detach().float().flatten(1).amax(1),
                             attention.detach().float().amax(1) * attention.shape[1] ** 0.5), dim=1)
        return self.mlp(torch.cat((p, q, p * q, peaks), dim=1))[:, 0]


class DeconvDecoder(nn.Module):
    """Published: two stride-2 transposed convolutions, stride 16 -> 4, ending at ``out_dim``
    (``width``: the channels between them; 0 = ``max(out_dim, dim // 2)``)."""

    def __init__(self, dim: int, out_dim: int, width: int = 0) -> None:
        super().__init__()
        mid = width or max(out_dim, dim // 2)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(dim, mid, 2, stride=2), LayerNorm2d(mid), nn.GELU(),
            nn.ConvTranspose2d(mid, out_dim, 2, stride=2))

    def forward(self, fmap: torch.Tensor, skips: dict[str, torch.Tensor], project: bool = True) -> torch.Tensor:
        if not project:
            raise ValueError("the deconv decoder has no 1x1 output projection to leave out")
        return self.up(fmap)


def _conv_block(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), LayerNorm2d(c), nn.GELU())


class SkipDecoder(nn.Module):
    """Stride 16 -> 8 -> 4 with the CNN's stride-8 (32 ch) and stride-4 (24 ch) maps added in."""

    def __init__(self, dim: int, out_dim: int, width: int = 64,
                 skip_channels: tuple[tuple[str, int], ...] = (("s8", 32), ("s4", 24))) -> None:
        super().__init__()
        self.skip_names = [name for name, _ in skip_channels]
        self.inp = nn.Conv2d(dim, width, 1)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for _, c in skip_channels)
        self.fuse = nn.ModuleList(_conv_block(width) for _ in skip_channels)
        self.out = nn.Conv2d(width, out_dim, 1)

    def forward(self, fmap: torch.Tensor, skips: dict[str, torch.Tensor], project: bool = True) -> torch.Tensor:
        """``skips`` may hold one image for all expressions (batch 1): the lateral convolutions then
        run once and broadcast. ``project=False`` leaves out the final 1x1 ``out`` convolution
        (``MaskHead.fold`` moves it onto the sentence kernel)."""
        x = self.inp(fmap)
        for name, lateral, fuse in zip(self.skip_names, self.lateral, self.fuse):
            skip = skips[name]
            if not torch.is_autocast_enabled():
                skip = skip.to(x.dtype)
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(x + lateral(skip))
        return self.out(x) if project else x


class MaskHead(nn.Module):
    """Stride-4 map dotted per position with the sentence feature: projected, scaled and with a
    bias (``kernel="linear"``), or the raw feature as the 1x1 kernel (``"sentence"``, published;
    the decoder then ends at ``text_dim`` channels)."""

    def __init__(self, decoder: nn.Module, mask_dim: int, text_dim: int, prior: float = 0.05,
                 kernel: str = "linear") -> None:
        super().__init__()
        self.decoder = decoder
        if kernel == "sentence":
            self.txt, self.scale, self.bias = None, 1.0, None
            return
        self.txt = nn.Linear(text_dim, mask_dim)
        self.scale = mask_dim ** -0.5
        # Focal-loss style prior: the object covers a few percent of the image.
        self.bias = nn.Parameter(torch.tensor(math.log(prior / (1 - prior))))

    def _kernel(self, sentence: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return sentence.to(dtype) if self.txt is None else self.txt(sentence.to(dtype))

    def forward(self, backbone_out: BackboneOutput, sentence: torch.Tensor) -> torch.Tensor:
        fmap = self.decoder(backbone_out.feature_map(), backbone_out.skips)
        logits = torch.einsum("bchw,bc->bhw", fmap, self._kernel(sentence, fmap.dtype)) * self.scale
        if self.bias is not None:
            logits = logits + self.bias
        return logits.unsqueeze(1)

    def _output_projection(self) -> nn.Conv2d | None:
        """The decoder's final 1x1 convolution, if it has one (it can be folded into the kernel)."""
        out = getattr(self.decoder, "out", None)
        return out if isinstance(out, nn.Conv2d) and out.kernel_size == (1, 1) and out.groups == 1 else None

    @torch.no_grad()
    def fold(self, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(kernel (B, K), bias (B,))`` for :meth:`forward_folded`, once per command. The scale is
        applied here, and a final 1x1 decoder convolution is moved onto the kernel: ``k . (W x + b)
        = (W^T k) . x + k . b``, so a frame skips that convolution."""
        dtype = self.txt.weight.dtype if self.txt is not None else torch.float32
        kernel = self._kernel(sentence, dtype) * self.scale
        bias = (self.bias if self.bias is not None else kernel.new_zeros(())).expand(kernel.shape[0])
        out = self._output_projection()
        if out is not None:
            if out.bias is not None:
                bias = bias + kernel @ out.bias
            kernel = kernel @ out.weight.flatten(1)
        return kernel, bias

    def forward_folded(self, backbone_out: BackboneOutput, kernel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the sentence folded in (:meth:`fold`); the same result up to rounding."""
        fmap = self.decoder(backbone_out.feature_map(), backbone_out.skips,
                            project=self._output_projection() is None)
        b, c, h, w = fmap.shape
        logits = torch.matmul(kernel.to(fmap.dtype).unsqueeze(1), fmap.reshape(b, c, h * w))
        return (logits + bias.to(logits.dtype).reshape(b, 1, 1)).reshape(b, 1, h, w)


class GroundingHead(nn.Module):
    def __init__(self, box: BoxHead, mask: MaskHead, presence: PresenceHead | None = None) -> None:
        super().__init__()
        self.box = box
        self.mask = mask
        self.presence = presence

    def forward(self, backbone_out: BackboneOutput, sentence: torch.Tensor | None,
                folded: FoldedCommand | None = None) -> GroundingOutput:
        """``folded`` (``VGLAW.fold``, inference): the sentence already folded into both heads."""
        if folded is None:
            # the presence head reads the query the folded path uses; the box keeps the full LAP
            # (every parameter in the graph, as DDP requires)
            query = self.box.lap.query(sentence) if self.presence is not None else None
            box, attn, pooled = self.box(backbone_out.tokens, backbone_out.grid_hw, sentence)
            logits = self.mask(backbone_out, sentence)
        else:
            query = folded.box_query
            box, attn, pooled = self.box(backbone_out.tokens, backbone_out.grid_hw, None, query=query)
            logits = self.mask.forward_folded(backbone_out, folded.mask_kernel, folded.mask_bias)
        presence = None if self.presence is None else self.presence(pooled, query, logits, attn)
        return GroundingOutput(box, logits, attn, backbone_out.grid_hw, presence)

    @torch.no_grad()
    def fold(self, sentence: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads' share of ``VGLAW.fold``: ``box_query``, ``mask_kernel``, ``mask_bias``."""
        kernel, bias = self.mask.fold(sentence)
        return {"box_query": self.box.lap.fold(sentence), "mask_kernel": kernel, "mask_bias": bias}


def build_head(cfg, dim: int, text_dim: int) -> GroundingHead:
    mask_dim = text_dim if cfg.mask_kernel == "sentence" else cfg.mask_dim
    if cfg.mask_decoder == "skip":
        decoder: nn.Module = SkipDecoder(dim, mask_dim, width=cfg.decoder_width)
    else:
        decoder = DeconvDecoder(dim, mask_dim, width=cfg.deconv_width)
    return GroundingHead(BoxHead(cfg.box_head, dim, text_dim, cfg.lap_dim, hidden=cfg.box_mlp_dim),
                         MaskHead(decoder, mask_dim, text_dim, kernel=cfg.mask_kernel),
                         PresenceHead(dim) if cfg.presence_head else None)
