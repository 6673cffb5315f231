"""How lgd compares written words, for search and reconcile alike: one place, so they cannot drift.

`words_of`/`normalise` give the words of a text as the vocabulary compares them (case-folded,
edge punctuation dropped); `fold` maps the letters OCR confuses onto one key (rn/m, 0/o, 1/l/i,
|/l, 5/s), which the search index stores beside each word and reconcile uses to recognise a
misread word, within one concept's own forms only (reading.py).
"""

from __future__ import annotations

# Punctuation around a word in running text that is not part of it; "#", "?", "/" and "-"
# are kept, since "#", "?cancer", "C/O" and "Osgood-Schlatter" are words as written.
EDGE = "\"'.,;:!?()[]{}\u2018\u2019\u201c\u201d\u2014\u2013*"
OCR_FOLDS = (("rn", "m"), ("0", "o"), ("1", "l"), ("i", "l"), ("|", "l"), ("5", "s"))


def words_of(text: str) -> list[str]:
    """Lower-cased words of `text` as the vocabulary compares them (edge punctuation dropped)."""
    return [w for w in (word.strip(EDGE).casefold() for word in text.split()) if w]


def normalise(text: str) -> str:
    return " ".join(words_of(text))


def fold(word: str) -> str:
    """The word's key under OCR's usual confusions; two words with one key may be one word misread."""
    folded = word.lower()
    for a, b in OCR_FOLDS:
        folded = folded.replace(a, b)
    return folded
