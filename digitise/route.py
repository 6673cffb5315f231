"""Which engine's reading a page keeps when lgd runs two (`--engine auto`): print to Tesseract, hand-writing to PP-OCR.

Tesseract reads every page first: it is cheap, it settles which way up the page is
(its confidence drops on upside-down print, and the orientation check is tuned to it),
and its words are enough to tell the page's kind. Cards and envelope fronts that Tesseract
reads with less than print's confidence are then read again by PP-OCRv6, which reads most
hands far better; so are result slips and pages of no clear kind (on the generated batch,
slips whose table Tesseract could not lay out), whose tables Tesseract reads confidently
but incompletely (on 37 generated slips it read 0.818 of the printed words, at 83-96
confidence; PP-OCR 0.995: Tesseract drops units such as "umol/L", flags and values in
columns). Typed letters and cards Tesseract reads as confidently as print (typed entries,
the clearest hands) keep Tesseract's reading, which is better on print and costs nothing
more.

Merging the two readings word by word (one token per box, the more confident where boxes
overlap) was measured and dropped: PP-OCR is as confident of its misreadings as of its
right readings (98-100 for "hoadache", "forrous"), so on 26 generated cards the merge read
0.912/0.690/0.931 of the dkg/femkeklaver/humor-sans words against 0.915/0.660/0.931 for
PP-OCR alone, at the cost of both engines on every card; preferring a dictionary word
where the readings differ lost clinical shorthand (qds, bd, creps) to English words.
What is kept of Tesseract's reading is only what PP-OCR did not read at all (`fill`): print
too small for PP-OCR's shrunken detection, read by Tesseract as confidently as print.
"""

from __future__ import annotations

import re
from dataclasses import replace

from PIL import Image

from digitise import kinds
from digitise.entries import HEADER_WORDS
from digitise.model import Box, PageKind, PageText, Word

# Kinds whose writing is (or may be) by hand: read again by PP-OCR unless Tesseract reads
# them as confidently as print (PRINT_CONFIDENCE) ...
HAND_KINDS = frozenset({PageKind.card, PageKind.envelope})
# ... and kinds read again whatever Tesseract's confidence: printed tables, and pages of no
# clear kind, which on the generated batch are all slips whose table Tesseract read too
# confidently but too incompletely to be told a slip (28 of 57 slips in one run).
TABLE_KINDS = frozenset({PageKind.result, PageKind.unknown})
# A page Tesseract finds unreadable is lifted out of that only when PP-OCR finds at
# least this share of Tesseract's written words (see `choose`) ...
HAND_SHARE = 0.5
# ... and reads them at this mean confidence: legible hands read at 87-99 on the generated
# cards, the words PP-OCR keeps from a scrawl at about 76.
HAND_LIFT = 85.0
# A page whose written words Tesseract reads at this mean confidence or better is print, or
# a hand as clear as print, and keeps Tesseract's reading. On generated cards at 300 dpi
# Tesseract reads typed entries at 88-94 (word recall 0.985, PP-OCR 0.953), the clearest
# hand (humor-sans) at 85-92 (0.946 against 0.931), the others at 61-77 (0.58-0.70
# against PP-OCR's 0.66-0.92).
PRINT_CONFIDENCE = 85.0
# `fill` keeps a word of Tesseract's only if it has this many letters or digits: a single
# confident character in a margin is as often a speck as a word. A single one is kept when it
# sits on a line PP-OCR read (`_read_line`): a slip's one-letter analyte ("K", "P") or a
# one-digit value that the shrunken detection lost beside words it found.
FILL_CHARACTERS = 2
# Tesseract's lines numbered apart from PP-OCR's until `fill` numbers them all again.
LINE_OFFSET = 1_000_000


def kind_of(text: PageText, image: Image.Image, dpi: int) -> PageKind:
    """The page's kind as Tesseract's reading shows it: what routing decides by."""
    return kinds.classify(text, image.width, image.height, dpi, False)


def wants_hand(text: PageText, image: Image.Image, dpi: int, kind: PageKind | None = None) -> bool:
    """Whether a page Tesseract read is worth reading again with PP-OCR: a result slip or a page
    of no clear kind, or a card or envelope that Tesseract did not read as confidently as print.
    `kind`: the page's kind, when the caller has it already (`kind_of`)."""
    kind = kind or kind_of(text, image, dpi)
    if kind in TABLE_KINDS:
        return True
    return kind in HAND_KINDS and _written_confidence(text) < PRINT_CONFIDENCE


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


def fill(hand: PageText, first: PageText) -> tuple[PageText, int]:
    """`hand` with the words Tesseract read as confidently as print (PRINT_CONFIDENCE) where
    PP-OCR read nothing, and how many there were.

    PP-OCR detects text on the page shrunk to a longest side of 544 pixels (digitise.ppocr):
    print much smaller than the generated pages' (a footnote, a lab's smallest type) can be
    lost there, and Tesseract, which reads at full size, may have read it. A word of the first
    reading is kept only where it overlaps no word of the second, so nothing is read twice, and
    joins the line of the second it sits on.
    """
    boxes = [w.box for w in hand.words]
    kept = []
    for w in first.words:
        if w.confidence < PRINT_CONFIDENCE or any(_overlaps(w.box, b) for b in boxes):
            continue
        line, characters = _read_line(w.box, hand), sum(c.isalnum() for c in w.text)
        if characters >= FILL_CHARACTERS or (characters and line is not None):
            kept.append(replace(w, line=w.line + LINE_OFFSET if line is None else line))
    if not kept:
        return hand, 0
    return PageText(_in_reading_order([*hand.words, *kept]), engine=hand.engine), len(kept)


def _read_line(box: Box, hand: PageText) -> int | None:
    """The line of `hand` that `box` sits on (most of the shorter one's height in common), if any:
    a word kept there joins that line, so an analyte's label stays on its value's line."""
    return next((w.line for w in hand.words
                 if min(box[3], w.box[3]) - max(box[1], w.box[1]) > 0.5 * min(box[3] - box[1], w.box[3] - w.box[1])),
                None)


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _in_reading_order(words: list[Word]) -> tuple[Word, ...]:
    """The words with their lines numbered again top to bottom (by each line's top edge)."""
    tops: dict[int, int] = {}
    for w in words:
        tops[w.line] = min(tops.get(w.line, w.box[1]), w.box[1])
    number = {line: i for i, line in enumerate(sorted(tops, key=lambda line: (tops[line], line)))}
    return tuple(sorted((replace(w, line=number[w.line]) for w in words), key=lambda w: (w.line, w.box[0])))


def _written_words(text: PageText) -> list[Word]:
    """Words with a letter or digit, the printed card heading left out."""
    return [w for w in text.words if any(c.isalnum() for c in w.text)
            and re.sub(r"[^a-z0-9]", "", w.text.lower()) not in HEADER_WORDS]


def _written(text: PageText) -> int:
    return len(_written_words(text))


def _written_confidence(text: PageText) -> float:
    return PageText(tuple(_written_words(text))).mean_confidence
