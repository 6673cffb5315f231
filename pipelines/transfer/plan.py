"""What a transfer pack holds: every page of the patient's digitised record, in order, with its effective decision.

The plan is plain data built once from the catalogue; the pack document, the print run and
the NDR files are all made from it, so each of them sends exactly the same pages. The
clinical-safety rule (DESIGN §2) is applied here and only here: a page is left out only when
the reconciliation run holds a decision for it whose effective value (clinician override,
else the machine's) is `omit`. A page the run does not know about (digitised after the run,
say) is included and flagged, never dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from index.catalogue import Catalogue
from index.entry_covers import EntryCoverRow, covers_in_force, entry_covers, proposal_lapsed
from index.rows import Decision, DocumentRow, OverrideRow, PageRow, PatientRow, ReconciliationRow
from pipelines.errors import ExitCode, LgdError
from pipelines.identity import MAX_PARTS, number_ranges

# The NDR part prefix ("1of2_"): parts of one record share the rest of the name.
_PART_PREFIX = re.compile(r"^\s*\d+\s*of\s*\d+[_ ]", re.IGNORECASE)
NO_DECISION_REASON = "not in the reconciliation run: included (when in doubt, the page is sent)"


class PackBuildError(LgdError):
    """A pack cannot be built as asked; the message says what to do. `code` is stable for --json."""

    def __init__(self, code: str, message: str, exit_code: ExitCode = ExitCode.usage) -> None:
        super().__init__(message, exit_code=exit_code, code=code)


@dataclass(frozen=True, slots=True)
class PlannedPage:
    """One page of the digitised record and what the pack does with it.

    `decision` is the effective decision (override applied); `machine` is the run's own
    decision, None when the run holds none for this page (then `decision` is include).
    """

    document_id: int
    source: str
    page: int  # 1-based within `source`
    pdfa_path: str  # relative to the archive folder
    decision: Decision
    machine: Decision | None
    reason: str
    entries: tuple[dict, ...] = ()
    override: OverrideRow | None = None
    kind: str = ""
    reason_code: str = ""  # reconciliation's stable code for `reason` ("" for runs stored before codes)
    reason_detail: dict = field(default_factory=dict)  # the counts `reason` was rendered from
    entry_covers: tuple[EntryCoverRow, ...] = ()  # clinicians' covers of its entries in force, by entry

    @property
    def included(self) -> bool:
        return self.decision == "include"

    @property
    def undecided(self) -> bool:
        return self.machine is None


@dataclass(frozen=True, slots=True)
class PlannedDocument:
    """A digitised source document of the patient, in pack order."""

    document_id: int
    source: str
    pdfa_path: str
    sha256: str | None
    page_count: int
    part: int | None
    parts: int | None
    digitised: dt.datetime | None


@dataclass(frozen=True, slots=True)
class PackPlan:
    """Every page of a patient's digitised record in original order, with the run it was decided by.

    Original order: documents grouped by record (NDR parts of one record together), records in
    the order they were first catalogued, parts by part number; pages by number.
    """

    nhs_number: str
    name: str | None
    born: dt.date | None
    run_id: int
    run_created: dt.datetime
    coded_format: str
    coded_sha256: str
    coded_events: int
    documents: tuple[PlannedDocument, ...]
    pages: tuple[PlannedPage, ...]
    failed_sources: tuple[str, ...] = ()  # inputs of this patient that were never digitised
    missing_parts: tuple[str, ...] = ()  # "parts 2-3 of 4 of <record>": parts of a record never digitised
    run_settings: dict = field(default_factory=dict)  # thresholds and rules fingerprint the run decided under

    @property
    def included(self) -> tuple[PlannedPage, ...]:
        return tuple(p for p in self.pages if p.included)

    @property
    def omitted(self) -> tuple[PlannedPage, ...]:
        return tuple(p for p in self.pages if not p.included)

    @property
    def undecided(self) -> tuple[PlannedPage, ...]:
        """Pages the run holds no decision for: included by the safety rule and named on the cover."""
        return tuple(p for p in self.pages if p.undecided)

    @property
    def overridden(self) -> tuple[PlannedPage, ...]:
        """Pages whose clinician override is in force (whether or not it changed the outcome)."""
        return tuple(p for p in self.pages if p.override is not None and p.override.decision is not None)

    @property
    def full_record_pages(self) -> int:
        """Pages in the whole digitised record: what printing it all would print."""
        return len(self.pages)

    def full_record_sheets(self, duplex: bool = True) -> int:
        """Sheets of paper printing the whole digitised record takes: ceil(pages / 2) double-sided."""
        return -(-self.full_record_pages // 2) if duplex else self.full_record_pages

    @property
    def digitised_on(self) -> dt.date | None:
        """The day the last of the patient's documents was digitised (the NDR SCAN-DATE)."""
        days = [d.digitised.date() for d in self.documents if d.digitised is not None]
        return max(days) if days else None

    def document_pages(self, document_id: int, included: bool | None = None) -> tuple[PlannedPage, ...]:
        return tuple(
            p for p in self.pages if p.document_id == document_id and (included is None or p.included == included)
        )


