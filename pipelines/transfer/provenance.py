"""provenance.json: a media pack's decisions as signed data, so a receiver never reads them back out of the cover.

The cover sheet and the index of omitted pages are for people; this file is the same facts for
programs, written from the objects the cover is drawn from (the pack plan, the pack document's
layout) and never from the cover's text (issue 9: reasons as data). It sits in the encrypted
archive beside pack.pdf and is listed in manifest.json with its size and SHA-256, so the
manifest's signature covers it; packs made before it existed simply do not hold it.

    build_provenance(plan, document, ...) -> dict      (the pack builder)
    read_provenance(data, manifest) -> dict             (the receiver; ProvenanceInvalid saying why)

Shape (schema "lgd-pack-provenance", version 1): pack (catalogue id, uuid, format, created,
pack.pdf SHA-256), sender (practice name and ODS code or null, who built it), patient (NHS
number, name, date of birth), destination (a leaver's ODS code and movement reference, or
null), reconciliation (run id, when, rules and thresholds, coded record format, SHA-256 and
count), record_pages (every page of the digitised record: source, page, decision, the
machine's decision and reason code with its counts, the person's override and its
confirmation, the clinicians' covers of entries by named coded events, and for omitted pages the paper entries with the coded events covering them),
and pack_pages (what each page of pack.pdf is: cover, omitted_index, record with its source
and page, excerpts, electronic, blank).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from index.rows import OverrideRow

from .document import PackDocument
from .plan import PackPlan, PlannedPage
from .reasons import omission

NAME = "provenance.json"
SCHEMA = "lgd-pack-provenance"
VERSION = 1
MAX_BYTES = 8 * 1024 * 1024  # a record of a few hundred pages with evidence is well under 1 MB
PARTS = ("cover", "omitted_index", "record", "excerpts", "electronic", "blank")


class ProvenanceInvalid(ValueError):
    """A provenance.json that is signed but not what lgd writes, or contradicts the signed manifest."""


def build_provenance(plan: PackPlan, document: PackDocument, *, pack_id: int, pack_uuid: str, format: str,  # noqa: A002
                     created: str, practice: str | None, ods_code: str | None, built_by: str,
                     destination: dict[str, Any] | None) -> dict[str, Any]:
    """The provenance document of one pack (see the module docstring); pure."""
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "pack": {"id": pack_id, "uuid": pack_uuid, "format": format, "created": created,
                 "pack_pdf_sha256": document.sha256, "pages": document.pages},
        "sender": {"practice": practice or None, "ods_code": ods_code or None, "built_by": built_by,
                   "built_at": created},
        "patient": {"nhs_number": plan.nhs_number, "name": plan.name,
                    "born": plan.born.isoformat() if plan.born else None},
        "destination": destination,
        "reconciliation": {"run": plan.run_id, "created": plan.run_created.isoformat(),
                           "rules": dict(plan.run_settings),
                           "coded": {"format": plan.coded_format, "sha256": plan.coded_sha256,
                                     "events": plan.coded_events}},
        "counts": {"pages_total": plan.full_record_pages, "pages_included": len(plan.included),
                   "pages_omitted": len(plan.omitted)},
        "record_pages": [_page(p) for p in plan.pages],
        "pack_pages": pack_pages(document),
    }


def _page(p: PlannedPage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": p.source, "page": p.page, "kind": p.kind, "decision": "sent" if p.included else "omitted",
        "machine_decision": p.machine, "reason_code": p.reason_code or None, "reason_detail": dict(p.reason_detail),
        "override": _override(p.override),
        # A clinician's naming of the coded event that covers an entry lgd could not match (1-based entry).
        "entry_covers": [c.to_json() for c in p.entry_covers if c.event is not None],
    }
    if not p.included:
        out["omission"] = omission(p).kind  # reasons.KINDS: blank, rescan, covered, clinician, ...
        out["evidence"] = [_entry(e) for e in p.entries]
    return out


def _override(o: OverrideRow | None) -> dict[str, Any] | None:
    if o is None or o.decision is None:
        return None
    return {"decision": o.decision, "by": o.actor, "at": o.at.isoformat(), "reason": o.reason,
            "needs_confirmation": o.needs_confirmation, "confirmed_by": o.confirmed_by,
            "confirmed_at": o.confirmed_at.isoformat() if o.confirmed_at else None}


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    """A paper entry of an omitted page, and the coded events that cover it (as reconciliation stored them)."""
    return {"date": e.get("date"), "text": e.get("text"), "status": e.get("status"), "reason": e.get("reason"),
            "covered_by": [{"system": c.get("system"), "code": c.get("code"), "display": c.get("display"),
                            "date": c.get("date"), "how": c.get("how"), "score": c.get("score")}
                           for c in e.get("evidence") or ()]}


def pack_pages(document: PackDocument) -> list[dict[str, Any]]:
    """What each page of pack.pdf is, from the layout the builder made (blank: a duplex padding page)."""
    parts: dict[int, dict[str, Any]] = {}
    for s in document.sections:
        if s.kind != "record":
            for n in range(s.first_page, s.first_page + s.pages):
                parts[n] = {"part": s.kind}
    for r in document.record:
        parts[r.pack_page] = {"part": "record", "source": r.source, "page": r.page, "record_page": r.number}
    return [{"pack_page": n, **parts.get(n, {"part": "blank"})} for n in range(1, document.pages + 1)]


def to_bytes(provenance: dict[str, Any]) -> bytes:
    return (json.dumps(provenance, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def read_provenance(data: bytes, manifest: dict[str, Any]) -> dict[str, Any]:
    """A verified pack's provenance.json, checked for shape and against its signed manifest.

    Only called once the manifest's signature and every file's SHA-256 were checked, so the bytes
    are the sender's; this refuses a file some other program wrote or one that contradicts the
    manifest (the patient, the pack.pdf it describes), rather than trusting part of it.

    Raises:
        ProvenanceInvalid: saying what is wrong.
    """
    if len(data) > MAX_BYTES:
        raise ProvenanceInvalid(f"{NAME} holds {len(data):,} bytes, more than lgd writes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProvenanceInvalid(f"{NAME} is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("version") != VERSION:
        raise ProvenanceInvalid(f"{NAME} is not a version {VERSION} {SCHEMA} document; it may come from a newer lgd")
    for key, kind in (("pack", dict), ("sender", dict), ("patient", dict), ("reconciliation", dict),
                      ("record_pages", list), ("pack_pages", list)):
        if not isinstance(doc.get(key), kind):
            raise ProvenanceInvalid(f"{NAME} has no {key}")
    if doc["patient"].get("nhs_number") != manifest.get("patient"):
        raise ProvenanceInvalid(f"{NAME} is for NHS number {str(doc['patient'].get('nhs_number'))[:20]!r}, the signed "
                                f"manifest for {manifest.get('patient')}")
    signed_pdf = {f.get("sha256") for f in manifest.get("files") or [] if isinstance(f, dict) and f.get("name") == "pack.pdf"}
    if doc["pack"].get("pack_pdf_sha256") not in signed_pdf:
        raise ProvenanceInvalid(f"{NAME} describes another pack.pdf than the one the manifest signs")
    for i, p in enumerate(doc["pack_pages"], 1):
        if not isinstance(p, dict) or p.get("pack_page") != i or p.get("part") not in PARTS:
            raise ProvenanceInvalid(f"{NAME}'s pack_pages entry {i} is not a page of the pack")
        if p["part"] == "record" and not (isinstance(p.get("source"), str) and isinstance(p.get("page"), int)):
            raise ProvenanceInvalid(f"{NAME}'s record page {i} names no source and page")
    for p in doc["record_pages"]:
        if not isinstance(p, dict) or p.get("decision") not in ("sent", "omitted") or not isinstance(p.get("source"), str):
            raise ProvenanceInvalid(f"{NAME} lists a record page without a source and a decision")
    strings = {"patient.name": doc["patient"].get("name"), "sender.practice": doc["sender"].get("practice"),
               "sender.ods_code": doc["sender"].get("ods_code"), "sender.built_by": doc["sender"].get("built_by"),
               "pack.uuid": doc["pack"].get("uuid")}
    for where, value in strings.items():
        if value is not None and not isinstance(value, str):
            raise ProvenanceInvalid(f"{NAME}'s {where} is not text")
    if not isinstance(doc["pack"].get("id"), (int, type(None))) or not isinstance(
            doc["reconciliation"].get("coded"), (dict, type(None))):
        raise ProvenanceInvalid(f"{NAME}'s pack id or coded record is not what lgd writes")
    born = doc["patient"].get("born")
    if born is not None:
        try:
            dt.date.fromisoformat(born)
        except (TypeError, ValueError) as e:
            raise ProvenanceInvalid(f"{NAME}'s date of birth {str(born)[:20]!r} is not a date") from e
    return doc
