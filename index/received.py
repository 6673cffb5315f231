"""Transfer packs received from other practices: the document their pages became and their provenance, stored whole.

A received pack is stored in ONE transaction with the document its pages became (patient,
document, pages, entries), its provenance row and its audit record, so a failure part-way
leaves the catalogue as it was. The pack's signed manifest and signature are kept byte for
byte: anyone can check them again later against the sender's key.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import db
from .catalogue import Catalogue
from .db import mapped
from .rows import DocumentRow, EntryRow, PageRow, PatientRow


@dataclass(frozen=True, slots=True)
class ReceivedPack:
    """One received pack: whose, which document it became, who received it, and what the sender said."""

    pack_sha256: str
    nhs_number: str
    pack_pdf: str  # archive path of the pack.pdf as signed
    signer_fingerprint: str
    trusted_by: str
    manifest: bytes
    signature: bytes
    provenance: dict[str, Any] = field(default_factory=dict)
    document_id: int | None = None  # set on rows read back
    received_at: dt.datetime | None = None
    actor: str | None = None
    id: int | None = None

    @property
    def manifest_json(self) -> dict[str, Any]:
        return json.loads(self.manifest.decode("utf-8"))


_COLUMNS = ("id, pack_sha256, nhs_number, document_id, pack_pdf, received_at, actor, signer_fingerprint, trusted_by,"
            " manifest, signature, provenance")


def _row(r: tuple[Any, ...]) -> ReceivedPack:
    id_, sha, nhs, doc_id, pdf, at, actor, fp, trusted, manifest, signature, provenance = r
    return ReceivedPack(sha, nhs, pdf, fp, trusted, bytes(manifest), bytes(signature), json.loads(provenance),
                        doc_id, dt.datetime.fromisoformat(at), actor, id_)


@mapped
def record_received(catalogue: Catalogue, patient: PatientRow, document: DocumentRow, pages: Iterable[PageRow],
                    entries: Iterable[EntryRow], pack: ReceivedPack, *, actor: str, at: dt.datetime,
                    **audit: Any) -> int:
    """Store the pack's document, pages and entries, its provenance row and the audit record in one transaction.

    The caller has already refused a patient whose stored name or birth date differs.

    Returns:
        The new document's id.
    Raises:
        DuplicateDocument: the pack's pdf (by SHA-256) is already catalogued.
        ValueError: the rows contradict each other.
    """
    pages, entries = tuple(pages), tuple(entries)
    if document.nhs_number != patient.nhs_number or pack.nhs_number != patient.nhs_number:
        raise ValueError(f"the received pack is for {pack.nhs_number}, its document for {document.nhs_number}, "
                         f"the patient given {patient.nhs_number}")
    if document.status != "ok" or document.page_count != len(pages):
        raise ValueError(f"document {document.source}: page_count {document.page_count}, {len(pages)} page rows")
    # The same rows as Catalogue.record_document writes, but inside this transaction with the provenance.
    page_params = [catalogue._page_params(p) for p in pages]
    entry_params = [catalogue._entry_params(e) for e in entries]
    conn = catalogue._conn
    with db.transaction(conn):
        catalogue._refuse_duplicate(document.sha256)
        catalogue._upsert_patient(patient, document.source)
        document_id = catalogue._insert_document(document, patient.nhs_number)
        catalogue._insert_pages(document_id, page_params, entry_params)
        conn.execute(
            "INSERT INTO received_packs (pack_sha256, nhs_number, document_id, pack_pdf, received_at, actor,"
            " signer_fingerprint, trusted_by, manifest, signature, provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pack.pack_sha256, pack.nhs_number, document_id, pack.pack_pdf, at.isoformat(), actor,
             pack.signer_fingerprint, pack.trusted_by, pack.manifest, pack.signature,
             json.dumps(pack.provenance, sort_keys=True, ensure_ascii=False, default=str)),
        )
        catalogue._insert_audit(actor, "receive_pack", patient.nhs_number,
                                {"document_id": document_id, "source": document.source,
                                 "pack_sha256": pack.pack_sha256, "signer": pack.signer_fingerprint,
                                 "trusted_by": pack.trusted_by, **audit})
    return document_id


@mapped
def received_pack(catalogue: Catalogue, pack_sha256: str) -> ReceivedPack | None:
    """The pack already received with this pack.pdf SHA-256, if any."""
    row = catalogue._conn.execute(f"SELECT {_COLUMNS} FROM received_packs WHERE pack_sha256 = ?",
                                  (pack_sha256,)).fetchone()
    return None if row is None else _row(row)


@mapped
def received_packs(catalogue: Catalogue, nhs_number: str) -> tuple[ReceivedPack, ...]:
    """The packs received for one patient, oldest first."""
    rows = catalogue._conn.execute(f"SELECT {_COLUMNS} FROM received_packs WHERE nhs_number = ? ORDER BY id",
                                   (nhs_number,))
    return tuple(_row(r) for r in rows)


@mapped
def received_for_document(catalogue: Catalogue, document_id: int) -> ReceivedPack | None:
    """The received pack whose pages became document `document_id`, if it is one."""
    row = catalogue._conn.execute(f"SELECT {_COLUMNS} FROM received_packs WHERE document_id = ?",
                                  (document_id,)).fetchone()
    return None if row is None else _row(row)


@mapped
def all_received(catalogue: Catalogue) -> tuple[ReceivedPack, ...]:
    """Every pack received here, newest first."""
    return tuple(_row(r) for r in catalogue._conn.execute(f"SELECT {_COLUMNS} FROM received_packs ORDER BY id DESC"))


@mapped
def received_signers(catalogue: Catalogue) -> tuple[tuple[str, str | None, int, dt.datetime], ...]:
    """Keys that signed packs received here: (fingerprint, the sender's practice as last given, packs, last received)."""
    rows = catalogue._conn.execute(
        "SELECT signer_fingerprint, count(*), max(received_at), (SELECT json_extract(r2.provenance,"
        " '$.sender.practice') FROM received_packs r2 WHERE r2.signer_fingerprint = r.signer_fingerprint"
        " ORDER BY r2.id DESC LIMIT 1) FROM received_packs r GROUP BY signer_fingerprint ORDER BY max(received_at) DESC")
    return tuple((fp, practice, count, dt.datetime.fromisoformat(last)) for fp, count, last, practice in rows)
