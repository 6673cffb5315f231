"""The SQLite catalogue, run for real in tmp_path: round trips, whole-document transactions, migrations, archive errors."""

from __future__ import annotations

from tests.conftest import unwritable

import datetime as dt
import json
import os
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from index import ArchiveError, Catalogue, DocumentRow, DuplicateDocument, EntryRow, PageRow, PatientRow
from index.schema import SCHEMA_VERSION

NHS = "9434765919"
NHS2 = "4010232137"
T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc)


def patient(nhs: str = NHS, name: str | None = "Jane Smith", born: dt.date | None = dt.date(1950, 2, 3)) -> PatientRow:
    return PatientRow(nhs, name, born)


def document(sha: str = "a" * 64, nhs: str = NHS, pages: int = 2, **kw: object) -> DocumentRow:
    values: dict[str, object] = dict(
        source="1of1_Lloyd_George_Record_[Jane Smith]_[9434765919]_[03-02-1950].pdf",
        sha256=sha, nhs_number=nhs, page_count=pages, status="ok",
        pdfa_path=f"pdf/{nhs}/{sha}.pdf", pdfa_valid=True, part=1, parts=1,
        reason=None, code=None, input_size=12345,
    )
    values.update(kw)
    return DocumentRow(**values)  # type: ignore[arg-type]


def failure(sha: str | None = "a" * 64, nhs: str | None = None, **kw: object) -> DocumentRow:
    values: dict[str, object] = dict(
        source="scan.pdf", sha256=sha, nhs_number=nhs, page_count=0, status="failed", pdfa_path=None,
        pdfa_valid=False, part=None, parts=None, reason="the PDF is encrypted", code="input_encrypted", input_size=99,
    )
    values.update(kw)
    return DocumentRow(**values)  # type: ignore[arg-type]


def page(number: int, **kw: object) -> PageRow:
    values: dict[str, object] = dict(
        number=number, width=1748, height=2480, dpi=300, rotation=0, skew=0.4, blank=False, phash="c3d4" * 4,
        duplicate_of=None, confidence=87.5, unreadable=False, kind="card",
        text=f"12.3.87 Asthma review page {number}",
        words=(("12.3.87", 10, 20, 110, 45, 91.0, 0, 0), ("Asthma", 120, 20, 230, 45, 88.5, 0, 0), ("Ünïcode", 1, 2, 3, 4, 12.0, 1, 2)),
    )
    values.update(kw)
    return PageRow(**values)  # type: ignore[arg-type]


def entry(page_number: int = 1, **kw: object) -> EntryRow:
    values: dict[str, object] = dict(
        page=page_number, date=dt.date(1987, 3, 12), date_text="12.3.87", text="Asthma review",
        box=(10, 20, 600, 90), confidence=88.0, precision="day",
    )
    values.update(kw)
    return EntryRow(**values)  # type: ignore[arg-type]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "lgd-archive"


@pytest.fixture
def cat(archive: Path) -> Iterator[Catalogue]:
    with Catalogue.open(archive, clock=lambda: T0) as c:
        yield c


# -- round trips ---------------------------------------------------------------------------


def test_record_document_round_trips_every_row(cat: Catalogue) -> None:
    pages = (page(1), page(2, blank=True, duplicate_of=1, rotation=180, unreadable=True, words=()))
    entries = (entry(1), entry(1, date=None, date_text="", text="undated", precision="year"), entry(2, text="later"))
    doc_id = cat.record_document(patient(), document(), pages, entries)

    found = cat.find_done("a" * 64)
    assert found is not None and found.id == doc_id
    assert found == document(created=T0, id=doc_id)
    assert cat.pages(doc_id) == pages
    assert cat.entries(doc_id) == tuple(EntryRow(**{**_fields(e), "document_id": doc_id}) for e in entries)
    assert cat.patient(NHS) == patient()
    counts = cat.counts()
    assert (counts.patients, counts.documents_ok, counts.documents_failed, counts.pages, counts.entries) == (1, 1, 0, 2, 3)
    assert cat.find_done("b" * 64) is None


def _fields(e: EntryRow) -> dict[str, object]:
    return {k: getattr(e, k) for k in EntryRow.__slots__}


