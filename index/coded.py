"""Coded electronic records stored against an archive patient, as plain JSON (the index knows no record formats)."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass
from typing import Any

from . import db
from .catalogue import Catalogue
from .db import mapped


@dataclass(frozen=True, slots=True)
class CodedRecordRow:
    """One imported coded record: `record` is the JSON document `lgd coded show --json` prints."""

    id: int
    nhs_number: str
    format: str
    sha256: str
    imported_at: dt.datetime
    source_name: str
    record: dict[str, Any]


def _pack(record: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(record, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8"))


@mapped
def store_coded_record(
    catalogue: Catalogue,
    nhs_number: str,
    record_json: dict[str, Any],
    format: str,  # noqa: A002 - the column's name
    sha256: str,
    source_name: str,
    *,
    actor: str = "lgd",
) -> int:
    """Store a coded record for a patient already in the catalogue and audit it, in one transaction.

    Importing the record that is already the patient's latest (same SHA-256) stores nothing and
    returns its id, so a repeated import is harmless.

    Returns:
        The id of the stored (or already latest) record.
    Raises:
        KeyError: the patient is not in the catalogue (the caller must say so to the user).
        ValueError: `sha256` is not 64 hex digits.
    """
    if len(sha256) != 64:
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    blob = _pack(record_json)  # serialise before BEGIN so a bad document never holds the write lock
    # Package-internal use of the catalogue's connection and clock: the row and its audit record
    # must share the catalogue's one transaction.
    conn = catalogue._conn
    with db.transaction(conn):
        if conn.execute("SELECT 1 FROM patients WHERE nhs_number = ?", (nhs_number,)).fetchone() is None:
            raise KeyError(nhs_number)
        latest = conn.execute(
            "SELECT id, sha256 FROM coded_records WHERE nhs_number = ? ORDER BY id DESC LIMIT 1", (nhs_number,)
        ).fetchone()
        if latest is not None and latest[1] == sha256:
            return int(latest[0])
        cur = conn.execute(
            "INSERT INTO coded_records (nhs_number, format, sha256, imported_at, events_json, source_name)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (nhs_number, format, sha256, catalogue._clock().isoformat(), blob, source_name),
        )
        record_id = int(cur.lastrowid)
        detail = {
            "id": record_id, "format": format, "sha256": sha256, "source": source_name,
            "events": len(record_json.get("events", ())),
        }
        catalogue._insert_audit(actor, "coded_record_imported", nhs_number, detail)
    return record_id


@mapped
def latest_coded_record(catalogue: Catalogue, nhs_number: str) -> CodedRecordRow | None:
    """The patient's most recently imported coded record, or None."""
    row = catalogue._conn.execute(
        "SELECT id, nhs_number, format, sha256, imported_at, source_name, events_json FROM coded_records"
        " WHERE nhs_number = ? ORDER BY id DESC LIMIT 1",
        (nhs_number,),
    ).fetchone()
    if row is None:
        return None
    id_, nhs, fmt, sha, at, source, blob = row
    return CodedRecordRow(id_, nhs, fmt, sha, dt.datetime.fromisoformat(at), source, json.loads(zlib.decompress(blob)))
