"""Reads a typed letter whole: what is above the salutation, the body, and what follows the sign-off, each a dated entry.

Nothing on a letter may fall outside every entry, because reconciliation reads only the
entries: a Diagnosis block above "Dear ...", a PS or a cc line after "Yours sincerely"
is as much the letter as its body. Each part carries the letter's date; which of their
words are clinical narrative is for reconciliation to decide.
"""

from __future__ import annotations

import datetime as dt
import re
from difflib import SequenceMatcher

from digitise.dates import DateMatch, find_dates
from digitise.model import Entry, PageText
from digitise.rows import Row, entry_of, line_pitch, rows

# The date sits in the top part of the page; the Re: line's DOB sits there too.
LETTER_DATE_ZONE = 0.40
# A block (the Re: lines, the letterhead holding the date) ends where the step to the
# next row exceeds this multiple of the usual line pitch.
PARAGRAPH_GAP = 1.25
# A salutation or sign-off read with an OCR slip still counts at this difflib ratio.
FUZZY = 0.8
SALUTATION = "dear"
SIGN_OFFS = ("yours", "kind regards", "best regards", "best wishes", "with best wishes",
             "with kind regards", "regards", "many thanks")
# "Yours sincerely," "With best wishes," "Kind regards, Dr Shah": a sign-off stands on a
# short row; "Your patient was seen..." or "Regards to his wife..." are body text.
SIGN_OFF_MAX_WORDS = 4
_DOB_BEFORE = re.compile(r"(?i)(?:d\.?\s?o\.?\s?b\.?|born|date\s+of\s+birth)\W{0,3}$")


def letter_entries(text: PageText, width: int, height: int, born: dt.date | None,
                   today: dt.date) -> tuple[Entry, ...]:
    """The letter's parts as entries, top to bottom, each dated with the letter's date (not the DOB).

    The head is everything above the body: letterhead, addresses, references, a Diagnosis
    block, the salutation and a Re: block under it. The body starts after the salutation
    (and its Re: block); without one, after the letterhead block that holds the date;
    without either, at the top. The tail starts at the sign-off and runs to the foot of the
    page (signature, name, PS, cc). Every row is in exactly one part.
    """
    page_rows = rows(text.words)
    if not page_rows:
        return ()
    date, date_row = _letter_date(page_rows, height, born, today)
    start = _body_start(page_rows, date_row)
    end = next((i for i in range(start, len(page_rows)) if _is_sign_off(page_rows[i])), len(page_rows))
    parts = (page_rows[:start], page_rows[start:end], page_rows[end:])
    return tuple(e for e in (entry_of(part, date) for part in parts) if e is not None)


def _body_start(page_rows: tuple[Row, ...], date_row: int | None) -> int:
    salutation = next((i for i, r in enumerate(page_rows) if _starts_with(r, SALUTATION)), None)
    if salutation is not None:
        return _skip_re_block(page_rows, salutation + 1)
    if date_row is not None:
        return _block_end(page_rows, date_row)
    return 0


def _letter_date(page_rows: tuple[Row, ...], height: int, born: dt.date | None,
                 today: dt.date) -> tuple[DateMatch | None, int | None]:
    for i, row in enumerate(page_rows):
        if row.centre > LETTER_DATE_ZONE * height:
            break
        line = row.text
        for m in find_dates(line, born, today):
            if not _DOB_BEFORE.search(line[:m.start].rstrip()):
                return m, i
    return None, None


def _bare(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _starts_with(row: Row, word: str) -> bool:
    first = _bare(row.words[0].text)
    return bool(first) and SequenceMatcher(None, first, word).ratio() >= 0.75


def _is_sign_off(row: Row) -> bool:
    if len(row.words) > SIGN_OFF_MAX_WORDS:
        return False
    for phrase in SIGN_OFFS:
        n = len(phrase.split())
        opening = "".join(_bare(w.text) for w in row.words[:n])
        if opening and SequenceMatcher(None, opening, phrase.replace(" ", "")).ratio() >= FUZZY:
            return True
    return False


def _block_end(page_rows: tuple[Row, ...], i: int) -> int:
    """The index of the first row after the block that holds row `i` (rows at the usual pitch)."""
    pitch = line_pitch(page_rows)
    j = i
    while j + 1 < len(page_rows) and page_rows[j + 1].centre - page_rows[j].centre <= PARAGRAPH_GAP * pitch:
        j += 1
    return j + 1


def _skip_re_block(page_rows: tuple[Row, ...], i: int) -> int:
    """The index of the first body row after a "Re: name, DOB, NHS No" block at row `i`."""
    if i >= len(page_rows) or not re.match(r"(?i)re\b", page_rows[i].words[0].text):
        return i
    # The line pitch is the smallest row-to-row step: larger ones are paragraph breaks.
    # Too small a pitch only ends the block early, keeping more rows in the body.
    usual = min((b.centre - a.centre for a, b in zip(page_rows[i:], page_rows[i + 1:])), default=0)
    j = i
    while j + 1 < len(page_rows) and page_rows[j + 1].centre - page_rows[j].centre <= PARAGRAPH_GAP * usual:
        j += 1
    return j + 1
