"""Translate between what digitise learned (ScanDoc, Page) and what the archive stores (rows), and report outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from digitise.model import ScanDoc
from index import Catalogue, DocumentRow, EntryRow, PageDoc, PageRow, PatientRow
from pipelines.ingest.discover import InputDoc


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one input document; one row of `lgd digitise --json`."""

    source: str
    nhs_number: str | None
    status: str  # ok | skipped | failed
    reason: str = ""
    code: str = ""
    pages: int = 0
    blank_pages: tuple[int, ...] = ()
    duplicate_pages: tuple[int, ...] = ()
    unreadable_pages: tuple[int, ...] = ()
    entries: int = 0
    pdfa: str | None = None
    pdfa_valid: bool = False


def patient_row(doc: InputDoc) -> PatientRow:
    return PatientRow(doc.patient.nhs_number, doc.patient.name, doc.patient.born)


def failure(doc: InputDoc | None, source: str, code: str, reason: str, sha256: str | None, size: int) -> tuple[PatientRow | None, DocumentRow]:
    row = DocumentRow(
        source=source,
        sha256=sha256,
        nhs_number=doc.patient.nhs_number if doc else None,
        page_count=0,
        status="failed",
        pdfa_path=None,
        pdfa_valid=False,
        part=doc.part if doc else None,
        parts=doc.parts if doc else None,
        reason=reason,
        code=code,
        input_size=size,
    )
    return (patient_row(doc) if doc else None), row


def digitised(doc: InputDoc, scan: ScanDoc, sha256: str, size: int, pdfa_path: str, reason: str) -> tuple[PatientRow, DocumentRow, list[PageRow], list[EntryRow]]:
    row = DocumentRow(
        source=doc.source,
        sha256=sha256,
        nhs_number=doc.patient.nhs_number,
        page_count=len(scan.pages),
        status="ok",
        pdfa_path=pdfa_path,
        pdfa_valid=scan.pdfa_valid,
        part=doc.part,
        parts=doc.parts,
        reason=reason or None,
        code="pdfa_invalid" if reason else None,
        input_size=size,
    )
    pages = [
        PageRow(
            number=p.number,
            width=p.width,
            height=p.height,
            dpi=p.dpi,
            rotation=p.rotation,
            skew=p.skew,
            blank=p.blank,
            phash=p.phash,
            duplicate_of=p.duplicate_of,
            confidence=round(p.confidence, 2),
            unreadable=p.unreadable,
            kind=str(p.kind),
            text=p.text.text if p.text else "",
            words=tuple((w.text, *w.box, round(w.confidence, 1), w.line, w.block) for w in (p.text.words if p.text else ())),
        )
        for p in scan.pages
    ]
    entries = [
        EntryRow(page=p.number, date=e.date, date_text=e.date_text, text=e.text, box=e.box, confidence=round(e.confidence, 2), precision=str(e.precision))
        for p in scan.pages
        for e in p.entries
    ]
    return patient_row(doc), row, pages, entries


def pages_read_by(scan: ScanDoc) -> dict[str, int]:
    """How many pages each OCR engine's reading was kept for (blank pages are read by none)."""
    counts: dict[str, int] = {}
    for p in scan.pages:
        if p.text is not None and p.text.engine:
            counts[p.text.engine] = counts.get(p.text.engine, 0) + 1
    return dict(sorted(counts.items()))


def page_docs(document_id: int, doc: InputDoc, scan: ScanDoc) -> list[PageDoc]:
    return [
        PageDoc(
            nhs_number=doc.patient.nhs_number,
            document_id=document_id,
            source=doc.source,
            page=p.number,
            kind=str(p.kind),
            dates=tuple(sorted({e.date for e in p.entries if e.date})),
            text=p.text.text if p.text else "",
        )
        for p in scan.pages
        if p.text is not None
    ]


def outcome(doc: InputDoc, scan: ScanDoc, pdfa: str, reason: str) -> Outcome:
    return Outcome(
        source=doc.source,
        nhs_number=doc.patient.nhs_number,
        status="ok",
        reason=reason,
        code="pdfa_invalid" if reason else "",
        pages=len(scan.pages),
        blank_pages=tuple(scan.blank_pages),
        duplicate_pages=tuple(scan.duplicate_pages),
        unreadable_pages=tuple(scan.unreadable_pages),
        entries=sum(len(p.entries) for p in scan.pages),
        pdfa=pdfa,
        pdfa_valid=scan.pdfa_valid,
    )


def skipped(doc: InputDoc, done: DocumentRow, reason: str, catalogue: Catalogue) -> Outcome:
    """A document digitised by an earlier run: report what is stored, without re-OCR."""
    assert done.id is not None
    pages = catalogue.pages(done.id)
    return Outcome(
        source=doc.source,
        nhs_number=doc.patient.nhs_number,
        status="skipped",
        reason=reason,
        code="already_done",
        pages=len(pages),
        blank_pages=tuple(p.number for p in pages if p.blank),
        duplicate_pages=tuple(p.number for p in pages if p.duplicate_of is not None),
        unreadable_pages=tuple(p.number for p in pages if p.unreadable),
        entries=len(catalogue.entries(document_id=done.id)),
        pdfa=str(catalogue.archive / done.pdfa_path) if done.pdfa_path else None,
        pdfa_valid=done.pdfa_valid,
    )
