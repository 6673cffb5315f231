"""Hand-written words the hand-writing engine misread into non-words, settled where the evidence is unique.

PP-OCR reads some hands with consistent glyph confusions at full confidence: one generated
hand's "e" as "o" ("hoadache", "forrous", "ropoat"), capitals inside words ("wRist"). Where
such a word is no word at all, two cheap sources often say what it was:

1. Tesseract's reading of the same box (with `--engine auto` it has read every page already):
   taken when exactly one of its overlapping words is a word, close in spelling (a misread,
   not another word that happens to sit there);
2. the letters OCR confuses (e/o, e/c, a/o, u/v, n/h, i/l): taken when exactly one way of
   swapping at most three of them gives a word.

The word list is not digitise's: the caller passes one (`WordList`, pipelines.clinical's
Reader), which never settles into a function word or a narrative word that reconcile could
pass over, so a settled word can only make an entry more, never less, in need of coded
evidence (hazard H85). A settled word's confidence is capped at SETTLED_CONFIDENCE: it is a
reading lgd inferred, not one an engine was sure of. Only cards and envelope fronts are
settled; typed pages are Tesseract's and read almost word for word.

Before any of that, symbols nobody writes in a clinical note are read as the letters they
stand for (`LOOKALIKES`): the engine's character set is print's, and a looped hand-written
"o" comes out as "©" ("C/©", "©/E" on one generated hand: 60 such words in 390 pages). A
character no record holds, which digitise.script shows as U+FFFD, is dropped from a word
with letters besides, so the rest can still be settled; the word keeps the low confidence
digitise.script gave it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Protocol

from rapidfuzz.distance import Levenshtein

from digitise.model import Box, PageText
from digitise.script import REPLACEMENT

SETTLED_CONFIDENCE = 80.0
# Letters a hand-writing engine confuses, each class read either way.
CONFUSIONS = ("eo", "ec", "ao", "uv", "nh", "il")
MIN_LETTERS = 3  # shorter tokens are shorthand as often as words ("bd", "od", "tds")
MAX_SWAPS = 3
_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
# Print's symbols that stand, in hand-writing, for the letter they look like ...
LOOKALIKES = {"©": "o", "×": "x"}


class WordList(Protocol):
    def knows(self, word: str) -> bool:
        """Whether `word` is a word at all (listed, in the vocabulary or a dictionary)."""

    def settles_into(self, word: str) -> bool:
        """Whether a misread may be settled into `word`."""


def settle(hand: PageText, first: PageText | None, words: WordList) -> tuple[PageText, int]:
    """`hand` with its non-words settled where the evidence is unique, and how many were."""
    settled, changed = [], 0
    for word in hand.words:
        text = _settled_text(word.text, word.box, first, words)
        if text == word.text:
            settled.append(word)
            continue
        changed += 1
        settled.append(replace(word, text=text, confidence=min(word.confidence, SETTLED_CONFIDENCE)))
    return (replace(hand, words=tuple(settled)) if changed else hand), changed


def _settled_text(text: str, box: Box, first: PageText | None, words: WordList) -> str:
    text = _named(text)
    lead, core, tail = _CORE.match(text).groups()
    if len(core) < MIN_LETTERS or not core.isalpha():
        return text
    lower = core if core[1:].islower() or core.isupper() else core[0] + core[1:].lower()  # "wRist"
    if lower != core and words.settles_into(lower):
        found = lower
    elif words.knows(core):
        return text
    else:
        found = _from_other_reading(box, core, first, words) or _by_confusions(lower, words)
    return text if found is None else f"{lead}{found}{tail}"


def _named(text: str) -> str:
    """`text` with print's symbols read as the letters they look like, in the case of the word's
    other letters ("©/E": "O/E", "c/©": "c/o"), and unnamed characters dropped from a word that
    has letters or digits besides ("\ufffdsthma"). A word of nothing else is kept as it is: it
    says something was written there (digitise.script)."""
    capitals = any(c.isupper() for c in text) and not any(c.islower() for c in text)
    letters = {k: v.upper() if capitals else v for k, v in LOOKALIKES.items()}
    named = "".join(letters.get(c, c) for c in text if c != REPLACEMENT)
    return named if any(c.isalnum() for c in named) else text


def _from_other_reading(box: Box, core: str, first: PageText | None, words: WordList) -> str | None:
    if first is None:
        return None
    found = set()
    for other in first.words:
        _, candidate, _ = _CORE.match(other.text).groups()
        if _overlap(box, other.box) >= 0.5 and candidate.isalpha() and candidate.casefold() != core.casefold() \
                and Levenshtein.distance(candidate.casefold(), core.casefold()) <= max(1, len(core) // 3) \
                and words.settles_into(candidate):
            found.add(candidate)
    return found.pop() if len(found) == 1 else None


def _by_confusions(lower: str, words: WordList) -> str | None:
    folded = lower.casefold()
    places = [i for i, c in enumerate(folded) if any(c in pair for pair in CONFUSIONS)]
    if len(places) > 8:  # a long word of confusable letters: too many readings to trust one
        return None
    for swaps in range(1, MAX_SWAPS + 1):
        found = set()
        for where in itertools.combinations(places, swaps):
            options = [sorted({o for pair in CONFUSIONS if folded[i] in pair for o in pair} - {folded[i]})
                       for i in where]
            for letters in itertools.product(*options):
                chars = list(lower)
                for i, letter in zip(where, letters, strict=True):
                    chars[i] = letter.upper() if lower[i].isupper() else letter
                candidate = "".join(chars)
                if words.settles_into(candidate):
                    found.add(candidate)
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def _overlap(a: Box, b: Box) -> float:
    """The shared area as a share of the smaller box."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0

