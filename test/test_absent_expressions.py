"""The no-target expressions drawn for v1 scenes (`--mix tabletop-absent:DIR`) name only objects that
are not there, and ask for both kinds of absence: a kind shown in another colour, a missing kind."""
from __future__ import annotations

import numpy as np

from refseg_ros.data.absent import absent_expression
from refseg_ros.language.vocabulary import COLOURS, NOUNS

SCENE = [{"category": "mug", "colour": "red"}, {"category": "duck", "colour": "yellow"},
         {"category": "cube", "colour": "blue"}, {"category": "mug", "colour": "green"}]


def _read(text: str) -> tuple[str | None, str]:
    """(colour, category) of a drawn expression; the longest noun that ends it names the category."""
    words = text.split()
    colour = next((w for w in words if w in COLOURS), None)
    names = sorted(((n, c) for c, ns in NOUNS.items() for n in ns if text.endswith(n)), key=lambda x: -len(x[0]))
    assert names, text
    return colour, names[0][1]


def test_never_names_an_object_of_the_scene_and_asks_both_ways():
    rng = np.random.default_rng(0)
    present = {(o["category"], o["colour"]) for o in SCENE}
    kinds = {c for c, _ in present}
    wrong_colour = bare_missing = coloured_missing = 0
    for _ in range(400):
        text = absent_expression(SCENE, rng)
        assert text is not None
        colour, category = _read(text)
        if category in kinds:
            assert colour is not None and (category, colour) not in present, text
            wrong_colour += 1
        elif colour is None:
            bare_missing += 1
        else:
            coloured_missing += 1
    # the shares the module documents (0.5 wrong colour, half the missing kinds bare), within sampling error
    assert 150 < wrong_colour < 250 and 50 < bare_missing < 150 and 50 < coloured_missing < 150


def test_an_empty_table_has_only_missing_kinds_and_a_full_one_only_wrong_colours():
    rng = np.random.default_rng(1)
    for _ in range(50):
        assert _read(absent_expression([], rng))[1] in NOUNS
    every_kind = [{"category": c, "colour": "red"} for c in NOUNS]
    for _ in range(50):
        text = absent_expression(every_kind, rng)
        assert text is None or _read(text)[0] not in (None, "red"), text
    every_object = [{"category": c, "colour": col} for c in NOUNS for col in COLOURS]
    assert all(absent_expression(every_object, rng) is None for _ in range(20))  # nothing can be absent