def record_key(source: str) -> str:
    """The name shared by the parts of one record: the source without its `{i}of{n}_` prefix, case-folded."""
    return _PART_PREFIX.sub("", source).casefold()


def order_documents(documents: Iterable[DocumentRow]) -> tuple[DocumentRow, ...]:
    """Documents in record order: records by their first catalogue id, then by part, then id.

    Parts are often catalogued out of order (documents are digitised concurrently); sorting
    only by id could put part 2 before part 1.
    """
    docs = [d for d in documents if d.id is not None]
    first: dict[str, int] = {}
    for d in sorted(docs, key=lambda d: d.id):
        first.setdefault(record_key(d.source), int(d.id))
    return tuple(sorted(docs, key=lambda d: (first[record_key(d.source)], d.part or 1, int(d.id))))


def make_plan(
    patient: PatientRow,
    documents: Sequence[DocumentRow],
    pages: Mapping[int, Sequence[PageRow]],
    run: ReconciliationRow,
) -> PackPlan:
    """Pure: the plan for `patient` from catalogue rows and one reconciliation run.

    Args:
        patient: the patient row.
        documents: every document row of the patient (failed ones are noted, not packed).
        pages: page rows by document id, for every digitised document.
        run: the reconciliation run, with each page's decision and the override in force.

    Raises:
        PackBuildError: the run is for another patient (`pack_wrong_run`), or decides pages that are
            not among the patient's digitised pages (`pack_stale_run`: reconcile again), or the
            patient has no digitised pages (`pack_nothing`).
    """
    if run.nhs_number != patient.nhs_number:
        raise PackBuildError(
            "pack_wrong_run",
            f"reconciliation run {run.id} is for NHS number {run.nhs_number}, not {patient.nhs_number}; "
            "pack a patient with their own run",
        )
    decided = {(d.document_id, d.page): d for d in run.pages}
    ok = order_documents(d for d in documents if d.status == "ok")
    planned_docs: list[PlannedDocument] = []
    planned_pages: list[PlannedPage] = []
    for doc in ok:
        assert doc.id is not None and doc.pdfa_path is not None, "a digitised document has an id and a PDF/A"
        planned_docs.append(
            PlannedDocument(
                int(doc.id), doc.source, doc.pdfa_path, doc.sha256, doc.page_count, doc.part, doc.parts, doc.created
            )
        )
        for row in pages.get(int(doc.id), ()):
            planned_pages.append(_planned_page(doc, row, decided.pop((int(doc.id), row.number), None)))
    if decided:
        (doc_id, page), *_ = sorted(decided)
        raise PackBuildError(
            "pack_stale_run",
            f"reconciliation run {run.id} decides {len(decided)} page(s) that are not among the digitised pages "
            f"of {patient.nhs_number} (first: document {doc_id} page {page}); run `lgd reconcile` again",
        )
    if not planned_pages:
        raise PackBuildError(
            "pack_nothing",
            f"{patient.nhs_number} has no digitised pages in the archive; digitise the record before packing it",
        )
    return PackPlan(
        nhs_number=patient.nhs_number,
        name=patient.name,
        born=patient.born,
        run_id=run.id,
        run_created=run.created,
        coded_format=run.coded_format,
        coded_sha256=run.coded_sha256,
        coded_events=run.coded_events,
        documents=tuple(planned_docs),
        pages=tuple(planned_pages),
        failed_sources=tuple(d.source for d in documents if d.status == "failed"),
        missing_parts=missing_parts(documents),
        run_settings=dict(run.settings),
    )


