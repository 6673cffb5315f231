"""Reconciliation decisions, clinicians' overrides and transfer packs, as the catalogue stores them.

Every table here is append-only. A reconciliation is stored whole in one transaction with
its audit record; an override is a new row (the latest per page wins, `decision` None clears
it) so the trail of who forced which page in or out, and why, is never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Iterable
from typing import Any

from . import db
from .catalogue import Catalogue
from .db import mapped
from .rows import Decision, OverrideRow, PackRow, PageDecisionRow, ReconciliationRow

DECISIONS = ("include", "omit")


def _pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


def require_patient_page(conn, nhs_number: str, document_id: int, page: int) -> None:
    """Raise KeyError unless the page is one of this patient's (a decision about it is then theirs to make)."""
    owner = conn.execute(
        "SELECT 1 FROM pages p JOIN documents d ON d.id = p.document_id"
        " WHERE p.document_id = ? AND p.number = ? AND d.nhs_number = ?",
        (document_id, page, nhs_number),
    ).fetchone()
    if owner is None:
        raise KeyError((nhs_number, document_id, page))


@mapped
def store_reconciliation(
    catalogue: Catalogue,
    nhs_number: str,
    *,
    coded_format: str,
    coded_sha256: str,
    coded_events: int,
    pages: Iterable[PageDecisionRow],
    settings: dict[str, Any],
    actor: str,
) -> int:
    """Store a run's decision for every page of the patient, and audit it, in one transaction.

    Raises:
        KeyError: the patient is not in the catalogue.
        ValueError: a decision is not include/omit, or the hash is not 64 hex digits.
    """
    if len(coded_sha256) != 64:
        raise ValueError(f"coded_sha256 must be 64 hex digits, got {coded_sha256!r}")
    rows = [(p.document_id, p.page, p.decision, p.reason, _pack(list(p.entries)), p.reason_code,
             json.dumps(p.reason_detail, sort_keys=True)) for p in pages]
    bad = [r for r in rows if r[2] not in DECISIONS]
    if bad:
        raise ValueError(f"decision must be include or omit, got {bad[0][2]!r}")
    conn = catalogue._conn
    with db.transaction(conn):
        if conn.execute("SELECT 1 FROM patients WHERE nhs_number = ?", (nhs_number,)).fetchone() is None:
            raise KeyError(nhs_number)
        cur = conn.execute(
            "INSERT INTO reconciliations (nhs_number, coded_format, coded_sha256, coded_events, created, actor,"
            " settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (nhs_number, coded_format, coded_sha256, coded_events, catalogue._clock().isoformat(), actor,
             json.dumps(settings, sort_keys=True)),
        )
        run_id = int(cur.lastrowid)
        conn.executemany(
            "INSERT INTO decisions (reconciliation_id, document_id, page, decision, reason, evidence, reason_code,"
            " reason_detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, *r) for r in rows],
        )
        omitted = sum(1 for r in rows if r[2] == "omit")
        detail = {"id": run_id, "coded_sha256": coded_sha256, "coded_format": coded_format,
                  "pages": len(rows), "omit": omitted}
        catalogue._insert_audit(actor, "reconciled", nhs_number, detail)
    return run_id


@mapped
def latest_reconciliation(catalogue: Catalogue, nhs_number: str) -> ReconciliationRow | None:
    """The patient's most recent run with every page's decision and the override in force on it."""
    row = catalogue._conn.execute(
        "SELECT id FROM reconciliations WHERE nhs_number = ? ORDER BY id DESC LIMIT 1", (nhs_number,)
    ).fetchone()
    return None if row is None else reconciliation(catalogue, int(row[0]))


