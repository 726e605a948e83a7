"""Results -> messages, overlay and markers for answers that say "not there" and "all of them".

In-process (ROS message classes, no DDS): what ``ros/messages.py`` and ``utils/overlay.py`` make of
post-processed results that are not found, found once, or found as several objects. The same over
DDS against a node process is in ``test_not_found_node.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from refseg_ros.model.postprocess import Grounding, Instance, PostProcess  # noqa: E402
from refseg_ros.ros import messages as M  # noqa: E402
from refseg_ros.ros.images import imgmsg_to_numpy, numpy_to_imgmsg  # noqa: E402
from refseg_ros.utils.overlay import answers, draw_groundings  # noqa: E402

pytestmark = pytest.mark.ros

H, W = 120, 160


def _box_mask(x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _result(expression, box, score, mask, found, instances, multi=False) -> Grounding:
    return Grounding(expression, box, score, mask, found, instances=instances, multi=multi)


def _results():
    """A found single-target result, a not-found one (with a best guess that must not leak), and
    a found multi-target one with two objects."""
    duck = _box_mask(10, 10, 30, 30)
    found = _result("the duck", (10.0, 10.0, 30.0, 30.0), 0.9, duck, True, [Instance((10.0, 10.0, 30.0, 30.0), duck, 0.9)])
    guess = _box_mask(60, 60, 90, 90)  # what the model would have shown
    absent = _result("the blue cube", (60.0, 60.0, 90.0, 90.0), 0.2, guess, False, [])
    a, b = _box_mask(100, 20, 120, 40), _box_mask(130, 70, 150, 100)
    cubes = _result("all the cubes", (100.0, 20.0, 150.0, 100.0), 0.8, a | b, True,
                    [Instance((100.0, 20.0, 120.0, 40.0), a, 0.8), Instance((130.0, 70.0, 150.0, 100.0), b, 0.8)],
                    multi=True)
    return [found, absent, cubes]


def _depth_view():
    depth = numpy_to_imgmsg(np.full((H, W), 0.8, np.float32), "32FC1")
    k = [200.0, 0, (W - 1) / 2, 0, 200.0, (H - 1) / 2, 0, 0, 1]
    view = M.DepthView.from_messages(depth, CameraInfo(k=k, width=W, height=H))
    assert view.problem == ""
    return view


def test_answers_flatten_not_found_single_and_multi():
    out = answers(_results())
    assert [(a.expression, a.index, a.found, a.instance, a.of) for a in out] == [
        ("the duck", 0, True, 0, 1), ("the blue cube", 1, False, 0, 1),
        ("all the cubes", 2, True, 0, 2), ("all the cubes", 2, True, 1, 2)]
    assert out[1].box is None and out[1].mask is None
    assert out[2].box == (100.0, 20.0, 120.0, 40.0) and out[3].box == (130.0, 70.0, 150.0, 100.0)
    # results without a found flag (e.g. decoded from elsewhere) are judged by the threshold
    plain = [type("R", (), dict(expression="x", box=(0, 0, 1, 1), score=0.3, mask=None))()]
    assert answers(plain)[0].found and not answers(plain, found_threshold=0.5)[0].found
    # the objects of one expression decoded from messages (one result each) keep one colour
    rows = [_result(e, (0.0, 0.0, 1.0, 1.0), 0.9, None, True, []) for e in ("all the cubes", "all the cubes", "the duck")]
    assert [a.index for a in answers(rows)] == [0, 0, 1]


def test_not_found_carries_no_box_mask_or_position_and_multi_is_one_message_per_object():
    header = Header(frame_id="cam")
    header.stamp.sec = 7
    out = M.grounding_array(header, "the duck, the blue cube and all the cubes", _results(), _depth_view())
    gs = out.array.results
    assert [g.expression for g in gs] == ["the duck", "the blue cube", "all the cubes", "all the cubes"]
    assert [g.found for g in gs] == [True, False, True, True]
    assert out.not_found == 1 and len(out.found_masks) == 3

    absent = gs[1]
    assert (absent.x_min, absent.y_min, absent.x_max, absent.y_max) == (0.0, 0.0, 0.0, 0.0)
    assert (absent.mask.height, absent.mask.width) == (0, 0) and len(absent.mask.data) == 0
    assert not absent.has_position and (absent.position.x, absent.position.y, absent.position.z) == (0.0, 0.0, 0.0)
    assert absent.score == pytest.approx(0.2)

    for g, (x0, y0, x1, y1) in zip([gs[0], gs[2], gs[3]], [(10, 10, 30, 30), (100, 20, 120, 40), (130, 70, 150, 100)]):
        assert (g.x_min, g.y_min, g.x_max, g.y_max) == (x0, y0, x1, y1)
        mask = imgmsg_to_numpy(g.mask) > 0
        assert mask.sum() == (x1 - x0) * (y1 - y0) and mask[y0:y1, x0:x1].all()  # its own object only
        assert g.has_position and g.position.z == pytest.approx(0.8)
    assert gs[2].position.x < gs[3].position.x  # each object its own 3D point

    # the union mask topic and the 3D target ignore the not-found answer
    union = imgmsg_to_numpy(M.union_mask(header, (H, W), out.found_masks)) > 0
    assert not union[60:90, 60:90].any() and union[10:30, 10:30].all()
    target = M.target(header, out.array)
    assert target is not None and target.point.z == pytest.approx(0.8)


def test_nothing_found_gives_no_target_and_no_marker():
    _, absent, _ = _results()
    out = M.grounding_array(Header(), "the blue cube", [absent], _depth_view())
    assert out.not_found == 1 and out.found_masks == []
    assert M.target(Header(), out.array) is None
    markers = M.markers(Header(), out.array, 0.05)
    assert [m.action for m in markers.markers] == [3]  # DELETEALL only: nothing left drawn in rviz


def test_markers_of_one_expression_share_its_colour():
    out = M.grounding_array(Header(), "t", _results(), _depth_view())
    spheres = [m for m in M.markers(Header(), out.array, 0.05).markers if m.type == 2]
    assert len(spheres) == 3  # the duck and the two cubes; the absent cube has none
    colour = [(m.color.r, m.color.g, m.color.b) for m in spheres]
    assert colour[1] == colour[2] != colour[0]


def test_overlay_says_not_found_and_draws_no_box_for_it():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    duck, absent, _ = _results()
    drawn = draw_groundings(image, [duck, absent])
    assert (drawn != image).any(axis=2)[10:30, 10:30].any()  # the found duck is drawn
    # the not-found result's best guess is neither tinted nor boxed ...
    np.testing.assert_array_equal(drawn[58:92, 58:92], image[58:92, 58:92])
    # ... where a found result at that place would be
    shown = Grounding("the blue cube", (60.0, 60.0, 90.0, 90.0), 0.2, absent.mask, True)
    assert (draw_groundings(image, [shown])[58:92, 58:92] != image[58:92, 58:92]).any()
    # only a "not found: ..." line at the top left
    changed = (draw_groundings(image, [absent]) != image).any(axis=2)
    assert changed[:30].any() and not changed[40:].any()


def test_diagnostics_report_not_found_answers():
    from refseg_ros.ros.diagnostics import NodeStats, grounding_status

    stats = NodeStats()
    stats.count("not_found", 3)
    status = grounding_status("n", "active", "m", "cpu", None, stats, 0.0, 10.0, True)
    assert {kv.key: kv.value for kv in status.values}["not_found"] == "3"


def test_post_processed_not_found_and_every_match_become_their_messages():
    """The real post-processing (presence logits, ``mask_components="auto"``) into messages: the
    absent expression publishes nothing to act on, "all the cubes" one message per blob."""
    import torch

    from refseg_ros.model.letterbox import Letterbox

    logits = torch.full((3, 1, 16, 16), -8.0)
    logits[:, 0, 2:5, 2:5] = 8.0  # two separate blobs in every map
    logits[:, 0, 10:14, 9:13] = 8.0
    presence = torch.tensor([6.0, -6.0, 6.0])  # present, absent, present
    boxes = torch.tensor([[0.2, 0.2, 0.2, 0.2]] * 3)
    post = PostProcess(mask_threshold=0.5, found_threshold=0.5, box_source="mask", mask_components="auto")
    results = post(boxes, logits, Letterbox.fit((W, H), (64, 64)), ["the cube", "the duck", "all the cubes"],
                   presence=presence)
    out = M.grounding_array(Header(), "c", results, _depth_view())
    gs = out.array.results
    assert [(g.expression, g.found) for g in gs] == [("the cube", True), ("the duck", False),
                                                      ("all the cubes", True), ("all the cubes", True)]
    assert out.not_found == 1 and gs[1].mask.height == 0 and gs[1].x_max == 0.0 and not gs[1].has_position
    single = imgmsg_to_numpy(gs[0].mask) > 0
    parts = [imgmsg_to_numpy(g.mask) > 0 for g in gs[2:]]
    assert not (parts[0] & parts[1]).any() and ((parts[0] | parts[1]) != single).any()  # two objects, not one
    assert all(g.has_position for g in gs[2:]) and gs[2].x_min != gs[3].x_min
