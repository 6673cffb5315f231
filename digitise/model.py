"""Plain, frozen facts about scanned pages: what was read and where, as the rest of lgd sees it.

Coordinates are pixels in the *corrected* page image (upright and deskewed, as stored in
the PDF/A), origin top-left, boxes as (x0, y0, x1, y1) with x1/y1 exclusive.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

Box = tuple[int, int, int, int]


def union(boxes: "list[Box] | tuple[Box, ...]") -> Box:
    """The smallest box holding all of `boxes` (which must not be empty)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@dataclass(frozen=True, slots=True)
class Word:
    """One word as the OCR engine read it."""

    text: str
    box: Box
    confidence: float  # 0..100, Tesseract's scale
    line: int  # index of the text line on the page, in reading order
    block: int = 0  # index of the layout block (column/paragraph) on the page


@dataclass(frozen=True, slots=True)
class PageText:
    """Everything one OCR run read from one page."""

    words: tuple[Word, ...]
    engine: str = ""

    @property
    def mean_confidence(self) -> float:
        """Character-weighted mean word confidence; 0 when nothing was read."""
        total = sum(len(w.text) for w in self.words)
        if not total:
            return 0.0
        return sum(w.confidence * len(w.text) for w in self.words) / total

    @property
    def text(self) -> str:
        """The page's text, one line of output per OCR text line."""
        lines: dict[int, list[str]] = {}
        for w in self.words:
            lines.setdefault(w.line, []).append(w.text)
        return "\n".join(" ".join(ws) for _, ws in sorted(lines.items()))


class PageKind(StrEnum):
    """What a page of a Lloyd George record is, as far as digitise can tell."""

    card = "card"  # continuation card: dated hand-written entries
    letter = "letter"  # typed hospital letter or report
    result = "result"  # laboratory result slip: rows of analyte, value, unit, reference range
    envelope = "envelope"  # the LG envelope front (demographics)
    blank = "blank"  # no ink: a card back, a separator
    unknown = "unknown"


class DatePrecision(StrEnum):
    day = "day"
    month = "month"
    year = "year"


@dataclass(frozen=True, slots=True)
class Entry:
    """A dated entry: a card's row, a part of a letter, or a row of a result slip."""

    date: dt.date | None  # None when the date could not be read
    date_text: str  # the date as written (as read), "" if none
    text: str  # the entry's clinical text, without the date
    box: Box  # the entry's region on the page
    confidence: float  # mean OCR confidence of the entry's words
    precision: DatePrecision = DatePrecision.day


@dataclass(frozen=True, slots=True)
class Page:
    """What digitise learned about one page of one input document."""

    number: int  # 1-based index within the input document
    width: int
    height: int
    dpi: int
    rotation: int = 0  # degrees clockwise the scan was turned to make it upright
    skew: float = 0.0  # degrees the page was turned (counter-clockwise) to deskew it
    blank: bool = False
    phash: str = ""  # perceptual hash (hex) of the corrected page image
    duplicate_of: int | None = None  # page number of the earlier scan of this page
    text: PageText | None = None  # None when the page was not OCR'd (blank)
    unreadable: bool = False  # text largely unreadable: later stages must send the page
    kind: PageKind = PageKind.unknown
    entries: tuple[Entry, ...] = ()

    @property
    def confidence(self) -> float:
        return self.text.mean_confidence if self.text else 0.0


@dataclass(frozen=True, slots=True)
class ScanDoc:
    """One input document on its way through the digitise stages.

    `inputs` is one file (PDF, TIFF, image) or, for a folder of page images, every page
    image in natural name order. `born` is the patient's date of birth, used to resolve
    two-digit years; digitise never learns identity from OCR.
    """

    source: str
    inputs: tuple[Path, ...]
    born: dt.date | None = None
    pages: tuple[Page, ...] = ()
    images: tuple[Path, ...] = ()  # corrected page images in the work folder
    pdfa: Path | None = None
    pdfa_valid: bool = False
    pdfa_findings: tuple[str, ...] = field(default=())

    @property
    def blank_pages(self) -> list[int]:
        return [p.number for p in self.pages if p.blank]

    @property
    def duplicate_pages(self) -> list[int]:
        return [p.number for p in self.pages if p.duplicate_of is not None]

    @property
    def unreadable_pages(self) -> list[int]:
        return [p.number for p in self.pages if p.unreadable]