@mapped
def reconciliation(catalogue: Catalogue, run_id: int) -> ReconciliationRow | None:
    conn = catalogue._conn
    head = conn.execute(
        "SELECT id, nhs_number, coded_format, coded_sha256, coded_events, created, actor, settings"
        " FROM reconciliations WHERE id = ?",
        (run_id,),
    ).fetchone()
    if head is None:
        return None
    id_, nhs, fmt, sha, events, created, actor, settings = head
    in_force = current_overrides(catalogue, nhs)
    pages = tuple(
        PageDecisionRow(doc, page, decision, reason, tuple(_unpack(blob)), in_force.get((doc, page)), code,
                        json.loads(detail))
        for doc, page, decision, reason, blob, code, detail in conn.execute(
            "SELECT document_id, page, decision, reason, evidence, reason_code, reason_detail FROM decisions"
            " WHERE reconciliation_id = ? ORDER BY document_id, page",
            (run_id,),
        )
    )
    return ReconciliationRow(id_, nhs, fmt, sha, events, dt.datetime.fromisoformat(created), actor,
                             json.loads(settings), pages)


@mapped
def record_override(
    catalogue: Catalogue,
    nhs_number: str,
    document_id: int,
    page: int,
    decision: Decision | None,
    *,
    reason: str,
    actor: str,
    needs_confirmation: bool = False,
) -> int:
    """Force a page in (`include`) or out (`omit`), or clear the override (None); audited.

    `needs_confirmation`: the override counts only once another person confirms it
    (`confirm_override`); until then the machine's decision stands.

    Raises:
        KeyError: the page does not belong to this patient.
        ValueError: the decision is not include/omit/None, or there is no reason.
    """
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision must be include or omit, got {decision!r}")
    if not reason.strip():
        raise ValueError("an override needs a reason")
    conn = catalogue._conn
    with db.transaction(conn):
        require_patient_page(conn, nhs_number, document_id, page)
        at = catalogue._clock().isoformat()
        cur = conn.execute(
            "INSERT INTO overrides (nhs_number, document_id, page, decision, reason, actor, at, needs_confirmation)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (nhs_number, document_id, page, decision, reason.strip(), actor, at, int(needs_confirmation)),
        )
        detail = {"id": int(cur.lastrowid), "document_id": document_id, "page": page,
                  "decision": decision, "reason": reason.strip(), "needs_confirmation": needs_confirmation}
        catalogue._insert_audit(actor, "override" if decision else "override_cleared", nhs_number, detail)
    return int(cur.lastrowid)


@mapped
def confirm_override(catalogue: Catalogue, override_id: int, *, actor: str) -> None:
    """A second person confirms an override that needs it; audited.

    Raises:
        KeyError: there is no such override.
        ValueError: it needs no confirmation, is confirmed already, is no longer the page's latest
            override, or `actor` made it (nobody confirms their own decision).
    """
    conn = catalogue._conn
    with db.transaction(conn):
        row = conn.execute(f"SELECT {_OVERRIDE_COLUMNS} FROM overrides o LEFT JOIN override_confirmations c"
                           " ON c.override_id = o.id WHERE o.id = ?", (override_id,)).fetchone()
        if row is None:
            raise KeyError(override_id)
        o = _override(row)
        latest = conn.execute("SELECT max(id) FROM overrides WHERE document_id = ? AND page = ?",
                              (o.document_id, o.page)).fetchone()[0]
        if not o.pending:
            raise ValueError("this override needs no confirmation, or has been confirmed already")
        if latest != o.id:
            raise ValueError("a later override of this page replaced it")
        if o.actor == actor:
            raise ValueError(f"{actor} made this decision and cannot also confirm it: a second person must")
        conn.execute("INSERT INTO override_confirmations (override_id, actor, at) VALUES (?, ?, ?)",
                     (override_id, actor, catalogue._clock().isoformat()))
        catalogue._insert_audit(actor, "override_confirmed", o.nhs_number,
                                {"id": o.id, "document_id": o.document_id, "page": o.page, "decision": o.decision,
                                 "decided_by": o.actor})


_OVERRIDE_COLUMNS = ("o.id, o.nhs_number, o.document_id, o.page, o.decision, o.reason, o.actor, o.at,"
                     " o.needs_confirmation, c.actor, c.at")


