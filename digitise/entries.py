"""Splits a page's words into dated entries: card rows by their date column; letters and result slips by their own modules."""

from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import dataclass
from difflib import SequenceMatcher

from digitise.dates import DateMatch, find_dates, find_year, out_of_order
from digitise.letters import letter_entries
from digitise.model import Box, DatePrecision, Entry, PageKind, PageText, Word, union
from digitise.results import result_entries
from digitise.rows import RULE_ONLY, Row, centre_y, rows, substantive

__all__ = ["entries_for", "leading_date", "letter_entries", "rows", "segment_card", "unread_date_cells"]

# Where the date column ends, as a fraction of page width, when no date shows us.
DEFAULT_BOUNDARY = 0.25
# The boundary sits this fraction of the width left of where the notes start.
BOUNDARY_MARGIN = 0.01
# The boundary we derive is trusted only inside this band of the page width.
BOUNDARY_RANGE = (0.08, 0.45)
# A date column's gutter may be crossed by this fraction of rows (misread, over-wide word
# boxes run across it: one in five or six rows on rough handwriting), and must be at
# least MIN_GUTTER of the page width: wider than the space between two words, which is
# all a single row's gaps would otherwise offer.
GUTTER_CROSSINGS = 0.2
MIN_GUTTER = 0.01
# A gutter this wide (fraction of width) is more than the spaces of typed notes can line
# up by chance; narrower ones need other evidence of a column (see date_column).
WIDE_GUTTER = 0.03
# A "|" this close (fraction of width) to the column boundary is the printed divider.
DIVIDER_REACH = 0.04

HEADER_WORDS = frozenset(
    "date clinical notes note continuation card surname forename forenames first name names "
    "nhs no number of birth dob address medical record fp7 fp8 sheet mr mrs miss ms".split()
)


