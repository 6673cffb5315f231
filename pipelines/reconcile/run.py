"""Reconcile one patient: read pages and the coded record from the archive, decide, store, report.

The I/O edge of reconciliation. `reconcile_patient` stores every run (decisions and evidence
with the coded record's hash) so a pack can say exactly what it was checked against;
`ensure_reconciled` reuses the latest run when it was made against the same coded record
under the same rules, which is what `lgd pack` needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index import Catalogue
from index.coded import latest_coded_record, store_coded_record
from index.decisions import current_overrides, latest_reconciliation, store_reconciliation
from index.rows import OverrideRow, PageDecisionRow, PatientRow, ReconciliationRow
from pipelines.actor import current_actor
from pipelines.errors import ExitCode, LgdError
from pipelines.records.detect import read_record
from pipelines.records.errors import RecordError, RecordErrorCode
from pipelines.records.model import CodedRecord, record_from_json, record_to_json

from pipelines.clinical import default_reader, fingerprint as clinical_fingerprint
from pipelines.clinical.evidence import CodedIndex, PaperEntry

from .decide import PageDecision, PaperPage, decide_record
from .settings import Settings


@dataclass(frozen=True)
class Reconciliation:
    """One stored run: the patient, the record checked against, and each page's decision."""

    patient: PatientRow
    coded: CodedRecord
    decisions: tuple[PageDecision, ...]
    run_id: int
    settings: Settings
    overrides: dict[tuple[int, int], OverrideRow] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def effective(self, d: PageDecision) -> str:
        o = self.overrides.get((d.page.document_id, d.page.number))
        return o.decision if o is not None and o.decision else d.decision

    def summary(self) -> dict[str, Any]:
        include = sum(1 for d in self.decisions if self.effective(d) == "include")
        pages = len(self.decisions)
        return {"pages": pages, "include": include, "omit": pages - include,
                "omit_ratio": round((pages - include) / pages, 3) if pages else 0.0,
                "overridden": sum(1 for d in self.decisions if (d.page.document_id, d.page.number) in self.overrides)}

    def to_json(self) -> dict[str, Any]:
        """The `lgd reconcile --json` document (the shape the reconcile issue specifies, plus extras)."""
        pages = []
        for d in self.decisions:
            page: dict[str, Any] = {
                "source": d.page.source, "page": d.page.number, "decision": self.effective(d), "reason": d.reason,
                "kind": d.page.kind, "confidence": round(d.page.confidence, 1), "entries": d.entries_json(),
            }
            o = self.overrides.get((d.page.document_id, d.page.number))
            if o is not None:
                page["machine_decision"] = d.decision
                page["override"] = {"decision": o.decision, "reason": o.reason, "by": o.actor, "at": o.at.isoformat()}
            pages.append(page)
        return {
            "patient": self.patient.nhs_number,
            "coded": {"format": self.coded.format, "sha256": self.coded.sha256, "events": len(self.coded.events)},
            "run": self.run_id,
            "rules": provenance(self.settings),
            "pages": pages,
            "summary": self.summary(),
            "warnings": list(self.warnings),
        }


def load_pages(catalogue: Catalogue, nhs_number: str) -> list[PaperPage]:
    """Every page of the patient's digitised documents, in record order, with its entries."""
    documents = sorted(catalogue.documents(nhs_number, status="ok"), key=lambda d: (d.part or 1, d.id))
    pages = []
    for doc in documents:
        by_page: dict[int, list[PaperEntry]] = {}
        for e in catalogue.entries(document_id=doc.id):
            by_page.setdefault(e.page, []).append(PaperEntry(e.date, e.precision, e.text, e.confidence))
        for p in catalogue.pages(doc.id):
            pages.append(PaperPage(doc.id, doc.source, p.number, p.kind, p.blank, p.duplicate_of, p.unreadable,
                                   p.confidence, p.text, tuple(by_page.get(p.number, ())), p.phash))
    return pages


def read_coded_file(path: Path) -> CodedRecord:
    if not path.is_file():
        raise LgdError(f"no such coded record file: {path}", ExitCode.usage, "usage")
    try:
        return read_record(path)
    except RecordError as e:
        message = str(e) if path.name in str(e) else f"{path.name}: {e}"
        raise LgdError(message, ExitCode.partial, e.code.value) from e


