"""The `paper` preset's published forms (pooling scale, LayerNorm, head widths, the [CLS] feature as
the mask kernel, deconv width, a BERT-base-style encoder cut to its first layers) and ViT weights in
the timm and detectron2 ViTDet layouts."""
from __future__ import annotations

import warnings

import pytest
import torch

from refseg_ros.model.backbones import load_vit_weights
from refseg_ros.model.build import build_model
from refseg_ros.model.law import LanguageAdaptiveWeights
from refseg_ros.model.text_encoder import TextEncoder

torch.set_num_threads(2)
#: the paper preset at toy sizes (same code path): 8x6 grid, 4x4 windows
SMALL = dict(embed_dim=64, depth=3, num_heads=4, input_size=(128, 96), window_size=4, global_blocks=(1,),
             drop_path=0.0, text_train_layers=0)


def _small_paper(**overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no vit_checkpoint: random init, warned
        return build_model("paper", **{**SMALL, **overrides}).eval()


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return _small_paper()


def test_paper_preset_has_the_published_forms(paper):
    cfg = paper.cfg
    assert cfg.law_groups == 12 and cfg.law_pool_scale and cfg.law_norm and cfg.sentence_feature == "cls"
    law = paper.law
    assert law.groups == 12 and law.pool_scale == pytest.approx((384 // 12) ** -0.5)
    assert law.norm_weight.shape == (3, 384 // 16)
    assert paper.head.box.lap.vis.out_features == 64  # k
    assert paper.head.box.mlp[0].out_features == 256  # box MLP width
    assert paper.head.mask.txt is None and paper.head.mask.bias is None  # the raw [CLS] as the kernel
    up = paper.head.mask.decoder.up
    assert up[0].out_channels == 256 and up[-1].out_channels == 384  # deconv width, then d_l channels


def test_raw_cls_kernel_is_the_mask_dot_product(paper):
    """Mask logits = <decoder map, [CLS] feature> per position, nothing else (reference and folded)."""
    w, h = paper.input_size
    img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        text = paper.encode_text(["the red mug", "the leftmost cube"])
        cmd = paper.condition(text)
        assert torch.equal(cmd.sentence, text.tokens[:, 0])
        feats = paper.image_features(img)
        out = paper.ground(feats, cmd)
        bb = paper.backbone(feats, 2, phi=cmd.phi)
        fmap = paper.head.mask.decoder(bb.feature_map(), bb.skips)
        expected = torch.einsum("bchw,bc->bhw", fmap, text.tokens[:, 0])
        folded = paper.ground(feats, paper.fold(cmd))
    assert torch.allclose(out.mask_logits[:, 0], expected, atol=1e-4)
    assert torch.allclose(folded.mask_logits, out.mask_logits, atol=1e-3)
    assert torch.allclose(folded.box, out.box, atol=1e-5)


def test_pooling_scale_and_layernorm_change_phi_as_defined():
    torch.manual_seed(0)
    tokens, mask = torch.randn(2, 5, 48), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    plain = LanguageAdaptiveWeights(2, 48, groups=4, reduction=4, rank=3)
    scaled = LanguageAdaptiveWeights(2, 48, groups=4, reduction=4, rank=3, pool_scale=True, norm=True)
    scaled.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for m in (plain, scaled):
            m.phi_weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
        # pooling: scaling the embedding by 1/sqrt(12) is the same as scaling the scores
        ref = LanguageAdaptiveWeights(2, 48, groups=4, reduction=4, rank=3)
        ref.load_state_dict(plain.state_dict())
        ref.layer_embed.mul_(12 ** -0.5)
        assert torch.allclose(scaled.pool(tokens, mask), ref.pool(tokens, mask), atol=1e-6)
        h = torch.einsum("bnd,nhd->bnh", ref.pool(tokens, mask), ref.reduce_weight) + ref.reduce_bias
        h = torch.nn.functional.gelu(torch.nn.functional.layer_norm(h, (12,)))
        phi = (torch.einsum("bnh,nkh->bnk", h, ref.phi_weight) + ref.phi_bias).reshape(2, 2, 3, 3)
        assert torch.allclose(scaled(tokens, mask), phi, atol=1e-5)
        assert not torch.allclose(plain(tokens, mask), phi, atol=1e-3)
    assert {"norm_weight", "norm_bias"} <= set(dict(scaled.named_parameters()))
    assert "norm_weight" not in dict(plain.named_parameters())  # the tabletop state dict is unchanged


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A local BERT-family folder (random weights, 96 wide, 3 layers): what a user supplies."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "red", "mug", "left", "cube", "of", "blue"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=128)).save_pretrained(folder)
    return folder


def test_text_layers_keep_the_first_layers_of_a_user_bert(tiny_bert):
    full = TextEncoder(str(tiny_bert)).eval()
    cut = TextEncoder(str(tiny_bert), layers=2).eval()
    assert len(full.model.encoder.layer) == 3 and len(cut.model.encoder.layer) == 2 and cut.dim == 96
    with torch.no_grad():
        a = full.model(**full.tokenize(["the red mug"]), output_hidden_states=True).hidden_states[2]
        b = cut(["the red mug"]).tokens
    assert torch.allclose(a, b, atol=1e-5)  # the cut encoder is the full one's first two layers
    with pytest.raises(ValueError, match="only 3 layers"):
        TextEncoder(str(tiny_bert), layers=4)


def test_paper_model_takes_the_text_width_of_the_supplied_encoder(tiny_bert):
    model = _small_paper(text_encoder=str(tiny_bert), text_layers=2)
    assert model.text_encoder.dim == 96 and model.law.layer_embed.shape == (3, 96)
    assert model.head.mask.decoder.up[-1].out_channels == 96  # the [CLS] kernel's width
    w, h = model.input_size
    with torch.no_grad():
        out = model(torch.rand(2, 3, h, w), ["the red mug", "the left blue cube"])
    assert out.mask_logits.shape == (2, 1, h // 4, w // 4) and torch.isfinite(out.box).all()


# ---- ViT weights in each layout -----------------------------------------------------------------
def _source_vit(paper) -> dict[str, torch.Tensor]:
    """Distinct weights for every ViT entry of ``paper``, plus a 4x4 grid + class slot position table."""
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(v.shape, generator=g) for k, v in paper.backbone.vit.state_dict().items()}
    state["pos_embed"] = torch.randn(1, 1 + 16, 64, generator=g)
    return state


def _save(state: dict, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"model": state}, path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("layout", ["timm", "detectron2"])
def test_vit_weights_load_from_each_layout(paper, tmp_path, capsys, layout, suffix):
    src = _source_vit(paper)
    if layout == "timm":  # a classifier checkpoint: class token and head too
        state = {**src, "cls_token": torch.zeros(1, 1, 64), "head.weight": torch.zeros(10, 64),
                 "head.bias": torch.zeros(10)}
        extra, missing = 3, 0
    else:  # ViTDet: backbone.net.*, relative position tables, no final norm, a pyramid and heads
        state = {f"backbone.net.{k}": v for k, v in src.items() if not k.startswith("norm.")}
        for i in range(3):
            state[f"backbone.net.blocks.{i}.attn.rel_pos_h"] = torch.zeros(27, 16)
            state[f"backbone.net.blocks.{i}.attn.rel_pos_w"] = torch.zeros(27, 16)
        state["backbone.simfp_2.0.weight"] = torch.zeros(4, 4)
        state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(81, 4)
        extra, missing = 3 * 2 + 2, 2
    path = tmp_path / f"w{suffix}"
    _save(state, path)
    model = _small_paper(vit_checkpoint=str(path))
    vit = model.backbone.vit
    for key in ("blocks.2.attn.qkv.weight", "blocks.0.mlp.fc2.bias", "patch_embed.proj.weight"):
        assert torch.equal(vit.state_dict()[key], src[key]), key
    assert vit.pos_embed.shape == (1, 6 * 8, 64)  # 4x4 resampled to the 6x8 grid, class slot dropped
    report = capsys.readouterr().err
    counts = load_vit_weights(vit, path)
    matched = len(src) - (2 if layout == "detectron2" else 0)
    assert counts == {"matched": matched, "missing": missing, "unexpected": extra}
    assert f"({layout} layout): {matched} matched, {missing} missing" in report


def test_vit_weights_with_no_matching_key_are_an_error(paper, tmp_path):
    path = tmp_path / "resnet.safetensors"
    _save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}, path)
    with pytest.raises(ValueError, match="no key matches"):
        load_vit_weights(paper.backbone.vit, path)
    pkl = tmp_path / "model_final.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match="pickled numpy"):
        load_vit_weights(paper.backbone.vit, pkl)


def test_paper_model_trains_one_step_and_round_trips_a_checkpoint(paper, tmp_path):
    """The published forms train (gradients reach the new parts) and a checkpoint of them rebuilds
    the same model (LayerNorm of the weight generator, no mask projection)."""
    from refseg_ros.model.checkpoint import load_checkpoint, save_checkpoint
    from refseg_ros.model.losses import GroundingLoss

    torch.manual_seed(0)
    model = _small_paper()
    w, h = model.input_size
    model.train()
    out = model(torch.rand(2, 3, h, w), ["the red mug", "the leftmost cube"])
    masks = torch.zeros(2, h // 4, w // 4)
    masks[0, 4:10, 4:10] = masks[1, 10:16, 12:20] = 1
    loss = GroundingLoss.from_config(model.cfg)(out, torch.tensor([[0.3, 0.4, 0.2, 0.2], [0.6, 0.5, 0.2, 0.3]]),
                                                masks)["loss"]
    loss.backward()
    named = dict(model.named_parameters())
    # Phi starts at zero, so of the weight generator only Phi itself has a gradient at the first step
    for name in ("law.phi_weight", "head.mask.decoder.up.0.weight", "head.box.mlp.0.weight",
                 "backbone.vit.blocks.0.attn.qkv.weight"):
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    assert named["law.norm_weight"].grad is not None  # in the graph
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = save_checkpoint(model, tmp_path / "paper.safetensors")
        loaded = load_checkpoint(path).eval()
    assert loaded.head.mask.txt is None and loaded.law.norm_weight is not None
    img = torch.rand(1, 3, h, w)
    with torch.no_grad():
        a, b = model(img, ["the red mug"]), loaded(img, ["the red mug"])
    assert torch.allclose(a.mask_logits, b.mask_logits, atol=1e-5) and torch.allclose(a.box, b.box, atol=1e-6)
