"""Finds the dates written on Lloyd George pages, tolerant of OCR noise and strict about what a date is."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from dateutil import parser as dateparser

from digitise.model import DatePrecision

# Characters Tesseract reads in place of digits in handwritten dates. Only these are
# trusted: a wider map (B->8, Z->2, ...) turns ordinary words into dates.
_NOISE = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "|": "1", "S": "5"})
_N = r"[0-9OoIl|S]"  # a digit as OCR may have read it
# Before a month name a day holds at least one real digit, so that words such as "Il"
# or "So" never become a day. Numeric dates are checked after matching instead
# (_MIN_REAL_DIGITS), because their two separators are evidence enough for "3/S/76".
_G12 = rf"(?:\d{_N}?|{_N}\d)"
_NN = rf"{_N}{{1,2}}"
_MIN_REAL_DIGITS = 3
_YEAR = rf"(?:{_N}{{4}}|{_N}{{2}})"
_MONTH = (
    r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# Month names as handwriting OCRs them: a misread capital with the rest intact ("Sun",
# "dun", "@ug", "Nay", "Mov"). Each ending belongs to one month only, so the repair is
# unambiguous; it is accepted only between a day and a year (see find_dates).
_REPAIRED = r"(?i:[sdftilyj]an|[sdftilyj]u[nl]|[@oq]ug|[@oq]pr|[nhw]a[yr]|[mw]ov)"
_REPAIRS = {"an": "Jan", "un": "Jun", "ul": "Jul", "ug": "Aug", "pr": "Apr", "ay": "May",
            "ar": "Mar", "ov": "Nov"}
_START = r"(?<![\w/.\-])"  # not glued to a word or to another number's separator
_END = rf"(?!{_N}|[/\-]|\.\d)"  # "3/5/761", "1/2/80/4" and "3.5.76.2" are not dates

# Numeric dates: the same separator twice. Spaces around it are OCR's doing on a slash
# ("3 / 5 / 76"); for dots and dashes they are not allowed because "INR 2.5. 30 tabs"
# and "2-3 - 10" would otherwise read as dates. Handwritten slashes often OCR as commas
# ("16/4,1972", "10,04,78"): allowed without spaces, since "2/7, 10 cigs" is prose.
_SLASH = r"(?:[ \t]*/[ \t]*|[/,]{1,2})"
NUMERIC = re.compile(
    rf"{_START}(?P<d>{_NN})(?:"
    rf"{_SLASH}(?P<m1>{_NN}){_SLASH}(?P<y1>{_YEAR})"
    rf"|\.(?P<m2>{_NN})\.(?P<y2>{_YEAR})"
    rf"|-(?P<m3>{_NN})-(?P<y3>{_YEAR}))"
    rf"{_END}"
)
# "3rd May 1976", "3 May 76", "the 3rd of May 1976", "May 1976", "Sept. '76".
WORDED = re.compile(
    rf"{_START}(?:(?P<d>{_G12})[ \t]?(?P<suffix>(?i:st|nd|rd|th))?,?[ \t]*(?i:of[ \t]+)?)?"
    rf"(?P<mon>{_MONTH}|{_REPAIRED})(?![a-zA-Z])\.?,?[ \t]*(?P<apos>['’])?(?P<y>{_YEAR}){_END}"
)


@dataclass(frozen=True, slots=True)
class DateMatch:
    """A date found in a string: where it is, what was written, and what it means."""

    start: int
    end: int
    text: str
    date: dt.date
    precision: DatePrecision


def find_dates(text: str, born: dt.date | None, today: dt.date) -> tuple[DateMatch, ...]:
    """Every plausible date in `text`, in order; impossible or out-of-life dates are left out."""
    found: list[DateMatch] = []
    for m in NUMERIC.finditer(text):
        month = m["m1"] or m["m2"] or m["m3"]
        year = m["y1"] or m["y2"] or m["y3"]
        if sum(c.isdigit() for c in m["d"] + month + year) < _MIN_REAL_DIGITS:
            continue
        date = _resolve(_digits(m["d"]), _digits(month), year, born, today, numeric=True)
        if date:
            found.append(DateMatch(m.start(), m.end(), m.group(), date, DatePrecision.day))
    for m in WORDED.finditer(text):
        if not m["d"] and len(m["y"]) == 2 and not m["apos"]:
            continue  # "may 10 days": a month name and a bare two-digit number is prose
        day = _digits(m["d"]) if m["d"] else None
        month = m["mon"]
        if not re.fullmatch(_MONTH, month):
            if not day:
                continue  # a repaired month name needs a day beside it to be a date
            month = _REPAIRS[month[1:].lower()]
        if day and m["suffix"] and m["suffix"].lower() != _ordinal_suffix(int(day)):
            continue  # "2th" is "12th" or "20th" with a digit lost: the day is unknown
        date = _resolve(day, month, m["y"], born, today, numeric=False)
        if date:
            precision = DatePrecision.day if day else DatePrecision.month
            found.append(DateMatch(m.start(), m.end(), m.group(), date, precision))
    return _without_overlaps(found)


_YEAR_ALONE = re.compile(r"(?<![\w/.,\-])(?:19|20)\d\d(?![\w/.,\-])")


def find_year(text: str, born: dt.date | None, today: dt.date) -> DateMatch | None:
    """A lone four-digit year inside the patient's life, as year precision (1 January).

    Only for text known to be a date, such as a card's date cell whose day and month
    did not survive OCR ("161, jm 1978"): in notes a year is usually something else
    ("Appendicectomy 1985"). Real digits only; noise-mapped years are too weak alone.
    """
    for m in _YEAR_ALONE.finditer(text):
        year = int(m.group())
        if (born is None or year >= born.year) and year <= today.year:
            return DateMatch(m.start(), m.end(), m.group(), dt.date(year, 1, 1), DatePrecision.year)
    return None


def out_of_order(matches: list[DateMatch]) -> set[int]:
    """Indices of the dates that break a written-down-in-order sequence: one was misread.

    Entries go down a card in date order, so a date earlier than the one above it means
    a digit went wrong somewhere. Only dates in every longest in-order run are trusted;
    for a lone pair out of order, neither is. A month or a year is in order with any
    date inside it.
    """
    spans = [_span(m) for m in matches]
    n = len(spans)
    ends = [1] * n  # longest in-order run ending at i
    starts = [1] * n  # longest in-order run starting at i
    for i in range(n):
        for j in range(i):
            if spans[j][0] <= spans[i][1]:
                ends[i] = max(ends[i], ends[j] + 1)
    for i in reversed(range(n)):
        for j in range(i + 1, n):
            if spans[i][0] <= spans[j][1]:
                starts[i] = max(starts[i], starts[j] + 1)
    best = max(ends, default=0)
    on_run = [i for i in range(n) if ends[i] + starts[i] - 1 == best]
    return {i for i in range(n) if i not in on_run or sum(ends[j] == ends[i] for j in on_run) > 1}


def _span(match: DateMatch) -> tuple[dt.date, dt.date]:
    """The first and last day a date may mean, by its precision."""
    d = match.date
    if match.precision is DatePrecision.year:
        return d, d.replace(month=12, day=31)
    if match.precision is DatePrecision.month:
        return d, (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return d, d


def _ordinal_suffix(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _digits(group: str) -> str:
    return group.translate(_NOISE)


def _clean_year(raw: str) -> str | None:
    """The year's digits, or None when too little of it was read as real digits to trust."""
    real = sum(c.isdigit() for c in raw)
    if real < (1 if len(raw) == 2 else 2):
        return None
    return _digits(raw)


