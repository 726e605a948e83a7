"""The layers the backbones are assembled from: timm's ViT block with ViTDet-style windowed
attention, the optional word attention, and the fixed position inputs of ``mobilenetv2_vit``.

Each is a plain ``nn.Module`` or function of tensors, with no knowledge of the language-adaptive
weights (those patch a block's ``attn.qkv`` from :mod:`refseg_ros.model.law`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

__all__ = ["ViTDetBlock", "WordAttention", "coordinate_channels", "init_linear", "sine_position_encoding",
           "window_partition", "window_unpartition"]


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, H, W, C) -> (B * windows, window * window, C)``, zero-padding H and W up to multiples."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c), (hp, wp)


def window_unpartition(x: torch.Tensor, window: int, padded_hw: tuple[int, int],
                       hw: tuple[int, int]) -> torch.Tensor:
    hp, wp = padded_hw
    b = x.shape[0] // ((hp // window) * (wp // window))
    x = x.view(b, hp // window, wp // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, -1)[:, :hw[0], :hw[1]]


class ViTDetBlock(Block):
    """timm's pre-norm ``Block`` that can restrict attention to non-overlapping windows.

    ``window_size = 0`` is a global block. Windows are batch-major, which is what
    :class:`~refseg_ros.model.law.AdaptiveLinear` needs to find each sample's generated weights.
    """

    window_size: int = 0

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None, **kwargs) -> torch.Tensor:
        if not self.window_size or hw is None:
            return super().forward(x, **kwargs)
        b, n, c = x.shape
        y, padded = window_partition(self.norm1(x).view(b, hw[0], hw[1], c), self.window_size)
        y = window_unpartition(self.attn(y), self.window_size, padded, hw).reshape(b, n, c)
        x = x + self.drop_path1(self.ls1(y))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class WordAttention(nn.Module):
    """Cross-attention from visual tokens to the individual token features (NOT part of VG-LAW).

    A cross-modal fusion the paper avoids; kept as an off-by-default option because the feasibility
    run used it. The output projection starts at zero, so enabling it changes nothing until trained.
    """

    def __init__(self, dim: int, text_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(text_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = self.q(self.norm(x)).reshape(b, n, heads, -1).transpose(1, 2)
        k, v = self.kv(words.to(x.dtype)).reshape(b, words.shape[1], 2, heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=word_mask[:, None, None, :])
        return x + self.proj(y.transpose(1, 2).reshape(b, n, c))

    @torch.no_grad()
    def fold(self, words: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What depends only on the words, once per command (inference): ``keys``, ``values``
        ``(B, heads, T, C)`` and ``bias`` ``(B, heads, T)`` for :meth:`forward_folded`.

        Per head h, with n = norm(x): ``q_h k_h^T = n (W_q,h^T k_h^T) + b_q,h k_h^T``, so the query
        projection moves onto the T keys (``keys``, scaled; padding becomes -inf in ``bias``), and
        ``proj(concat_h A_h v_h) = sum_h A_h (v_h W_proj,h^T) + b_proj`` moves the output projection
        onto the T values. A frame then costs two (N x C) x (C x heads*T) products per block
        instead of two C x C projections plus the attention (and no key/value projection at all).
        """
        b, t, _ = words.shape
        heads, c = self.num_heads, self.q.out_features
        d = c // heads
        k, v = self.kv(words.to(self.q.weight.dtype)).reshape(b, t, 2, heads, d).permute(2, 0, 3, 1, 4)
        scale = d ** -0.5  # scaled_dot_product_attention's default
        keys = torch.einsum("bhtd,hdc->bhtc", k, self.q.weight.reshape(heads, d, c)) * scale
        bias = torch.einsum("bhtd,hd->bht", k, self.q.bias.reshape(heads, d)) * scale
        bias = bias.masked_fill(~word_mask[:, None, :].to(torch.bool), float("-inf"))
        values = torch.einsum("bhtd,chd->bhtc", v, self.proj.weight.reshape(c, heads, d))
        return keys, bias, values

    def forward_folded(self, x: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor,
                       values: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the words folded in (:meth:`fold`); the same result up to rounding."""
        b, n, c = x.shape
        heads = keys.shape[1]
        keys, values = keys.flatten(1, 2).to(x.dtype), values.flatten(1, 2).to(x.dtype)  # (B, heads*T, C)
        scores = torch.matmul(self.norm(x), keys.transpose(1, 2)) + bias.flatten(1).unsqueeze(1).to(x.dtype)
        attn = scores.reshape(b, n, heads, -1).softmax(dim=-1).reshape(b, n, -1)
        return x + torch.matmul(attn, values) + self.proj.bias.to(x.dtype)


def init_linear(m: nn.Module) -> None:
    """timm's ViT init for new transformer layers."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def sine_position_encoding(h: int, w: int, dim: int, device, dtype,
                           temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sine/cosine encoding of normalised positions (DETR-style): ``(h * w, dim)``."""
    if dim % 4:
        raise ValueError("sine position encoding needs a width divisible by 4")
    quarter = dim // 4
    y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 * math.pi
    x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 * math.pi
    freq = temperature ** (-torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    y, x = torch.meshgrid(y, x, indexing="ij")
    py = y.reshape(-1, 1) * freq
    px = x.reshape(-1, 1) * freq
    return torch.cat((py.sin(), py.cos(), px.sin(), px.cos()), dim=1).to(dtype)


def coordinate_channels(b: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """Normalised x and y of each cell centre in [-1, 1]: ``(b, 2, h, w)``."""
    y = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 - 1
    x = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 - 1
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack((xx, yy)).unsqueeze(0).expand(b, 2, h, w)