def missing_parts(documents: Sequence[DocumentRow]) -> tuple[str, ...]:
    """For each multi-part record (NDR "1of3_..."), the parts not digitised, as ranges: "parts 2-3 of 4 of X"."""
    records: dict[str, tuple[int, set[int]]] = {}
    for d in documents:
        if d.parts and d.parts > 1 and d.part:
            name = _PART_PREFIX.sub("", d.source)
            total, have = records.get(name, (d.parts, set()))
            if d.status == "ok":
                have.add(d.part)
            records[name] = (max(total, d.parts), have)
    out = []
    for name, (total, have) in sorted(records.items()):
        gaps = [n for n in range(1, min(total, MAX_PARTS) + 1) if n not in have]
        if gaps:
            out.append(f"part{'s' if len(gaps) > 1 else ''} {number_ranges(gaps)} of {total} of {name}")
    return tuple(out)


def _planned_page(doc: DocumentRow, row: PageRow, decision) -> PlannedPage:
    base = dict(document_id=int(doc.id), source=doc.source, page=row.number, pdfa_path=doc.pdfa_path, kind=row.kind)
    if decision is None:
        return PlannedPage(decision="include", machine=None, reason=NO_DECISION_REASON, **base)
    return PlannedPage(
        decision=decision.effective,
        machine=decision.decision,
        reason=decision.reason,
        reason_code=decision.reason_code,
        reason_detail=dict(decision.reason_detail),
        entries=tuple(decision.entries),
        override=decision.override,
        **base,
    )


def plan_pack(catalogue: Catalogue, nhs_number: str, run: ReconciliationRow) -> PackPlan:
    """Read the patient's documents and pages from the catalogue and plan the pack (see `make_plan`).

    Raises:
        PackBuildError: the patient is not in the catalogue (`pack_no_patient`), or as `make_plan`.
    """
    patient = catalogue.patient(nhs_number)
    if patient is None:
        raise PackBuildError(
            "pack_no_patient", f"NHS number {nhs_number} is not in the archive; check the number or digitise the record"
        )
    documents = catalogue.documents(nhs_number)
    pages = {int(d.id): catalogue.pages(int(d.id)) for d in documents if d.status == "ok" and d.id is not None}
    plan = make_plan(patient, documents, pages, run)
    rows = entry_covers(catalogue, nhs_number)
    if not rows:
        return plan
    covers = covers_in_force(rows, run)
    proposed = {c.override_id for c in rows if c.override_id is not None}
    return replace(plan, pages=tuple(_with_covers(p, covers.get((p.document_id, p.page), {}), proposed)
                                     for p in plan.pages))


def _with_covers(page: PlannedPage, held: Mapping[int, EntryCoverRow], proposed: set[int]) -> PlannedPage:
    """The page with its entry covers; an omission they proposed that they no longer complete is not in force.

    A re-run may read an entry otherwise or check against a new coded record, voiding its cover;
    the page then goes back to the machine's decision (sent), never left out on covers that no longer hold.
    """
    page = replace(page, entry_covers=tuple(c for _, c in sorted(held.items())))
    o = page.override
    if not proposal_lapsed(page.entries, page.machine, o, held, proposed):
        return page
    return replace(page, decision="include", override=None,
                   reason=f"{page.reason} (the omission {o.actor} proposed by covering its entries no longer holds: "
                          "an entry reads otherwise or the coded record changed)")
