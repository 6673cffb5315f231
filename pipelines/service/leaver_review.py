"""One leaver as the review screen shows it: every page with what the pack would do with it and why, and totals.

The pages, decisions and reasons come from the same plan (transfer.plan) and the same omission
reasons (transfer.reasons) the pack's cover sheet is made from, so what a person signs off is
what the cover will say. Sheets are counted double-sided as `lgd pack` counts them: printing
everything is the whole paper record plus the coded record as a GP system prints it (an
estimate); the pages sent are the included pages alone, before a pack's cover and index.
"""

from __future__ import annotations

from typing import Any

from index import Catalogue
from index.decisions import latest_overrides, latest_reconciliation

from . import review
from .access import Who
from .handover import packs
from .leavers import get, steps


def details(catalogue: Catalogue, who: Who, leaver_id: int) -> dict[str, Any]:
    """The leaver, its history, its packs, its pages with decisions and reasons, and the totals."""
    leaver = get(catalogue, who, leaver_id)
    nhs = leaver.row.nhs_number
    catalogue.audit(who.name, "open_leaver", nhs, **who.audit_detail(), leaver=leaver_id)
    patient = catalogue.patient(nhs)
    run = latest_reconciliation(catalogue, nhs)
    pages = _pages(catalogue, nhs, run)
    sent = [p for p in pages if p["send"]]
    totals: dict[str, Any] = {"pages": len(pages), "pages_sent": len(sent), "pages_omitted": len(pages) - len(sent),
                              "awaiting_confirmation": sum(1 for p in pages if p.get("awaiting_confirmation"))}
    if run is not None:
        from pipelines.transfer.electronic import EVENTS_PER_PRINTED_PAGE
        from pipelines.transfer.printing import sheets

        everything = sheets(len(pages), True) + sheets(-(-run.coded_events // EVENTS_PER_PRINTED_PAGE), True)
        totals |= {"sheets_everything": everything, "sheets_pages_sent": sheets(len(sent), True),
                   "sheets_saved": everything - sheets(len(sent), True)}
    return {"leaver": leaver.to_json(),
            "patient": {"nhs_number": nhs, "name": patient.name if patient else None,
                        "dob": patient.born.isoformat() if patient and patient.born else None},
            "reconciliation": None if run is None else {
                "run": run.id, "created": run.created.isoformat(), "by": run.actor,
                "coded": {"format": run.coded_format, "sha256": run.coded_sha256, "events": run.coded_events}},
            "pages": pages, "totals": totals, "history": steps(catalogue, who, leaver_id),
            "packs": packs(catalogue, who, leaver_id)}


def _pages(catalogue: Catalogue, nhs: str, run) -> list[dict[str, Any]]:
    numbered = review.patient_pages(catalogue, nhs)
    if run is None:
        return [{"number": r.number, "id": r.id, "source": r.source, "page": r.page, "send": True, "decision": None,
                 "reason": "not reconciled yet: sent"} for r in numbered]
    from pipelines.transfer.plan import plan_pack
    from pipelines.transfer.reasons import omission

    planned = {(p.document_id, p.page): p for p in plan_pack(catalogue, nhs, run).pages}
    waiting = latest_overrides(catalogue, nhs)
    out = []
    for ref in numbered:
        p = planned.get((ref.document_id, ref.page))
        if p is None:
            continue
        people = {c.entry: c for c in p.entry_covers}
        item: dict[str, Any] = {"number": ref.number, "id": ref.id, "source": ref.source, "page": ref.page,
                                "kind": p.kind, "send": p.included, "decision": p.decision, "machine": p.machine,
                                "reason": p.reason, "reason_code": p.reason_code,
                                "omitted_because": None if p.included else omission(p).text,
                                "entries": [{k: e.get(k) for k in ("date", "text", "status", "why", "evidence")}
                                            | ({"covered_by": people[n].to_json()} if n in people else {})
                                            for n, e in enumerate(p.entries)]}
        if p.override is not None and p.override.decision is not None:
            o = p.override
            item["override"] = {"decision": o.decision, "reason": o.reason, "by": o.actor, "at": o.at.isoformat(),
                                "confirmed_by": o.confirmed_by}
        w = waiting.get((ref.document_id, ref.page))
        if w is not None and w.pending:
            item["awaiting_confirmation"] = {"decision": w.decision, "reason": w.reason, "by": w.actor,
                                             "at": w.at.isoformat()}
        out.append(item)
    return out
