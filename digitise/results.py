"""Reads a laboratory result slip: which rows are results (analyte, value, unit, range, flag) and the sample's date.

A slip is told by its layout, not by its printed words: several rows that read as a
name, then a number, then a unit or a reference range. "Specimen", "Collected" or
"Reference range" may be printed or not; they only help find which date is the sample's.
Every row of a slip is in some entry: one per result row, and one per run of other rows
(the header, a comment, a hand-written note), so reconciliation sees all of it.
"""

from __future__ import annotations

import datetime as dt
import re

from digitise.dates import DateMatch, find_dates
from digitise.model import Entry, PageText
from digitise.rows import Row, entry_of, rows

# Three results make a table; and result lines must be at least as many as the rows of
# prose (PROSE_WORDS or more words), so that a letter or a summary quoting a few results
# stays what it is. A slip's header rows ("Hosp No: M969596 Requested by: Dr Moore") are short.
RESULT_MIN_ANALYTES = 3
PROSE_WORDS = 8

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
    return sum(c.isalpha() for c in token) >= 2 and not _UNIT.match(token)


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
    return analytes >= RESULT_MIN_ANALYTES and len(lines) >= prose


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


def result_entries(text: PageText, width: int, height: int, born: dt.date | None,
                   today: dt.date) -> tuple[Entry, ...]:
    """One entry per result line, one per run of other rows, top to bottom, all dated with the slip's date."""
    page_rows = rows(text.words)
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
