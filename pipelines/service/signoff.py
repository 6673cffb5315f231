"""What a leaver's sign-off freezes: a fingerprint of everything the page decisions depend on.

A clinician signs off the decisions as they stand. Anything that could change what the pack
sends or leaves out afterwards (a new coded record, a reconciliation under other rules or with
other decisions, a rescan or re-digitised document, a person's decision or confirmation)
changes one part of the basis, and the leaver is back in review, with the part named. It is
computed on read by comparing bases, so nothing has to remember to "invalidate" a sign-off.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from index import Catalogue
from index.coded import latest_coded_record
from index.decisions import latest_reconciliation, overrides
from index.entry_covers import entry_covers
from index.rows import ReconciliationRow

# Each part of the basis, and what it means to the reader when it differs from the signed-off one.
CHANGED = {
    "coded_record": "coded record changed since sign-off",
    "rules": "reconciled again under other rules or settings since sign-off",
    "pages": "pages changed since sign-off (a rescan, a re-digitised or a new document)",
    "decisions": "reconciliation decided differently since sign-off",
    "people": "a person's decision or confirmation was recorded since sign-off",
}


@dataclass(frozen=True, slots=True)
class Basis:
    """The parts a sign-off depends on, each as a short digest (plain data, stored with the sign-off)."""

    parts: dict[str, str | None]

    @property
    def fingerprint(self) -> str:
        return _digest(self.parts)

    def changes_since(self, signed: dict[str, Any]) -> tuple[str, ...]:
        """Sentences for each part that differs from `signed` (a stored basis), in a fixed order."""
        return tuple(text for part, text in CHANGED.items() if signed.get(part) != self.parts.get(part))

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "parts": dict(self.parts)}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def current_rules() -> dict[str, Any]:
    """The thresholds and rules fingerprint a run made now would store (imported late: it hashes the rules)."""
    from pipelines.reconcile import Settings
    from pipelines.reconcile.run import provenance

    return provenance(Settings())


def basis_of(catalogue: Catalogue, nhs_number: str) -> Basis:
    """The patient's basis now (cheap: catalogue reads only, so every read of a leaver can compare it).

    The rules part is what the latest run decided under. Whether this lgd would decide under the
    same rules (an upgrade, a changed vocabulary) costs seconds to work out, so it is checked where
    it matters, at sign-off and at packing (run_is_current), which refuse with "reconcile again".
    """
    run = latest_reconciliation(catalogue, nhs_number)
    coded = latest_coded_record(catalogue, nhs_number)
    documents = catalogue.documents(nhs_number, status="ok")
    people = overrides(catalogue, nhs_number)
    return Basis({
        "coded_record": coded.sha256 if coded else None,
        "rules": _digest(run.settings if run else None),
        # A rescan is a new document; re-digitising stores a new PDF/A under its content hash.
        "pages": _digest([(d.id, d.sha256, d.pdfa_path, d.page_count) for d in documents]),
        "decisions": _digest(None if run is None else
                             [run.coded_sha256, [(p.document_id, p.page, p.decision, p.reason_code) for p in run.pages]]),
        "people": _digest(_people(people, entry_covers(catalogue, nhs_number))),
    })


def _people(overrides_, covers) -> list:
    """Every person's decision: overrides with confirmations, then entry covers (only when there are any,
    so a sign-off made before entry covers existed keeps its fingerprint)."""
    decided: list = [(o.id, o.decision, o.actor, o.confirmed_by) for o in overrides_]
    if covers:
        decided = [decided, [(c.id, c.actor, c.event is not None) for c in covers]]
    return decided


def run_is_current(catalogue: Catalogue, run: ReconciliationRow | None, rules_now: dict[str, Any]) -> str | None:
    """Why the latest run cannot be signed off or packed as it stands (None: it can).

    It must have been made against the patient's latest coded record, under the rules this lgd
    would use, over exactly the pages the patient has now; `lgd pack` would otherwise make a new
    run, and what was signed off would not be what is sent.
    """
    if run is None:
        return "the patient has not been reconciled"
    coded = latest_coded_record(catalogue, run.nhs_number)
    if coded is None or coded.sha256 != run.coded_sha256:
        return "the coded record changed since the last reconciliation; reconcile again"
    if run.settings != rules_now:
        return "the last reconciliation was made under other rules or settings; reconcile again"
    pages = {(int(d.id), n) for d in catalogue.documents(run.nhs_number, status="ok")
             for n in range(1, d.page_count + 1)}
    if pages != {(p.document_id, p.page) for p in run.pages}:
        return "the patient's pages changed since the last reconciliation (a rescan or a new part); reconcile again"
    return None