def test_words_are_stored_as_zlib_compressed_compact_json(cat: Catalogue, archive: Path) -> None:
    words = tuple((f"w{i}", i, i + 1, i + 2, i + 3, 50.25, i // 10, 0) for i in range(300))
    doc_id = cat.record_document(patient(), document(pages=1), [page(1, words=words)])
    assert cat.pages(doc_id)[0].words == words

    with sqlite3.connect(archive / "catalogue.sqlite") as raw:
        blob = raw.execute("SELECT words FROM pages WHERE document_id = ?", (doc_id,)).fetchone()[0]
    text = zlib.decompress(blob).decode("utf-8")
    assert json.loads(text)[0] == ["w0", 0, 1, 2, 3, 50.25, 0, 0]
    assert ", " not in text and len(blob) < len(text)


def test_entries_for_a_patient_span_documents_and_name_their_document(cat: Catalogue) -> None:
    first = cat.record_document(patient(), document("a" * 64, pages=1), [page(1)], [entry(1)])
    second = cat.record_document(patient(), document("b" * 64, pages=1), [page(1)], [entry(1, text="second")])
    cat.record_document(patient(NHS2), document("c" * 64, nhs=NHS2, pages=1), [page(1)], [entry(1, text="other")])

    mine = cat.entries(nhs_number=NHS)
    assert [(e.document_id, e.text) for e in mine] == [(first, "Asthma review"), (second, "second")]
    assert [d.id for d in cat.documents(nhs_number=NHS)] == [first, second]
    assert len(cat.entries()) == 3


# -- transactions --------------------------------------------------------------------------


def test_a_bad_page_row_leaves_nothing_of_the_document(cat: Catalogue) -> None:
    cat.record_failure(patient(), failure(nhs=NHS))
    # Page 2's rotation breaks a CHECK constraint after the patient, the document and
    # page 1 have been inserted within the transaction.
    with pytest.raises(sqlite3.IntegrityError):
        cat.record_document(patient(name=None, born=dt.date(1960, 1, 1)), document(), [page(1), page(2, rotation=45)], [entry(1)])

    assert cat.documents(status="ok") == ()
    assert cat.find_done("a" * 64) is None
    counts = cat.counts()
    assert (counts.documents_ok, counts.pages, counts.entries) == (0, 0, 0)
    # The earlier failure row was not replaced and no conflict was audited.
    assert [d.code for d in cat.documents(status="failed")] == ["input_encrypted"]
    assert cat.audit_log() == ()


def test_an_entry_on_a_page_that_does_not_exist_leaves_nothing(cat: Catalogue) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        cat.record_document(patient(), document(pages=1), [page(1)], [entry(7)])
    assert cat.counts().patients == 0 and cat.counts().pages == 0


def test_rows_that_contradict_each_other_are_refused_before_writing(cat: Catalogue) -> None:
    with pytest.raises(ValueError, match="page_count"):
        cat.record_document(patient(), document(pages=3), [page(1)])
    with pytest.raises(ValueError, match="NHS number"):
        cat.record_document(patient(NHS2), document(), [page(1), page(2)])
    with pytest.raises(ValueError, match="record_failure"):
        cat.record_document(patient(), failure(nhs=NHS), [])
    with pytest.raises(ValueError, match="word"):
        cat.record_document(patient(), document(pages=1), [page(1, words=(("short", 1, 2),))])
    assert cat.counts().patients == 0


def test_the_same_content_is_recorded_once(cat: Catalogue) -> None:
    doc_id = cat.record_document(patient(), document(), [page(1), page(2)])
    with pytest.raises(DuplicateDocument) as caught:
        cat.record_document(patient(), document(source="copy.pdf"), [page(1), page(2)])
    assert caught.value.document_id == doc_id
    with pytest.raises(DuplicateDocument):
        cat.record_failure(None, failure())
    assert len(cat.documents()) == 1


# -- failures ------------------------------------------------------------------------------


def test_a_failure_is_replaced_by_the_next_failure_and_then_by_success(cat: Catalogue) -> None:
    first = cat.record_failure(None, failure())
    second = cat.record_failure(None, failure(reason="still encrypted"))
    assert [d.id for d in cat.documents(status="failed")] == [second]
    assert cat.find_done("a" * 64) is None

    doc_id = cat.record_document(patient(), document(), [page(1), page(2)])
    assert cat.documents(status="failed") == ()
    assert cat.documents() == (document(created=T0, id=doc_id),)
    # Nothing is forgotten: both replaced failures are in the audit trail.
    trail = [(a.action, a.detail["id"], a.detail["reason"]) for a in cat.audit_log()]
    assert trail == [("failure_replaced", first, "the PDF is encrypted"), ("failure_resolved", second, "still encrypted")]


def test_failures_without_identity_or_hash(cat: Catalogue) -> None:
    cat.record_failure(None, failure(sha=None, reason="cannot read the file"))
    cat.record_failure(None, failure(sha=None, source="other.pdf"))
    cat.record_failure(patient(), failure(sha="b" * 64, nhs=NHS))
    failed = cat.documents(status="failed")
    assert [(d.source, d.nhs_number) for d in failed] == [("scan.pdf", None), ("other.pdf", None), ("scan.pdf", NHS)]
    assert cat.counts().documents_failed == 3 and cat.patient(NHS) == patient()
    with pytest.raises(ValueError, match="PatientRow"):
        cat.record_failure(None, failure(nhs=NHS))


def test_patient_details_are_completed_never_overwritten(cat: Catalogue) -> None:
    cat.record_failure(patient(name=None, born=None), failure(nhs=NHS))
    assert cat.patient(NHS) == PatientRow(NHS, None, None)
    cat.record_document(patient(name="Jane  SMITH", born=None), document(), [page(1), page(2)])
    cat.record_document(patient(name="Jane Smith", born=dt.date(1950, 2, 3)), document("b" * 64), [page(1), page(2)])
    assert cat.patient(NHS) == PatientRow(NHS, "Jane  SMITH", dt.date(1950, 2, 3))
    assert cat.audit_log(action="patient_details_differ") == ()  # case and spacing are not a difference

    cat.record_document(patient(name="John Smith", born=dt.date(1951, 2, 3)), document("c" * 64), [page(1), page(2)])
    assert cat.patient(NHS) == PatientRow(NHS, "Jane  SMITH", dt.date(1950, 2, 3))
    (differ,) = cat.audit_log(action="patient_details_differ")
    assert differ.nhs_number == NHS
    assert differ.detail["born"] == {"kept": "1950-02-03", "given": "1951-02-03"}
    assert differ.detail["name"] == {"kept": "Jane  SMITH", "given": "John Smith"}


# -- indexing flags and audit --------------------------------------------------------------


def test_unindexed_documents_until_marked(cat: Catalogue) -> None:
    a = cat.record_document(patient(), document("a" * 64), [page(1), page(2)])
    b = cat.record_document(patient(), document("b" * 64), [page(1), page(2)])
    cat.record_failure(None, failure("c" * 64))
    assert [d.id for d in cat.unindexed_documents()] == [a, b]
    cat.mark_indexed(a)
    assert [d.id for d in cat.unindexed_documents()] == [b]
    with pytest.raises(ValueError):
        cat.mark_indexed(999)
    cat.mark_indexed(b)
    assert cat.unindexed_documents() == ()
    assert cat.mark_unindexed() == 2
    assert [d.id for d in cat.unindexed_documents()] == [a, b]


def test_audit_log_filters_and_keeps_order(cat: Catalogue) -> None:
    cat.audit("dr.jones", "search", NHS, query="asthma", on=dt.date(2026, 3, 1), path=Path("/x"))
    cat.audit("dr.jones", "override", NHS2, page=3)
    cat.audit("lgd", "ingest_batch", count=12)
    log = cat.audit_log()
    assert [(a.actor, a.action, a.nhs_number) for a in log] == [
        ("dr.jones", "search", NHS), ("dr.jones", "override", NHS2), ("lgd", "ingest_batch", None),
    ]
    assert log[0].detail == {"query": "asthma", "on": "2026-03-01", "path": "/x"}
    assert log[0].at == T0 and log[0].id < log[1].id
    assert [a.action for a in cat.audit_log(nhs_number=NHS2)] == ["override"]
    assert [a.action for a in cat.audit_log(limit=2)] == ["override", "ingest_batch"]


# -- opening, migrations, archive errors ---------------------------------------------------


def test_opening_again_migrates_nothing_and_keeps_data(archive: Path) -> None:
    with Catalogue.open(archive) as c:
        doc_id = c.record_document(patient(), document(), [page(1), page(2)])
        assert c.schema_version == SCHEMA_VERSION
    with Catalogue.open(archive) as c, Catalogue.open(archive, create=False) as d:
        assert c.schema_version == d.schema_version == SCHEMA_VERSION
        assert [x.id for x in d.documents()] == [doc_id]
    with sqlite3.connect(archive / "catalogue.sqlite") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"patients", "documents", "pages", "entries", "audit"} <= tables


def test_a_newer_catalogue_is_refused(archive: Path) -> None:
    Catalogue.open(archive).close()
    with sqlite3.connect(archive / "catalogue.sqlite") as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for readonly in (False, True):
        with pytest.raises(ArchiveError) as caught:
            Catalogue.open(archive, readonly=readonly)
        assert caught.value.code == "archive_too_new" and "Upgrade lgd" in str(caught.value)


def test_paths_that_are_not_archives(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello")
    with pytest.raises(ArchiveError) as caught:
        Catalogue.open(a_file)
    assert caught.value.code == "archive_not_folder" and str(a_file) in str(caught.value)

    with pytest.raises(ArchiveError) as caught:
        Catalogue.open(tmp_path / "absent", create=False)
    assert caught.value.code == "archive_missing"
    assert not (tmp_path / "absent").exists()

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "catalogue.sqlite").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ArchiveError) as caught:
        Catalogue.open(garbage)
    assert caught.value.code == "archive_corrupt"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "catalogue.sqlite") as raw:
        raw.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(ArchiveError) as caught:
        Catalogue.open(foreign)
    assert caught.value.code == "archive_corrupt" and "not an lgd catalogue" in str(caught.value)
    with sqlite3.connect(foreign / "catalogue.sqlite") as raw:  # and it was left alone
        assert [r[0] for r in raw.execute("SELECT name FROM sqlite_master")] == ["invoices"]


