"""Spoken/typed commands -> referring expressions (pure: no ROS)."""
from __future__ import annotations

import pytest

from refseg_ros.language.parser import Action, as_expression, parse_command, sanitize

GROUND_CASES = [
    # (said, expressions)
    ("pick up the red mug on the left", ["the red mug on the left"]),
    ("Could you grab the duck and the blue cube?", ["the duck", "the blue cube"]),
    ("could you grab the duck and the blue cube", ["the duck", "the blue cube"]),  # ASR: no punctuation
    ("PICK UP THE RED MUG ON THE LEFT PLEASE", ["the red mug on the left"]),
    ("the red mug", ["the red mug"]),
    ("the cube between the duck and the mug", ["the cube between the duck and the mug"]),
    ("grab the cube between the duck and the mug and the ball",
     ["the cube between the duck and the mug", "the ball"]),
    ("the ball next to the red mug", ["the ball next to the red mug"]),
    ("the red and blue cube", ["the red and blue cube"]),  # no determiner after "and": one object
    ("hey robot, please pick up the green ball for me, thanks", ["the green ball"]),
    ("pick the mug up please", ["the mug"]),
    ("hand me a mug", ["the mug"]),
    ("bring me the cup on the left and then the cube", ["the cup on the left", "the cube"]),
    ("grab the duck and pick up the blue cube", ["the duck", "the blue cube"]),
    ("first grab the duck then the cube", ["the duck", "the cube"]),
    ("where is the red mug?", ["the red mug"]),
    ("can you see the duck", ["the duck"]),
    ("i want you to pick up the mug, the one next to the duck", ["the mug next to the duck"]),
    ("the mug, next to the duck", ["the mug next to the duck"]),
    ("pick up the first cube from the left", ["the first cube from the left"]),
    ("put the duck in the tray", ["the duck"]),
    ("I'd like the mug on the right", ["the mug on the right"]),
    ("grab the duck as well as the red cube", ["the duck", "the red cube"]),
    ("the duck. the mug!", ["the duck", "the mug"]),
    ("grab the duck and the duck", ["the duck"]),  # duplicates grounded once
    ("Pick up the mug \u2013 the one on the left", ["the mug on the left"]),
    ("grab the duck - and the mug", ["the duck", "the mug"]),
    ("stop and grab the duck instead", ["the duck"]),
]


@pytest.mark.parametrize("said, expected", GROUND_CASES)
def test_spoken_commands_become_expressions(said, expected):
    parsed = parse_command(said)
    assert parsed.action is Action.GROUND, parsed
    assert list(parsed.expressions) == expected


@pytest.mark.parametrize("said", [
    "stop", "Stop!", "STOP", "cancel", "never mind", "nevermind", "okay robot, cancel that", "stop it now please",
    "abort", "halt", "forget it", "please stop", "stop the robot", "stop stop stop", "grab the duck, no, cancel",
])
def test_stop_phrases_clear_the_command(said):
    assert parse_command(said).action is Action.STOP


@pytest.mark.parametrize("said, reason", [
    ("", "empty"), ("   \t\n ", "empty"), ("pick up", "no object"), ("pick it up", "does not say which"),
    ("please", "no object"), ("\x00\x01\x02", "no words"), ("\u8d64\u3044\u30de\u30b0", "no words"),
    ("?!,.", "no words"),
])
def test_unusable_commands_are_invalid_with_a_reason(said, reason):
    parsed = parse_command(said)
    assert parsed.action is Action.INVALID and reason in parsed.reason
    assert parsed.expressions == ()


def test_long_commands_are_rejected_not_truncated():
    said = "pick up the red mug " + "and the duck " * 400  # ~5,000 characters
    parsed = parse_command(said, max_chars=300)
    assert parsed.action is Action.INVALID and "max_command_chars" in parsed.reason
    assert "300" in parsed.reason
    two_thousand_words = " ".join(["mug"] * 2000)
    assert parse_command(two_thousand_words).action is Action.INVALID
    assert parse_command("the red mug", max_chars=11).action is Action.GROUND


def test_expression_count_is_capped_with_a_note():
    said = "grab " + " and ".join(f"the {c} cube" for c in ("red", "blue", "green", "yellow", "white", "black"))
    parsed = parse_command(said, max_expressions=3)
    assert parsed.expressions == ("the red cube", "the blue cube", "the green cube")
    assert any("max_expressions" in n for n in parsed.notes)


def test_non_ascii_and_control_characters_are_removed_with_notes():
    parsed = parse_command("grab the caf\u00e9 mug \u2713")
    assert parsed.expressions == ("the cafe mug",)
    assert any("non-ASCII" in n and "\u2713" in n for n in parsed.notes)
    parsed = parse_command("grab\x1b[31m the\u200b red mug\x07")
    assert parsed.action is Action.GROUND and parsed.expressions == ("the red mug",)
    assert any("control" in n for n in parsed.notes)
    # typographic apostrophes from phones and ASR engines
    assert parse_command("I\u2019d like the duck").expressions == ("the duck",)