def _joined(words: tuple[Word, ...] | list[Word], texts: list[str] | None = None,
            sep: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """The words' text joined by `sep`, with each word's (start, end) in the joined string."""
    spans: list[tuple[int, int]] = []
    out = ""
    for i, w in enumerate(words):
        t = texts[i] if texts else w.text
        if out:
            out += sep
        spans.append((len(out), len(out) + len(t)))
        out += t
    return out, spans


def leading_date(words: tuple[Word, ...] | list[Word], born: dt.date | None, today: dt.date,
                  *, anywhere: bool = False) -> tuple[DateMatch, list[int]] | None:
    """A date made of the first words (or, with `anywhere`, of any words) and the indices of its words.

    The words are tried joined by spaces and then glued, because OCR sometimes splits
    "12.05.50" into "12.05" and ".50". A divider glued to a word ("1951|") is not a digit.
    """
    texts = [w.text.strip("|") for w in words]
    for sep in (" ", ""):
        text, spans = _joined(words, texts, sep)
        for m in find_dates(text, born, today):
            used = [i for i, (s, e) in enumerate(spans) if s < m.end and e > m.start]
            if anywhere or (used[0] == 0 and m.start == 0):
                return m, used
            break
    return None


def _is_header(row: Row) -> bool:
    """A printed card heading ("Date | Clinical notes"), even with an OCR slip or two."""
    tokens = [re.sub(r"[^a-z0-9]", "", w.text.lower()) for w in row.words]
    tokens = [t for t in tokens if t]
    return bool(tokens) and all(
        t in HEADER_WORDS or any(SequenceMatcher(None, t, h).ratio() >= 0.8 for h in HEADER_WORDS)
        for t in tokens
    )


def _text(words: list[Word], boundary: float | None, width: int) -> str:
    """Notes text in reading order, without ruled-line artefacts or the divider glued to a word."""
    out = []
    for w in words:
        t = w.text
        if boundary is not None and abs(w.box[0] - boundary) < DIVIDER_REACH * width:
            t = t.lstrip("|")
        if t and not RULE_ONLY.match(t):
            out.append(t)
    return " ".join(out)


def _divided(words: tuple[Word, ...], width: int) -> tuple[tuple[Word, ...], list[float]]:
    """Words with the printed column divider cut out of them, and where the divider was seen.

    Tesseract reads the divider as "|", alone or glued to a neighbour ("1951|",
    "28/2/1963|C/O", "|C/O"). A "|" in the band where a date column can end, and not
    followed by a date separator (as the "1" in "2|/5/76" is), is taken as the divider:
    the word is cut there, each piece keeping its share of the box by characters.
    """
    lo, hi = BOUNDARY_RANGE[0] * width, BOUNDARY_RANGE[1] * width
    out: list[Word] = []
    bars: list[float] = []
    for w in words:
        x0, y0, x1, y1 = w.box
        per = (x1 - x0) / max(1, len(w.text))
        cuts = [m for m in re.finditer(r"\|+", w.text)
                if lo <= x0 + per * (m.start() + m.end()) / 2 <= hi
                and w.text[m.end():m.end() + 1] not in {"/", ".", ",", "-"} - {""}]
        bars.extend(x0 + per * (m.start() + m.end()) / 2 for m in cuts)
        if not cuts:
            out.append(w)
            continue
        edges = [0, *(i for m in cuts for i in (m.start(), m.end())), len(w.text)]
        for s, e in zip(edges[::2], edges[1::2]):
            if s < e:
                out.append(Word(w.text[s:e], (round(x0 + per * s), y0, round(x0 + per * e), y1),
                                w.confidence, w.line, w.block))
    return tuple(out), bars


def date_column(page_rows: tuple[Row, ...], width: int, born: dt.date | None,
                today: dt.date, bars: list[float] = ()) -> tuple[float, bool]:
    """Where the date column ends (pixels) and whether the card has such a column at all.

    A ruled card has a gutter: an x-range in the left part of the page that (almost) no
    row writes across, with dates to its left and notes to its right; the boundary sits
    just left of where the notes start. This needs no date to have been read. Failing a
    clear gutter, the printed divider read as "|" in two or more rows (`bars`) marks it.
    Without either, the dates, if any, were written inline at the start of the notes.
    """
    lines = [[w for w in r.words if not RULE_ONLY.match(w.text)] for r in page_rows
             if substantive(r.words) and not _is_header(r)]
    lines = [ws for ws in lines if ws]
    divider = _divider(bars, width)
    gutter = _gutter(lines, width)
    if gutter:
        boundary = max(gutter[0], gutter[1] - BOUNDARY_MARGIN * width)
        # Typed inline notes can line their spaces up into a narrow gutter too. A real
        # column shows itself: a gutter wider than a space or two, continuation rows
        # with an empty date cell, dates in most cells, or the printed divider.
        cells = [[w for w in ws if w.box[2] <= boundary] for ws in lines]
        empty = sum(not c for c in cells)
        dated = sum(leading_date(c, born, today, anywhere=True) is not None for c in cells if c)
        if (gutter[1] - gutter[0] >= WIDE_GUTTER * width or empty or divider is not None
                or dated * 2 >= len(lines) - empty):
            return boundary, True
    if divider is not None:
        return divider, True
    cuts: list[float] = []
    for ws in lines:
        found = leading_date(ws, born, today)
        if found and ws[0].box[0] <= BOUNDARY_RANGE[1] * width and found[1][-1] + 1 < len(ws):
            cuts.append(ws[found[1][-1] + 1].box[0] - BOUNDARY_MARGIN * width)
    lo, hi = BOUNDARY_RANGE[0] * width, BOUNDARY_RANGE[1] * width
    return (min(max(statistics.median(cuts), lo), hi) if cuts else DEFAULT_BOUNDARY * width), False


def _gutter(lines: list[list[Word]], width: int) -> tuple[int, int] | None:
    """The widest x-range inside BOUNDARY_RANGE that few rows cross, with ink on both sides."""
    if not lines:
        return None
    lo, hi = int(BOUNDARY_RANGE[0] * width), int(BOUNDARY_RANGE[1] * width)
    cover = [0] * (hi - lo)
    for ws in lines:
        seen = [False] * (hi - lo)
        for w in ws:
            for x in range(max(w.box[0], lo), min(w.box[2], hi)):
                seen[x - lo] = True
        cover = [c + s for c, s in zip(cover, seen)]
    allowed = GUTTER_CROSSINGS * len(lines)
    runs: list[tuple[int, int]] = []
    start = None
    for x, c in enumerate([*cover, len(lines) + 1]):
        if c <= allowed and start is None:
            start = x
        elif c > allowed and start is not None:
            runs.append((start + lo, x + lo))
            start = None
    gutters = [(g0, g1) for g0, g1 in runs if g1 - g0 >= MIN_GUTTER * width
               and any(w.box[2] <= g0 + 1 for ws in lines for w in ws)
               and any(w.box[0] >= g1 - 1 for ws in lines for w in ws)]
    return max(gutters, key=lambda g: g[1] - g[0], default=None)


def _divider(bars: list[float], width: int) -> float | None:
    """The x of the printed divider when two or more rows read it at the same place."""
    if not bars:
        return None
    centre = statistics.median(bars)
    return centre if sum(abs(b - centre) <= 2 * BOUNDARY_MARGIN * width for b in bars) >= 2 else None


@dataclass
class _Draft:
    date: DateMatch | None
    date_text: str
    date_words: list[Word]
    notes: list[Word]


def segment_card(text: PageText, width: int, height: int, born: dt.date | None,
                 today: dt.date) -> tuple[Entry, ...]:
    """Split a continuation card into entries, one per row that starts with a date."""
    words, bars = _divided(text.words, width)
    page_rows = rows(words)
    boundary, has_column = date_column(page_rows, width, born, today, bars)
    drafts: list[_Draft] = []
    for row in page_rows:
        words = [w for w in row.words if not RULE_ONLY.match(w.text.strip())]
        if not words or (not drafts and _is_header(row)):
            continue
        left = [w for w in words if has_column and (w.box[0] + w.box[2]) / 2 < boundary]
        right = [w for w in words if w not in left]
        started = _row_start(left, right, words, has_column, born, today)
        if started is not None:
            drafts.append(started)
        elif not drafts:
            if substantive(words):
                drafts.append(_Draft(None, "", [], list(words)))
        else:
            drafts[-1].notes.extend(words)
    _drop_out_of_order(drafts)
    return tuple(_entry(d, boundary if has_column else None, width) for d in drafts)


@dataclass(frozen=True, slots=True)
class DateCell:
    """A cell of a card's date column holding writing that did not read as a date."""

    box: Box  # from its first word to the column's end, a quarter of a line taller each way
    words: tuple[Word, ...]  # the page's words inside the box, as the engine read them
    year: int | None  # a year read alone in the cell: a second look must agree with it


def unread_date_cells(text: PageText, width: int, height: int, born: dt.date | None,
                      today: dt.date) -> tuple[DateCell, ...]:
    """The date cells that `segment_card` could not read a date from, top to bottom.

    A cell whose words run across the column's end (a misread glued to the notes) is
    left out: its box would cut a word in two.
    """
    words, bars = _divided(text.words, width)
    page_rows = rows(words)
    boundary, has_column = date_column(page_rows, width, born, today, bars)
    if not has_column:
        return ()
    cells = []
    for row in page_rows:
        left = [w for w in row.words if not RULE_ONLY.match(w.text.strip())
                and (w.box[0] + w.box[2]) / 2 < boundary]
        if not substantive(left) or _is_header(row) or leading_date(left, born, today, anywhere=True):
            continue
        top, bottom = min(w.box[1] for w in left), max(w.box[3] for w in left)
        pad = (bottom - top) // 4
        box = (max(0, min(w.box[0] for w in left) - 2 * pad), max(0, top - pad),
               max(round(boundary), max(w.box[2] for w in left)), min(height, bottom + pad))
        inside = tuple(w for w in text.words if box[1] <= centre_y(w) <= box[3] and w.box[0] < box[2])
        if any(w.box[2] > box[2] for w in inside):
            continue
        year = find_year(_cell_text(left), born, today)
        cells.append(DateCell(box, inside, year.date.year if year else None))
    return tuple(cells)


def _row_start(left: list[Word], right: list[Word], words: list[Word], has_column: bool,
               born: dt.date | None, today: dt.date) -> _Draft | None:
    """The new entry this row starts, or None when it continues the previous one."""
    if has_column and substantive(left):
        found = leading_date(left, born, today, anywhere=True)
        if found:
            # The whole cell is the date as written: a misread day ("Y7TH JAN 1953") stays
            # with the date it belongs to, not in the notes.
            return _Draft(found[0], _cell_text(left), list(left), list(right))
        # Ink in the date column that is not a readable date: a new entry, rather than
        # notes silently filed under the previous date, dated by its year if that much
        # was read. The cell's words stay in the text too, in case they were notes.
        cell = _cell_text(left)
        return _Draft(find_year(cell, born, today), cell, [], list(words))
    inline = right if has_column else words
    found = leading_date(inline, born, today)
    if found:
        match, used = found
        date_words = [inline[i] for i in used]
        return _Draft(match, match.text, date_words, [w for w in words if w not in date_words])
    return None


def _cell_text(words: list[Word]) -> str:
    return " ".join(t for t in (w.text.strip("|") for w in words) if t)


def _drop_out_of_order(drafts: list[_Draft]) -> None:
    """Unset the dates that break the card's chronology; date_text keeps what was read."""
    dated = [d for d in drafts if d.date]
    for i in out_of_order([d.date for d in dated]):
        dated[i].date = None


def _entry(d: _Draft, boundary: float | None, width: int) -> Entry:
    words = d.date_words + d.notes
    confidence = statistics.mean(w.confidence for w in words) if words else 0.0
    return Entry(
        date=d.date.date if d.date else None,
        date_text=d.date_text,
        text=_text(d.notes, boundary, width),
        box=union([w.box for w in words]),
        confidence=round(confidence, 1),
        precision=d.date.precision if d.date else DatePrecision.day,
    )


def entries_for(kind: PageKind, text: PageText | None, width: int, height: int,
                born: dt.date | None, today: dt.date) -> tuple[Entry, ...]:
    """The entries of a page of `kind`: cards, letters and result slips have them, other pages none."""
    if text is None:
        return ()
    if kind is PageKind.card:
        return segment_card(text, width, height, born, today)
    if kind is PageKind.letter:
        return letter_entries(text, width, height, born, today)
    if kind is PageKind.result:
        return result_entries(text, width, height, born, today)
    return ()
