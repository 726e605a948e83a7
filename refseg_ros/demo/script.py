"""The demo's spoken commands, generated from a scene's ground truth. No ROS imports.

Every expression comes from the tabletop grammar (:func:`refseg_ros.language.grammar.candidates`):
it picks out its target and nothing else in the scene being shown. About half are wrapped the way
people talk to a robot ("could you pick up ...", "where is ...?"); the node's command parser must
turn each command back into exactly the grammar's expressions, which :func:`plan_scene` checks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from refseg_ros.language import grammar
from refseg_ros.language.parser import Action, parse_command
from refseg_ros.language.semantics import TYPES

__all__ = ["Phrase", "ScriptedCommand", "plan_scene", "STOP_COMMAND", "WRAPPERS", "MULTI_WRAPPERS"]

STOP_COMMAND = "stop"
#: hand-phrased variants around one expression (``{}``)
WRAPPERS = ("could you pick up {}", "grab {} please", "where is {}?", "please find {}", "show me {}",
            "hand me {}")
#: ... and around two (``{a}``, ``{b}``)
MULTI_WRAPPERS = ("pick up {a} and {b}", "{a} and {b}", "could you grab {a} and {b}?")


@dataclass
class Phrase:
    """One referring expression of a command and the object it means."""

    expression: str
    target: int  # index into the ground truth's objects
    type: str  # grammar type
    structure: dict = field(default_factory=dict)


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


def _wrap(expressions: list[str], rng: np.random.Generator, p_wrap: float) -> str:
    if len(expressions) == 2:
        options = [t.format(a=expressions[0], b=expressions[1]) for t in MULTI_WRAPPERS]
    else:
        options = [t.format(expressions[0]) for t in WRAPPERS] if rng.random() < p_wrap else []
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
