"""The words a spoken command may use, and the recogniser tokens outside them. No ROS, no recogniser.

A tabletop command is made of a small lexicon: the grounding vocabulary (object nouns and their
synonyms, colours, sizes, places; :mod:`refseg_ros.language.vocabulary`), the other words of the
grammar's templates ("to", "of", "from"), and the words of a request ("could you hand me",
:data:`~refseg_ros.speech.correction.PROTECTED`). Decoding only with the tokens that spell these
words (:func:`suppressed_tokens`, passed to the decoder's token suppression) keeps an unsure
recogniser from writing "steer" for "sphere": the word is not on the table. The price is that a
word outside the lexicon cannot be heard at all, so it is an option (``restrict_vocabulary``)
and ``extra_words`` adds the names of your own objects.
"""
from __future__ import annotations

import re
from typing import Iterable

from refseg_ros.language.grammar import TEMPLATES
from refseg_ros.language.vocabulary import ORDINAL_WORDS, keywords
from refseg_ros.speech.correction import PROTECTED

__all__ = ["command_lexicon", "suppressed_tokens", "PUNCTUATION"]

#: Marks the recogniser may write between and after words.
PUNCTUATION = (".", ",", "?", "!", "'", "-")
_NUMBERS = ("one", "two", "three", "four", "five", "first", "last") + tuple(ORDINAL_WORDS.values())


def command_lexicon(extra_words: Iterable[str] = ()) -> set[str]:
    """Every lower-case word a command may use: vocabulary, template, request and number words."""
    words = set(keywords()) | set(PROTECTED) | set(_NUMBERS)
    for _kind, _params, template in TEMPLATES:
        words.update(w for w in re.findall(r"[a-z]+", re.sub(r"\{[a-zA-Z]+\}", " ", template)))
    for word in extra_words:
        words.update(re.findall(r"[a-z']+", word.lower()))
    return words


def suppressed_tokens(tokenizer, words: Iterable[str], vocab_size: int, first_special: int) -> list[int]:
    """Ids of the text tokens (below ``first_special``) that spell none of ``words`` in the forms a
    recogniser writes them (" word", " Word", "word", "Word", with an apostrophe suffix), nor
    :data:`PUNCTUATION`. ``tokenizer.encode`` maps text to ids (faster-whisper's Tokenizer)."""
    allowed: set[int] = set()
    for word in words:
        for form in (word, word.capitalize(), word.upper()):
            for text in (" " + form, form):
                allowed.update(tokenizer.encode(text))
    for mark in PUNCTUATION:
        for text in (mark, " " + mark):
            allowed.update(tokenizer.encode(text))
    return [i for i in range(min(vocab_size, first_special)) if i not in allowed]
