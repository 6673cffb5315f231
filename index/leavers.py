"""The leavers worklist as the catalogue stores it: a patient leaving for another practice, each step of
the transfer as a row of its own, and the packs built for the leaver.

Append-only like the rest of the catalogue: a leaver's state is the `to_state` of its latest
`leaver_states` row, so who moved it, when, from what, to what and why is never rewritten.
Each change is written with its audit record in one transaction, and a change is refused
(ValueError) if the leaver's state is no longer the one the caller decided from, so two people
acting at once cannot both move the same leaver.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import db
from .catalogue import Catalogue
from .db import mapped

STATES = ("awaiting_coded_record", "reconciled", "in_review", "signed_off", "packed", "sent", "receipt_confirmed",
          "returned_for_rescan")


@dataclass(frozen=True, slots=True)
class NewLeaver:
    nhs_number: str
    ods_code: str
    movement_ref: str | None = None


@dataclass(frozen=True, slots=True)
class StateRow:
    """One step of a leaver: `from_state` None for the first."""

    id: int
    leaver_id: int
    at: dt.datetime
    actor: str
    from_state: str | None
    to_state: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaverRow:
    id: int
    nhs_number: str
    ods_code: str
    movement_ref: str | None
    added: dt.datetime
    added_by: str
    state: str  # the stored state: the latest step's to_state
    since: dt.datetime  # when it entered that state
    state_id: int  # the latest step's id: a change is refused if another step came first


@dataclass(frozen=True, slots=True)
class LeaverPackRow:
    pack_id: int
    leaver_id: int
    folder: str  # where the pack's files were written
    ods_code: str
    movement_ref: str | None
    format: str
    created: dt.datetime
    actor: str
    sha256: str
    detail: dict[str, Any] = field(default_factory=dict)


_LEAVER_SQL = (
    "SELECT l.id, l.nhs_number, l.ods_code, l.movement_ref, l.added, l.added_by, s.to_state, s.at, s.id"
    " FROM leavers l JOIN leaver_states s ON s.id = (SELECT max(id) FROM leaver_states WHERE leaver_id = l.id)"
)


def _leaver(row: tuple[Any, ...]) -> LeaverRow:
    id_, nhs, ods, ref, added, by, state, at, state_id = row
    return LeaverRow(id_, nhs, ods, ref, dt.datetime.fromisoformat(added), by, state, dt.datetime.fromisoformat(at),
                     state_id)


@mapped
def add_leavers(catalogue: Catalogue, new: Sequence[NewLeaver], *, actor: str, state: str,
                audit_detail: dict[str, Any]) -> tuple[int, ...]:
    """Add every leaver in `new` in one transaction (all or none), each starting in `state`; audited.

    Raises:
        KeyError: a patient is not in the catalogue (its NHS number is the argument).
        ValueError: a patient already has an open leaver (not yet receipt confirmed), or `state` is unknown.
    """
    if state not in STATES:
        raise ValueError(f"unknown leaver state {state!r}")
    conn = catalogue._conn  # package-internal: rows and audit share the catalogue's one transaction
    ids = []
    with db.transaction(conn):
        for leaver in new:
            if conn.execute("SELECT 1 FROM patients WHERE nhs_number = ?", (leaver.nhs_number,)).fetchone() is None:
                raise KeyError(leaver.nhs_number)
            open_id = _open_leaver(conn, leaver.nhs_number)
            if open_id is not None:
                raise ValueError(f"NHS number {leaver.nhs_number} is already on the worklist as leaver {open_id}")
            at = catalogue._clock().isoformat()
            cur = conn.execute("INSERT INTO leavers (nhs_number, ods_code, movement_ref, added, added_by)"
                               " VALUES (?, ?, ?, ?, ?)", (leaver.nhs_number, leaver.ods_code, leaver.movement_ref,
                                                           at, actor))
            leaver_id = int(cur.lastrowid)
            conn.execute("INSERT INTO leaver_states (leaver_id, at, actor, from_state, to_state, reason)"
                         " VALUES (?, ?, ?, NULL, ?, ?)", (leaver_id, at, actor, state, "added to the worklist"))
            catalogue._insert_audit(actor, "leaver_added", leaver.nhs_number,
                                    {**audit_detail, "leaver": leaver_id, "ods_code": leaver.ods_code,
                                     "movement_ref": leaver.movement_ref, "state": state})
            ids.append(leaver_id)
    return tuple(ids)


def _open_leaver(conn, nhs_number: str) -> int | None:
    row = conn.execute(
        "SELECT l.id FROM leavers l WHERE l.nhs_number = ? AND (SELECT to_state FROM leaver_states WHERE id ="
        " (SELECT max(id) FROM leaver_states WHERE leaver_id = l.id)) != 'receipt_confirmed'", (nhs_number,)).fetchone()
    return None if row is None else int(row[0])


@mapped
def move(catalogue: Catalogue, leaver_id: int, *, after: int, to_state: str, actor: str, reason: str = "",
         detail: dict[str, Any] | None = None, audit_detail: dict[str, Any] | None = None,
         pack: tuple[int, str] | None = None) -> int:
    """Move a leaver to `to_state`, if its latest step is still `after` (the step the caller decided from).

    `pack` (pack id, folder) links a pack just built to the leaver in the same transaction.
    Returns the new step's id.

    Raises:
        KeyError: no such leaver.
        ValueError: an unknown state, or the leaver moved on since the caller looked.
    """
    if to_state not in STATES:
        raise ValueError(f"unknown leaver state {to_state!r}")
    conn = catalogue._conn
    with db.transaction(conn):
        row = conn.execute(f"{_LEAVER_SQL} WHERE l.id = ?", (leaver_id,)).fetchone()
        if row is None:
            raise KeyError(leaver_id)
        leaver = _leaver(row)
        if leaver.state_id != after:
            raise ValueError(f"leaver {leaver_id} changed (it is now {leaver.state.replace('_', ' ')}) while this "
                             "was being done; look again and repeat if still right")
        at = catalogue._clock().isoformat()
        cur = conn.execute("INSERT INTO leaver_states (leaver_id, at, actor, from_state, to_state, reason, detail)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)", (leaver_id, at, actor, leaver.state, to_state, reason,
                                                             json.dumps(detail or {}, sort_keys=True, default=str)))
        if pack is not None:
            conn.execute("INSERT INTO leaver_packs (pack_id, leaver_id, folder, ods_code, movement_ref)"
                         " VALUES (?, ?, ?, ?, ?)", (pack[0], leaver_id, pack[1], leaver.ods_code, leaver.movement_ref))
        catalogue._insert_audit(actor, f"leaver_{to_state}", leaver.nhs_number,
                                {**(audit_detail or {}), "leaver": leaver_id, "from": leaver.state, "to": to_state,
                                 "reason": reason or None, **({"pack": pack[0]} if pack else {})})
    return int(cur.lastrowid)


@mapped
def leaver(catalogue: Catalogue, leaver_id: int) -> LeaverRow | None:
    row = catalogue._conn.execute(f"{_LEAVER_SQL} WHERE l.id = ?", (leaver_id,)).fetchone()
    return None if row is None else _leaver(row)


@mapped
def leavers(catalogue: Catalogue, nhs_number: str | None = None) -> tuple[LeaverRow, ...]:
    """Every leaver (or one patient's), oldest first."""
    where, params = (" WHERE l.nhs_number = ?", (nhs_number,)) if nhs_number else ("", ())
    return tuple(map(_leaver, catalogue._conn.execute(f"{_LEAVER_SQL}{where} ORDER BY l.id", params)))


@mapped
def history(catalogue: Catalogue, leaver_id: int) -> tuple[StateRow, ...]:
    rows = catalogue._conn.execute(
        "SELECT id, leaver_id, at, actor, from_state, to_state, reason, detail FROM leaver_states"
        " WHERE leaver_id = ? ORDER BY id", (leaver_id,))
    return tuple(StateRow(i, lid, dt.datetime.fromisoformat(at), actor, f, t, reason, json.loads(detail))
                 for i, lid, at, actor, f, t, reason, detail in rows)


@mapped
def leaver_packs(catalogue: Catalogue, leaver_id: int) -> tuple[LeaverPackRow, ...]:
    rows = catalogue._conn.execute(
        "SELECT lp.pack_id, lp.leaver_id, lp.folder, lp.ods_code, lp.movement_ref, p.format, p.created, p.actor,"
        " p.sha256, p.detail FROM leaver_packs lp JOIN packs p ON p.id = lp.pack_id WHERE lp.leaver_id = ?"
        " ORDER BY lp.pack_id", (leaver_id,))
    return tuple(LeaverPackRow(pid, lid, folder, ods, ref, fmt, dt.datetime.fromisoformat(created), actor, sha,
                               json.loads(detail))
                 for pid, lid, folder, ods, ref, fmt, created, actor, sha, detail in rows)


@mapped
def coded_and_run(catalogue: Catalogue, nhs_number: str) -> tuple[str | None, str | None]:
    """(SHA-256 of the patient's latest coded record, of the record their latest run was checked against): cheap."""
    conn = catalogue._conn
    coded = conn.execute("SELECT sha256 FROM coded_records WHERE nhs_number = ? ORDER BY id DESC LIMIT 1",
                         (nhs_number,)).fetchone()
    run = conn.execute("SELECT coded_sha256 FROM reconciliations WHERE nhs_number = ? ORDER BY id DESC LIMIT 1",
                       (nhs_number,)).fetchone()
    return (coded[0] if coded else None), (run[0] if run else None)
