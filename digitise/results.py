"""Reads a laboratory result slip: which rows are results (analyte, value, unit, range, flag) and the sample's date.

A slip is told by its layout, not by its printed words: several rows that read as a
name, then a number, then a unit or a reference range. "Specimen", "Collected" or
"Reference range" may be printed or not; they only help find which date is the sample's.
Every row of a slip is in some entry: one per result row, and one per run of other rows
(the header, a comment, a hand-written note), so reconciliation sees all of it.

Rows come from the words' boxes (rows.py), never from the engine's text lines, and a table
printed as two blocks side by side is cut into its blocks before its lines are read, so one
entry holds one analyte's name, value, unit and range and never a neighbour's.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics

from digitise.dates import DateMatch, find_dates
from digitise.model import Entry, PageText, Word
from digitise.ppocr import split_box
from digitise.rows import Row, entry_of, rows

# Three results make a table; and result lines must be at least as many as the rows of
# prose (PROSE_WORDS or more words), so that a letter or a summary quoting a few results
# stays what it is. A slip's header rows ("Hosp No: M969596 Requested by: Dr Moore") are short.
RESULT_MIN_ANALYTES = 3
PROSE_WORDS = 8
# Two results make a slip only when a labelled sample or report date says it is one
# ("Collected: 14.3.12"): a thyroid or a diabetes panel has two rows.
LABELLED_MIN_ANALYTES = 2
# A name that starts a second result on the same row, this many word heights or more right
# of the word before it, starts a block of the table printed beside the first; two rows
# must start one there, within BLOCK_ALIGN word heights, for the page to be cut.
BLOCK_GAP = 1.5
BLOCK_ALIGN = 1.0
BLOCK_MIN_ROWS = 2

# "139", "5.9", "<5", ">90", "13.2*", "5.9H": a measured value, perhaps with its flag glued on.
_VALUE = re.compile(r"^[<>≤≥]?\d+(?:\.\d+)?[*!]?[HLhl]?$")
# Units as slips print them: anything per something ("mmol/L", "g/dL", "x10^9/L",
# "mL/min/1.73m2", "mm/hr", "IU/L"), a power of ten per litre, or a short list of plain ones.
_UNIT = re.compile(
    r"^(?:[x×*]?1\d[\^*~]?\d{1,2}/[a-z1|]+|[a-zµμ%]+(?:/[a-z0-9.µμ]+)+|%|fl|pg|secs?|ratio|mmhg|kpa|iu|units?)$",
    re.IGNORECASE,
)
# A reference range: "(133-146)", "130 - 170", "[3.5-5.3]", "4.0 to 11.0"; not a date ("12-03-88").
_RANGE = re.compile(r"(?<![\d/.\-])\d+(?:\.\d+)?\s*(?:-|–|—|to)\s*\d+(?:\.\d+)?(?![\d/\-]|\.\d)")
_BOUND = re.compile(r"^[(\[]?[<>≤≥]\s?\d+(?:\.\d+)?[)\]]?$")  # "(<5)", "<0.5": a one-sided range
_LETTERED = re.compile(r"^[A-Za-z]\d{1,3}$")  # "T4", "T3", "B12": a letter and its number
_FLAG = re.compile(r"^(?:[HL*!]|HIGH|LOW|[(\[]?[HL][)\]]?)$", re.IGNORECASE)
_NUMBER = re.compile(r"^[(\[]?[<>]?\d+(?:\.\d+)?[)\]]?$|^[-–—]$")
# Which printed date is which: the label nearest before it says. The sample's date wins,
# then the report's (or the receipt's, or one labelled just "Date"), then any other; a
# date of birth is never the slip's date.
_LABEL = re.compile(r"(?i)(?P<birth>\bd\.?\s?o\.?\s?b\b|born|birth)|(?P<sample>collect|sampl|specimen|taken|drawn|obtained)"
                    r"|(?P<report>report|receiv|authori[sz]|print|issued|verified)")
_RANKS = {"sample": 0, "report": 1}

def result_lines(page_rows: tuple[Row, ...]) -> list[tuple[int, ...]]:
    """The rows (indices) that hold results, one tuple per table line, top to bottom.

    A line is one row reading name, value, then a unit or a reference range; or a row of
    names and values whose units and ranges are printed on the row below it (a slip in
    two columns), the two rows then being one line.
    """
    tokens = [_tokens(r) for r in page_rows]
    lines: list[tuple[int, ...]] = []
    i = 0
    while i < len(page_rows):
        values = _values(tokens[i])
        if values and _measured(tokens[i][values[0] + 1:]):
            lines.append((i,))
        elif values and i + 1 < len(page_rows) and _units_only(tokens[i + 1]):
            lines.append((i, i + 1))
            i += 1
        i += 1
    return lines


def _tokens(row: Row) -> list[str]:
    return [w.text.strip(",;:") for w in row.words]


def _named(token: str) -> bool:
    """A name of an analyte: two letters or more ("Na", "HbA1c"), or letters and a number ("T4", "B12")."""
    return (sum(c.isalpha() for c in token) >= 2 or bool(_LETTERED.match(token))) and not _UNIT.match(token)


def _values(tokens: list[str]) -> list[int]:
    """Indices of the tokens that read as a value measured for the name just before them."""
    return [i for i, t in enumerate(tokens) if i and _VALUE.match(t) and _named(tokens[i - 1])]


def _measured(rest: list[str]) -> bool:
    """Whether the tokens after a value hold its unit or a reference range."""
    return any(_UNIT.match(t) or _BOUND.match(t) for t in rest) or bool(_RANGE.search(" ".join(rest)))


def _units_only(tokens: list[str]) -> bool:
    """A row of units and ranges alone, with no name of its own: the lower half of a two-row line."""
    plain = [t for t in _RANGE.sub(" ", " ".join(tokens)).split() if t.strip("()[]")]
    return _measured(tokens) and all(_UNIT.match(t) or _BOUND.match(t) or _FLAG.match(t) or _NUMBER.match(t)
                                     or not any(c.isalnum() for c in t) for t in plain)


def is_result_slip(page_rows: tuple[Row, ...]) -> bool:
    """Whether the page's rows make a result slip: enough results, and no more prose than result lines."""
    lines = result_lines(page_rows)
    in_lines = {i for line in lines for i in line}
    analytes = sum(len(_values(_tokens(page_rows[line[0]]))) for line in lines)
    prose = sum(len(r.words) >= PROSE_WORDS for i, r in enumerate(page_rows) if i not in in_lines)
    enough = analytes >= RESULT_MIN_ANALYTES or (analytes >= LABELLED_MIN_ANALYTES and _labelled_date(page_rows))
    return enough and len(lines) >= prose


