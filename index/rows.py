"""Plain frozen rows that the catalogue stores and returns; the archive's own vocabulary, free of OCR types."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Box = tuple[int, int, int, int]
# (text, x0, y0, x1, y1, confidence, line, block): one OCR word, kept compact because a page
# holds hundreds of them and the catalogue stores every one.
WordTuple = tuple[str, int, int, int, int, float, int, int]
Status = Literal["ok", "failed"]


@dataclass(frozen=True, slots=True)
class PatientRow:
    """A patient as identified by the input (file name, folder name or manifest), never by OCR."""

    nhs_number: str
    name: str | None = None
    born: dt.date | None = None


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """One input document: digitised (`ok`) or not (`failed`, with `code` and `reason`).

    `pdfa_path` is relative to the archive folder. `sha256` is the hash of the input file as
    given (for a folder of page images, of whatever the caller hashes); it may be None for a
    failure where the input could not be read at all. `created` and `id` are filled in by
    the catalogue when None.
    """

    source: str
    sha256: str | None
    nhs_number: str | None
    page_count: int
    status: Status
    pdfa_path: str | None
    pdfa_valid: bool
    part: int | None
    parts: int | None
    reason: str | None
    code: str | None
    input_size: int
    created: dt.datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class PageRow:
    """What was learned about one page; `number` is 1-based within its document."""

    number: int
    width: int
    height: int
    dpi: int
    rotation: int
    skew: float
    blank: bool
    phash: str
    duplicate_of: int | None
    confidence: float
    unreadable: bool
    kind: str
    text: str
    words: tuple[WordTuple, ...] = ()


@dataclass(frozen=True, slots=True)
class EntryRow:
    """A dated entry on a page; `document_id` is set on rows read back from the catalogue."""

    page: int
    date: dt.date | None
    date_text: str
    text: str
    box: Box
    confidence: float
    precision: str = "day"
    document_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit record: who did what, when, to whose record. `detail` is the decoded JSON."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    nhs_number: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counts:
    """How much the catalogue holds."""

    patients: int
    documents_ok: int
    documents_failed: int
    pages: int
    entries: int
