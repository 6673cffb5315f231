"""Which engine's reading a page keeps when lgd runs two (`--engine auto`): print to Tesseract, hand-writing to PP-OCR.

Tesseract reads every page first: it is cheap, it settles which way up the page is
(its confidence drops on upside-down print, and the orientation check is tuned to it),
and its words are enough to tell the page's kind. Cards, envelope fronts and pages of
no clear kind are then read again by PP-OCRv6, which reads hand-writing far better;
typed letters and result slips keep Tesseract's reading, which is slightly better on
print (issue 10) and costs nothing more.
"""

from __future__ import annotations

import re

from PIL import Image

from digitise import kinds
from digitise.entries import HEADER_WORDS
from digitise.model import Box, PageKind, PageText, Word

# Kinds whose writing is (or may be) by hand: read again by the hand-writing engine.
HAND_KINDS = frozenset({PageKind.card, PageKind.envelope, PageKind.unknown})
# A page Tesseract finds unreadable is lifted out of that only when PP-OCR finds at
# least this share of Tesseract's written words (see `choose`) ...
HAND_SHARE = 0.5
# ... and reads them at this mean confidence: legible hands read at 87-99 on the generated
# cards, the words PP-OCR keeps from a scrawl at about 76.
HAND_LIFT = 85.0
# Two words overlap when their intersection covers this share of the smaller box.
OVERLAP = 0.5


def wants_hand(text: PageText, image: Image.Image, dpi: int) -> bool:
    """Whether a page Tesseract read is worth reading again with the hand-writing engine."""
    return kinds.classify(text, image.width, image.height, dpi, False) in HAND_KINDS


def choose(first: PageText, hand: PageText) -> PageText:
    """The hand-writing engine's reading, unless the first reading is the safer one to keep.

    A page PP-OCR reads as unreadable but Tesseract does not keeps Tesseract's words. A
    page Tesseract reads as unreadable keeps Tesseract's reading (and so its flag: the
    page is sent) unless PP-OCR reads it legibly *and* finds at least HAND_SHARE as many
    written words: on scrawl PP-OCR drops most lines below its score threshold and reads
    the few left with middling confidence, which alone would lift the flag (seen on the
    generated illegible cards: 7 words at 76 against Tesseract's 31 at 9). Lifting the
    flag needs PP-OCR's written words to read at HAND_LIFT or better.
    """
    kind_of = PageKind.card  # the unreadable test only needs to know the heading is not evidence
    hand_bad, first_bad = kinds.is_unreadable(hand, kind_of), kinds.is_unreadable(first, kind_of)
    if hand_bad and not first_bad:
        return first
    if first_bad and (hand_bad or _written(hand) < HAND_SHARE * _written(first)
                      or _written_confidence(hand) < HAND_LIFT):
        return first
    return hand


def _written_words(text: PageText) -> list[Word]:
    """Words with a letter or digit, the printed card heading left out."""
    return [w for w in text.words if any(c.isalnum() for c in w.text)
            and re.sub(r"[^a-z0-9]", "", w.text.lower()) not in HEADER_WORDS]


def _written(text: PageText) -> int:
    return len(_written_words(text))


def _written_confidence(text: PageText) -> float:
    return PageText(tuple(_written_words(text))).mean_confidence


def merge(first: PageText, hand: PageText) -> PageText:
    """One token per place on the page: both readings' words, the more confident where boxes overlap.

    Lines are the hand reading's; a word of the first reading joins the hand line whose
    box it sits in vertically, or a line of its own after them.
    """
    kept: list[Word] = []
    for w in hand.words:
        rivals = [f for f in first.words if _overlaps(w.box, f.box)]
        if all(w.confidence >= f.confidence for f in rivals):
            kept.append(w)
    extra = [f for f in first.words
             if not any(_overlaps(f.box, w.box) and w.confidence >= f.confidence for w in hand.words)]
    lines = {}
    for w in hand.words:
        box = lines.get(w.line)
        lines[w.line] = w.box if box is None else (min(box[0], w.box[0]), min(box[1], w.box[1]),
                                                  max(box[2], w.box[2]), max(box[3], w.box[3]))
    spare = max(lines, default=-1) + 1
    out = list(kept)
    for f in extra:
        centre = (f.box[1] + f.box[3]) / 2
        line = next((n for n, b in lines.items() if b[1] <= centre < b[3]), None)
        if line is None:
            line = spare + f.line  # its own line, after every hand line
        out.append(Word(f.text, f.box, f.confidence, line, f.block))
    out.sort(key=lambda w: (w.line, w.box[0]))
    return PageText(tuple(out), engine=f"{hand.engine} + {first.engine}")


def _overlaps(a: Box, b: Box) -> bool:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return smaller > 0 and w * h >= OVERLAP * smaller
