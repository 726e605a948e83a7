"""Inference knock-outs of the language path (``VGLAW.knock_out``): Phi = 0 gives exactly the
static backbone; word attention off gives exactly the model without it; both paths (reference and
folded) agree; nothing is stored in checkpoints."""
from __future__ import annotations

import pytest
import torch

from refseg_ros.model.build import build_model

torch.set_num_threads(2)
EXPRESSIONS = ["the red mug", "the leftmost cube", "the duck left of the blue cube"]


@pytest.fixture(scope="module")
def hybrid():
    """Word attention on, with Phi and the word attention's output projection non-zero."""
    torch.manual_seed(0)
    model = build_model("tabletop", word_attention=True).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.law.phi_weight.copy_(torch.randn(model.law.phi_weight.shape, generator=g) * 0.05)
        model.law.phi_bias.copy_(torch.randn(model.law.phi_bias.shape, generator=g) * 0.05)
        for attn in model.backbone.word_attn:
            attn.proj.weight.normal_(0, 0.05, generator=g)
            attn.proj.bias.normal_(0, 0.05, generator=g)
    return model


def _features(model):
    w, h = model.input_size
    img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.image_features(img)


def _tokens(model, feats, folded: bool) -> torch.Tensor:
    with torch.no_grad():
        cmd = model.command(EXPRESSIONS)
        if folded:
            cmd = model.fold(cmd)
        out = model.backbone(feats, len(cmd), phi=cmd.phi, words=cmd.words, word_mask=cmd.word_mask,
                             folded=cmd.folded)
    return out.tokens


@pytest.mark.parametrize("folded", [False, True], ids=["reference", "folded"])
def test_law_knock_out_is_the_static_backbone(hybrid, folded):
    feats = _features(hybrid)
    full = _tokens(hybrid, feats, folded)
    try:
        hybrid.knock_out("law")
        with torch.no_grad():
            assert torch.count_nonzero(hybrid.command(EXPRESSIONS).phi) == 0
        knocked = _tokens(hybrid, feats, folded)
    finally:
        hybrid.knock_out()
    with torch.no_grad():  # the same blocks run with no generated weights at all
        cmd = hybrid.command(EXPRESSIONS)
        static = hybrid.backbone(feats, 3, phi=None, words=cmd.words, word_mask=cmd.word_mask).tokens
    assert torch.allclose(knocked, static, atol=1e-5)
    assert (full - knocked).abs().max() > 1e-3
    assert torch.equal(_tokens(hybrid, feats, folded), full)  # restored


@pytest.mark.parametrize("folded", [False, True], ids=["reference", "folded"])
def test_word_attention_knock_out_equals_a_zero_output_projection(hybrid, folded):
    feats = _features(hybrid)
    full = _tokens(hybrid, feats, folded)
    try:
        hybrid.knock_out("word_attention")
        knocked = _tokens(hybrid, feats, folded)
    finally:
        hybrid.knock_out()
    saved = [(a.proj.weight.clone(), a.proj.bias.clone()) for a in hybrid.backbone.word_attn]
    try:
        with torch.no_grad():
            for attn in hybrid.backbone.word_attn:
                attn.proj.weight.zero_()
                attn.proj.bias.zero_()
        zeroed = _tokens(hybrid, feats, folded)
    finally:
        with torch.no_grad():
            for attn, (w, b) in zip(hybrid.backbone.word_attn, saved):
                attn.proj.weight.copy_(w)
                attn.proj.bias.copy_(b)
    assert torch.allclose(knocked, zeroed, atol=1e-5)
    assert (full - knocked).abs().max() > 1e-3


def test_knock_out_names_are_checked_and_not_in_the_state(hybrid):
    with pytest.raises(ValueError, match="unknown knock-out"):
        hybrid.knock_out("phi")
    before = set(hybrid.state_dict())
    hybrid.knock_out("law", "word_attention")
    try:
        assert set(hybrid.state_dict()) == before
        assert hybrid.knocked_out == {"law", "word_attention"}
    finally:
        hybrid.knock_out()
    assert not hybrid.knocked_out and not hybrid.backbone.word_attention_off
