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


Decision = Literal["include", "omit"]


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """A clinician's decision for one page, which wins over the machine's; `decision` None clears it."""

    id: int
    nhs_number: str
    document_id: int
    page: int
    decision: Decision | None
    reason: str
    actor: str
    at: dt.datetime
    needs_confirmation: bool = False  # an omission that counts only once a second clinician confirms it
    confirmed_by: str | None = None
    confirmed_at: dt.datetime | None = None

    @property
    def pending(self) -> bool:
        return self.needs_confirmation and self.confirmed_by is None


@dataclass(frozen=True, slots=True)
class PageDecisionRow:
    """The machine's decision for one page, with its evidence, and the override in force if any.

    `entries` is the evidence as `lgd reconcile --json` prints it per entry (JSON-ready dicts),
    kept opaque here because the index knows nothing of how reconciliation reasons.
    """

    document_id: int
    page: int
    decision: Decision
    reason: str
    entries: tuple[dict[str, Any], ...] = ()
    override: OverrideRow | None = None
    reason_code: str = ""  # reconciliation's stable reason code ("" for runs stored before it had one)
    reason_detail: dict[str, Any] = field(default_factory=dict)  # the counts the reason was rendered from

    @property
    def effective(self) -> Decision:
        """What a pack does with the page: the clinician's override, else the machine's decision."""
        if self.override is not None and self.override.decision is not None:
            return self.override.decision
        return self.decision


@dataclass(frozen=True, slots=True)
class ReconciliationRow:
    """One reconciliation run of a patient's pages against one coded record (by its hash)."""

    id: int
    nhs_number: str
    coded_format: str
    coded_sha256: str
    coded_events: int
    created: dt.datetime
    actor: str
    settings: dict[str, Any]
    pages: tuple[PageDecisionRow, ...] = ()


@dataclass(frozen=True, slots=True)
class PackRow:
    """A transfer pack built from a reconciliation: who built it, when, in what form, its hash."""

    id: int
    nhs_number: str
    reconciliation_id: int
    format: str
    created: dt.datetime
    actor: str
    sha256: str
    detail: dict[str, Any] = field(default_factory=dict)