def _labelled_date(page_rows: tuple[Row, ...]) -> bool:
    """Whether a printed date is labelled as a sample's or a report's ("Collected: 4.9.84", "Reported 12/3/88")."""
    for row in page_rows:
        line, after = row.text, 0
        for m in find_dates(row.text, None, dt.date.max):
            kinds = [k.lastgroup for k in _LABEL.finditer(line[after:m.start])]
            after = m.end
            if kinds and kinds[-1] in _RANKS:
                return True
    return False


def slip_date(page_rows: tuple[Row, ...], born: dt.date | None, today: dt.date) -> DateMatch | None:
    """The sample's date, else the report's, else the first other date; never the date of birth."""
    found: dict[int, DateMatch] = {}
    for row in page_rows:
        line, after = row.text, 0
        for m in find_dates(line, born, today):
            label, after = line[after:m.start], m.end
            kinds = [k.lastgroup for k in _LABEL.finditer(label)]
            if (kinds and kinds[-1] == "birth") or m.date == born:
                continue
            rank = _RANKS[kinds[-1]] if kinds else 1 if re.search(r"(?i)\bdate\b", label) else 2
            found.setdefault(rank, m)
    return found[min(found)] if found else None


def slip_rows(words: tuple[Word, ...] | list[Word]) -> tuple[Row, ...]:
    """A slip's rows in reading order: rows by their boxes, a table printed in blocks side by side
    read block by block (each block's rows top to bottom), glued words parted (see `parted`)."""
    return in_blocks(rows(parted(words)))


def result_entries(text: PageText, width: int, height: int, born: dt.date | None,
                   today: dt.date) -> tuple[Entry, ...]:
    """One entry per result line, one per run of other rows, in reading order, all dated with the slip's date."""
    page_rows = slip_rows(text.words)
    date = slip_date(page_rows, born, today)
    starts = {line[0]: line for line in result_lines(page_rows)}
    parts: list[list[Row]] = []
    others: list[Row] = []
    i = 0
    while i < len(page_rows):
        line = starts.get(i)
        if line is None:
            others.append(page_rows[i])
            i += 1
            continue
        if others:
            parts.append(others)
            others = []
        parts.append([page_rows[j] for j in line])
        i = line[-1] + 1
    if others:
        parts.append(others)
    return tuple(e for e in (entry_of(p, date) for p in parts) if e is not None)


# -- tables printed as blocks side by side ---------------------------------------------------


