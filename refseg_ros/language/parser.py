"""Spoken or typed commands -> referring expressions for the grounding model. No ROS imports.

People (and speech recognisers) say "Could you grab the duck and the blue cube?", "pick up the red
mug on the left please" or "stop"; the model wants bare referring expressions: ``["the duck",
"the blue cube"]``, ``["the red mug on the left"]``, or nothing. :func:`parse_command` does that
with a small, predictable word-level grammar (no tagger, no model), so its behaviour can be read
off this file and its tests:

* text is cleaned first: control and zero-width characters removed, accents folded
  ("plaît" -> "plait"), other non-ASCII characters dropped (each noted), lower-cased;
* "stop", "cancel", "never mind", "abort", "halt", "forget it" (after fillers such as "okay robot")
  clear the active command;
* conjunctions split objects only where a new noun phrase starts: "and"/"plus"/"as well as" when
  followed by a determiner or a verb ("the duck and the blue cube", "grab the duck and pick up the
  cube"), "then" and punctuation always, unless what follows is a relation ("the mug, next to the
  duck" stays one). The "and" of "between X and Y" never splits, and "the red and blue cube" (no
  determiner after "and") stays one expression;
* leading politeness, wake words, questions ("where is") and imperative verbs ("pick up", "grab",
  "bring me") and trailing politeness ("please", "for me", "thanks") are removed; for placing verbs
  ("put the duck in the tray") the destination is cut off, leaving the object to ground;
* a leading "a"/"an"/"this"/"that" becomes "the" (referring expressions are definite); a bare
  pronoun ("pick it up") names no object and is rejected.

Anything unusable (empty, too long, nothing left after cleaning) gives ``Action.INVALID`` with a
human-readable ``reason``; the caller keeps its active command and logs the reason.
"""
from __future__ import annotations

import enum
import functools
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["Action", "ParsedCommand", "as_expression", "parse_command", "sanitize"]

#: Default cap on the raw command length in characters (node parameter ``max_command_chars``).
DEFAULT_MAX_CHARS = 300
#: Default cap on the number of expressions grounded together (node parameter ``max_expressions``).
DEFAULT_MAX_EXPRESSIONS = 5


class Action(enum.Enum):
    GROUND = "ground"    # replace the active command with ``expressions``
    STOP = "stop"        # clear the active command
    INVALID = "invalid"  # unusable; keep the active command, log ``reason``


@dataclass(frozen=True)
class ParsedCommand:
    action: Action
    expressions: tuple[str, ...] = ()
    #: Why the command is INVALID (empty otherwise).
    reason: str = ""
    #: Things changed or dropped while cleaning that a user should hear about (non-ASCII removed,
    #: expressions beyond the cap dropped, ...); the command was still usable.
    notes: tuple[str, ...] = field(default=())


# --- cleaning --------------------------------------------------------------------------------------

_TYPOGRAPHIC = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ",
})
_WHITESPACE_CONTROLS = set("\t\n\r\v\f\x1c\x1d\x1e\x1f\x85")


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def sanitize(text: str) -> tuple[str, list[str]]:
    """Return ``text`` as plain ASCII with single spaces, and notes about what was removed."""
    notes: list[str] = []
    text, escapes = _ANSI_ESCAPE.subn("", text)
    if escapes:
        notes.append(f"removed {escapes} terminal escape sequence(s)")
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)
    out: list[str] = []
    controls = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _WHITESPACE_CONTROLS:
            out.append(" ")
        elif cat in ("Cc", "Cf", "Cs", "Co", "Cn"):
            controls += 1
        else:
            out.append(ch)
    if controls:
        notes.append(f"removed {controls} control/invisible character(s)")
    text = "".join(out)
    if not text.isascii():
        folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        dropped = sorted({c for c in folded if not c.isascii()})
        text = "".join(c if c.isascii() else " " for c in folded)
        if dropped:
            shown = "".join(dropped[:10]) + ("..." if len(dropped) > 10 else "")
            notes.append(f"removed non-ASCII characters {shown!r}")
        else:
            notes.append("folded accented characters to ASCII")
    return " ".join(text.split()), notes


# --- word lists ------------------------------------------------------------------------------------
# Multi-word entries are tuples of tokens, sorted longest first so _match_prefix takes the longest.

