"""Second looks at writing the first OCR pass could not read: the date cells of continuation cards.

A card's date cell that did not read as a date makes its entry undated (or dated by its
year alone). Each such cell is read again on its own, as a single line, in several
`LOOKS`; the new reading replaces the first only when at least `AGREE` looks read the
same date and no look reads a different one. A wrong date is worse than none, so a
single look, however confident, is never enough: Tesseract's confidence on these hands
says little (measured: misread months score 80-95), and a lost digit ("4.12.46" for
"14.12.46") still makes a valid date.
"""

from __future__ import annotations

import datetime as dt

from PIL import Image

from digitise import entries, kinds
from digitise.model import PageKind, PageText, Word
from digitise.ocr import Look, OcrEngine

# Native pixels, then the same pixels at 0.6 (a hand's strokes join differently when
# smaller) and smoothed (speckle and ragged edges go). On the fixture cards each look
# alone re-reads 30-40% of the failed cells; they err on different cells.
LOOKS = (Look(), Look(scale=0.6), Look(blur=1.0))
AGREE = 2


def date_cells(text: PageText, image: Image.Image, dpi: int, engine: OcrEngine,
               born: dt.date | None, today: dt.date) -> PageText:
    """`text` with each unread date cell of a card replaced by an agreed second reading.

    Pages that are not cards, and pages whose writing is unreadable (they are sent in
    full anyway), are returned unchanged, without a second look.
    """
    width, height = image.width, image.height
    kind = kinds.classify(text, width, height, dpi, False)
    if kind is not PageKind.card or kinds.is_unreadable(text, kind):
        return text
    cells = entries.unread_date_cells(text, width, height, born, today)
    removed: set[Word] = set()
    added: list[Word] = []
    for cell in cells:
        words = _agreed(image, cell, engine, born, today)
        if words is None:
            continue
        first = min(cell.words, key=lambda w: w.box[0]) if cell.words else None
        line, block = (first.line, first.block) if first else (-1, 0)
        removed.update(cell.words)
        added.extend(Word(w.text, w.box, w.confidence, line, block) for w in words)
    if not added:
        return text
    kept = [w for w in text.words if w not in removed]
    return PageText(tuple(sorted((*kept, *added), key=lambda w: (w.line, w.box[0]))), engine=text.engine)


def _agreed(image: Image.Image, cell: entries.DateCell, engine: OcrEngine,
            born: dt.date | None, today: dt.date) -> tuple[Word, ...] | None:
    """The first look's words when AGREE looks read one date and none reads another."""
    dates: list[tuple[dt.date, str]] = []
    first: tuple[Word, ...] | None = None
    for i, look in enumerate(LOOKS):
        if len(dates) + len(LOOKS) - i < AGREE:
            return None  # too few looks left to agree
        words = engine.read_line(image, cell.box, look).words
        found = entries.leading_date(words, born, today, anywhere=True)
        if found is None:
            continue
        date = (found[0].date, str(found[0].precision))
        if dates and date != dates[0]:
            return None
        if cell.year is not None and found[0].date.year != cell.year:
            return None
        dates.append(date)
        first = first or words
    return first if len(dates) >= AGREE else None
