"""The command grammar as a word automaton, and the grammatical command closest to a transcript. No ROS.

The grounding model understands the expressions of :mod:`refseg_ros.language.grammar`: "the [size]
[colour] noun" followed by a place ("on the left", "second from the right", "next to the duck").
A recogniser that is unsure writes word salad a model cannot ground ("take the arm just in front
of a blue can"); the grammatical command that sounds most like it ("take the object in front of
the blue can") is a far better guess. :class:`CommandGrammar` holds the grammar as a finite
automaton over words:

    command := (request word | expression)+   with at least one expression
    expression := the template words, "{np}" = [size] [colour] noun (or "noun that is colour"),
                  "{L}" = "the" {np} (a landmark ends every template that has one)

Request words are the command lexicon's words that are not tabletop words ("could you hand me",
"please", "and then"), so any request frame made of them is accepted, while every object,
colour, size and place word must sit where an expression puts it.

:meth:`CommandGrammar.closest` finds the grammatical commands with the least edit cost from a
transcript: substituting a word costs how unlike it sounds (:func:`~refseg_ros.speech.correction.similarity`),
deleting or inserting one costs a word (less for articles), two heard words may become one
("left most" -> "leftmost"). It is a shortest-path search over (automaton state, words consumed).
"""
from __future__ import annotations

import heapq
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from refseg_ros.language.grammar import TEMPLATES
from refseg_ros.language.vocabulary import COLOURS, GENERIC_NOUNS, ORDINAL_WORDS, SIZES, keywords, object_nouns
from refseg_ros.speech.correction import similarity
from refseg_ros.speech.lexicon import command_lexicon

__all__ = ["CommandGrammar", "Costs", "changes_sure_word", "object_names", "pick_grammatical", "sentence", "words_of"]

#: Keywords that are also request words ("can you get ...").
_REQUEST_KEYWORDS = frozenset({"can"})
_END = "$"  # marks a trie node where a template ends
#: Words that may follow an expression at no cost ("... and then ...", "... for me please").
_CONNECTING = frozenset({"and", "then", "please", "for", "me", "now", "thanks", "thank", "you", "also", "too"})
#: Determiners that may start an expression in place of "the" (the parser makes them definite).
_DETERMINERS = ("the", "a")


@dataclass(frozen=True)
class Costs:
    """Edit costs of :meth:`CommandGrammar.closest` (one word = 1)."""
    substitute: float = 1.0   # times (1 - similarity) of the heard and the said word
    delete: float = 1.0       # a heard word that was not said
    insert: float = 1.0       # a said word that was not heard
    insert_light: float = 0.4  # ... when it is one of the small words a recogniser drops (``light``)
    merge: float = 0.2        # added when two heard words become one said word
    min_similarity: float = 0.3  # less alike: delete and insert instead of substituting
    light: frozenset = frozenset({"the", "a", "to", "of", "and", "on"})
    trailing: float = 0.5     # a request word after an expression, other than a connecting one


@lru_cache(maxsize=65536)
def _sound_cost(heard: str, word: str) -> float:
    return 0.0 if heard == word else 1.0 - similarity(heard, word)


