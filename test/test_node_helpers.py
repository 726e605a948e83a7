"""The node's pure helpers: parameter table, throttled warnings, latency window, overlay drawing."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from refseg_ros.ros import params as P
from refseg_ros.ros.stats import Throttle
from refseg_ros.utils.timing import LatencyWindow
from refseg_ros.utils.overlay import PALETTE_RGB, color_for, draw_groundings


def test_parameter_table_is_consistent():
    names = [p.name for p in P.PARAMS]
    assert len(names) == len(set(names))
    for spec in P.PARAMS:
        assert spec.description.strip(), spec.name
        assert P.validate(spec.name, spec.default) is None, spec.name
        if spec.range is not None:
            assert isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool)
    required = {"checkpoint", "device", "half", "mask_threshold", "found_threshold", "max_rate_hz", "continuous",
                "use_depth", "image_reliability", "publish_masks", "autostart", "use_compressed", "sync_slop",
                "max_command_chars"}
    assert required <= set(names)
    assert P.SPECS["found_threshold"].dynamic and P.SPECS["max_rate_hz"].dynamic
    assert not P.SPECS["device"].dynamic and not P.SPECS["checkpoint"].dynamic


@pytest.mark.parametrize("name, value, ok", [
    ("device", "cpu", True), ("device", "cuda:1", True), ("device", "tpu", False), ("device", "cuda:x", False),
    ("image_reliability", "reliable", True), ("image_reliability", "sometimes", False),
    ("found_threshold", 1.5, False), ("found_threshold", 0.0, True), ("max_rate_hz", -1.0, False),
])
def test_validate(name, value, ok):
    assert (P.validate(name, value) is None) is ok


@pytest.mark.ros
def test_descriptors_carry_ranges():
    pytest.importorskip("rcl_interfaces")
    d = P.descriptor(P.SPECS["found_threshold"])
    # negative = the checkpoint's own threshold
    assert d.floating_point_range[0].from_value == -1.0 and d.floating_point_range[0].to_value == 1.0
    d = P.descriptor(P.SPECS["max_command_chars"])
    assert d.integer_range[0].from_value == 1
    d = P.descriptor(P.SPECS["device"])
    assert "cuda" in d.additional_constraints and "configure" in d.description


def test_throttle_is_per_cause_and_counts_suppressed():
    now = [0.0]
    t = Throttle(period=5.0, clock=lambda: now[0])
    assert t.check("empty command") == "empty command"
    assert t.check("command too long (12000 characters)") is not None  # another cause: not silenced
    assert t.check("empty command") is None
    assert t.check("command too long (9000 characters)") is None  # same cause, other numbers
    now[0] = 6.0
    assert t.check("empty command") == "empty command (1 similar suppressed)"
    assert t.check("x", key="k") == "x" and t.check("y", key="k") is None


def test_latency_window():
    w = LatencyWindow(size=10)
    assert np.isnan(w.percentile(50))
    for v in range(100):
        w.add(v / 1000)
    assert len(w) == 10
    assert w.percentile(50) == pytest.approx(0.0945)
    assert w.percentile(95) <= 0.099


def _g(expr, box, score, mask):
    return SimpleNamespace(expression=expr, box=box, score=score, mask=mask)


def test_overlay_draws_found_objects_and_leaves_input_untouched():
    img = np.zeros((120, 160, 3), np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[40:80, 50:100] = True
    results = [_g("the red mug", (50.0, 40.0, 100.0, 80.0), 0.9, mask),
               _g("the duck \u2713", (120.0, 50.0, 150.0, 70.0), 0.1, np.zeros((120, 160), bool))]
    out = draw_groundings(img, results, found_threshold=0.5, channel_order="bgr")
    assert out.shape == img.shape and out.dtype == np.uint8 and not img.any()
    inside = out[60, 75].astype(int)  # tinted with the first palette colour (BGR order here)
    expected = np.array(color_for(0, "bgr")) * 0.45
    assert np.abs(inside - expected).max() <= 2
    # not found: no box where the model guessed, a grey "not found: ..." line at the top left
    assert not out[50:71, 118:153].any()
    top_left = out[:25, :110].astype(int)
    grey = (top_left[..., 0] == top_left[..., 2]) & (top_left[..., 0] > 60)
    assert grey.sum() > 20
    assert not out[100:, 130:].any()  # far from everything: untouched


def test_overlay_clips_boxes_and_rejects_bad_images():
    img = np.zeros((50, 60, 3), np.uint8)
    out = draw_groundings(img, [_g("x", (-100, -5, 1e6, float("nan")), 1.0, None),
                                _g("y", (-20, -20, 200, 200), 1.0, None)])
    assert out.shape == img.shape
    with pytest.raises(ValueError):
        draw_groundings(np.zeros((5, 5), np.uint8), [])
    with pytest.raises(ValueError):
        draw_groundings(img, [], channel_order="hsv")
    assert color_for(len(PALETTE_RGB)) == color_for(0)