def test_sanitize_is_ascii_and_single_spaced():
    text, notes = sanitize("  the\tred\n\nmug \u00a0 s'il vous pla\u00eet ")
    assert text == "the red mug s'il vous plait" and text.isascii()
    assert notes


@pytest.mark.parametrize("value", [None, 3, b"the mug", ["the mug"]])
def test_non_text_never_raises(value):
    assert parse_command(value).action is Action.INVALID


def test_fuzz_never_raises():
    import random

    rng = random.Random(0)
    alphabet = "abc the and between stop, .?!'-\x00\u00e9\u2713\u8d64\n"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        parsed = parse_command(text)
        assert parsed.action in (Action.GROUND, Action.STOP, Action.INVALID)
        for e in parsed.expressions:
            assert e and e.isascii() and e == e.strip()


# ---- "all of them" and "not that one": quantified and negated expressions stay whole -----------------

QUANTIFIED_CASES = [
    # (said, expressions): each is one referring expression, however many objects it names
    ("pick up all the red cubes", ["all the red cubes"]),
    ("grab both mugs please", ["both mugs"]),
    ("every cube", ["every cube"]),
    ("could you hand me each of the bowls?", ["each of the bowls"]),
    ("the mug that is not red", ["the mug that is not red"]),
    ("the bowls that aren't white", ["the bowls that aren't white"]),
    ("pick up everything that is not a cube", ["everything that is not a cube"]),
    ("all the objects that aren't cylinders", ["all the objects that aren't cylinders"]),
    ("every mug except red ones", ["every mug except red ones"]),
    ("the mug next to both ducks", ["the mug next to both ducks"]),
    ("would you mind fetching the two plates?", ["the two plates"]),
    # "and" before a quantifier starts a new object; the quantifier stays with it
    ("grab the duck and all the cubes", ["the duck", "all the cubes"]),
    ("the duck and everything that is not a cube", ["the duck", "everything that is not a cube"]),
    ("all the cubes and the duck", ["all the cubes", "the duck"]),
    # "both X and Y" coordinates two objects; "both the mugs" alone is every mug
    ("grab both the duck and the cube", ["the duck", "the cube"]),
    ("both the mugs", ["both the mugs"]),
    # a qualification after a pause is part of the object: cutting it off would ground the very
    # object the speaker ruled out
    ("the duck, not the cube", ["the duck not the cube"]),
    ("grab the mug, not the red one", ["the mug not the red one"]),
    ("the duck, and not the cube", ["the duck and not the cube"]),
    ("counting from the left, the second mug", ["counting from the left the second mug"]),
]


@pytest.mark.parametrize("said, expected", QUANTIFIED_CASES)
def test_quantified_and_negated_expressions_stay_one_expression(said, expected):
    parsed = parse_command(said)
    assert parsed.action is Action.GROUND, parsed
    assert list(parsed.expressions) == expected


@pytest.mark.parametrize("said, reason", [
    ("not", "names no object"), ("NOT!", "names no object"), ("all", "does not say which"),
    ("all the", "names no object"), ("both", "names no object"), ("every", "names no object"),
    ("each", "names no object"), ("the two", "names no object"), ("all of the", "names no object"),
    ("everything that is not", "names no object"), ("pick up nothing", "names no object"),
    ("none of them", "names no object"),
    ("no, not the red one", "says only what not to ground"), ("not a cube", "says only what not to ground"),
])
def test_commands_naming_no_object_are_invalid_not_grounded(said, reason):
    parsed = parse_command(said)
    assert parsed.action is Action.INVALID and reason in parsed.reason, parsed
    assert parsed.expressions == ()


def test_a_segment_naming_no_object_is_left_out_with_a_note():
    parsed = parse_command("grab the duck and all the")
    assert parsed.expressions == ("the duck",)
    assert any("names no object" in n for n in parsed.notes)


def _v2_structures(rng):
    """One structure of each v2 kind, on categories and a landmark drawn by ``rng``."""
    from refseg_ros.data.v2 import assets as A
    from refseg_ros.language.semantics import RELATIONS

    cats = sorted(A.CATEGORY_V2)
    c, c2 = (str(x) for x in rng.choice(cats, 2, replace=False))
    q = str(rng.choice(["all", "every", "both", "count"]))
    yield {"type": "multi_target", "head": {"category": c}, "quantifier": q, "count": 3}
    yield {"type": "multi_target", "head": {"category": c, "colour": "red"}, "quantifier": q, "count": 2}
    yield {"type": "negation", "head": {"category": c}, "exclude": {"colour": "red"}}
    yield {"type": "negation", "head": {}, "exclude": {"category": c}}
    yield {"type": "category", "head": {"category": c}}
    yield {"type": "attribute", "head": {"category": c, "colour": "blue"}}
    yield {"type": "location", "head": {"category": c}, "location": str(rng.choice(["left", "right", "front", "back"]))}
    yield {"type": "ordinal", "head": {"category": c}, "ordinal": {"k": 2, "from": "left"}}
    yield {"type": "relation", "head": {"category": c},
           "relation": {"name": str(rng.choice(RELATIONS)), "landmark": {"category": c2}}}
    yield {"type": "proximity", "head": {"category": c}, "proximity": {"extreme": "closest", "landmark": None}}
    yield {"type": "proximity", "head": {"category": c}, "proximity": {"extreme": "farthest", "landmark": {"category": c2}}}