def _phrases(*items: str) -> tuple[tuple[str, ...], ...]:
    return tuple(sorted((tuple(s.split()) for s in items), key=len, reverse=True))


_STOP = _phrases("stop", "cancel", "never mind", "nevermind", "abort", "halt", "forget it",
                 "forget about it", "forget that", "that's enough", "that is enough", "freeze",
                 "stop it", "cancel that", "reset")
_STOP_TAIL = {"it", "that", "this", "now", "everything", "all", "please", "right", "immediately",
              "then", "thanks", "thank", "you", "and"}

# Said before the request; removed repeatedly from the start of every segment.
_LEAD = _phrases(
    "hey", "hi", "hello", "ok", "okay", "alright", "all right", "robot", "so", "um", "uh", "er", "hmm",
    "well", "now", "and", "then", "also", "just", "no", "wait", "yes", "yeah", "oh",
    "please", "kindly", "and then", "after that", "next", "finally", "first", "second", "lastly",
    "could you", "can you", "would you", "will you", "could u", "can u", "would you mind", "do you mind",
    "would you be able to", "are you able to", "i want you to", "i'd like you to", "i would like you to",
    "i need you to", "go ahead and", "try to", "try and", "be so kind and", "please could you",
    "i want", "i need", "i'd like", "i would like", "can i have", "could i have", "could i get",
    "can i get", "give me", "let me see", "let me have", "help me", "we need", "let's", "lets",
    "where is", "where's", "where are", "do you see", "can you see", "is there", "are there",
    "which is", "which one is", "what about", "how about", "and now", "and also", "both",
)
_VERBS = _phrases(
    "pick up", "pick", "lift up", "lift", "grab", "grasp", "grip", "take", "take out", "get", "fetch",
    "bring", "bring over", "hand", "hand over", "give", "pass", "pass over", "show", "find", "locate",
    "look at", "look for", "search for", "point at", "point to", "point", "segment", "highlight",
    "select", "track", "detect", "touch", "tap", "push", "poke", "hold", "reach for", "reach",
    "go to", "move to", "move", "put", "place", "drop", "set", "put down", "identify", "mark",
    "focus on", "pick out",
    # after "would you mind ...", "how about ..."
    "fetching", "getting", "grabbing", "picking up", "bringing", "bringing over", "passing", "handing",
    "finding", "showing", "taking",
)
_PLACING_VERBS = {"put", "place", "drop", "set", "move", "bring", "put down"}
_DESTINATION = _phrases("into", "onto", "inside", "in", "on top of", "over to", "back to", "toward",
                        "towards")
_OBJECT_PRONOUNS = {"me", "us"}
_TRAIL = _phrases("please", "for me", "thanks", "thank you", "now", "right now", "too", "as well",
                  "again", "quickly", "for us", "if you can", "if you could", "if possible", "ok",
                  "okay", "robot", "thx", "pls", "then", "also", "and", "instead", "cheers", "thanks a lot")
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "another", "my", "your", "its",
                "our", "their", "his", "her", "some", "any", "each", "both"}
_VERB_STARTS = {v[0] for v in _VERBS}
# Words that open a noun phrase after "and": "the duck and all the cubes" names two things.
_PHRASE_STARTS = _DETERMINERS | {"all", "every", "everything", "whatever", "anything"}
# Words that name no object on their own: an expression of only these ("not", "all the", "the two",
# "everything that is not") is refused rather than grounded as if it named something.
_NO_OBJECT = _DETERMINERS | {
    "all", "every", "everything", "anything", "whatever", "nothing", "none", "no", "not", "of", "that",
    "which", "who", "is", "are", "isn't", "aren't", "one", "ones", "two", "three", "four", "five", "pair",
    "it", "them", "but", "except", "other", "than", "and", "or", "only", "just", "same"}
# A segment opening with one of these says what not to ground ("no, not the red one"), never what to.
_EXCLUDING = {"not", "nothing", "none", "neither", "nor"}
# Words that continue the previous noun phrase rather than start a new object.
_RELATIONAL = {"next", "near", "nearest", "closest", "close", "beside", "besides", "behind", "in",
               "on", "at", "by", "between", "left", "right", "of", "to", "with", "which", "that",
               "who", "under", "below", "above", "over", "beneath", "inside", "outside", "front",
               "farthest", "furthest", "far", "closer", "further", "across", "opposite", "along",
               "from", "around", "against", "among", "underneath", "atop"}
