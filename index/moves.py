"""Moving a document to another patient: one transaction, both patients' audit trails.

Filing a scan under the wrong NHS number happens (the National Document Repository lets a
practice move it); the move rewrites only the document's owner and PDF path, and leaves a
record of who moved what, from whom, to whom and why on both patients.
"""

from __future__ import annotations

from . import db
from .catalogue import Catalogue


def move_document(catalogue: Catalogue, document_id: int, to_nhs: str, pdfa_path: str, *, actor: str,
                  reason: str) -> str:
    """Give document `document_id` to patient `to_nhs` (created if new) with its PDF at `pdfa_path`; return the old NHS number.

    Raises:
        KeyError: no such digitised document.
    """
    conn = catalogue._conn
    with db.transaction(conn):
        row = conn.execute("SELECT nhs_number, source FROM documents WHERE id = ? AND status = 'ok'",
                           (document_id,)).fetchone()
        if row is None:
            raise KeyError(document_id)
        from_nhs, source = row
        conn.execute("INSERT OR IGNORE INTO patients (nhs_number, name, born) VALUES (?, NULL, NULL)", (to_nhs,))
        conn.execute("UPDATE documents SET nhs_number = ?, pdfa_path = ? WHERE id = ?", (to_nhs, pdfa_path, document_id))
        detail = {"document_id": document_id, "source": source, "from": from_nhs, "to": to_nhs, "reason": reason,
                  "invalidates": "reconciliations and packs of both patients (their pages changed)"}
        catalogue._insert_audit(actor, "reassign_out", from_nhs, detail)
        catalogue._insert_audit(actor, "reassign_in", to_nhs, detail)
    return from_nhs
