"""The coded-record model every reader produces: frozen events, codings and records, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pipelines.clinical.coded import Precision, date_text  # one partial-date model for paper and coded


EVENT_TYPES = frozenset(
    {
        "problem", "observation", "medication", "allergy", "immunisation", "procedure",
        "referral", "plan", "narrative", "encounter", "other",
    }
)

# Flags a reader may set. Reconcile must never count an event flagged degraded or
# absent_attachment as coverage: both mark content that did not travel electronically.
FLAGS = frozenset(
    {
        "degraded",  # the sender substituted a Transfer-degraded code; the meaning is only in `text`
        "absent_attachment",  # a placeholder for a document that was not sent
        "attachment",  # a document reference (the document itself is not read)
        "inactive",  # an inactive/resolved problem or an ended allergy
        "translation_only",  # the SNOMED code came from a translation, not the sender's own code
        "uncoded",  # no code at all (nullFlavor or text only); `text`/`display` is all there is
        "uncertain",  # recorded as uncertain
        "group",  # a heading over other events: a battery, cluster or report
        "authorisation",  # a medication course (authorised repeat or acute)
        "issue",  # one prescription issue of a course
        "discontinued",  # the record that a medication course was stopped
        "not_given",  # an immunisation recorded as not given
    }
)

FORMATS = ("gp2gp-ehr-extract", "fhir-stu3", "fhir-r4", "csv")


@dataclass(frozen=True, slots=True)
class Coding:
    """One (system, code) pair with its term; `system` is a canonical URI (see systems.py)."""

    system: str
    code: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class CodedEvent:
    """One entry of a coded record: a clinical fact with its date (as precise as the record says) and codes.

    `system`/`code`/`display` hold the preferred coding (SNOMED wherever the record has one);
    `translations` hold every other coding given for the same entry. `text` is what the
    clinician saw or typed (original text, comments, narrative), kept for matching paper notes.
    `date` is None when the record gives no usable date; for month or year precision it is the
    first day of that month or year, and `precision` says how much of it is real.
    """

    date: date | None
    precision: Precision | None
    system: str
    code: str
    display: str
    type: str
    flags: tuple[str, ...] = ()
    translations: tuple[Coding, ...] = ()
    source_ref: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown coded event type {self.type!r}; expected one of {sorted(EVENT_TYPES)}")
        if (self.date is None) != (self.precision is None):
            raise ValueError(f"event {self.source_ref!r}: date {self.date!r} and precision {self.precision!r} disagree")
        unknown = set(self.flags) - FLAGS
        if unknown:
            raise ValueError(f"event {self.source_ref!r}: unknown flags {sorted(unknown)}")

    @property
    def codings(self) -> tuple[Coding, ...]:
        """The preferred coding (when there is a code) followed by the translations."""
        main = (Coding(self.system, self.code, self.display),) if self.code else ()
        return main + self.translations


@dataclass(frozen=True, slots=True)
class CodedRecord:
    """A patient's coded record as read from one file: its format, NHS number, events and reading warnings."""

    format: str
    nhs_number: str | None
    events: tuple[CodedEvent, ...]
    warnings: tuple[str, ...] = ()
    sha256: str = ""

    def count(self, type_: str) -> int:
        return sum(1 for e in self.events if e.type == type_)


# --- JSON ------------------------------------------------------------------------------------


def parse_date_text(text: str | None) -> tuple[date | None, Precision | None]:
    """The inverse of `date_text`; raises ValueError on anything else."""
    if text is None:
        return None, None
    if len(text) == 4:
        return date(int(text), 1, 1), "year"
    if len(text) == 7:
        return date(int(text[:4]), int(text[5:7]), 1), "month"
    return date.fromisoformat(text), "day"


def event_to_json(e: CodedEvent) -> dict[str, Any]:
    return {
        "date": date_text(e.date, e.precision),
        "date_precision": e.precision,
        "system": e.system,
        "code": e.code,
        "display": e.display,
        "type": e.type,
        "flags": list(e.flags),
        "text": e.text,
        "translations": [{"system": c.system, "code": c.code, "display": c.display} for c in e.translations],
        "source_ref": e.source_ref,
    }


def event_from_json(d: dict[str, Any]) -> CodedEvent:
    day, precision = parse_date_text(d.get("date"))
    return CodedEvent(
        date=day,
        precision=precision,
        system=d.get("system", ""),
        code=d.get("code", ""),
        display=d.get("display", ""),
        type=d["type"],
        flags=tuple(d.get("flags", ())),
        translations=tuple(Coding(t["system"], t["code"], t.get("display", "")) for t in d.get("translations", ())),
        source_ref=d.get("source_ref", ""),
        text=d.get("text", ""),
    )


def record_to_json(record: CodedRecord) -> dict[str, Any]:
    """The `lgd coded show --json` document; also what `lgd coded import` stores."""
    return {
        "format": record.format,
        "nhs_number": record.nhs_number,
        "events": [event_to_json(e) for e in record.events],
        "warnings": list(record.warnings),
    }


def record_from_json(d: dict[str, Any], sha256: str = "") -> CodedRecord:
    return CodedRecord(
        format=d["format"],
        nhs_number=d.get("nhs_number"),
        events=tuple(event_from_json(e) for e in d.get("events", ())),
        warnings=tuple(d.get("warnings", ())),
        sha256=sha256,
    )