_PRONOUNS = {"it", "them", "that", "this", "those", "these", "one", "that one", "this one", "something",
             "everything", "all", "stuff", "thing", "things"}
_SPLIT_IF_NEW_PHRASE = {("and",), ("plus",), ("as", "well", "as"), ("along", "with"), ("together", "with")}
_SPLIT_ALWAYS = {("then",), ("and", "then"), ("after", "that"), ("followed", "by"), ("and", "after", "that")}
_PUNCT = {",", ".", ";", "!", "?", ":", "-", "--", "---"}  # a free-standing dash is a pause

_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*|[,.;!?:]|(?<!\S)-+(?!\S)")


_SPLIT_ALWAYS_LONGEST = tuple(sorted(_SPLIT_ALWAYS, key=len, reverse=True))
_SPLIT_IF_NEW_PHRASE_LONGEST = tuple(sorted(_SPLIT_IF_NEW_PHRASE, key=len, reverse=True))

# Every step below moves an index by at least one token and tries a fixed set of phrases there,
# and no list is sliced inside a loop, so parsing time grows linearly with the command's length
# (commands come from the network; ``max_command_chars`` may allow long ones).


# id -> (the phrase tuple itself, kept so its id is never reused; its phrases by first word)
_BY_FIRST_WORD: dict[int, tuple[object, dict[str, tuple[tuple[str, ...], ...]]]] = {}


def _by_first_word(phrases) -> dict[str, tuple[tuple[str, ...], ...]]:
    """``phrases`` grouped by their first word, each group in the original (longest first) order."""
    entry = _BY_FIRST_WORD.get(id(phrases))
    if entry is None or entry[0] is not phrases:
        groups: dict[str, list[tuple[str, ...]]] = {}
        for p in phrases:
            groups.setdefault(p[0], []).append(p)
        entry = _BY_FIRST_WORD[id(phrases)] = (phrases, {k: tuple(v) for k, v in groups.items()})
    return entry[1]


def _match_prefix(tokens: list[str], start: int, phrases) -> tuple[str, ...] | None:
    """The first of ``phrases`` (a module-level tuple, longest first) that ``tokens[start:]`` begins with."""
    if start >= len(tokens):
        return None
    for p in _by_first_word(phrases).get(tokens[start], ()):
        if tuple(tokens[start:start + len(p)]) == p:
            return p
    return None


_TRAIL_BY_LAST_WORD: dict[str, tuple[tuple[str, ...], ...]] = {
    last: tuple(p for p in _TRAIL if p[-1] == last) for last in {p[-1] for p in _TRAIL}}


def _match_suffix(tokens: list[str], start: int, end: int) -> tuple[str, ...] | None:
    """The first of the trailing phrases that ends ``tokens[start:end]`` and is shorter than it."""
    if end <= start:
        return None
    for p in _TRAIL_BY_LAST_WORD.get(tokens[end - 1], ()):
        if end - start > len(p) and tuple(tokens[end - len(p):end]) == p:
            return p
    return None


def _after_fillers(tokens: list[str], i: int, memo: dict[int, int]) -> int:
    """Where tokens[i:] continues after its leading fillers ("and also please"). ``memo`` keeps
    each answer, so a run of fillers is walked once, not once per conjunction in it."""
    path = []
    while i < len(tokens) and i not in memo:
        p = _match_prefix(tokens, i, _LEAD)
        if p is None or p[0] in _DETERMINERS:
            break
        path.append(i)
        i += len(p)
    end = memo.get(i, i)
    for k in path:
        memo[k] = end
    return end


def _starts_new_phrase(tokens: list[str], i: int, memo: dict[int, int]) -> bool:
    """True when tokens[i:] begins a new noun phrase or request (not a continuation)."""
    j = _after_fillers(tokens, i, memo)
    if j >= len(tokens):
        return False
    return tokens[j] in _PHRASE_STARTS or tokens[j] in _VERB_STARTS


def _counting_from(seg: list[str]) -> bool:
    """True when ``seg`` ends in "counting/starting from (the) <side>", which the object follows."""
    tail = seg[-4:]
    return any(tail[k:k + 2] in (["counting", "from"], ["starting", "from"]) for k in range(len(tail) - 1)) \
        and tail[-1] in ("left", "right", "front", "back")


