"""The command language on its own (pure: no ROS, no pybullet): semantics by hand, reading the
grammar's text back, mirroring, and the parser accepting everything the generator says."""
from __future__ import annotations

import pytest

from refseg_ros.language import grammar, semantics
from refseg_ros.language.flip import flip_text
from refseg_ros.language.parser import Action, parse_command
from refseg_ros.language.prompt import initial_prompt
from refseg_ros.language.vocabulary import COLOURS, NOUNS, SIZES, keywords, names_colour


def _obj(category, colour, u, gd=0.6, xy=(0.0, 0.0), size="small", radius=0.04):
    return {"category": category, "colour": colour, "size": size, "center_px": [u, 100.0],
            "ground_distance": gd, "distance": gd + 0.2, "radius": radius,
            "position_table": [xy[0], xy[1], 0.04]}


def test_semantics_by_hand():
    W = 320  # left/right margin: 16 px
    objs = [_obj("mug", "red", 50), _obj("mug", "blue", 150), _obj("mug", "red", 250),
            _obj("duck", "yellow", 200)]
    red_mug = semantics.make_head("mug", "red")
    assert semantics.select({"type": "attribute", "head": red_mug}, objs, W) == [0, 2]
    assert semantics.select({"type": "category", "head": {"category": "duck"}}, objs, W) == [3]
    left = {"type": "location", "head": red_mug, "location": "left"}
    assert semantics.resolve(left, objs, W) == 0
    rel = {"type": "relation", "head": {"category": "mug"},
           "relation": {"name": "right_of", "landmark": {"category": "duck"}}}
    assert semantics.resolve(rel, objs, W) == 2
    second = {"type": "ordinal", "head": {"category": "mug"}, "ordinal": {"k": 2, "from": "left"}}
    assert semantics.resolve(second, objs, W) == 1
    # a near tie (10 px < 16 px margin) makes "leftmost" ambiguous instead of arbitrary
    tie = [_obj("cube", "red", 100), _obj("cube", "red", 110), _obj("ball", "red", 300)]
    leftmost = {"type": "location", "head": {"category": "cube"}, "location": "left"}
    assert semantics.select(leftmost, tie, W) == [0, 1] and semantics.resolve(leftmost, tie, W) is None
    # an ambiguous landmark makes a relation ambiguous even with one candidate
    two_ducks = objs + [_obj("duck", "green", 20)]
    assert semantics.resolve(rel, two_ducks, W) is None
    # front/behind along the table
    fb = [_obj("ball", "red", 100, gd=0.50), _obj("ball", "red", 200, gd=0.70),
          _obj("duck", "red", 150, gd=0.60)]
    front = {"type": "relation", "head": {"category": "ball"},
             "relation": {"name": "in_front_of", "landmark": {"category": "duck"}}}
    assert semantics.resolve(front, fb, W) == 0
    # next to: footprint gap
    nt = [_obj("ball", "red", 100, xy=(0.0, 0.0)), _obj("ball", "red", 200, xy=(0.5, 0.0)),
          _obj("duck", "red", 150, xy=(0.12, 0.0))]
    near = {"type": "relation", "head": {"category": "ball"},
            "relation": {"name": "next_to", "landmark": {"category": "duck"}}}
    assert semantics.resolve(near, nt, W) == 0


def test_parse_synonyms_and_word_order():
    assert grammar.parse("the cup") == {"type": "category", "head": {"category": "mug"}}
    assert grammar.parse("the big red block") == {
        "type": "attribute", "head": {"category": "cube", "colour": "red", "size": "large"}}
    a = grammar.parse("the leftmost sphere")
    b = grammar.parse("the ball on the left")
    assert a == b == {"type": "location", "head": {"category": "ball"}, "location": "left"}
    assert grammar.parse("the second cube from the left") == grammar.parse(
        "the block second from the left")
    assert grammar.parse("the ball next to the red mug")["relation"] == {
        "name": "next_to", "landmark": {"category": "mug", "colour": "red"}}
    assert grammar.parse("the block behind the teddy bear")["relation"]["name"] == "behind"
    assert grammar.parse("the object closest to the camera") == {
        "type": "proximity", "head": {},
        "proximity": {"extreme": "closest", "landmark": None}}
    with pytest.raises(ValueError):
        grammar.parse("the mug with the handle")


def test_flip_text_swaps_left_and_right_only():
    assert flip_text("the leftmost mug") == "the rightmost mug"
    assert flip_text("the cube to the left of the duck") == \
        "the cube to the right of the duck"
    assert flip_text("the second ball from the right") == "the second ball from the left"
    assert flip_text("the mug on the far left") == "the mug on the far right"
    assert flip_text("the block behind the teddy bear") == "the block behind the teddy bear"


# ----------------------------------------------------------------------------- one language
#: noun phrases with synonyms, sizes, colours, a relative clause and a generic noun
_NPS = ("cube", "big red block", "jenga piece that is pink", "object", "rubber duck", "little one")
_WRAPPERS = ("{}", "pick up {}", "could you grab {} please", "where is {}?")


@pytest.mark.parametrize("np_", _NPS)
def test_the_parser_keeps_every_text_the_generator_says(np_):
    # the node grounds what the model was trained on only if commands survive the parser unchanged
    for _, _, template in grammar.TEMPLATES:
        text = template.format(np=np_, L="the small yellow teddy bear", ord="third")
        for wrapper in _WRAPPERS:
            parsed = parse_command(wrapper.format(text))
            assert parsed.action is Action.GROUND and parsed.expressions == (text,), wrapper


def test_a_pause_before_a_spatial_phrase_keeps_one_object():
    # speech recognisers put commas where people pause: "the cube, next to the duck" is one object.
    # An ordinal after a pause ("the cube, second from the left") still starts a new object: the
    # parser does not count ordinals as words that continue a noun phrase.
    for kind, _, template in grammar.TEMPLATES:
        if not template.startswith("the {np} ") or kind == "ordinal":
            continue
        rest = template[len("the {np} "):].format(L="the duck")
        parsed = parse_command(f"pick up the cube, {rest}")
        assert parsed.expressions == (f"the cube {rest}",)


def test_vocabulary_words_are_what_the_grammar_reads_and_the_prompt_names():
    for category, nouns in NOUNS.items():
        for noun in nouns:
            assert grammar.parse(f"the {noun}") == {"type": "category", "head": {"category": category}}
    for size, words in SIZES.items():
        for word in words:
            assert grammar.parse(f"the {word} {COLOURS[0]} ball")["head"]["size"] == size
    prompt = initial_prompt("all")
    assert all(w in prompt for w in COLOURS) and all(n[0] in prompt for n in NOUNS.values())
    assert {"mug", "cup", "red", "little", "leftmost", "second"} <= keywords()


def test_names_colour_reads_colour_words_only():
    assert all(names_colour(f"the {c} mug") for c in COLOURS)
    assert names_colour("THE ONE THAT IS GREY?") and names_colour("the brown bowl") and names_colour("red")
    assert not names_colour("the mug left of the duck") and not names_colour("the reddish mug")
    assert not names_colour("") and not names_colour("bring me the credit card")