def test_writing_through_a_readonly_connection_is_an_archive_error(archive: Path) -> None:
    with Catalogue.open(archive) as c:
        doc_id = c.record_document(patient(), document(), [page(1), page(2)])
    with Catalogue.open(archive, readonly=True) as ro:
        assert ro.pages(doc_id)[1].number == 2  # reading works
        for write in (
            lambda: ro.record_document(patient(), document("b" * 64), [page(1), page(2)]),
            lambda: ro.audit("me", "search", NHS),
            lambda: ro.mark_indexed(doc_id),
        ):
            with pytest.raises(ArchiveError) as caught:
                write()
            assert caught.value.code == "archive_readonly"
            assert str(archive) in caught.value.message and "writable" in caught.value.message
        assert len(ro.documents()) == 1


def test_an_unwritable_archive_folder_is_an_archive_error(archive: Path) -> None:
    Catalogue.open(archive).close()
    with unwritable(archive / "catalogue.sqlite"), unwritable(archive):
        with pytest.raises(ArchiveError) as caught:
            with Catalogue.open(archive) as c:
                c.audit("me", "search")
        assert caught.value.code == "archive_readonly"
        with pytest.raises(ArchiveError) as caught:
            Catalogue.open(archive / "new-archive")
        assert caught.value.code == "archive_readonly"


