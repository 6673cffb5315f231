"""The SQLite catalogue: patients, documents, pages, entries and the audit trail, written in whole transactions."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from . import db
from .db import mapped
from .errors import DuplicateDocument
from .rows import AuditRow, Counts, DocumentRow, EntryRow, PageRow, PatientRow, WordTuple


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def pack_words(words: Iterable[WordTuple]) -> bytes:
    """Compact JSON, zlib-compressed: a page's words shrink to a few KB."""
    rows = []
    for w in words:
        if len(w) != 8:
            raise ValueError(f"a word must be (text, x0, y0, x1, y1, confidence, line, block), got {w!r}")
        text, x0, y0, x1, y1, conf, line, block = w
        rows.append([str(text), int(x0), int(y0), int(x1), int(y1), float(conf), int(line), int(block)])
    return zlib.compress(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def unpack_words(blob: bytes) -> tuple[WordTuple, ...]:
    return tuple(
        (t, x0, y0, x1, y1, float(c), line, block)
        for t, x0, y0, x1, y1, c, line, block in json.loads(zlib.decompress(blob))
    )


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _date(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


def _same_name(a: str, b: str) -> bool:
    # "JANE  SMITH" from a folder name and "Jane Smith" from a manifest are not worth an
    # audit record; any other difference is.
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


class Catalogue:
    """The archive's catalogue. Open with `Catalogue.open(archive)`; use as a context manager.

    Every write is one `BEGIN IMMEDIATE` transaction, so a crash leaves a whole document or
    none of it. Failures are kept one row per input hash: recording a failure again replaces
    the previous failure of the same content, and digitising that content successfully
    later replaces the failure row; either way the replaced row is copied into the audit
    trail (actor "catalogue"), so no attempt is forgotten.
    """

    # Who this process acts for, added to every audit record it writes (a command run as a named
    # account sets {"role": ..., "client": "shell"} once); a record's own detail wins.
    process_audit_detail: ClassVar[dict[str, Any]] = {}

    def __init__(self, conn: sqlite3.Connection, archive: Path, clock: Callable[[], dt.datetime]) -> None:
        self._conn = conn
        self.archive = archive
        self._clock = clock

    @classmethod
    def open(
        cls,
        archive: Path,
        *,
        create: bool = True,
        readonly: bool = False,
        busy_timeout: float = 30.0,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> Catalogue:
        """Open (and with `create`, make and migrate) the catalogue of the archive folder `archive`.

        `readonly` opens the file with SQLite's `mode=ro`: nothing is migrated and every write
        raises ArchiveError('archive_readonly'). `busy_timeout` is how long a write waits for
        another process's write to finish before ArchiveError('archive_locked').

        Raises:
            ArchiveError: `archive` is a file; there is no catalogue and `create` is false (or
                `readonly`); the catalogue is newer than this lgd, older and `readonly`, not an
                lgd catalogue, damaged, locked, or on a read-only or full disk.
        """
        archive = Path(archive)
        conn = db.connect(archive, create=create, readonly=readonly, busy_timeout=busy_timeout)
        return cls(conn, archive, clock)

    @property
    def schema_version(self) -> int:
        return db.schema_version(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return db.transaction(self._conn)

    # -- writing -------------------------------------------------------------------------

    @mapped
    def record_document(
        self,
        patient: PatientRow,
        document: DocumentRow,
        pages: Iterable[PageRow],
        entries: Iterable[EntryRow] = (),
    ) -> int:
        """Store a digitised document with all its pages and entries in one transaction.

        The patient is created or completed (known name and birth date are kept; a differing
        one is noted in the audit trail). A failure row for the same content is replaced.

        Returns:
            The new document's id.
        Raises:
            DuplicateDocument: this content (sha256) is already catalogued as digitised.
            ValueError: the rows contradict each other (status, NHS number, page count).
            sqlite3.IntegrityError: a row breaks a constraint; nothing was written.
        """
        pages = tuple(pages)
        entries = tuple(entries)
        if document.status != "ok":
            raise ValueError(
                f"record_document stores digitised documents; use record_failure for {document.source}"
            )
        if document.nhs_number != patient.nhs_number:
            raise ValueError(
                f"document {document.source} is for NHS number {document.nhs_number}, "
                f"but the patient given is {patient.nhs_number}"
            )
        if document.page_count != len(pages):
            raise ValueError(
                f"document {document.source} has page_count {document.page_count} but {len(pages)} page rows"
            )
        # Serialise before BEGIN so a bad word tuple never holds the write lock.
        page_params = [self._page_params(p) for p in pages]
        entry_params = [self._entry_params(e) for e in entries]
        with self._write():
            self._refuse_duplicate(document.sha256)
            self._upsert_patient(patient, document.source)
            self._replace_failure(document.sha256, "failure_resolved")
            doc_id = self._insert_document(document, patient.nhs_number)
            self._insert_pages(doc_id, page_params, entry_params)
        return doc_id

    @mapped
    def record_failure(self, patient: PatientRow | None, document: DocumentRow) -> int:
        """Record an input that could not be digitised; replaces an earlier failure of the same content.

        `patient` is None when the input's identity could not be established; then the
        document's nhs_number must be None too (an unvalidated number is kept in `reason`).

        Raises:
            DuplicateDocument: this content is already catalogued as digitised.
            ValueError: status is not 'failed', or the NHS numbers disagree.
        """
        if document.status != "failed":
            raise ValueError(f"record_failure stores failed documents; use record_document for {document.source}")
        nhs = patient.nhs_number if patient else None
        if document.nhs_number not in (None, nhs):
            raise ValueError(
                f"document {document.source} names NHS number {document.nhs_number}; pass the matching "
                "PatientRow (or leave the document's nhs_number None when identity is unknown)"
            )
        with self._write():
            if document.sha256 is not None:
                self._refuse_duplicate(document.sha256)
                self._replace_failure(document.sha256, "failure_replaced")
            if patient is not None:
                self._upsert_patient(patient, document.source)
            return self._insert_document(document, nhs)

    @mapped
    def mark_indexed(self, *document_ids: int) -> None:
        """Note that the documents' pages are in the full-text index (one transaction for them all)."""
        with self._write() as conn:
            for document_id in document_ids:
                cur = conn.execute("UPDATE documents SET indexed = 1 WHERE id = ? AND status = 'ok'", (document_id,))
                if cur.rowcount == 0:
                    raise ValueError(f"there is no digitised document with id {document_id}")

    @mapped
    def mark_unindexed(self, document_id: int | None = None) -> int:
        """Ask for a document (or, with None, every document) to be indexed again; returns how many."""
        with self._write() as conn:
            if document_id is None:
                return conn.execute("UPDATE documents SET indexed = 0 WHERE status = 'ok'").rowcount
            return conn.execute("UPDATE documents SET indexed = 0 WHERE id = ?", (document_id,)).rowcount

    @mapped
    def audit(self, actor: str, action: str, nhs_number: str | None = None, **detail: Any) -> int:
        """Append an audit record; `detail` must be JSON-serialisable (dates and paths become text)."""
        with self._write():
            return self._insert_audit(actor, action, nhs_number, detail)

    def _insert_audit(self, actor: str, action: str, nhs_number: str | None, detail: dict[str, Any]) -> int:
        detail = {**self.process_audit_detail, **detail}
        cur = self._conn.execute(
            "INSERT INTO audit (at, actor, action, nhs_number, detail) VALUES (?, ?, ?, ?, ?)",
            (_iso(self._clock()), actor, action, nhs_number, json.dumps(detail, default=str, sort_keys=True)),
        )
        return int(cur.lastrowid)

    def _refuse_duplicate(self, sha256: str | None) -> None:
        sql = "SELECT id FROM documents WHERE sha256 = ? AND status = 'ok'"
        row = self._conn.execute(sql, (sha256,)).fetchone()
        if row is not None:
            raise DuplicateDocument(str(sha256), int(row[0]))

    def _replace_failure(self, sha256: str | None, action: str) -> None:
        rows = self._conn.execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE sha256 = ? AND status = 'failed'", (sha256,)
        ).fetchall()
        for old in map(_document, rows):
            detail = {k: getattr(old, k) for k in ("id", "source", "sha256", "code", "reason", "created")}
            self._insert_audit("catalogue", action, old.nhs_number, detail)
            self._conn.execute("DELETE FROM documents WHERE id = ?", (old.id,))

    def _upsert_patient(self, patient: PatientRow, source: str) -> None:
        conn = self._conn
        sql = "SELECT name, born FROM patients WHERE nhs_number = ?"
        row = conn.execute(sql, (patient.nhs_number,)).fetchone()
        born = _iso(patient.born)
        if row is None:
            conn.execute(
                "INSERT INTO patients (nhs_number, name, born) VALUES (?, ?, ?)",
                (patient.nhs_number, patient.name, born),
            )
            return
        old_name, old_born = row
        # Keep what is already known: identity must not drift with each new input, but a
        # disagreement is a fact a person should be able to find.
        differ: dict[str, dict[str, str]] = {}
        if old_name is not None and patient.name is not None and not _same_name(old_name, patient.name):
            differ["name"] = {"kept": old_name, "given": patient.name}
        if old_born is not None and born is not None and old_born != born:
            differ["born"] = {"kept": old_born, "given": born}
        conn.execute(
            "UPDATE patients SET name = coalesce(name, ?), born = coalesce(born, ?) WHERE nhs_number = ?",
            (patient.name, born, patient.nhs_number),
        )
        if differ:
            detail = {"source": source, **differ}
            self._insert_audit("catalogue", "patient_details_differ", patient.nhs_number, detail)

    def _insert_document(self, d: DocumentRow, nhs_number: str | None) -> int:
        cur = self._conn.execute(
            "INSERT INTO documents (source, sha256, nhs_number, page_count, status, pdfa_path, pdfa_valid,"
            " part, parts, reason, code, input_size, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.source, d.sha256, nhs_number, d.page_count, d.status, d.pdfa_path, int(bool(d.pdfa_valid)),
                d.part, d.parts, d.reason, d.code, d.input_size, _iso(d.created or self._clock()),
            ),
        )
        return int(cur.lastrowid)

    def _insert_pages(self, document_id: int, page_params: list[tuple[Any, ...]],
                      entry_params: list[tuple[Any, ...]]) -> None:
        """A document's pages and entries, from `_page_params` and `_entry_params`, inside the caller's transaction."""
        self._conn.executemany(
            "INSERT INTO pages (document_id, number, width, height, dpi, rotation, skew, blank, phash,"
            " duplicate_of, confidence, unreadable, kind, text, words)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(document_id, *p) for p in page_params],
        )
        self._conn.executemany(
            "INSERT INTO entries (document_id, page, date, date_text, text, x0, y0, x1, y1,"
            " confidence, precision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(document_id, *e) for e in entry_params],
        )

    @staticmethod
    def _page_params(p: PageRow) -> tuple[Any, ...]:
        return (
            p.number, p.width, p.height, p.dpi, p.rotation, float(p.skew), int(bool(p.blank)), p.phash,
            p.duplicate_of, float(p.confidence), int(bool(p.unreadable)), str(p.kind), p.text, pack_words(p.words),
        )

    @staticmethod
    def _entry_params(e: EntryRow) -> tuple[Any, ...]:
        x0, y0, x1, y1 = e.box
        return (e.page, _iso(e.date), e.date_text, e.text, x0, y0, x1, y1, float(e.confidence), str(e.precision))

    # -- reading -------------------------------------------------------------------------

    @mapped
    def find_done(self, sha256: str) -> DocumentRow | None:
        """The digitised document with this content hash, if any (failures are not 'done')."""
        sql = f"SELECT {_DOC_COLUMNS} FROM documents WHERE sha256 = ? AND status = 'ok'"
        row = self._conn.execute(sql, (sha256,)).fetchone()
        return None if row is None else _document(row)

    @mapped
    def document(self, document_id: int) -> DocumentRow | None:
        row = self._conn.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?", (document_id,)).fetchone()
        return None if row is None else _document(row)

    @mapped
    def documents(self, nhs_number: str | None = None, status: str | None = None) -> tuple[DocumentRow, ...]:
        """Documents in the order they were recorded, optionally for one patient and/or one status."""
        where, params = _filters(("nhs_number", nhs_number), ("status", status))
        rows = self._conn.execute(f"SELECT {_DOC_COLUMNS} FROM documents{where} ORDER BY id", params)
        return tuple(_document(r) for r in rows)

    @mapped
    def document_ids_named(self, source: str) -> tuple[int, ...]:
        """Ids of the digitised documents whose source name is exactly `source`."""
        rows = self._conn.execute("SELECT id FROM documents WHERE source = ? AND status = 'ok' ORDER BY id", (source,))
        return tuple(int(r[0]) for r in rows)

    @mapped
    def unindexed_documents(self) -> tuple[DocumentRow, ...]:
        """Digitised documents whose pages are not yet (known to be) in the full-text index."""
        sql = f"SELECT {_DOC_COLUMNS} FROM documents WHERE status = 'ok' AND indexed = 0 ORDER BY id"
        rows = self._conn.execute(sql)
        return tuple(_document(r) for r in rows)

    @mapped
    def pages(self, document_id: int) -> tuple[PageRow, ...]:
        rows = self._conn.execute(
            "SELECT number, width, height, dpi, rotation, skew, blank, phash, duplicate_of, confidence,"
            " unreadable, kind, text, words FROM pages WHERE document_id = ? ORDER BY number",
            (document_id,),
        )
        return tuple(
            PageRow(
                n, w, h, dpi, rot, skew, bool(blank), phash, dup, conf, bool(unr), kind, text, unpack_words(words)
            )
            for n, w, h, dpi, rot, skew, blank, phash, dup, conf, unr, kind, text, words in rows
        )

    @mapped
    def entries(self, document_id: int | None = None, nhs_number: str | None = None) -> tuple[EntryRow, ...]:
        """Entries in document, page and reading order, for one document and/or one patient."""
        where, params = _filters(("e.document_id", document_id), ("d.nhs_number", nhs_number))
        rows = self._conn.execute(
            "SELECT e.page, e.date, e.date_text, e.text, e.x0, e.y0, e.x1, e.y1, e.confidence, e.precision,"
            f" e.document_id FROM entries e JOIN documents d ON d.id = e.document_id{where}"
            " ORDER BY e.document_id, e.page, e.id",
            params,
        )
        return tuple(
            EntryRow(page, _date(date), date_text, text, (x0, y0, x1, y1), conf, precision, doc_id)
            for page, date, date_text, text, x0, y0, x1, y1, conf, precision, doc_id in rows
        )

    @mapped
    def patient(self, nhs_number: str) -> PatientRow | None:
        sql = "SELECT nhs_number, name, born FROM patients WHERE nhs_number = ?"
        row = self._conn.execute(sql, (nhs_number,)).fetchone()
        return None if row is None else PatientRow(row[0], row[1], _date(row[2]))

    @mapped
    def patients(self) -> tuple[PatientRow, ...]:
        rows = self._conn.execute("SELECT nhs_number, name, born FROM patients ORDER BY nhs_number")
        return tuple(PatientRow(n, name, _date(born)) for n, name, born in rows)

    @mapped
    def audit_log(
        self, nhs_number: str | None = None, action: str | None = None, limit: int | None = None, *,
        actor: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
    ) -> tuple[AuditRow, ...]:
        """Audit records, oldest first; with `limit`, the most recent `limit` of them; `until` is exclusive."""
        where, params = _filters(("nhs_number", nhs_number), ("action", action), ("actor", actor))
        for op, value in ((">=", since), ("<", until)):
            if value is not None:  # ISO text of one clock and zone compares in time order
                where += (" AND " if where else " WHERE ") + f"at {op} ?"
                params = (*params, _iso(value))
        sql = f"SELECT id, at, actor, action, nhs_number, detail FROM audit{where} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params = (*params, int(limit))
        rows = self._conn.execute(sql, params).fetchall()
        return tuple(
            AuditRow(i, dt.datetime.fromisoformat(at), actor, act, nhs, json.loads(detail))
            for i, at, actor, act, nhs, detail in reversed(rows)
        )

    @mapped
    def counts(self) -> Counts:
        row = self._conn.execute(
            "SELECT (SELECT count(*) FROM patients),"
            " (SELECT count(*) FROM documents WHERE status = 'ok'),"
            " (SELECT count(*) FROM documents WHERE status = 'failed'),"
            " (SELECT count(*) FROM pages), (SELECT count(*) FROM entries)"
        ).fetchone()
        return Counts(*row)


_DOC_COLUMNS = (
    "source, sha256, nhs_number, page_count, status, pdfa_path, pdfa_valid, part, parts,"
    " reason, code, input_size, created, id"
)


def _document(row: tuple[Any, ...]) -> DocumentRow:
    (source, sha, nhs, count, status, pdfa_path, valid, part, parts, reason, code, size, created, id_) = row
    return DocumentRow(
        source, sha, nhs, count, status, pdfa_path, bool(valid), part, parts, reason, code, size,
        dt.datetime.fromisoformat(created), id_,
    )


def _filters(*pairs: tuple[str, object]) -> tuple[str, tuple[object, ...]]:
    # Column names come from this module only, never from callers.
    used = [(column, value) for column, value in pairs if value is not None]
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(f"{c} = ?" for c, _ in used), tuple(v for _, v in used)
