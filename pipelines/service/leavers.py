"""The leavers worklist: patients leaving for another practice, from "added" to "receipt confirmed".

    awaiting coded record -> reconciled -> in review -> signed off -> packed -> sent -> receipt confirmed
                                       (any step before sent) -> returned for rescan -> reconciled ...

Each step is a function here that checks the person's permission, refuses a step the leaver's
state does not allow (LgdError `illegal_transition`, HTTP 409), and records the step (who,
when, from, to, why) with an audit event. The state a person sees is worked out on read: a
signed-off (or packed, not yet sent) leaver whose sign-off basis changed is back in review,
and says why (signoff.py); a reconciled leaver with decisions made since is in review.
Packing, sending and receipt are in handover.py; the CSV worklist in worklist.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from index import Catalogue
from index import leavers as store
from index.coded import latest_coded_record
from index.decisions import latest_overrides, latest_reconciliation, overrides
from index.entry_covers import entry_covers
from pipelines.actor import free_text
from pipelines.errors import ExitCode, LgdError, NotFound, NotPermitted

from . import review
from .access import Permission, Role, Who
from .notes import valid_nhs_number
from .signoff import Basis, basis_of, current_rules, run_is_current


class State(StrEnum):
    awaiting_coded_record = "awaiting_coded_record"
    reconciled = "reconciled"
    in_review = "in_review"
    signed_off = "signed_off"
    packed = "packed"
    sent = "sent"
    receipt_confirmed = "receipt_confirmed"
    returned_for_rescan = "returned_for_rescan"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


BEFORE_SENT = frozenset({State.awaiting_coded_record, State.reconciled, State.in_review, State.signed_off,
                         State.packed, State.returned_for_rescan})
RECONCILABLE = frozenset({State.awaiting_coded_record, State.reconciled, State.in_review, State.returned_for_rescan})
_ODS = re.compile(r"^[A-Z][0-9]{5}$")  # a GP practice's ODS code: a letter and five digits (A81001)
_MOVEMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_-]{0,39}$")


@dataclass(frozen=True, slots=True)
class Leaver:
    """A leaver as a person sees it: the stored row, the state in force and why it differs from the stored one."""

    row: store.LeaverRow
    state: State
    why: tuple[str, ...] = ()  # why the state is not the stored one ("coded record changed since sign-off"), or what
    # the next step needs ("the coded record changed since reconciliation: reconcile again")
    signed_off: dict[str, Any] | None = None  # the sign-off in force or broken: by, at, fingerprint

    @property
    def id(self) -> int:
        return self.row.id

    def to_json(self) -> dict[str, Any]:
        r = self.row
        return {"id": r.id, "nhs_number": r.nhs_number, "ods_code": r.ods_code, "movement_ref": r.movement_ref,
                "state": self.state.value, "state_label": self.state.label, "stored_state": r.state,
                "why": list(self.why), "since": r.since.isoformat(), "added": r.added.isoformat(),
                "added_by": r.added_by, "signed_off": self.signed_off}


def illegal(leaver: Leaver, doing: str, allowed: frozenset[State] | set[State]) -> LgdError:
    states = ", ".join(sorted(s.label for s in allowed))
    why = f" ({'; '.join(leaver.why)})" if leaver.why else ""
    return LgdError(f"leaver {leaver.id} (NHS number {leaver.row.nhs_number}) is {leaver.state.label}{why}; "
                    f"it can be {doing} only when {states}", ExitCode.partial, "illegal_transition", 409)


def check_ods(value: str) -> str:
    code = (value or "").strip().upper()
    if not _ODS.match(code):
        raise LgdError(f"{value[:20]!r} is not a GP practice ODS code: a letter and five digits, e.g. A81001",
                       ExitCode.usage, "bad_ods_code")
    return code


def check_movement_ref(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if not _MOVEMENT.match(text):
        raise LgdError(f"{text[:50]!r} is not a movement reference: up to 40 letters, digits, / _ or -",
                       ExitCode.usage, "bad_movement_ref")
    return text


# -- reading ---------------------------------------------------------------------------------


def view(catalogue: Catalogue, row: store.LeaverRow) -> Leaver:
    """The leaver with its state in force (see the module's docstring)."""
    stored = State(row.state)
    signed = _last_sign_off(catalogue, row.id) if stored in (State.signed_off, State.packed, State.sent) else None
    if signed is not None:
        changes = basis_of(catalogue, row.nhs_number).changes_since(signed["basis"]["parts"])
        summary = {k: signed[k] for k in ("by", "at", "fingerprint")} | {"broken": bool(changes)}
        if changes and stored is not State.sent:  # what was sent stays sent; a new pack needs a new sign-off
            return Leaver(row, State.in_review, changes, summary)
        return Leaver(row, stored, changes, summary)
    coded, checked = store.coded_and_run(catalogue, row.nhs_number)
    hint = ()  # what the next step needs, where the stored state cannot say it
    if stored is State.awaiting_coded_record and coded is not None:
        hint = ("a coded record is stored: ready to reconcile",)
    elif stored in (State.reconciled, State.in_review) and coded != checked:
        hint = ("the coded record changed since reconciliation: reconcile again",)
    if stored is State.reconciled:
        since = [o for o in overrides(catalogue, row.nhs_number) if o.at >= row.since
                 or (o.confirmed_at is not None and o.confirmed_at >= row.since)]
        since += [c for c in entry_covers(catalogue, row.nhs_number) if c.at >= row.since]
        if since:
            return Leaver(row, State.in_review, (f"{len(since)} decision(s) by people since reconciliation", *hint))
    return Leaver(row, stored, hint)


def _last_sign_off(catalogue: Catalogue, leaver_id: int) -> dict[str, Any] | None:
    step = next((s for s in reversed(store.history(catalogue, leaver_id)) if s.to_state == State.signed_off), None)
    return None if step is None else {"by": step.actor, "at": step.at.isoformat(), **step.detail}


def get(catalogue: Catalogue, who: Who, leaver_id: int) -> Leaver:
    who.require(Permission.view)
    row = store.leaver(catalogue, leaver_id)
    if row is None:
        raise NotFound(f"there is no leaver {leaver_id} (lgd leavers list)", "no_leaver")
    return view(catalogue, row)


def worklist(catalogue: Catalogue, who: Who, *, state: str | None = None, nhs_number: str | None = None,
             include_done: bool = True) -> list[Leaver]:
    """Leavers in the state asked for (the state in force), oldest in that state first."""
    who.require(Permission.view)
    wanted = _state(state) if state else None
    found = [view(catalogue, r) for r in store.leavers(catalogue, valid_nhs_number(nhs_number)
                                                                 if nhs_number else None)]
    found = [lv for lv in found if (wanted is None or lv.state is wanted)
             and (include_done or lv.state is not State.receipt_confirmed)]
    return sorted(found, key=lambda lv: (lv.row.since, lv.id))


def _state(value: str) -> State:
    try:
        return State(value.strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        raise LgdError(f"{value[:40]!r} is not a leaver state; the states are "
                       f"{', '.join(s.value for s in State)}", ExitCode.usage, "bad_state") from None


def steps(catalogue: Catalogue, who: Who, leaver_id: int) -> list[dict[str, Any]]:
    """The leaver's history: every step with who, when, from, to and why."""
    get(catalogue, who, leaver_id)
    return [{"at": s.at.isoformat(), "by": s.actor, "from": s.from_state, "to": s.to_state, "reason": s.reason or None,
             "detail": {k: v for k, v in s.detail.items() if k != "basis"}} for s in store.history(catalogue, leaver_id)]


# -- moving on -------------------------------------------------------------------------------


def _move(catalogue: Catalogue, who: Who, leaver: Leaver, to: State, reason: str = "",
          detail: dict[str, Any] | None = None, pack: tuple[int, str] | None = None) -> Leaver:
    try:
        store.move(catalogue, leaver.id, after=leaver.row.state_id, to_state=to.value, actor=who.name, reason=reason,
                   detail=detail, audit_detail=who.audit_detail(), pack=pack)
    except ValueError as e:
        raise LgdError(str(e), ExitCode.partial, "changed_meanwhile", 409) from None
    return get(catalogue, who, leaver.id)


def add(catalogue: Catalogue, who: Who, nhs_number: str, ods_code: str, movement_ref: str | None = None,
        coded_file: Path | None = None) -> Leaver:
    """Put one patient on the worklist (and store their coded record, if a file is given)."""
    from .worklist import NewRow, add_rows

    return add_rows(catalogue, who, [NewRow(0, nhs_number, ods_code, movement_ref, coded_file)])[0]


def reconcile(catalogue: Catalogue, who: Who, leaver_id: int, coded_file: Path | None = None) -> Leaver:
    """Reconcile the leaver's pages against their coded record (the file given, else the stored one)."""
    from pipelines.reconcile import ensure_reconciled

    who.require(Permission.decide)
    leaver = get(catalogue, who, leaver_id)
    if leaver.state not in RECONCILABLE:
        raise illegal(leaver, "reconciled", RECONCILABLE)
    if coded_file is None and latest_coded_record(catalogue, leaver.row.nhs_number) is None:
        raise LgdError(f"leaver {leaver.id} (NHS number {leaver.row.nhs_number}) is awaiting a coded record: store it "
                       "first (lgd coded import FILE, or give one)", ExitCode.partial, "awaiting_coded_record", 409)
    run = ensure_reconciled(catalogue, leaver.row.nhs_number, coded_file, actor=who.name)
    return _move(catalogue, who, leaver, State.reconciled, f"reconciliation {run.id}", {"run": run.id})


def reconcile_all(catalogue: Catalogue, who: Who) -> list[dict[str, Any]]:
    """Reconcile every leaver waiting for it that has a coded record; the others are listed as skipped."""
    who.require(Permission.decide)
    results = []
    for lv in worklist(catalogue, who):
        if lv.state not in RECONCILABLE or lv.state is State.reconciled:
            continue
        if latest_coded_record(catalogue, lv.row.nhs_number) is None:
            results.append({"id": lv.id, "ok": False, "skipped": True,
                            "error": {"code": "awaiting_coded_record", "message": "no coded record yet"}})
            continue
        try:
            results.append({"id": lv.id, "ok": True, "leaver": reconcile(catalogue, who, lv.id).to_json()})
        except LgdError as e:
            results.append({"id": lv.id, "ok": False, "error": {"code": e.code, "message": str(e)}})
    return results


def decide_page(catalogue: Catalogue, who: Who, leaver_id: int, page: str, decision: str | None,
                reason: str) -> review.Outcome:
    """A person's decision on one of the leaver's pages, under review's gates; the leaver is then in review."""
    leaver = _reviewable(catalogue, who, leaver_id)
    done = review.decide(catalogue, who, leaver.row.nhs_number, page, decision, reason)
    _into_review(catalogue, who, leaver, f"page {done.page.number}: {decision or 'cleared'}")
    return done


def confirm_page(catalogue: Catalogue, who: Who, leaver_id: int, page: str) -> review.Outcome:
    leaver = _reviewable(catalogue, who, leaver_id)
    done = review.confirm(catalogue, who, leaver.row.nhs_number, page)
    _into_review(catalogue, who, leaver, f"page {done.page.number}: omission confirmed")
    return done


REVIEWABLE = frozenset({State.reconciled, State.in_review, State.signed_off, State.packed})


def _reviewable(catalogue: Catalogue, who: Who, leaver_id: int) -> Leaver:
    who.require(Permission.include)
    leaver = get(catalogue, who, leaver_id)
    if leaver.state not in REVIEWABLE:
        raise illegal(leaver, "reviewed", REVIEWABLE)
    return leaver


def _into_review(catalogue: Catalogue, who: Who, leaver: Leaver, reason: str) -> None:
    if State(leaver.row.state) is not State.in_review:
        _move(catalogue, who, get(catalogue, who, leaver.id), State.in_review, reason)


def sign_off(catalogue: Catalogue, who: Who, leaver_id: int, note: str | None = None) -> Leaver:
    """A clinician signs off the leaver's page decisions as they stand, freezing them (signoff.py)."""
    who.require(Permission.decide)
    if who.role not in (Role.clinician, Role.owner):
        raise NotPermitted(f"{who.name} is a {who.role.value}; only a clinician signs off", "not_permitted")
    leaver = get(catalogue, who, leaver_id)
    allowed = {State.reconciled, State.in_review}
    if leaver.state not in allowed:
        raise illegal(leaver, "signed off", allowed)
    nhs = leaver.row.nhs_number
    waiting = sorted(f"{o.document_id}-{o.page}" for o in latest_overrides(catalogue, nhs).values() if o.pending)
    if waiting:
        raise LgdError(f"leaver {leaver.id} cannot be signed off: the omission of page(s) {', '.join(waiting)} awaits "
                       "a second clinician's confirmation (four eyes); confirm or clear it first", ExitCode.partial,
                       "awaiting_confirmation", 409)
    # Seconds of work (the rules' fingerprint reads the dictionaries), so after the cheap refusals.
    if (stale := run_is_current(catalogue, latest_reconciliation(catalogue, nhs), current_rules())) is not None:
        raise LgdError(f"leaver {leaver.id} cannot be signed off: {stale}", ExitCode.partial, "not_current", 409)
    basis: Basis = basis_of(catalogue, nhs)
    text = free_text(note, "the note") if note else ""
    return _move(catalogue, who, leaver, State.signed_off, text, {"fingerprint": basis.fingerprint,
                                                                  "basis": basis.to_json()})


def return_for_rescan(catalogue: Catalogue, who: Who, leaver_id: int, reason: str) -> Leaver:
    """Send the leaver back for pages to be scanned or digitised again; anyone who may send more paper may."""
    who.require(Permission.include)
    reason = free_text(reason, "the reason")
    leaver = get(catalogue, who, leaver_id)
    if leaver.state not in BEFORE_SENT or leaver.state is State.returned_for_rescan:
        raise illegal(leaver, "returned for rescan", BEFORE_SENT - {State.returned_for_rescan})
    return _move(catalogue, who, leaver, State.returned_for_rescan, reason)


def move(catalogue: Catalogue, who: Who, leaver: Leaver, to: State, reason: str = "",
         detail: dict[str, Any] | None = None, pack: tuple[int, str] | None = None) -> Leaver:
    """Record a step decided elsewhere in the application layer (handover.py), after its own checks."""
    return _move(catalogue, who, leaver, to, reason, detail, pack)