def test_a_full_disk_is_an_archive_error_and_writes_nothing(cat: Catalogue) -> None:
    cat.record_document(patient(), document(pages=1), [page(1)])
    # The fault is injected in SQLite itself: a page-count cap makes it report
    # SQLITE_FULL ("database or disk is full") exactly as a full disk would.
    used = cat._conn.execute("PRAGMA page_count").fetchone()[0]
    cat._conn.execute(f"PRAGMA max_page_count = {used + 2}")
    big = tuple(page(n, text=os.urandom(20_000).hex()) for n in (1, 2, 3))
    with pytest.raises(ArchiveError) as caught:
        cat.record_document(patient(), document("b" * 64, pages=3), big)
    assert caught.value.code == "archive_full" and "Free some space" in caught.value.message
    assert cat.counts().documents_ok == 1 and cat.counts().pages == 1


def test_a_long_held_write_lock_is_an_archive_error(archive: Path) -> None:
    with Catalogue.open(archive, busy_timeout=0.2) as cat:
        other = sqlite3.connect(archive / "catalogue.sqlite", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(ArchiveError) as caught:
                cat.audit("me", "search")
            assert caught.value.code == "archive_locked"
            assert cat.documents() == ()  # WAL: reading does not wait for the writer
        finally:
            other.execute("ROLLBACK")
            other.close()
        cat.audit("me", "search")
        assert len(cat.audit_log()) == 1