def _resolve(day: str | None, month: str, year_raw: str, born: dt.date | None, today: dt.date,
             *, numeric: bool) -> dt.date | None:
    year = _clean_year(year_raw)
    if year is None:
        return None
    if len(year) == 4:
        years = [int(year)]
    else:
        years = _centuries(int(year), born, today)
    # Two-digit years: take the first century that gives a real date inside the
    # patient's life; _centuries already ordered them by preference.
    for y in years:
        date = _interpret(day, month, y, numeric=numeric)
        if date and (born is None or date >= _first_of_period(born, day)) and date <= today:
            return date
    return None


def _first_of_period(born: dt.date, day: str | None) -> dt.date:
    # "May 1950" for someone born 20 May 1950 is within their life: compare months.
    return born if day else born.replace(day=1)


def _centuries(yy: int, born: dt.date | None, today: dt.date) -> list[int]:
    """Candidate four-digit years for `yy`, most likely first.

    With a birth date, LG records start at birth: the earliest century on or after the
    birth year wins, so born 1920 makes '21' 1921, not 2021. Without one, a pivot on
    today's two-digit year: anything later than this year's yy is last century.
    """
    if born is not None:
        return [c + yy for c in (1900, 2000) if c + yy >= born.year]
    return [(1900 if yy > today.year % 100 else 2000) + yy]


def _interpret(day: str | None, month: str, year: int, *, numeric: bool) -> dt.date | None:
    """Let dateutil read the cleaned token; None for impossible dates such as 31/02/80."""
    if numeric:
        token, want_month = f"{day}/{month}/{year}", int(month)
        if not 1 <= want_month <= 12:
            return None  # dateutil would swap day and month to rescue "5/13/80": UK dates never are
    else:
        token, want_month = f"{day or ''} {month} {year}".strip(), None
    try:
        parsed = dateparser.parse(token, dayfirst=True, default=dt.datetime(year, 1, 1))
    except (ValueError, OverflowError):
        return None
    date = parsed.date()
    if want_month is not None and (date.month != want_month or date.day != int(day or 0)):
        return None
    return date


def _without_overlaps(found: list[DateMatch]) -> tuple[DateMatch, ...]:
    """Earliest first; of overlapping matches keep the longer ("3 May 1976" over "May 1976")."""
    found.sort(key=lambda d: (d.start, -(d.end - d.start)))
    kept: list[DateMatch] = []
    for d in found:
        if kept and d.start < kept[-1].end:
            continue
        kept.append(_trimmed(d))
    return tuple(kept)


def _trimmed(d: DateMatch) -> DateMatch:
    text = d.text.rstrip(" \t.,")
    return DateMatch(d.start, d.start + len(text), text, d.date, d.precision)
