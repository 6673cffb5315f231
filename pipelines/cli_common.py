"""Option types and helpers shared by the `lgd` sub-commands and the web service's query parameters.

A date written as a day, a month or a year names a period (`period`); `--from` takes its first
day and `--to` its last, so "--to 2001" includes December 2001.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import re

from dateutil import parser as dateparser

from pipelines.errors import ExitCode, LgdError
from pipelines.identity import normalise_nhs_number, nhs_number_valid


# Two defaults that differ in every field: what the value leaves out shows up as a difference.
_DEFAULT_A = dt.datetime(1904, 1, 1)
_DEFAULT_B = dt.datetime(1908, 12, 28)


def period(value: str) -> tuple[dt.date, dt.date]:
    """The first and last day that `value` names: a day, a month ("July 2000", "2000-07") or a year ("2000")."""
    text = value.strip()
    if re.fullmatch(r"\d{4}", text):
        year = int(text)
        if year < 1:
            raise ValueError(text)
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    if m := re.fullmatch(r"(\d{4})[-/.](\d{1,2})", text):  # dateutil would read 2000-07 as a day
        year, month = int(m[1]), int(m[2])
        return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
    iso = len(re.split(r"[-/.]", text)[0]) == 4  # 2001-05-03 is year, month, day; 03/05/2001 day first
    kwargs = dict(dayfirst=not iso, yearfirst=iso)
    a = dateparser.parse(text, default=_DEFAULT_A, **kwargs)
    b = dateparser.parse(text, default=_DEFAULT_B, **kwargs)
    if a.year != b.year:
        raise ValueError("no year")
    if a.month != b.month:  # a year alone
        return dt.date(a.year, 1, 1), dt.date(a.year, 12, 31)
    if a.day != b.day:  # a month
        return dt.date(a.year, a.month, 1), dt.date(a.year, a.month, calendar.monthrange(a.year, a.month)[1])
    return a.date(), a.date()


def date_arg(option: str, last: bool):
    def parse(value: str) -> dt.date:
        try:
            first, end = period(value)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a date; write a day (2001-05-03 or 03/05/2001), a month (2001-05 or "
                f"'May 2001') or a year (2001); {option} takes the {'last' if last else 'first'} day of a month or year"
            ) from None
        return end if last else first

    parse.__name__ = "date"  # argparse names the type in its message
    return parse


def nhs_number_arg(value: str) -> str:
    digits = normalise_nhs_number(value)
    if not nhs_number_valid(digits):
        raise argparse.ArgumentTypeError(f"{value!r} is not a valid NHS number (10 digits, Modulus 11 check)")
    return digits


AS_HELP = "act as this lgd account (default: $LGD_USER); needed once the archive has accounts (lgd user)"


def add_archive_option(p: argparse.ArgumentParser) -> None:
    """--archive, and --as: a command on an archive is done by someone, named in its audit."""
    p.add_argument("--archive", metavar="DIR", help="archive folder (default: $LGD_ARCHIVE or ./lgd-archive)")
    add_as_option(p)


def add_as_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", metavar="NAME", default=None, help=AS_HELP)


def date_bound(value: str | None, name: str, last: bool) -> dt.date | None:
    """A web query's or form's date: the first (or, with `last`, the last) day of the period it names."""
    if not value or not value.strip():
        return None
    try:
        first, end = period(value.strip())
    except (ValueError, OverflowError):
        raise LgdError(f"{name} {value[:40]!r} is not a date; give a day (2001-05-03), a month (2001-05) or a year",
                       ExitCode.usage, "bad_date") from None
    return end if last else first
