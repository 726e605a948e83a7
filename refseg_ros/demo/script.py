"""The demo's spoken commands, generated from a scene's ground truth. No ROS imports.

Every single-object expression comes from the tabletop grammar
(:func:`refseg_ros.language.grammar.candidates`): it picks out its target and nothing else in the
scene being shown. About half are wrapped the way people talk to a robot ("could you pick up ...",
"where is ...?"); the node's command parser must turn each command back into exactly the grammar's
expressions, which :func:`plan_scene` checks. Two more kinds test answers other than "this one":
an object that is not on the table ("the green duck" among no green duck, :func:`plan_absent`;
type ``no_target``) and every object of a kind ("all the red cubes", "both mugs",
:func:`plan_all_of`; type ``multi_target``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from refseg_ros.language import grammar
from refseg_ros.language.number import asks_for_many
from refseg_ros.language.parser import Action, parse_command
from refseg_ros.language.semantics import TYPES, head_matches
from refseg_ros.language.vocabulary import COLOURS, NOUNS

__all__ = ["Phrase", "ScriptedCommand", "plan_scene", "plan_absent", "plan_all_of", "STOP_COMMAND", "WRAPPERS",
           "MULTI_WRAPPERS", "NO_TARGET", "MULTI_TARGET"]

NO_TARGET, MULTI_TARGET = "no_target", "multi_target"

STOP_COMMAND = "stop"
#: hand-phrased variants around one expression (``{}``)
WRAPPERS = ("could you pick up {}", "grab {} please", "where is {}?", "please find {}", "show me {}",
            "hand me {}")
#: ... around one expression naming several objects
PLURAL_WRAPPERS = tuple(w for w in WRAPPERS if not w.startswith("where is")) + ("where are {}?",)
#: ... and around two (``{a}``, ``{b}``)
MULTI_WRAPPERS = ("pick up {a} and {b}", "{a} and {b}", "could you grab {a} and {b}?")


@dataclass
class Phrase:
    """One referring expression of a command and the object it means."""

    expression: str
    target: int  # index into the ground truth's objects (-1: none, the first of ``targets`` for many)
    type: str  # grammar type, NO_TARGET or MULTI_TARGET
    structure: dict = field(default_factory=dict)
    targets: list[int] = field(default_factory=list)  # every object it means (empty for NO_TARGET)


@dataclass
class ScriptedCommand:
    text: str
    phrases: list[Phrase]

    @property
    def is_stop(self) -> bool:
        return not self.phrases

    def to_dict(self) -> dict:
        return {"text": self.text, "phrases": [asdict(p) for p in self.phrases]}


def _visible(objects: list[dict]) -> list[int]:
    return [k for k, o in enumerate(objects) if o.get("bbox") is not None and o.get("area", 0) > 0]


def _pick(cands: list[dict], rng: np.random.Generator) -> dict:
    # forms with a bare head ("the leftmost object") are valid but say less: draw them less often
    w = np.array([1.0 if e["head"] else grammar.GENERIC_HEAD_WEIGHT for e in cands])
    return cands[int(rng.choice(len(cands), p=w / w.sum()))]


def _parses_to(text: str, expressions: list[str]) -> bool:
    parsed = parse_command(text)
    return parsed.action is Action.GROUND and list(parsed.expressions) == expressions


def _wrap(expressions: list[str], rng: np.random.Generator, p_wrap: float, wrappers=WRAPPERS) -> str:
    if len(expressions) == 2:
        options = [t.format(a=expressions[0], b=expressions[1]) for t in MULTI_WRAPPERS]
    else:
        options = [t.format(expressions[0]) for t in wrappers] if rng.random() < p_wrap else []
    rng.shuffle(options)
    for text in options:
        if _parses_to(text, expressions):
            return text
    return " and ".join(expressions)


def plan_scene(objects: list[dict], width: int, rng: np.random.Generator, n_commands: int,
               type_order: list[str] | None = None, multi: bool = False, p_wrap: float = 0.5
               ) -> list[ScriptedCommand]:
    """Up to ``n_commands`` single-object commands (types tried in ``type_order``, each target
    used once where possible) and, with ``multi``, one more naming two objects.

    ``objects``: ground-truth object records (``refseg_ros.data.sim_scene.ground_truth``).
    """
    type_order = list(type_order or TYPES)
    visible = _visible(objects)
    cands = {t: grammar.candidates(t, objects, width) for t in visible}
    used: set[int] = set()
    commands: list[ScriptedCommand] = []
    for kind in type_order:
        if len(commands) >= n_commands:
            break
        targets = [t for t in visible if cands[t][kind]]
        if not targets:
            continue
        fresh = [t for t in targets if t not in used] or targets
        t = fresh[int(rng.integers(len(fresh)))]
        expr = _pick(cands[t][kind], rng)
        text = grammar.realise(expr, rng)
        used.add(t)
        commands.append(ScriptedCommand(_wrap([text], rng, p_wrap), [Phrase(text, t, kind, expr)]))
    if multi:
        # two different objects, each by its simplest unique description
        simple = [(t, kind) for t in visible for kind in ("category", "attribute") if cands[t][kind]]
        if len({t for t, _ in simple}) >= 2:
            order = rng.permutation(len(simple))
            chosen: list[tuple[int, str]] = []
            for i in order:
                t, kind = simple[int(i)]
                if all(t != c for c, _ in chosen):
                    chosen.append((t, kind))
                if len(chosen) == 2:
                    break
            phrases = []
            for t, kind in chosen:
                expr = _pick(cands[t][kind], rng)
                phrases.append(Phrase(grammar.realise(expr, rng), t, kind, expr))
            if phrases[0].expression != phrases[1].expression:
                text = _wrap([p.expression for p in phrases], rng, p_wrap)
                if _parses_to(text, [p.expression for p in phrases]):
                    commands.append(ScriptedCommand(text, phrases))
    return commands


def plan_absent(objects: list[dict], rng: np.random.Generator, p_wrap: float = 0.5) -> ScriptedCommand | None:
    """A command for an object that is not in the scene: a category shown in a colour no object of
    it has ("the green duck"), else a category not on the table at all."""
    present = sorted({o["category"] for o in objects})
    options = [(c, col) for c in present for col in COLOURS
               if not any(head_matches({"category": c, "colour": col}, o) for o in objects)]
    options += [(c, None) for c in NOUNS if c not in present]
    for i in rng.permutation(len(options)):
        category, colour = options[int(i)]
        head = {"category": category, **({"colour": colour} if colour else {})}
        text = " ".join(["the", *([colour] if colour else []), NOUNS[category][0]])
        if any(head_matches(head, o) for o in objects) or asks_for_many(text):
            continue
        return ScriptedCommand(_wrap([text], rng, p_wrap), [Phrase(text, -1, NO_TARGET, {"head": head}, [])])
    return None


def plan_all_of(objects: list[dict], rng: np.random.Generator, p_wrap: float = 0.5) -> ScriptedCommand | None:
    """A command for every visible object of one kind (two or three of them): "all the red cubes",
    "both mugs"; None when no kind has two visible objects, or one is hidden."""
    from refseg_ros.data.v2.assets import plural

    visible = set(_visible(objects))
    heads = []
    for o in objects:
        heads += [{"category": o["category"], "colour": o["colour"]}, {"category": o["category"]}]
    order = rng.permutation(len(heads))
    for i in order:
        head = heads[int(i)]
        hits = [k for k, o in enumerate(objects) if head_matches(head, o)]
        if not 2 <= len(hits) <= 3 or not set(hits) <= visible:
            continue  # an occluded match would be a target the camera cannot show
        words = ([head["colour"]] if "colour" in head else []) + [plural(NOUNS[head["category"]][0])]
        text = ("both " if len(hits) == 2 else "all the ") + " ".join(words)
        if not asks_for_many(text):
            continue
        phrase = Phrase(text, hits[0], MULTI_TARGET, {"head": head, "quantifier": "both" if len(hits) == 2 else "all"},
                        hits)
        return ScriptedCommand(_wrap([text], rng, p_wrap, PLURAL_WRAPPERS), [phrase])
    return None