def _v2_sayings(n_seeds: int):
    """(clean expression, template, kind) for every v2 template family, train and held-out sides."""
    import numpy as np

    from refseg_ros.data.v2 import wording as W

    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        for s in _v2_structures(rng):
            for held_out in (False, True):
                clean, template = W.realise(s, rng, held_out)
                yield clean, template, s["type"]


def test_every_v2_expression_parses_back_whole_inside_every_request_wrapper():
    from refseg_ros.data.v2 import wording as W

    wrappers = W.WRAPPERS[0] + W.WRAPPERS[1] + ["{e}"]
    failures = []
    for clean, template, _ in _v2_sayings(60):
        # what the node grounds: the expression as said, with "that X" read as "the X" and the
        # comma of "counting from the left, the second X" dropped
        expected = clean.replace(", ", " ")
        if expected.startswith("that "):
            expected = "the " + expected[5:]
        for wrapper in wrappers:
            parsed = parse_command(wrapper.format(e=clean))
            if parsed.action is not Action.GROUND or list(parsed.expressions) != [expected]:
                failures.append((wrapper.format(e=clean), parsed.expressions, parsed.reason))
    assert not failures, failures[:10]


def test_asks_for_many_reads_the_v2_templates_as_the_data_means_them():
    from refseg_ros.data.v2 import wording as W
    from refseg_ros.language.number import asks_for_many

    many_negations = set(W.NEGATION_PLURAL[0] + W.NEGATION_PLURAL[1] + W.NEGATION_OBJECT_PLURAL[0]
                         + W.NEGATION_OBJECT_PLURAL[1] + W.NEGATION_OBJECT[0] + W.NEGATION_OBJECT[1])
    wrong = []
    for clean, template, kind in _v2_sayings(150):
        want = kind == "multi_target" or (kind == "negation" and template in many_negations)
        if asks_for_many(clean) != want:
            wrong.append((clean, template, want))
    assert not wrong, wrong[:10]


@pytest.mark.parametrize("text, many", [
    ("all the red cubes", True), ("both mugs", True), ("every cube", True), ("each bowl", True),
    ("the two plates", True), ("the 3 cups", True), ("the pair of saucers", True), ("the mugs", True),
    ("the red cubes on the left", True), ("the bowls that aren't white", True),
    ("everything that is not a cube", True), ("the thing that isn't a mug", True),
    ("whatever is not a cube", True), ("any cup you can see", True),
    ("the mug", False), ("the mug next to both ducks", False), ("the mug between the two ducks", False),
    ("the second of the three cubes", False), ("the cube left of everything", False),
    ("the mug in front of all the ducks", False), ("the mug next to the ducks", False),
    ("the ketchup all the way on the left", False), ("the mug that is not red", False),
    ("the glass", False), ("the flowers", False), ("the can of beans", False), ("the mug on the duck's left", False),
    ("the duck and the cube", False),
])
def test_asks_for_many_by_the_head_not_the_landmark(text, many):
    from refseg_ros.language.number import asks_for_many

    assert asks_for_many(text) is many


def test_no_catalog_noun_is_read_as_many():
    from refseg_ros.data.v2 import assets as A
    from refseg_ros.language.number import asks_for_many
    from refseg_ros.language.vocabulary import NOUNS

    nouns = {n for c in A.CATEGORY_V2.values() for n in (*c.nouns, *(c.held_out_nouns or ()))}
    nouns |= {n for v in NOUNS.values() for n in v}
    assert [n for n in nouns if asks_for_many(f"the {n}") or asks_for_many(f"the small red {n} on the left")] == []


@pytest.mark.parametrize("said, read", [
    ("could you hand me the red mug?", "the red mug"),
    ("Would you mind fetching the ball left of the duck?", "the ball left of the duck"),
    ("point at that cup, please", "the cup"),
    ("grab all of the mugs that aren't red", "all of the mugs that aren't red"),
    ("the red mug", "the red mug"),
    # not one object: the text as given, for the model to read whole
    ("grab the duck and the blue cube", "grab the duck and the blue cube"),
    ("stop", "stop"),
    ("", ""),
    ("pick it up", "pick it up"),
])
def test_as_expression_reads_a_request_of_one_object_as_that_object(said, read):
    assert as_expression(said) == read


@pytest.mark.parametrize("said, expected", GROUND_CASES)
def test_as_expression_changes_nothing_the_parser_already_read(said, expected):
    """The node parses a command before the predictor strips requests again: parsing its own
    output must be the identity, or the node would ground something other than it logged."""
    for expression in expected:
        assert as_expression(expression) == expression