def in_blocks(page_rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """The rows with a table of blocks side by side read block by block.

    A block starts where a name and its value begin a second result on a row, far right of
    the word before it, at the same x on two or more rows. The rows from the first such row
    to the end of the table (the rows that still hold result lines or units) are cut at that
    x; the left block's rows come first, then the right block's. Anything else is left as it is.
    """
    cut = _block_start(page_rows)
    if cut is None:
        return page_rows
    split = [_split(r, cut) for r in page_rows]
    starts = [i for i, (left, right) in enumerate(split) if left and right and _starts_result(right)]
    first, last = starts[0], starts[-1]
    while last + 1 < len(page_rows) and _table_row(split[last + 1]):
        last += 1
    left = [part for part, _ in split[first:last + 1] if part]
    right = [part for _, part in split[first:last + 1] if part]
    return (*page_rows[:first], *(Row(w) for w in left), *(Row(w) for w in right), *page_rows[last + 1:])


def _block_start(page_rows: tuple[Row, ...]) -> float | None:
    """Where a second block of the table starts (pixels), or None when the table is one block.

    Two rows must say so: rows that start a result there, or rows of units and ranges alone
    that part there into two (the units printed under each block's values).
    """
    height = statistics.median(w.box[3] - w.box[1] for r in page_rows for w in r.words) if page_rows else 0
    starts: list[float] = []
    for row in page_rows:
        tokens = _tokens(row)
        for v in _values(tokens):
            name = _name_start(tokens, v)
            if name > 0 and row.words[name].box[0] - row.words[name - 1].box[2] >= BLOCK_GAP * height:
                starts.append(row.words[name].box[0])
    for x in sorted(starts):
        cut = x - BLOCK_ALIGN * height
        units = sum(all(h and _units_only(_tokens(Row(h))) for h in _split(r, cut)) for r in page_rows)
        if sum(abs(s - x) <= BLOCK_ALIGN * height for s in starts) + units >= BLOCK_MIN_ROWS:
            return cut
    return None


def _name_start(tokens: list[str], value: int) -> int:
    """The index of the first word of the name before the value at `value` ("Free T4 19": "Free")."""
    i = value - 1
    while i > 0 and _named(tokens[i - 1]) and not _VALUE.match(tokens[i - 1]) and not _RANGE.search(tokens[i - 1]):
        i -= 1
        if value - i >= 3:  # names of results are short; more words are the row before's unit or flag
            break
    return i


def _split(row: Row, cut: float) -> tuple[tuple[Word, ...], tuple[Word, ...]]:
    left = tuple(w for w in row.words if (w.box[0] + w.box[2]) / 2 < cut)
    return left, tuple(w for w in row.words if (w.box[0] + w.box[2]) / 2 >= cut)


def _starts_result(words: tuple[Word, ...]) -> bool:
    return bool(_values(_tokens(Row(words))))


def _table_row(halves: tuple[tuple[Word, ...], tuple[Word, ...]]) -> bool:
    """Whether a row cut in two still belongs to the table: each half a result, units alone, or empty."""
    return any(halves) and all(not h or _starts_result(h) or _units_only(_tokens(Row(h))) for h in halves)


# -- words an engine glued together --------------------------------------------------------

# "Sex:F", "Comment:Results", "D0B:15/06/1935": a printed label glued to what follows it
# (PP-OCR drops the space after a colon); "Bilirubin3": a name glued to its value.
_GLUED_LABEL = re.compile(r"^([A-Za-z][A-Za-z0.]*[A-Za-z][:])(\S+)$")
_GLUED_VALUE = re.compile(r"^([A-Za-z]{4,})(\d+(?:\.\d+)?)$")
# "D0B", "N0:": capitals with a zero among them; the zero is the letter O.
_CAPS_WITH_ZERO = re.compile(r"^(?=(?:[A-Z0]*[A-Z]){2})[A-Z0]*0[A-Z0]*:?$")


def parted(words: tuple[Word, ...] | list[Word]) -> tuple[Word, ...]:
    """The words with labels and values an engine glued together parted again, each part
    with its share of the box; a full-width colon read as a colon, a zero among capitals as O.
    """
    out: list[Word] = []
    for w in words:
        text = w.text.replace("\uff1a", ":")
        glued = _GLUED_LABEL.match(text) or _GLUED_VALUE.match(text)
        parts = [glued.group(1), glued.group(2)] if glued else [text]
        parts = [p.replace("0", "O") if _CAPS_WITH_ZERO.match(p) else p for p in parts]
        if parts == [w.text]:
            out.append(w)
            continue
        out.extend(Word(t, b, w.confidence, w.line, w.block) for t, b in zip(parts, split_box(w.box, parts)))
    return tuple(out)
