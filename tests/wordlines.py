"""Page text written as literals for tests: rows of words with boxes, as OCR would return them."""

from __future__ import annotations

from digitise.model import PageText, Word

CHAR = 18  # pixels per character of the literal words


def line(y, *cells, conf=92.0, h=32):
    """Words of `cells` [(x, "some words"), ...] on one row whose top is `y`."""
    out = []
    for x, text in cells:
        for w in text.split():
            out.append(Word(w, (x, y, x + CHAR * len(w), y + h), conf, 0, 0))
            x += CHAR * (len(w) + 1)
    return out


def page(*lines):
    return PageText(tuple(w for ln in lines for w in ln))
