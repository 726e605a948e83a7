"""An expression said as a request reaches the model as the object it names (the predictor's
``strip_requests``, ``language.parser.as_expression``), on every predictor path, with real weights."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_a_request_is_grounded_as_the_object_it_names(shipped_predictor, frames):
    """"could you hand me all the red cubes?" gets the answer of "all the red cubes" on the node's
    path, the one-off path and the batch path; results carry the text as given; with
    ``strip_requests`` off the model reads the whole request."""
    predictor = shipped_predictor
    image = np.ascontiguousarray(frames[0])
    said, right = "Could you hand me all the red cubes?", "all the red cubes"
    assert predictor.understood(said) == right
    predictor.set_command([said, "the duck"])
    streamed = predictor.predict(image)
    (once,) = predictor.predict_once(image, [said])
    (batch,) = predictor.predict_batch([image], [said])
    (want,) = predictor.predict_once(image, [right])
    assert [g.expression for g in streamed] == [said, "the duck"] and once.expression == batch.expression == said
    for got in (streamed[0], once, batch):
        assert np.array_equal(got.mask, want.mask) and got.score == pytest.approx(want.score, abs=1e-5)
    predictor.strip_requests = False
    try:
        assert predictor.understood(said) == said
        (whole,) = predictor.predict_once(image, [said])
        assert whole.expression == said
    finally:
        predictor.strip_requests = True
