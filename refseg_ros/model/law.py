"""Language-adaptive weight generation (VG-LAW, Su et al. CVPR 2023, Sec. 3.2).

For visual layer i: a learnable embedding e_i pools the token features F_l with a G-group attention
(padding masked; optionally scaled by 1/sqrt(d_l / G)), an FC (optionally LayerNorm) + GELU reduces the pooled vector to d_l / r, and Phi maps it to a
d_w x d_w matrix. The layer's qkv weight becomes W_i = W0_i + P Phi_i Q^T (dynamic channel fusion,
Li et al. ICLR 2021) with P, Q static and shared by all blocks. Phi is zero-initialised, so an untrained
model is exactly its static backbone.

Nothing here materialises a per-sample d_out x d_in matrix:
X W^T = X W0^T + ((X Q) Phi^T) P^T costs three thin matmuls per block.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LanguageAdaptiveWeights(nn.Module):
    """F_l -> Phi_i for every adapted layer i (all layers are computed in one batched einsum).

    Args:
        num_layers: adapted visual layers (one e_i, W_1^i and Phi^i each).
        text_dim: d_l.
        groups: G, the number of token-attention groups (must divide d_l).
        reduction: r, so the reduced feature has d_l / r dimensions.
        rank: d_w, Phi_i is d_w x d_w.
        pool_scale: divide the pooling scores by sqrt(d_l / G), as dot-product attention does.
        norm: LayerNorm (per layer) on the reduced feature before its GELU.
    """

    def __init__(self, num_layers: int, text_dim: int, groups: int = 4, reduction: int = 16,
                 rank: int = 32, pool_scale: bool = False, norm: bool = False) -> None:
        super().__init__()
        if text_dim % groups:
            raise ValueError(f"law_groups={groups} must divide the text width {text_dim}")
        hidden = max(1, text_dim // reduction)
        self.num_layers, self.groups, self.rank = num_layers, groups, rank
        self.layer_embed = nn.Parameter(torch.empty(num_layers, text_dim))
        self.reduce_weight = nn.Parameter(torch.empty(num_layers, hidden, text_dim))
        self.reduce_bias = nn.Parameter(torch.zeros(num_layers, hidden))
        self.phi_weight = nn.Parameter(torch.zeros(num_layers, rank * rank, hidden))
        self.phi_bias = nn.Parameter(torch.zeros(num_layers, rank * rank))
        self.pool_scale = (text_dim // groups) ** -0.5 if pool_scale else 1.0
        # one LayerNorm per adapted layer, as (layers, hidden) affine parameters
        self.norm_weight = nn.Parameter(torch.ones(num_layers, hidden)) if norm else None
        self.norm_bias = nn.Parameter(torch.zeros(num_layers, hidden)) if norm else None
        nn.init.trunc_normal_(self.layer_embed, std=0.02)
        nn.init.uniform_(self.reduce_weight, -1 / math.sqrt(text_dim), 1 / math.sqrt(text_dim))

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-layer grouped attention pooling: ``(B, L, d_l), (B, L) -> (B, num_layers, d_l)``."""
        b, length, dim = tokens.shape
        g = self.groups
        tok = tokens.reshape(b, length, g, dim // g)
        emb = self.layer_embed.reshape(self.num_layers, g, dim // g)
        logits = torch.einsum("blgd,ngd->bngl", tok, emb)
        if self.pool_scale != 1.0:
            logits = logits * self.pool_scale
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        alpha = logits.softmax(dim=-1)
        return torch.einsum("bngl,blgd->bngd", alpha, tok).reshape(b, self.num_layers, dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, L, d_l), (B, L) -> Phi (B, num_layers, d_w, d_w)``."""
        h0 = self.pool(tokens, mask)
        h1 = torch.einsum("bnd,nhd->bnh", h0, self.reduce_weight) + self.reduce_bias
        if self.norm_weight is not None:
            h1 = F.layer_norm(h1, h1.shape[-1:]) * self.norm_weight + self.norm_bias
        h1 = F.gelu(h1)
        phi = torch.einsum("bnh,nkh->bnk", h1, self.phi_weight) + self.phi_bias
        return phi.reshape(tokens.shape[0], self.num_layers, self.rank, self.rank)


class LowRankBasis(nn.Module):
    """The static P (d_out x d_w) and Q (d_in x d_w) shared by every adapted block."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        # Scaled so that (X Q) and P (Phi ...) keep unit-order activations: Phi's entries then
        # read directly as the size of the weight change.
        self.p = nn.Parameter(torch.randn(out_features, rank) / math.sqrt(rank))
        self.q = nn.Parameter(torch.randn(in_features, rank) / math.sqrt(in_features))


class AdaptiveLinear(nn.Module):
    """Drop-in replacement for an ``nn.Linear`` (same ``weight``/``bias`` names, so pretrained
    state dicts load unchanged) whose weight is W0 + P Phi Q^T for each sample.

    The per-sample (Phi, P, Q) is attached for the duration of a forward by :func:`adaptation`;
    without it the layer is exactly the static linear. Inputs may fold extra groups into the batch
    dimension (ViTDet windows: ``(B * windows, tokens, C)``) as long as the batch is outermost.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.adapt: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        #: ``(B, out, in)`` per-sample weights W0 + P Phi Q^T already summed (:func:`fold_weights`)
        self.folded: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded is not None:
            return self._folded_forward(x, self.folded.to(x.dtype))
        out = F.linear(x, self.weight, self.bias)
        if self.adapt is None:
            return out
        phi, p, q = self.adapt
        xs = x.reshape(phi.shape[0], -1, self.in_features)
        delta = torch.matmul(torch.bmm(torch.matmul(xs, q.to(xs.dtype)), phi.to(xs.dtype).transpose(1, 2)),
                             p.to(xs.dtype).t())
        return out + delta.reshape(out.shape)

    def _folded_forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.shape[0] == 1:  # one expression: exactly the static layer's cost
            return F.linear(x, w[0], self.bias)
        xs = x.reshape(w.shape[0], -1, self.in_features)
        out = torch.matmul(xs, w.transpose(1, 2))
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


def fold_weights(layers: Sequence[AdaptiveLinear], phi: torch.Tensor, basis: LowRankBasis) -> torch.Tensor:
    """``(B, layers, out, in)``: each layer's weight W0 + P Phi Q^T for each expression.

    For inference with a cached command: the per-frame cost of the adapted layers is then that of
    the static ones (one matmul, no low-rank side path). Training keeps the low-rank form, which
    never builds these matrices.
    """
    w0 = torch.stack([layer.weight for layer in layers])  # (L, out, in)
    delta = torch.einsum("or,blrs,is->bloi", basis.p, phi.to(w0.dtype), basis.q)
    return w0.unsqueeze(0) + delta


@contextmanager
def adaptation(layers: Sequence[AdaptiveLinear], phi: torch.Tensor | None,
               basis: LowRankBasis | None, folded: torch.Tensor | None = None) -> Iterator[None]:
    """Attach ``phi[:, i]`` (B, d_w, d_w) to ``layers[i]`` for one forward; ``phi=None`` = static.

    ``folded`` (from :func:`fold_weights`), when given, is used instead of ``phi``.
    """
    if folded is not None:
        if folded.shape[1] != len(layers):
            raise ValueError(f"folded weights hold {folded.shape[1]} layers, the backbone adapts {len(layers)}")
        for i, layer in enumerate(layers):
            layer.folded = folded[:, i]
    elif phi is not None:
        if phi.shape[1] != len(layers):
            raise ValueError(f"phi holds {phi.shape[1]} layers, the backbone adapts {len(layers)}")
        for i, layer in enumerate(layers):
            layer.adapt = (phi[:, i], basis.p, basis.q)
    try:
        yield
    finally:
        for layer in layers:
            layer.adapt = None
            layer.folded = None


def make_adaptive(blocks: Sequence[nn.Module]) -> list[AdaptiveLinear]:
    """Replace ``block.attn.qkv`` of timm-style blocks by :class:`AdaptiveLinear`; return them in order."""
    layers = []
    for block in blocks:
        qkv = AdaptiveLinear(block.attn.qkv)
        block.attn.qkv = qkv
        layers.append(qkv)
    return layers
