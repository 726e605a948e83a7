"""What the predictor reads before the model (``GroundingPredictor.understood``): a typed typo is
read as the word it misses (``fix_spelling``, language/spelling.py) and a request around one object
as that object (``strip_requests``, ``language.parser.as_expression``), on every predictor path,
with real weights, while results keep the text as given."""
from __future__ import annotations

import numpy as np
import pytest

RIGHT = "all the red cubes"


def _switched_off(predictor, reading: str):
    """Turn one reading off; returns the function that turns it back on."""
    if reading == "spelling":
        fixer, predictor.spelling = predictor.spelling, None
        return lambda: setattr(predictor, "spelling", fixer)
    predictor.strip_requests = False
    return lambda: setattr(predictor, "strip_requests", True)


@pytest.mark.slow
@pytest.mark.parametrize("given, reading", [
    ("all the rde cuebs", "spelling"),
    ("Could you hand me all the red cubes?", "requests"),
    ("could you hand me all the rde cuebs?", "both"),
])
def test_a_command_is_grounded_as_the_one_it_means(shipped_predictor, frames, given, reading):
    """A frame with three red cubes and four mugs: ``given`` gets the answer of "all the red
    cubes" on the node's path, the one-off path and the batch path, and its results carry the
    text as given; with the reading off, the model reads the text as it is."""
    predictor = shipped_predictor
    image = np.ascontiguousarray(frames[0])
    assert predictor.understood(given) == RIGHT
    predictor.set_command([given, "the duck"])
    streamed = predictor.predict(image)
    (once,) = predictor.predict_once(image, [given])
    (batch,) = predictor.predict_batch([image], [given])
    (want,) = predictor.predict_once(image, [RIGHT])
    assert [g.expression for g in streamed] == [given, "the duck"] and once.expression == batch.expression == given
    for got in (streamed[0], once, batch):
        assert np.array_equal(got.mask, want.mask) and got.score == pytest.approx(want.score, abs=1e-5)
        assert got.multi and len(got.instances) == len(want.instances) == 3
    if reading == "both":
        return
    restore = _switched_off(predictor, reading)
    try:
        assert predictor.understood(given) != RIGHT
        (whole,) = predictor.predict_once(image, [given])
        assert whole.expression == given
    finally:
        restore()
