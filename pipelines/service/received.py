"""Where a patient's received pages came from: the packs other practices sent, as the receiver reads them.

For each received pack: the sending practice and the key that signed it (and why it was
trusted), when the pack was made and what coded record it was checked against, who received it
here and when, every page the sender left out with the sender's own reason, and what each page
of the received document is (the sender's cover, their index of omitted pages, or a record page
with the source file and page it was scanned as). Read by the caller that already checked the
user may view the patient and audited the look (notes.patient_pages).
"""

from __future__ import annotations

from typing import Any

from index import Catalogue
from index.received import ReceivedPack, received_for_document, received_packs
from pipelines.transfer.receive_provenance import COVER_TEXT, omitted_evidence, omitted_reason


def received_for_patient(catalogue: Catalogue, nhs_number: str) -> list[dict[str, Any]]:
    """The patient's received packs, oldest first, as `GET /api/v1/patients/{nhs}/pages` gives them ("received")."""
    return [pack_provenance(p) for p in received_packs(catalogue, nhs_number)]


def pack_provenance(pack: ReceivedPack) -> dict[str, Any]:
    p = pack.provenance
    facts = p.get("pack") or {}
    sender = p.get("sender") or {}
    run = p.get("reconciliation")  # a signed provenance's run; an old pack's cover gives only a sentence
    return {
        "document_id": pack.document_id,
        "pack_sha256": pack.pack_sha256,
        "received_at": pack.received_at.isoformat() if pack.received_at else None,
        "received_by": pack.actor,
        "provenance": p.get("source", COVER_TEXT),  # rows stored before provenance.json were read from the cover
        "sender": {"practice": sender.get("practice"), "ods_code": sender.get("ods_code"),
                   "built_by": sender.get("built_by"), "pack_id": sender.get("pack_id"),
                   "pack_uuid": sender.get("pack_uuid"), "signer_fingerprint": pack.signer_fingerprint,
                   "trusted_by": pack.trusted_by},
        "destination": p.get("destination"),
        "created": facts.get("created"),
        "coded": facts.get("coded"),
        "counts": facts.get("counts"),
        "reconciliation": (f"run {run.get('run')} of {str(run.get('created') or '')[:10]}" if isinstance(run, dict)
                           else (p.get("cover") or {}).get("reconciliation")),
        "omitted": [o | {"reason": omitted_reason(o), "detail": omitted_evidence(o)} for o in p.get("omitted") or []],
        "pages": list(p.get("pages") or []),
    }


def page_parts(received: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """(document id, page) -> what that page of a received document is, from `received_for_patient`."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for pack in received:
        for part in pack["pages"]:
            out[(pack["document_id"], part["pack_page"])] = {k: v for k, v in part.items() if k != "pack_page"}
    return out


def page_received(catalogue: Catalogue, document_id: int, page: int) -> dict[str, Any] | None:
    """For one page of a received document: what it is in the pack, and who sent the pack when; else None."""
    pack = received_for_document(catalogue, document_id)
    if pack is None:
        return None
    part = next((p for p in pack.provenance.get("pages") or [] if p.get("pack_page") == page), {"part": "unknown"})
    about = pack_provenance(pack)
    return {k: v for k, v in part.items() if k != "pack_page"} | {
        "sender": about["sender"], "created": about["created"], "received_at": about["received_at"],
        "received_by": about["received_by"]}
