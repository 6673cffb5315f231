"""Rescans: a page is a duplicate only if it looks and reads like an earlier page of the document."""

from __future__ import annotations

from pathlib import Path

from digitise.model import Page, PageText, ScanDoc, Word
from digitise.ocr import NullEngine
from digitise.options import DigitiseOptions
from digitise.pipeline import StageContext, mark_duplicates

TEMPLATE = ("I saw Mr Lloyd in the cardiology clinic today. He gives a history of {} which has troubled him "
            "for some time. On examination he looked well. Investigations confirm a diagnosis of {}.")


def text(s: str) -> PageText:
    return PageText(tuple(Word(w, (0, 0, 1, 1), 90.0, 0) for w in s.split()))


def marked(*pages: Page) -> list[int | None]:
    ctx = StageContext(Path("."), DigitiseOptions(), NullEngine())
    return [p.duplicate_of for p in mark_duplicates(ScanDoc("a.pdf", (), pages=pages), ctx).pages]


def test_a_rescan_that_reads_the_same_is_a_duplicate():
    a = Page(1, 100, 100, 300, phash="ffff0000ffff0000", text=text(TEMPLATE.format("blackouts", "epilepsy")))
    b = Page(2, 100, 100, 300, phash="ffff0000ffff0001", text=text(TEMPLATE.format("blackouts", "epilepsy")))
    assert marked(a, b) == [None, 1]


def test_two_letters_on_one_template_are_not_duplicates_however_alike_they_look():  # H6
    a = Page(1, 100, 100, 300, phash="ffff0000ffff0000", text=text(TEMPLATE.format("blackouts", "epilepsy")))
    b = Page(2, 100, 100, 300, phash="ffff0000ffff0000",
             text=text(TEMPLATE.format("low mood and poor sleep since his divorce", "depression, and I have started")))
    assert marked(a, b) == [None, None]


def test_two_poorly_read_pages_are_never_a_rescan_however_alike_they_look():
    # Two different scrawled cards: their text can neither confirm nor refute a rescan, and
    # taking one for a copy of the other would let it be left out of a pack.
    scrawl = PageText(tuple(Word(w, (0, 0, 1, 1), 20.0, 0) for w in "nOeepede Whe aaaa".split()))
    other = PageText(tuple(Word(w, (0, 0, 1, 1), 25.0, 0) for w in "Oils Onrngnbnigetin".split()))
    a = Page(1, 100, 100, 300, phash="ffff0000ffff0000", text=scrawl)
    b = Page(2, 100, 100, 300, phash="ffff0000ffff0003", text=other)
    assert marked(a, b) == [None, None]
    # Not even when the poor reads happen to agree: a low-confidence reading is noise.
    c = Page(3, 100, 100, 300, phash="ffff0000ffff0000", text=scrawl)
    assert marked(a, c) == [None, None]


def test_a_well_read_page_and_a_poorly_read_one_are_not_a_rescan():
    good = text(TEMPLATE.format("blackouts", "epilepsy"))
    poor = PageText(tuple(Word(w.text, w.box, 40.0, 0) for w in good.words))  # same words, read unsurely
    a = Page(1, 100, 100, 300, phash="ffff0000ffff0000", text=good)
    b = Page(2, 100, 100, 300, phash="ffff0000ffff0000", text=poor)
    assert marked(a, b) == [None, None]
    assert marked(b, a) == [None, None]


def test_pages_with_no_words_are_not_rescans():
    a = Page(1, 100, 100, 300, phash="ffff0000ffff0000", text=PageText(()))
    b = Page(2, 100, 100, 300, phash="ffff0000ffff0000", text=PageText(()))
    assert marked(a, b) == [None, None]


def test_blank_pages_are_never_rescans():
    a = Page(1, 100, 100, 300, blank=True)
    b = Page(2, 100, 100, 300, blank=True)
    assert marked(a, b) == [None, None]
