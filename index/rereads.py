"""Replacing a document's reading (`lgd digitise --force`): one transaction, same document, same patient, audited.

A scan digitised again (with another OCR engine, say) is the same paper of the same
patient: the document keeps its id, its source and its NHS number, and only what was read
changes: the PDF/A, each page's words and facts, and the dated entries. Pages are updated
in place, never deleted, so clinicians' overrides and past decisions that name a page still
name it (reconciliations see the changed pages and are made again).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import db
from .catalogue import Catalogue
from .rows import DocumentRow, EntryRow, PageRow

_PAGE_COLUMNS = ("width", "height", "dpi", "rotation", "skew", "blank", "phash", "duplicate_of", "confidence",
                 "unreadable", "kind", "text", "words")


def replace_reading(catalogue: Catalogue, document_id: int, document: DocumentRow, pages: Iterable[PageRow],
                    entries: Iterable[EntryRow], *, actor: str, **detail: Any) -> None:
    """Give digitised document `document_id` the new reading `document`, `pages` and `entries`, and audit it.

    `detail` (the engine, say) joins the audit record, which also names the PDF/A before and after.
    The document is left marked not indexed: the caller re-indexes it and marks it.

    Raises:
        KeyError: no such digitised document.
        ValueError: the new reading is of other content, another patient or another page count.
    """
    pages = tuple(pages)
    page_params = [catalogue._page_params(p) for p in pages]  # serialised before BEGIN, as record_document does
    entry_params = [catalogue._entry_params(e) for e in entries]
    conn = catalogue._conn
    with db.transaction(conn):
        row = conn.execute("SELECT nhs_number, sha256, page_count, pdfa_path, source FROM documents"
                           " WHERE id = ? AND status = 'ok'", (document_id,)).fetchone()
        if row is None:
            raise KeyError(document_id)
        nhs, sha256, page_count, old_pdf, source = row
        if (document.nhs_number, document.sha256, document.page_count) != (nhs, sha256, page_count) or \
                len(pages) != page_count:
            raise ValueError(f"the new reading of document {document_id} ({source}) is not of the same scan, "
                             f"patient and {page_count} pages; nothing was changed")
        conn.execute("UPDATE documents SET pdfa_path = ?, pdfa_valid = ?, reason = ?, code = ?, indexed = 0"
                     " WHERE id = ?", (document.pdfa_path, int(bool(document.pdfa_valid)), document.reason,
                                       document.code, document_id))
        sets = ", ".join(f"{c} = ?" for c in _PAGE_COLUMNS)
        # number first in _page_params; duplicate_of may name a page updated later in the loop
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.executemany(f"UPDATE pages SET {sets} WHERE document_id = ? AND number = ?",
                         [(*p[1:], document_id, p[0]) for p in page_params])
        conn.execute("DELETE FROM entries WHERE document_id = ?", (document_id,))
        conn.executemany(
            "INSERT INTO entries (document_id, page, date, date_text, text, x0, y0, x1, y1,"
            " confidence, precision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(document_id, *e) for e in entry_params],
        )
        catalogue._insert_audit(actor, "redigitise", nhs, {
            "document_id": document_id, "source": source, "pdfa_before": old_pdf, "pdfa_after": document.pdfa_path,
            "invalidates": "the patient's reconciliations and packs (its pages were read again)", **detail})
