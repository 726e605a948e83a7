"""How people say a v2 expression: templates and paraphrases, synonyms, request wrappers, and
speech- and typing-like noise.

Every template, wrapper and noun has a train side and a held-out side: the ``wording`` split uses
only held-out templates, wrappers and nouns (where a category has held-out nouns), every other
split only the train side. :func:`say` returns the clean text (the realisation) and the noisy one
(``sent``, what the model reads) with a record of what was done.
"""
from __future__ import annotations

import numpy as np

from refseg_ros.data.v2 import assets as A
from refseg_ros.language.vocabulary import ORDINAL_WORDS, SIZES

# (train templates, held-out templates); {np} head without article, {L} landmark with article
LOCATION = {
    "left": (["the leftmost {np}", "the {np} on the left", "the {np} furthest to the left",
              "the {np} on the far left"], ["the {np} all the way on the left",
                                            "the {np} that is furthest left"]),
    "right": (["the rightmost {np}", "the {np} on the right", "the {np} furthest to the right",
               "the {np} on the far right"], ["the {np} all the way on the right",
                                              "the {np} that is furthest right"]),
    "front": (["the frontmost {np}", "the {np} in front", "the {np} at the front"],
              ["the {np} nearest the front edge", "the {np} that is most in front"]),
    "back": (["the {np} at the back", "the {np} in the back", "the rearmost {np}"],
             ["the {np} farthest back", "the {np} way at the back"]),
}
ORDINAL = (["the {ord} {np} from the {side}", "the {np} {ord} from the {side}"],
           ["counting from the {side}, the {ord} {np}", "the {ord} {np} starting from the {side}"])
RELATION = {
    "left_of": (["the {np} left of {L}", "the {np} to the left of {L}"],
                ["the {np} sitting left of {L}", "the {np} on {L}'s left"]),
    "right_of": (["the {np} right of {L}", "the {np} to the right of {L}"],
                 ["the {np} sitting right of {L}", "the {np} on {L}'s right"]),
    "in_front_of": (["the {np} in front of {L}", "the {np} just in front of {L}"],
                    ["the {np} placed in front of {L}"]),
    "behind": (["the {np} behind {L}", "the {np} in back of {L}"], ["the {np} hidden behind {L}"]),
    "next_to": (["the {np} next to {L}", "the {np} beside {L}", "the {np} by {L}"],
                ["the {np} right beside {L}", "the {np} alongside {L}"]),
}
PROXIMITY_CAMERA = {
    "closest": (["the {np} closest to the camera", "the nearest {np}", "the {np} closest to me"],
                ["the {np} nearest to you", "the {np} that is closest"]),
    "farthest": (["the {np} farthest from the camera", "the {np} farthest away",
                  "the most distant {np}"], ["the {np} furthest from you",
                                             "the {np} that is farthest off"]),
}
PROXIMITY_LANDMARK = (["the {np} closest to {L}", "the nearest {np} to {L}",
                       "the {np} nearest to {L}"], ["the {np} that is closest to {L}"])
HEAD = (["the {np}"], ["that {np}"])
ATTRIBUTE_CLAUSE = (["the {noun} that is {colour}", "the one that is {colour}"],
                    ["the {noun} which is {colour}", "the {noun} in {colour}"])
MULTI = {
    "all": (["all the {pl}", "all of the {pl}"], ["each of the {pl}"]),
    "every": (["every {np}", "each {np}"], ["any {np} you can see"]),
    "both": (["both {pl}", "the two {pl}"], ["the pair of {pl}"]),
    "count": (["the {n} {pl}", "all {n} {pl}"], ["those {n} {pl}"]),
}
NEGATION = (["the {np} that is not {x}", "the {np} that isn't {x}"],
            ["the {np} other than {x} ones"])
NEGATION_PLURAL = (["the {pl} that are not {x}", "all {pl} that aren't {x}"],
                   ["every {np} except {x} ones"])
NEGATION_OBJECT = (["the object that is not {a}", "the thing that isn't {a}"],
                   ["whatever is not {a}"])
NEGATION_OBJECT_PLURAL = (["everything that is not {a}", "all the objects that aren't {pla}"],
                          ["anything but {pla}"])
WRAP_P = 0.5  # share of expressions said inside a request
WRAPPERS = (["could you hand me {e}?", "I need {e}", "pick up {e}",
             "grab {e}", "please give me {e}", "can you pass me {e}?", "where is {e}?",
             "show me {e}", "{e}, please", "get {e}", "find {e}"],
            ["would you mind fetching {e}?", "bring over {e}", "I'd like {e}",
             "could I have {e}?", "point at {e}", "look for {e}"])
HOMOPHONES = {"red": "read", "two": "to", "right": "write", "blue": "blew", "for": "four",
              "by": "buy", "pair": "pear", "the": "a", "one": "won", "mug": "mog", "cup": "cop",
              "whole": "hole", "next": "nex", "plate": "plait"}
NOISE_P = {"typo": 0.15, "article": 0.08, "homophone": 0.06, "case": 0.15, "punct": 0.2}


def _pick(pair, rng, held_out: bool) -> str:
    options = pair[1] if held_out else pair[0]
    return str(options[int(rng.integers(len(options)))])


def _noun(category: str | None, rng, held_out: bool) -> str:
    if category is None:
        return str(rng.choice(["object", "thing", "one"]))
    nouns = A.nouns_for(category, held_out)
    return str(nouns[int(rng.integers(len(nouns)))])


