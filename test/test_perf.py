"""The inference-only rewrites match the reference model, the ONNX export matches PyTorch under
onnxruntime, and ``refseg bench --quick`` writes every figure. No timing is asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from refseg_ros.model.build import build_model
from refseg_ros.bench.run import REQUIRED_KEYS


def _random_model(**overrides):
    """A tabletop model whose zero-initialised parts (Phi, word attention output) are random too,
    so the generated weights and token features really change the per-frame result."""
    torch.manual_seed(0)
    model = build_model("tabletop", **overrides).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and (name.startswith("law.phi") or ("word_attn" in name and ".proj." in name)):
                p.normal_(0, 0.02)
    return model


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return _random_model()


def test_folded_channels_last_cnn_matches_the_reference_features_and_outputs(model):
    from refseg_ros.model.inference import FastImageFeatures, fast_image_features

    fast = fast_image_features(model)
    assert isinstance(fast, FastImageFeatures)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.cnn.modules())
    # the model itself is untouched: same state-dict keys, BatchNorm still there
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.cnn.modules())
    image = torch.rand(2, 3, 240, 320, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, got = model.image_features(image), fast(image)
        assert ref.keys() == got.keys()
        for k in ref:
            assert got[k].shape == ref[k].shape
            assert torch.allclose(got[k], ref[k], atol=1e-4, rtol=1e-4), (k, (got[k] - ref[k]).abs().max())
        command = model.command(["the red mug on the left", "the duck"])
        a, b = model.ground(ref, command), model.ground(got, command)
    assert torch.allclose(a.box, b.box, atol=1e-5)
    assert torch.allclose(a.mask_logits, b.mask_logits, atol=1e-3)


def test_predictor_fast_path_gives_the_reference_results(model):
    from refseg_ros.model.predictor import GroundingPredictor

    frame = np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    results = []
    for optimize in (False, True):
        p = GroundingPredictor(model, optimize=optimize)
        p.set_command(["the red mug on the left", "the small blue cube"])
        results.append(p.predict(frame))
    for ref, got in zip(*results):
        assert np.allclose(ref.box, got.box, atol=1e-2)
        assert abs(ref.score - got.score) < 1e-4
        assert (ref.mask != got.mask).mean() < 1e-4  # only pixels at the threshold may flip


def test_trainable_cnn_keeps_the_reference_path():
    from refseg_ros.model.inference import fast_image_features

    model = build_model("tabletop", cnn_trainable=True)
    assert fast_image_features(model) == model.image_features


@pytest.mark.parametrize("law", [True, False], ids=["law", "static"])
@pytest.mark.parametrize("words", [False, True], ids=["no_words", "word_attention"])
def test_onnx_round_trip_matches_pytorch(tmp_path, law, words):
    pytest.importorskip("onnxruntime")
    from refseg_ros.model.export import FramePath, check_onnx, example_inputs, export_onnx, ort_session

    torch.set_num_threads(1)
    model = _random_model(law=law, word_attention=words)
    out = export_onnx(model, tmp_path / "model.onnx", ["the red mug on the left", "the duck"])
    session = ort_session(out, threads=1)
    names = [i.name for i in session.get_inputs()]
    assert names == FramePath(model).input_names()
    assert ("phi" in names) == law and ("word_keys" in names) == words
    inputs = example_inputs(model, ["the ball"])
    assert len(inputs) == len(names)
    # the example's size and batch, then another image size, batch and token count (dynamic axes)
    for exprs, hw in ((["the red mug on the left", "the duck"], None),
                      (["the ball", "the second cube from the left", "the tray"], (272, 384))):
        diff = check_onnx(model, out, exprs, image_hw=hw, seed=3, threads=1)
        assert diff["box_max_abs_diff"] < 1e-4, diff
        assert diff["mask_logits_max_abs_diff"] < 1e-3, diff


@pytest.mark.ros  # its ROS figures come from a node process over DDS
@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 45 s here when the CPU is free; minutes with both cores busy
def test_refseg_bench_quick_writes_every_figure(tmp_path, ros_env):
    out = tmp_path / "bench.json"
    env = dict(ros_env, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "refseg_ros.cli.main", "bench", "--quick", "--threads", "1",
                           "--frames", "3", "--json", str(out)], env=env, capture_output=True, text=True,
                          timeout=1700)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    missing = [k for k in REQUIRED_KEYS if result.get(k) is None]
    assert not missing, f"missing figures {missing}; notes: {result.get('notes_ros')}"
    for key in REQUIRED_KEYS:
        assert isinstance(result[key], (int, float)) and np.isfinite(result[key]) and result[key] > 0, key
    assert result["frames"] == 3 and result["quick"] is True
    assert result["ros_frames"] >= 1 and result["ros_frame_size"] == [640, 480]
    assert result["gflops_batch4"] > result["gflops_batch1"] > 0
    assert set(result["meets_targets"]) == set(result["targets"])
    # headline figures on the node's default backend, the other one named
    # (the node's default: backend auto = onnxruntime on a CPU, with its int8 matmuls)
    assert result["backend"] == "onnxruntime" and result["int8"] is True
    assert result["predict_ms_p50"] == result["predict_onnxruntime_int8_ms_p50"]
    assert result["law_over_static"] == result["law_over_static_onnxruntime_int8"]
    assert result["batch4_over_batch1"] == result["batch4_over_batch1_onnxruntime_int8"]
    for key in ("torch", "onnxruntime"):  # the float32 backends, named
        assert result[f"predict_{key}_ms_p50"] > 0 and result[f"law_over_static_{key}"] > 0
        assert result[f"batch4_over_batch1_{key}"] > 0
    assert result["dds_profile"].endswith("fastdds_large_frames.xml")  # the ROS part's transports
    assert "predict (onnxruntime int8, command cached)" in proc.stdout and os.path.getsize(out) > 100


def test_predictor_onnxruntime_backend_gives_the_reference_results(model):
    pytest.importorskip("onnxruntime")
    from refseg_ros.model.predictor import GroundingPredictor

    frame = np.random.default_rng(4).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ref, ort = GroundingPredictor(model, optimize=False), GroundingPredictor(model, backend="onnxruntime")
    for exprs in (["the red mug on the left"], ["the duck", "the small blue cube", "the tray"]):
        ref.set_command(exprs)
        ort.set_command(exprs)
        for a, b in zip(ref.predict(frame), ort.predict(frame), strict=True):
            assert a.expression == b.expression
            assert np.allclose(a.box, b.box, atol=1e-2)
            assert abs(a.score - b.score) < 1e-4
            assert (a.mask != b.mask).mean() < 1e-4
    with pytest.raises(ValueError, match="backend"):
        GroundingPredictor(model, backend="tensorrt")
    with pytest.raises(ValueError, match="int8 is an onnxruntime option"):
        GroundingPredictor(model, int8=True)