def coded_for(catalogue: Catalogue, nhs_number: str, path: Path | None,
              actor: str | None = None) -> tuple[CodedRecord, list[str]]:
    """The record to check against: the file given (which must be this patient's), else the stored one."""
    warnings: list[str] = []
    if path is None:
        row = latest_coded_record(catalogue, nhs_number)
        if row is None:
            raise LgdError(
                f"there is no coded record for NHS number {nhs_number} in the archive; give one with --coded FILE "
                "or store it first with: lgd coded import FILE", ExitCode.partial, "no_coded_record")
        return record_from_json(row.record, row.sha256), warnings
    record = read_coded_file(path)
    if record.nhs_number is None:
        if not record.warnings:
            warnings.append(f"{path.name} names no NHS number; it was used for {nhs_number} as --patient says")
    elif record.nhs_number != nhs_number:
        raise LgdError(
            f"{path.name} is the coded record of NHS number {record.nhs_number}, not of {nhs_number}; nothing was "
            "reconciled. Check that you have the right file for this patient.",
            ExitCode.partial, RecordErrorCode.nhs_mismatch.value)
    document = record_to_json(record)
    document["nhs_number"] = nhs_number
    store_coded_record(catalogue, nhs_number, document, record.format, record.sha256, path.name,
                       actor=actor or current_actor())
    return record, warnings


def _patient(catalogue: Catalogue, nhs_number: str) -> PatientRow:
    patient = catalogue.patient(nhs_number)
    if patient is None or not catalogue.documents(nhs_number, status="ok"):
        raise LgdError(f"NHS number {nhs_number} has no digitised record in the archive {catalogue.archive}; "
                       "digitise it first, or check --archive", ExitCode.partial, "no_patient")
    return patient


def reconcile_patient(catalogue: Catalogue, nhs_number: str, coded_path: Path | None = None, *,
                      settings: Settings = Settings(), actor: str | None = None) -> Reconciliation:
    """Decide every page of the patient against the coded record, store the run, and return it."""
    patient = _patient(catalogue, nhs_number)
    record, warnings = coded_for(catalogue, nhs_number, coded_path, actor)
    reader = default_reader()
    index = CodedIndex(record.events, reader)
    names = tuple((patient.name or "").replace("-", " ").split())
    decisions = tuple(decide_record(load_pages(catalogue, nhs_number), index, reader, settings, names))
    rows = [PageDecisionRow(d.page.document_id, d.page.number, d.decision, d.reason, tuple(d.entries_json()),
                            reason_code=d.reason_code.value, reason_detail=d.detail)
            for d in decisions]
    run_id = store_reconciliation(catalogue, nhs_number, coded_format=record.format, coded_sha256=record.sha256,
                                  coded_events=len(record.events), pages=rows, settings=provenance(settings),
                                  actor=actor or current_actor())
    return Reconciliation(patient, record, decisions, run_id, settings, current_overrides(catalogue, nhs_number),
                          tuple(warnings) + record.warnings)


def ensure_reconciled(catalogue: Catalogue, nhs_number: str, coded_path: Path | None = None, *,
                      settings: Settings = Settings(), actor: str | None = None) -> ReconciliationRow:
    """The latest run if it was made against the record to use now under the same rules; else a new run.

    The record to use is `coded_path` if given, else the patient's latest imported record;
    with neither, LgdError tells the user to give or import one.
    """
    _patient(catalogue, nhs_number)
    latest = latest_reconciliation(catalogue, nhs_number)
    wanted = read_coded_file(coded_path).sha256 if coded_path else None
    if wanted is None:
        stored = latest_coded_record(catalogue, nhs_number)
        wanted = stored.sha256 if stored else None
    if (latest is not None and wanted == latest.coded_sha256
            and latest.settings == provenance(settings)
            and _same_pages(catalogue, nhs_number, latest)):
        return latest
    run = reconcile_patient(catalogue, nhs_number, coded_path, settings=settings, actor=actor)
    found = latest_reconciliation(catalogue, nhs_number)
    assert found is not None and found.id == run.run_id
    return found


def provenance(settings: Settings) -> dict[str, Any]:
    """What a run stores about how it decided: its thresholds and a fingerprint of every rule.

    A stored run is reused only when this is identical, so a run made with relaxed settings
    (--min-confidence 0) or older rules, vocabulary, dictionaries or lgd is never packed.
    """
    h = hashlib.sha256(clinical_fingerprint().encode())
    for module in ("decide.py", "settings.py"):
        h.update(Path(__file__).with_name(module).read_bytes())
    return {**settings.to_json(), "fingerprint": h.hexdigest()}


def _same_pages(catalogue: Catalogue, nhs_number: str, run: ReconciliationRow) -> bool:
    """Whether the run decided exactly the pages the patient has now (a new part may have arrived)."""
    now = {(p.document_id, p.number) for p in load_pages(catalogue, nhs_number)}
    return now == {(p.document_id, p.page) for p in run.pages}
