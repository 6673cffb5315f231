"""Clinicians' covers of paper entries by named coded events, as the catalogue stores them (append-only).

A cover says: entry N of this page is in the coded record as this event (system, code, display,
date, from the coded record with this SHA-256), because of this reason, said by this person.
Clearing is a new row with no event; the latest row per entry wins. An entry is keyed by its
place on the page and the SHA-256 of its date and text, so a cover whose entry reads otherwise
after a re-run, or that named an event of another coded record than the run's, is void.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import db
from .catalogue import Catalogue
from .db import mapped
from .decisions import require_patient_page
from .rows import OverrideRow, ReconciliationRow


@dataclass(frozen=True, slots=True)
class CoveredBy:
    """The coded event a clinician named: enough to find it again and to print it on a cover sheet."""

    coded_sha256: str
    system: str
    code: str
    display: str
    date: str | None  # as the coded record dates it (ISO, or None when undated)


@dataclass(frozen=True, slots=True)
class EntryCoverRow:
    id: int
    nhs_number: str
    document_id: int
    page: int
    entry: int  # 0-based
    entry_sha256: str
    entry_status: str | None
    event: CoveredBy | None  # None: this row clears the entry's cover
    override_id: int | None
    reason: str
    actor: str
    at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "entry": self.entry + 1, "entry_status": self.entry_status,
                "event": None if self.event is None else {
                    "system": self.event.system, "code": self.event.code, "display": self.event.display,
                    "date": self.event.date, "coded_sha256": self.event.coded_sha256},
                "reason": self.reason, "by": self.actor, "at": self.at.isoformat(), "override_id": self.override_id}


def entry_sha256(entry: Mapping[str, Any]) -> str:
    """The key of an entry's reading (its date and text as reconciliation stored them)."""
    return hashlib.sha256(f"{entry.get('date') or ''}\n{entry.get('text') or ''}".encode()).hexdigest()


@mapped
def record_entry_cover(
    catalogue: Catalogue,
    nhs_number: str,
    document_id: int,
    page: int,
    entry: int,
    *,
    entry_sha256: str,
    entry_status: str | None,
    event: CoveredBy | None,
    reason: str,
    actor: str,
    override_id: int | None = None,
) -> int:
    """Store a cover (or, with `event` None, its clearing) and audit it, in one transaction.

    Raises:
        KeyError: the page does not belong to this patient.
        ValueError: there is no reason, or a hash is not 64 hex digits.
    """
    if not reason.strip():
        raise ValueError("an entry cover needs a reason")
    if len(entry_sha256) != 64 or (event is not None and len(event.coded_sha256) != 64):
        raise ValueError("entry and coded record hashes must be 64 hex digits")
    conn = catalogue._conn
    with db.transaction(conn):
        require_patient_page(conn, nhs_number, document_id, page)
        e = event
        cur = conn.execute(
            "INSERT INTO entry_covers (nhs_number, document_id, page, entry, entry_sha256, entry_status, coded_sha256,"
            " event_system, event_code, event_display, event_date, override_id, reason, actor, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (nhs_number, document_id, page, entry, entry_sha256, entry_status,
             e and e.coded_sha256, e and e.system, e and e.code, e and e.display, e and e.date, override_id,
             reason.strip(), actor, catalogue._clock().isoformat()),
        )
        cover_id = int(cur.lastrowid)
        detail: dict[str, Any] = {"id": cover_id, "document_id": document_id, "page": page, "entry": entry + 1,
                                  "entry_sha256": entry_sha256, "reason": reason.strip(), "override_id": override_id}
        if e is not None:
            detail |= {"entry_status": entry_status, "coded_sha256": e.coded_sha256, "system": e.system,
                       "code": e.code, "display": e.display, "date": e.date}
        catalogue._insert_audit(actor, "entry_covered" if e else "entry_cover_cleared", nhs_number, detail)
    return cover_id


@mapped
def entry_covers(catalogue: Catalogue, nhs_number: str) -> tuple[EntryCoverRow, ...]:
    """Every cover and clearing ever recorded for the patient, oldest first (the audit view)."""
    rows = catalogue._conn.execute(
        "SELECT id, nhs_number, document_id, page, entry, entry_sha256, entry_status, coded_sha256, event_system,"
        " event_code, event_display, event_date, override_id, reason, actor, at FROM entry_covers"
        " WHERE nhs_number = ? ORDER BY id",
        (nhs_number,),
    )
    out = []
    for (id_, nhs, doc, page, entry, esha, status, csha, system, code, display, date, override_id, reason, actor,
         at) in rows:
        event = None if csha is None else CoveredBy(csha, system or "", code or "", display or "", date)
        out.append(EntryCoverRow(id_, nhs, doc, page, entry, esha, status, event, override_id, reason, actor,
                                 dt.datetime.fromisoformat(at)))
    return tuple(out)


def covers_in_force(rows: Iterable[EntryCoverRow],
                    run: ReconciliationRow | None) -> dict[tuple[int, int], dict[int, EntryCoverRow]]:
    """Pure: per page, per entry (0-based), the cover that holds against `run`.

    The latest row per entry counts, unless it clears the cover, or its entry reads otherwise in
    the run (text or date changed, or the entry is gone), or it names an event of another coded
    record than the one the run was checked against.
    """
    if run is None:
        return {}
    latest: dict[tuple[int, int, int], EntryCoverRow] = {}
    for row in rows:
        latest[(row.document_id, row.page, row.entry)] = row
    entries = {(p.document_id, p.page): p.entries for p in run.pages}
    held: dict[tuple[int, int], dict[int, EntryCoverRow]] = {}
    for (doc, page, n), row in latest.items():
        now = entries.get((doc, page), ())
        if (row.event is None or row.event.coded_sha256 != run.coded_sha256 or n >= len(now)
                or entry_sha256(now[n]) != row.entry_sha256):
            continue
        held.setdefault((doc, page), {})[n] = row
    return held


def proposal_lapsed(entries: Sequence[Mapping[str, Any]], machine: str, override: OverrideRow | None,
                    held: Mapping[int, EntryCoverRow], proposed: set[int]) -> bool:
    """Pure: whether `override` is an omission entry covers proposed that they no longer complete.

    Such a page goes back to the machine's decision (sent): a re-run that reads an entry
    otherwise, or a new coded record, voids the covers, never leaving the page out on them.
    """
    if override is None or override.decision != "omit" or override.id not in proposed or machine == "omit":
        return False
    return not (entries and all(e.get("status") == "covered" or n in held for n, e in enumerate(entries)))


def lapsed_proposals(catalogue: Catalogue, run: ReconciliationRow) -> set[tuple[int, int]]:
    """The pages (document id, page) of `run` whose covers' omission no longer holds."""
    rows = entry_covers(catalogue, run.nhs_number)
    if not rows:
        return set()
    held = covers_in_force(rows, run)
    proposed = {c.override_id for c in rows if c.override_id is not None}
    return {(p.document_id, p.page) for p in run.pages
            if proposal_lapsed(p.entries, p.decision, p.override, held.get((p.document_id, p.page), {}), proposed)}
