"""What clinical reading needs of a coded event, whoever read it from whichever format.

pipelines/records/ reads GP2GP, FHIR, HL7 and CSV into its `CodedEvent`, which has these
attributes; clinical/ depends on this shape only, so the reading of paper and the readers of
electronic records stay apart and data flows one way (records -> clinical evidence -> reconcile).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Protocol, Sequence

Precision = Literal["day", "month", "year"]


class Coding(Protocol):
    system: str
    code: str
    display: str


class CodedFact(Protocol):
    """One event of a coded record: its date (with how much of it is real), code, terms, type and flags."""

    date: dt.date | None
    precision: Precision | None
    system: str
    code: str
    display: str
    type: str
    flags: tuple[str, ...]
    translations: Sequence[Coding]
    text: str


def date_text(value: dt.date | None, precision: Precision | None) -> str | None:
    """ISO text cut to the precision: '2009', '2009-03' or '2009-03-15' (never a padded 2009-01-01)."""
    if value is None or precision is None:
        return None
    iso = value.isoformat()
    return {"year": iso[:4], "month": iso[:7], "day": iso}[precision]