def _split(tokens: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    after_fillers: dict[int, int] = {}
    in_between = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "between":
            in_between = True
        if tok in _PUNCT:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if nxt in _RELATIONAL and nxt not in _DETERMINERS:
                i += 1  # "the mug, next to the duck": one object, the comma is only a pause
                continue
            if nxt == "not" or (nxt in ("and", "but") and tokens[i + 2:i + 3] == ["not"]):
                # "the duck, not the cube": a qualification of this object; cut off, it would
                # ground the very object the speaker ruled out
                i += 1
                continue
            if _counting_from(segments[-1]):
                i += 1  # "counting from the left, the second mug": one object
                continue
            if (tokens[i + 1:i + 3] in (["the", "one"], ["that", "one"]) and i + 3 < len(tokens)
                    and tokens[i + 3] in _RELATIONAL):
                i += 3  # "the mug, the one next to the duck" -> "the mug next to the duck"
                continue
            segments.append([])
            i += 1
            continue
        always = _match_prefix(tokens, i, _SPLIT_ALWAYS_LONGEST)
        if always and segments[-1]:
            segments.append([])
            i += len(always)
            continue
        conj = _match_prefix(tokens, i, _SPLIT_IF_NEW_PHRASE_LONGEST)
        if conj:
            if in_between and conj == ("and",):
                in_between = False  # "between the duck and the mug": part of the relation
            elif _starts_new_phrase(tokens, i + len(conj), after_fillers) and segments[-1]:
                segments.append([])
                i += len(conj)
                continue
        segments[-1].append(tok)
        i += 1
    return [s for s in segments if s]


def _strip_segment(seg: list[str]) -> list[str]:
    verb: tuple[str, ...] | None = None
    start, end = 0, len(seg)
    changed = True
    while changed and start < end:
        changed = False
        p = _match_prefix(seg, start, _LEAD)
        if p and start + len(p) > end:
            p = None
        # "first"/"next"/"second" are ordinals inside an expression ("the second cube" keeps its
        # article, so only a bare leading ordinal before a determiner or verb is a filler).
        if p and p[0] in ("first", "second", "next", "finally", "lastly") and not (
                end - start > 1 and (seg[start + 1] in _DETERMINERS or seg[start + 1] in _VERB_STARTS)):
            p = None
        if p and not (p[0] in _DETERMINERS):
            start += len(p)
            changed = True
            continue
        v = _match_prefix(seg, start, _VERBS)
        if v and start + len(v) > end:
            v = None
        if v and end - start > len(v):
            verb = verb or v
            start += len(v)
            while start < end and seg[start] in _OBJECT_PRONOUNS:
                start += 1
            changed = True
            continue
        if v and end - start == len(v):
            return []  # only a verb ("pick up"): no object named
    if tuple(seg[start:end]) in _TRAIL:
        return []  # a segment that is only politeness: ", thanks"
    changed = True
    while changed and start < end:
        changed = False
        p = _match_suffix(seg, start, end)
        if p is not None:
            end -= len(p)
            changed = True
        if (verb and verb[0] in ("pick", "lift", "take", "hand", "pass") and end - start > 1
                and seg[end - 1] in ("up", "out", "over")):
            end -= 1  # "pick the mug up"
            changed = True
    seg = seg[start:end]
    if verb and " ".join(verb) in _PLACING_VERBS:
        for k in range(1, len(seg)):
            if _match_prefix(seg, k, _DESTINATION):
                seg = seg[:k]  # "put the duck in the tray": ground the object, not the destination
                break
    if seg and seg[0] in ("a", "an", "this", "that") and len(seg) > 1 and seg[1] not in ("is", "are"):
        seg = ["the"] + seg[1:]
    return seg


def _after_stop(words: list[str]) -> list[str] | None:
    """None if ``words`` is not a stop; else the new request after it ([] for a plain stop)."""
    i = 0
    while i < len(words):
        p = _match_prefix(words, i, _LEAD)
        if not p or p[0] in _DETERMINERS:
            break
        i += len(p)
    stop = _match_prefix(words, i, _STOP)
    if not stop:
        return None
    rest = words[i + len(stop):]
    j = 0
    while j < len(rest) and (rest[j] in _STOP_TAIL or rest[j] in ("instead", "just")
                             or _match_prefix(rest, j, _STOP)):
        j += len(_match_prefix(rest, j, _STOP) or (rest[j],))
    if j < len(rest) and rest[j] in _VERB_STARTS:
        return rest[j:]
    return []


def parse_command(text: object, max_chars: int = DEFAULT_MAX_CHARS,
                  max_expressions: int = DEFAULT_MAX_EXPRESSIONS) -> ParsedCommand:
    """Parse one command as spoken or typed; never raises for any ``str`` input."""
    if not isinstance(text, str):
        return ParsedCommand(Action.INVALID, reason=f"command is not text ({type(text).__name__})")
    stripped = text.strip()
    if not stripped:
        return ParsedCommand(Action.INVALID, reason="empty command")
    if len(stripped) > max_chars:
        words = len(stripped.split())
        return ParsedCommand(
            Action.INVALID,
            reason=f"command too long ({len(stripped)} characters, {words} words; "
                   f"max_command_chars is {max_chars})")
    clean, notes = sanitize(stripped)
    tokens = _TOKEN.findall(clean.lower())
    if not any(t not in _PUNCT for t in tokens):
        return ParsedCommand(Action.INVALID, reason=f"no words left after cleaning {stripped[:60]!r}",
                             notes=tuple(notes))

    # Stop: fillers, a stop phrase, then nothing that starts a new request ("stop it now please",
    # "okay robot, cancel that"). "stop and grab the duck instead" carries a new request.
    words = [t for t in tokens if t not in _PUNCT]
    after = _after_stop(words)
    if after is not None:
        if not after:
            return ParsedCommand(Action.STOP, notes=tuple(notes))
        tokens = after
    else:
        segments = _split(tokens)
        if len(segments) > 1 and _after_stop(segments[-1]) == []:
            return ParsedCommand(Action.STOP, notes=tuple(notes))  # "grab the duck, no, cancel"

    expressions: dict[str, None] = {}  # ordered, and a set for the duplicate check
    refused: list[str] = []  # why each segment that names no object was left out
    segments = [seg for seg in (_strip_segment(seg) for seg in _split(tokens)) if seg]
    for k, seg in enumerate(segments):
        if seg[0] == "both" and len(seg) > 2 and seg[1] in _DETERMINERS and k + 1 < len(segments):
            seg = seg[1:]  # "both the duck and the cube": two objects, not "every duck"
        expr = " ".join(seg)
        if expr in _PRONOUNS or (len(seg) == 2 and seg[0] == "the" and seg[1] in _PRONOUNS):
            refused.append(f"{expr!r} does not say which object")
        elif all(w in _NO_OBJECT or w.isdigit() for w in seg):
            refused.append(f"{expr!r} names no object")
        elif seg[0] in _EXCLUDING:
            refused.append(f"{expr!r} says only what not to ground")
        else:
            expressions.setdefault(expr)
    if not expressions:
        reason = refused[0] if refused else "no object described"
        return ParsedCommand(Action.INVALID, reason=f"{reason} in {clean[:80]!r}", notes=tuple(notes))
    notes.extend(f"left out {r}" for r in refused if "does not say" not in r)
    expressions = list(expressions)
    if len(expressions) > max_expressions:
        notes.append(f"grounding the first {max_expressions} of {len(expressions)} objects "
                     f"(max_expressions); dropped {expressions[max_expressions:]}")
        expressions = expressions[:max_expressions]
    return ParsedCommand(Action.GROUND, tuple(expressions), notes=tuple(notes))


@functools.lru_cache(maxsize=1024)
def as_expression(text: str) -> str:
    """The object ``text`` names when it is said as a request of one object, as the node reads a
    command: "could you hand me the red mug?" -> "the red mug" (:func:`parse_command`). ``text``
    itself when the parser finds no object, a stop, or several objects ("the duck and the cube":
    the node grounds those one by one; a single answer cannot). Parsing its own output changes
    nothing, so an expression the node already parsed reaches the model as it is."""
    parsed = parse_command(text)
    if parsed.action is Action.GROUND and len(parsed.expressions) == 1:
        return parsed.expressions[0]
    return text
