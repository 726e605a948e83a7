"""Spoken/typed commands -> referring expressions (pure: no ROS)."""
from __future__ import annotations

import pytest

from refseg_ros.language.parser import Action, parse_command, sanitize

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