def _override(row: tuple[Any, ...]) -> OverrideRow:
    id_, nhs, doc, page, decision, reason, actor, at, needs, confirmed_by, confirmed_at = row
    return OverrideRow(id_, nhs, doc, page, decision, reason, actor, dt.datetime.fromisoformat(at), bool(needs),
                       confirmed_by, dt.datetime.fromisoformat(confirmed_at) if confirmed_at else None)


@mapped
def overrides(catalogue: Catalogue, nhs_number: str) -> tuple[OverrideRow, ...]:
    """Every override ever recorded for the patient, oldest first (the audit view), with its confirmation."""
    rows = catalogue._conn.execute(
        f"SELECT {_OVERRIDE_COLUMNS} FROM overrides o LEFT JOIN override_confirmations c ON c.override_id = o.id"
        " WHERE o.nhs_number = ? ORDER BY o.id",
        (nhs_number,),
    )
    return tuple(_override(r) for r in rows)


def latest_overrides(catalogue: Catalogue, nhs_number: str) -> dict[tuple[int, int], OverrideRow]:
    """The latest override per (document id, page), whatever it says (cleared and pending ones too)."""
    latest: dict[tuple[int, int], OverrideRow] = {}
    for row in overrides(catalogue, nhs_number):
        latest[(row.document_id, row.page)] = row
    return latest


def current_overrides(catalogue: Catalogue, nhs_number: str) -> dict[tuple[int, int], OverrideRow]:
    """The overrides in force: the latest per page, unless cleared or still awaiting its confirmation."""
    return {key: row for key, row in latest_overrides(catalogue, nhs_number).items()
            if row.decision is not None and not row.pending}


@mapped
def record_pack(
    catalogue: Catalogue,
    nhs_number: str,
    reconciliation_id: int,
    *,
    format: str,  # noqa: A002 - the column's name
    sha256: str,
    detail: dict[str, Any],
    actor: str,
) -> int:
    """Record a built pack (and audit it) so the catalogue can say what was sent, when and by whom."""
    if len(sha256) != 64:
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    conn = catalogue._conn
    with db.transaction(conn):
        cur = conn.execute(
            "INSERT INTO packs (nhs_number, reconciliation_id, format, created, actor, sha256, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (nhs_number, reconciliation_id, format, catalogue._clock().isoformat(), actor, sha256,
             json.dumps(detail, sort_keys=True, default=str)),
        )
        pack_id = int(cur.lastrowid)
        catalogue._insert_audit(actor, "pack_built", nhs_number,
                                {"id": pack_id, "reconciliation_id": reconciliation_id, "format": format,
                                 "sha256": sha256})
    return pack_id


@mapped
def packs(catalogue: Catalogue, nhs_number: str) -> tuple[PackRow, ...]:
    rows = catalogue._conn.execute(
        "SELECT id, nhs_number, reconciliation_id, format, created, actor, sha256, detail FROM packs"
        " WHERE nhs_number = ? ORDER BY id",
        (nhs_number,),
    )
    return tuple(
        PackRow(i, n, r, f, dt.datetime.fromisoformat(c), a, s, json.loads(d)) for i, n, r, f, c, a, s, d in rows
    )


@mapped
def pack_signers(catalogue: Catalogue) -> tuple[tuple[str, str | None, int, dt.datetime], ...]:
    """Every key that signed a recorded pack: (fingerprint, public key in base64 or None, packs, last signed), oldest first.

    Read from each pack's `detail` (fingerprint since packs were signed; the public key since it
    was recorded too), so no migration is needed; print and NDR packs are not signed and not listed.
    """
    rows = catalogue._conn.execute(
        "SELECT json_extract(detail, '$.fingerprint') AS fp, max(json_extract(detail, '$.signer_public_key')),"
        " count(*), max(created) FROM packs WHERE fp IS NOT NULL GROUP BY fp ORDER BY min(id)"
    )
    return tuple((fp, key, int(n), dt.datetime.fromisoformat(last)) for fp, key, n, last in rows)