def np_text(head: dict, rng, held_out: bool, noun: str | None = None) -> str:
    cat = head.get("category")
    if noun is None:
        noun = _noun(cat, rng, held_out) if head else "object"
    words = []
    if head.get("size"):
        words.append(str(rng.choice(SIZES[head["size"]])))
    if head.get("colour"):
        words.append(head["colour"])
    return " ".join(words + [noun])


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def realise(s: dict, rng, held_out: bool = False) -> tuple[str, str]:
    """(clean text, template) of a structure."""
    kind = s["type"]
    if kind == "no_target":
        return realise(s["form"], rng, held_out)
    head = s.get("head") or {}
    if kind == "multi_target":
        q = s["quantifier"]
        noun = _noun(head.get("category"), rng, held_out) if head.get("category") else "object"
        tpl = _pick(MULTI[q], rng, held_out)
        pl_head = {k: v for k, v in head.items() if k != "category"}
        pl = np_text(pl_head, rng, held_out, noun=A.plural(noun, head.get("category")))
        return tpl.format(pl=pl, np=np_text(head, rng, held_out, noun=noun),
                          n=str(s.get("count", ""))), tpl
    if kind == "negation":
        ex = s["exclude"]
        if "colour" in ex:
            noun = _noun(head["category"], rng, held_out)
            many = rng.random() < 0.5
            tpl = _pick(NEGATION_PLURAL if many else NEGATION, rng, held_out)
            return tpl.format(np=noun, pl=A.plural(noun, head["category"]), x=ex["colour"]), tpl
        noun = _noun(ex["category"], rng, held_out)
        tpl = _pick(NEGATION_OBJECT_PLURAL if rng.random() < 0.5 else NEGATION_OBJECT, rng,
                    held_out)
        return tpl.format(a=_article(noun), pla=A.plural(noun, ex["category"])), tpl
    landmark = None
    for part in ("relation", "proximity"):
        if s.get(part) and s[part].get("landmark") is not None:
            landmark = "the " + np_text(s[part]["landmark"], rng, held_out)
    if kind in ("category", "attribute"):
        if head.get("colour") and not head.get("size") and rng.random() < 0.3:
            tpl = _pick(ATTRIBUTE_CLAUSE, rng, held_out)
            if "{noun}" in tpl and not head.get("category") and "one" not in tpl:
                tpl = "the one that is {colour}"
            noun = _noun(head.get("category"), rng, held_out)
            return tpl.format(noun=noun, colour=head["colour"]), tpl
        tpl = _pick(HEAD, rng, held_out)
    elif kind == "location":
        tpl = _pick(LOCATION[s["location"]], rng, held_out)
    elif kind == "ordinal":
        tpl = _pick(ORDINAL, rng, held_out)
        return tpl.format(np=np_text(head, rng, held_out), side=s["ordinal"]["from"],
                          ord=ORDINAL_WORDS[int(s["ordinal"]["k"])]), tpl
    elif kind == "relation":
        tpl = _pick(RELATION[s["relation"]["name"]], rng, held_out)
    elif kind == "proximity":
        if s["proximity"].get("landmark") is None:
            tpl = _pick(PROXIMITY_CAMERA[s["proximity"]["extreme"]], rng, held_out)
        else:
            tpl = _pick(PROXIMITY_LANDMARK, rng, held_out)
    else:
        raise ValueError(f"unknown structure type {kind!r}")
    return tpl.format(np=np_text(head, rng, held_out), L=landmark), tpl


def _typo(word: str, rng) -> str:
    i = int(rng.integers(1, len(word)))
    letters = "abcdefghijklmnopqrstuvwxyz"
    op = int(rng.integers(4))
    if op == 0:
        return word[:i] + letters[int(rng.integers(26))] + word[i + 1:]
    if op == 1:
        return word[:i] + word[i + 1:]
    if op == 2:
        return word[:i] + letters[int(rng.integers(26))] + word[i:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:] if i < len(word) else word


def add_noise(text: str, rng, p: dict | None = None) -> tuple[str, list[str]]:
    """Typos (one-character edits), dropped articles, homophones, case and punctuation noise."""
    p = p or NOISE_P
    done = []
    words = text.split(" ")
    if rng.random() < p["typo"]:
        idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if idx:
            i = idx[int(rng.integers(len(idx)))]
            words[i] = _typo(words[i], rng)
            done.append("typo")
    if rng.random() < p["article"] and "the" in words:
        words = [w for w in words if w != "the"]
        done.append("article")
    if rng.random() < p["homophone"]:
        idx = [i for i, w in enumerate(words) if w in HOMOPHONES and w != "the"]
        if idx:
            i = idx[int(rng.integers(len(idx)))]
            words[i] = HOMOPHONES[words[i]]
            done.append("homophone")
    text = " ".join(w for w in words if w)
    if rng.random() < p["case"]:
        style = int(rng.integers(3))
        text = text.upper() if style == 0 else text.capitalize() if style == 1 else text.title()
        done.append("case")
    if rng.random() < p["punct"]:
        text = text.rstrip("?.!") + str(rng.choice([".", "!", "?", "...", " ."]))
        done.append("punct")
    return text, done


def say(structure: dict, records, rng, held_out: bool = False) -> dict:
    """``{"sent", "clean", "wording": {"template", "wrapper", "noise", "held_out"}}``."""
    clean, template = realise(structure, rng, held_out)
    wrapper = _pick(WRAPPERS, rng, held_out) if rng.random() < WRAP_P else "{e}"
    wrapped = wrapper.format(e=clean)
    sent, noise = add_noise(wrapped, rng)
    return {"sent": sent, "clean": clean,
            "wording": {"template": template, "wrapper": wrapper, "noise": noise,
                        "held_out": bool(held_out)}}