class CommandGrammar:
    """The command grammar as an automaton over lower-case words (see the module docstring)."""

    def __init__(self, extra_nouns: Iterable[str] = (), costs: Costs | None = None):
        self.costs = costs or Costs()
        self._edges: dict[int, list[tuple[str, int]]] = defaultdict(list)
        self._eps: dict[int, list[int]] = defaultdict(list)
        self._count = itertools.count()
        nouns = list(object_nouns()) + list(GENERIC_NOUNS) + [n.lower() for n in extra_nouns if n.strip()]
        self._nouns = [n.split() for n in dict.fromkeys(nouns)]
        self._sizes = sorted({w for names in SIZES.values() for w in names})
        self.request_words = (command_lexicon(extra_nouns) - keywords() - {"the"}) | _REQUEST_KEYWORDS
        self._tabletop = ((keywords() | {w for noun in self._nouns for w in noun})
                          - _REQUEST_KEYWORDS - set(GENERIC_NOUNS))
        self.start, self.accept = self._new(), self._new()
        hub = self._new()
        self._eps[self.start].append(hub)
        self._eps[self.accept].append(hub)
        for state in (self.start, self.accept):
            for word in sorted(self.request_words):
                self._edges[state].append((word, state))
        landmark = self._new()
        self._np(self._word(landmark, ["the"]), self.accept)
        # A trie of the templates, so that templates sharing a beginning share its states.
        trie: dict = {}
        for _kind, _params, template in TEMPLATES:
            node = trie
            for part in template.split():
                node = node.setdefault(part, {})
            node[_END] = {}
        self._hub = hub
        self._expand(hub, trie, landmark)
        self.words = sorted({w for edges in self._edges.values() for w, _ in edges})
        # Per state: word -> targets (substitutions look up the few words a heard word is like),
        # and the edges a word may be inserted on (not the request-word loops).
        self._by_word: dict[int, dict[str, list[int]]] = {}
        self._inserts: dict[int, list[tuple[str, int]]] = {}
        for state, edges in self._edges.items():
            table: dict[str, list[int]] = defaultdict(list)
            for word, target in edges:
                table[word].append(target)
            self._by_word[state] = dict(table)
            self._inserts[state] = [(w, t) for w, t in edges if t != state]
        self._closure_cache: dict[int, tuple[int, ...]] = {}

    # -- construction -------------------------------------------------------------------------------
    def _new(self) -> int:
        return next(self._count)

    def _word(self, state: int, words: Sequence[str], target: int | None = None) -> int:
        target = self._new() if target is None else target
        for word in words:
            self._edges[state].append((word, target))
        return target

    def _chain(self, state: int, words: Sequence[str], target: int) -> None:
        for word in words[:-1]:
            state = self._word(state, [word])
        self._edges[state].append((words[-1], target))

    def _np(self, state: int, end: int, clause: bool = False) -> int:
        """[size] [colour] noun (or with ``clause``, also noun "that is" colour: only an expression
        with no place uses it) from ``state`` to ``end``."""
        sized, coloured = self._new(), self._new()
        self._eps[state].append(sized)
        self._word(state, self._sizes, sized)
        self._eps[sized].append(coloured)
        self._word(sized, COLOURS, coloured)
        for noun in self._nouns:
            self._chain(coloured, noun, end)
        if clause:
            noun_end, that_is = self._new(), self._new()
            for noun in self._nouns:
                self._chain(state, noun, noun_end)
            self._chain(noun_end, ["that", "is"], that_is)
            self._word(that_is, COLOURS, end)
        return end

    def _expand(self, state: int, trie: dict, landmark: int) -> None:
        for part, child in trie.items():
            if part == _END:
                self._eps[state].append(self.accept)
                continue
            if part == "{L}":
                self._eps[state].append(landmark)  # a landmark ends its template
                continue
            target = self._new()
            if part == "{np}":
                self._np(state, target, clause=_END in child)
            elif part == "{ord}":
                self._word(state, list(ORDINAL_WORDS.values()), target)
            elif part == "the" and state == self._hub:
                self._word(state, _DETERMINERS, target)
            else:
                self._word(state, [part], target)
            self._expand(target, child, landmark)

    # -- use ----------------------------------------------------------------------------------------
    def _closure(self, state: int) -> tuple[int, ...]:
        if state not in self._closure_cache:
            seen, todo = {state}, [state]
            while todo:
                for nxt in self._eps.get(todo.pop(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            self._closure_cache[state] = tuple(sorted(seen))
        return self._closure_cache[state]

    def accepts(self, words: Sequence[str]) -> bool:
        """Whether ``words`` (lower case, no punctuation) is a command of the grammar."""
        states = set(self._closure(self.start))
        for word in words:
            states = {s2 for s in states for w, t in self._edges.get(s, ()) if w == word for s2 in self._closure(t)}
            if not states:
                return False
        return self.accept in states  # reached only through an expression

    def heard_an_object_word(self, words: Sequence[str], heard: Sequence[str]) -> bool:
        """Whether a tabletop word of the command ``words`` other than "object", "one", "thing" is,
        or sounds like (similarity at least 0.5), a word of ``heard``."""
        limit = 0.5
        tabletop = [w for w in words if w in self._tabletop]
        return any(_sound_cost(h, w) <= limit for w in tabletop for h in heard)

    def _alike(self, heard: str) -> list[tuple[str, float]]:
        """Grammar words close enough in sound to substitute for ``heard``, with their costs."""
        limit = 1.0 - self.costs.min_similarity
        return [(w, cost) for w in self.words if (cost := _sound_cost(heard, w)) <= limit]

    def closest(self, heard: Sequence[str], k: int = 1, max_cost: float | None = None,
                max_steps: int = 20000) -> list[tuple[list[str], float]]:
        """Up to ``k`` grammatical commands (as word lists) with the least edit cost from the words
        ``heard``, cheapest first, each with its cost; none above ``max_cost``. The search gives up
        after ``max_steps`` expansions (a long stretch of word salad), with what it found so far."""
        c = self.costs
        heard = [w.lower() for w in heard]
        n = len(heard)
        alike = [dict(self._alike(w)) for w in heard]
        merged = [{w: cost + c.merge for w, cost in self._alike(a + b) if len(w) >= 5}
                  for a, b in zip(heard, heard[1:])]
        loops = (self.start, self.accept)
        # (cost, tie-break, state, position, words so far); a state is settled k times per position.
        tie = itertools.count()
        heap = [(0.0, next(tie), self.start, 0, ())]
        settled: dict[tuple[int, int], int] = defaultdict(int)
        found: list[tuple[list[str], float]] = []
        steps = 0
        while heap and len(found) < k and steps < max_steps:
            steps += 1
            cost, _, state, i, words = heapq.heappop(heap)
            if max_cost is not None and cost > max_cost:
                break
            if settled[state, i] >= k:
                continue
            settled[state, i] += 1
            if i == n and state == self.accept:
                found.append((list(words), cost))
                continue
            for nxt in self._eps.get(state, ()):
                heapq.heappush(heap, (cost, next(tie), nxt, i, words))
            if i < n:  # a heard word that was not said
                heapq.heappush(heap, (cost + c.delete, next(tie), state, i + 1, words))
            for word, nxt in self._inserts.get(state, ()):  # a word said but not heard
                extra = c.insert_light if word in c.light else c.insert
                heapq.heappush(heap, (cost + extra, next(tie), nxt, i, words + (word,)))
            if state in loops:  # a request word: heard exactly, or not at all
                if i < n and heard[i] in self._by_word[state]:
                    extra = c.trailing if state == self.accept and heard[i] not in _CONNECTING else 0.0
                    heapq.heappush(heap, (cost + extra, next(tie), state, i + 1, words + (heard[i],)))
                continue
            for step, options in ((1, alike[i] if i < n else None), (2, merged[i] if i + 1 < n else None)):
                if not options:
                    continue
                for word, targets in self._by_word.get(state, {}).items():
                    sound = options.get(word)
                    if sound is not None:
                        for nxt in targets:
                            heapq.heappush(heap, (cost + c.substitute * sound, next(tie), nxt, i + step,
                                                  words + (word,)))
        return found


def object_names(text: str) -> list[str]:
    """Object names from free text such as speech_node's ``extra_prompt`` ("screwdriver, tape
    measure."): one name per comma-, full-stop- or semicolon-separated part, so that a name of two
    words stays one noun of the grammar."""
    return [" ".join(words) for part in re.split(r"[,.;:]", text) if (words := words_of(part))]


def words_of(text: str) -> list[str]:
    """Lower-case words of a transcript, as :meth:`CommandGrammar.closest` takes them."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def sentence(words: Sequence[str]) -> str:
    """Words as a transcript: capitalised (and "I"), with a full stop."""
    text = " ".join("I" if w == "i" else w for w in words)
    return (text[:1].upper() + text[1:] + ".") if text else ""


def pick_grammatical(hypotheses: Sequence[tuple[str, float]], grammar: CommandGrammar, weight: float,
                     max_steps: int = 20000) -> tuple[int, list[str], float] | None:
    """The recogniser's listed transcripts, each replaced by its closest grammatical command, and the
    one with the best decoder score minus ``weight`` per unit of edit cost: (index of the transcript
    it came from, its words, edit cost), or None when no transcript is near a command. The decoder's
    score says how well a transcript fits the audio; the edit cost how far it is from a command the
    grounding model understands. A transcript that is already a command costs nothing. A command
    none of whose tabletop words sounds like a heard word is never chosen (noise heard as "Thank
    you." must not become "Thank you the object.")."""
    best: tuple[float, int, list[str], float] | None = None
    seen: dict[tuple[str, ...], list[tuple[list[str], float]]] = {}
    for index, (text, score) in enumerate(hypotheses):
        heard = tuple(words_of(text))
        if not heard:
            continue
        if heard not in seen:
            seen[heard] = grammar.closest(list(heard), k=1, max_steps=max_steps)
        for words, cost in seen[heard]:
            if not grammar.heard_an_object_word(words, heard):
                continue
            value = float(score) - weight * cost
            if best is None or value > best[0]:
                best = (value, index, words, cost)
    return None if best is None else (best[1], best[2], best[3])


def changes_sure_word(heard: Sequence[tuple[str, float]], said: Sequence[str], sure: float) -> bool:
    """Whether turning the transcript ``heard`` ((word text, recogniser probability) pairs, as
    :meth:`~refseg_ros.speech.transcriber.Transcriber.word_probabilities` gives them) into the
    words ``said`` replaces or drops a word heard with probability at least ``sure``. Words are
    matched in order by a word edit alignment; inserting words changes nothing that was heard.
    A command the recogniser heard clearly but the grammar does not have ("the ball that is not
    red") must not become another command ("the ball that is green"). Two heard words that spell a
    said word together ("left most" -> "leftmost") are that word: joining them rewrites nothing; nor
    does completing a heard word (at least four letters) into a said word that begins with it from
    the unsure word after it ("near" sure, "the" unsure -> "nearest")."""
    said = [w.lower() for w in said]
    words = _join_split_words([(w, p) for text, p in heard for w in words_of(text)], set(said), sure)
    n, m = len(words), len(said)
    # cost[i][j]: edit distance of words[i:] and said[j:]
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n, -1, -1):
        for j in range(m, -1, -1):
            if i == n or j == m:
                cost[i][j] = (n - i) + (m - j)
            else:
                cost[i][j] = min(cost[i + 1][j + 1] + (words[i][0] != said[j]), cost[i + 1][j] + 1, cost[i][j + 1] + 1)
    i = j = 0
    while i < n:
        word, probability = words[i]
        if j < m and cost[i][j] == cost[i + 1][j + 1] + (word != said[j]):
            if word != said[j] and probability >= sure:
                return True
            i, j = i + 1, j + 1
        elif j < m and cost[i][j] == cost[i][j + 1] + 1:
            j += 1  # a said word that was not heard
        else:
            if probability >= sure:
                return True  # a heard word dropped
            i += 1
    return False


def _join_split_words(words: Sequence[tuple[str, float]], targets: set[str], sure: float) -> list[tuple[str, float]]:
    """``words`` with each pair of neighbours that spells a word of ``targets`` ("right", "most" ->
    "rightmost") joined into it, with the lower of their probabilities; and each word that begins a
    longer word of ``targets`` joined with the next word into that one when the next was heard with
    less than ``sure`` ("near", "the" -> "nearest"), with the next word's probability."""
    out: list[tuple[str, float]] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words):
            (first, p1), (second, p2) = words[i], words[i + 1]
            longer = sorted(t for t in targets if len(first) >= 4 and t.startswith(first) and t != first)
            if first + second in targets:
                out.append((first + second, min(p1, p2)))
                i += 2
                continue
            if longer and p2 < sure:
                out.append((longer[0], p2))
                i += 2
                continue
        out.append(words[i])
        i += 1
    return out
