"""A damaged archive is refused, never re-created or "repaired" away: catalogue, index and PDFs checked against each other.

Small archives built with the real catalogue (SQLite) and index (Whoosh), no OCR; the real
`lgd` command line run on them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from index import ArchiveError, Catalogue, FullText
from tests.conftest import run_lgd
from tests.test_search_integrity import JANE, JOHN, add_document, make_archive, source_of

D = dt.date


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    a = make_archive(tmp_path / "a")
    add_document(a, JANE, [[(D(1985, 6, 1), "warfarin started")], [(D(1990, 1, 1), "asthma review")]])
    add_document(a, JOHN, [[(D(1988, 3, 3), "cough, Rx amoxicillin")]])
    return a


def index_pages(archive: Path) -> int:
    with FullText.open(archive, create=False) as ft:
        return ft.doc_count()


# -- 1. check compares NHS numbers and notices a deleted PDF ----------------------------------


def test_check_notices_pages_indexed_under_another_patient_and_repair_fixes_them(tmp_path: Path) -> None:
    one = make_archive(tmp_path / "one")
    add_document(one, JANE, [[(D(1990, 1, 1), "penicillin allergy")]])
    add_document(one, JOHN, [[(D(1992, 1, 1), "cough")]])
    two = make_archive(tmp_path / "two")  # the same keys and dates, the patients the other way round
    add_document(two, JOHN, [[(D(1990, 1, 1), "penicillin allergy")]])
    add_document(two, JANE, [[(D(1992, 1, 1), "cough")]])
    shutil.rmtree(one / "fulltext")
    shutil.copytree(two / "fulltext", one / "fulltext")
    check = run_lgd("index", "check", "--archive", one, "--json")
    assert check.returncode == 1 and not check.json["ok"]
    assert sorted(check.json["wrong_patient"]) == ["1:1", "2:1"]
    repaired = run_lgd("index", "check", "--repair", "--archive", one, "--json")
    assert repaired.returncode == 0, repaired.stderr
    after = run_lgd("index", "check", "--archive", one, "--json")
    assert after.returncode == 0 and after.json["ok"] and after.json["wrong_patient"] == []
    found = run_lgd("search", "penicillin", "--patient", JANE, "--archive", one, "--json")
    assert [h["nhs_number"] for h in found.json["hits"]] == [JANE]


def test_check_notices_a_deleted_pdf_and_page_says_it_is_missing(archive: Path) -> None:
    with Catalogue.open(archive, create=False, readonly=True) as cat:
        doc = cat.documents(nhs_number=JANE)[0]
    (archive / doc.pdfa_path).unlink()
    check = run_lgd("index", "check", "--archive", archive, "--json")
    assert check.returncode == 1 and not check.json["ok"]
    assert check.json["missing_pdfs"] == [doc.pdfa_path]
    text = run_lgd("index", "check", "--archive", archive)
    assert "1 PDF" in text.stdout and "backup" in text.stdout
    page = run_lgd("page", doc.source, "1", "--patient", JANE, "--archive", archive, "--json")
    assert page.returncode == 4 and page.json["error"]["code"] == "pdf_missing"
    assert doc.pdfa_path in page.stderr and "missing" in page.stderr
    fine = run_lgd("page", source_of(JOHN), "1", "--patient", JOHN, "--archive", archive, "--json")
    assert fine.returncode == 0


# -- 2. an empty or missing catalogue beside data is damage, and a check never writes ---------


@pytest.mark.parametrize("how", ["zero_bytes", "missing"])
def test_an_empty_or_missing_catalogue_beside_data_is_refused_and_nothing_is_written(archive: Path, how: str) -> None:
    pages = index_pages(archive)
    db = archive / "catalogue.sqlite"
    for extra in archive.glob("catalogue.sqlite-*"):
        extra.unlink()
    if how == "zero_bytes":
        db.write_bytes(b"")
    else:
        db.unlink()
    for args in (["index", "check"], ["index", "check", "--repair"], ["search", "warfarin"], ["index", "rebuild"],
                 ["page", source_of(JANE), "1", "--patient", JANE]):
        proc = run_lgd(*args, "--archive", archive)
        assert proc.returncode == 4, (args, proc.stderr)
        assert "restore" in proc.stderr.lower() and "backup" in proc.stderr, proc.stderr
    assert (db.stat().st_size == 0) if how == "zero_bytes" else not db.exists()
    assert sorted(p.name for p in archive.iterdir() if p.name.startswith("catalogue")) == (["catalogue.sqlite"] if how == "zero_bytes" else [])
    assert index_pages(archive) == pages  # the index was not emptied
    with pytest.raises(ArchiveError) as caught:
        Catalogue.open(archive)  # as lgd digitise opens it
    assert caught.value.code == "archive_corrupt"


def test_a_new_empty_archive_is_still_created(tmp_path: Path) -> None:
    with Catalogue.open(tmp_path / "new") as cat:
        assert cat.counts().documents_ok == 0


def test_index_check_opens_the_catalogue_read_only(archive: Path) -> None:
    db = archive / "catalogue.sqlite"
    os.chmod(db, 0o400)
    try:
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only files")
        proc = run_lgd("index", "check", "--archive", archive, "--json")
        assert proc.returncode == 0 and proc.json["ok"]
    finally:
        os.chmod(db, 0o600)


def test_check_never_changes_the_catalogue_file(archive: Path) -> None:
    db = archive / "catalogue.sqlite"
    before = db.read_bytes()
    proc = run_lgd("index", "check", "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json["ok"]
    assert db.read_bytes() == before
    wal = archive / "catalogue.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # SQLite's reader files at most, no data


def test_repair_refuses_to_empty_the_index_for_an_empty_catalogue(archive: Path, tmp_path: Path) -> None:
    # A valid lgd catalogue with no documents (restored from the wrong backup) beside a full index.
    fresh = make_archive(tmp_path / "fresh")
    Catalogue.open(fresh).close()
    shutil.copy(fresh / "catalogue.sqlite", archive / "catalogue.sqlite")
    for extra in archive.glob("catalogue.sqlite-*"):
        extra.unlink()
    pages = index_pages(archive)
    for args in (["index", "check", "--repair"], ["index", "rebuild"]):
        proc = run_lgd(*args, "--archive", archive)
        assert proc.returncode == 4 and "backup" in proc.stderr, (args, proc.stderr)
    assert index_pages(archive) == pages


# -- 3. the index folder must be private; a truncated segment says how to rebuild -------------


def test_an_index_folder_others_can_write_is_refused(archive: Path) -> None:
    folder = archive / "fulltext"
    folder.chmod(0o777)
    proc = run_lgd("search", "warfarin", "--archive", archive, "--json")
    assert proc.returncode == 4 and proc.json["error"]["code"] == "archive_insecure"
    assert str(folder) in proc.stderr and "chmod" in proc.stderr
    folder.chmod(0o700)
    seg = next(folder.glob("*.seg"))
    seg.chmod(0o666)
    assert run_lgd("search", "warfarin", "--archive", archive).returncode == 4
    seg.chmod(0o600)
    assert run_lgd("search", "warfarin", "--archive", archive).returncode == 0


def test_an_index_folder_owned_by_another_user_is_refused(archive: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user")
    folder = archive / "fulltext"
    os.chown(folder, 65534, 65534)
    proc = run_lgd("index", "check", "--archive", archive)
    assert proc.returncode == 4 and "owned by" in proc.stderr and "lgd index rebuild" in proc.stderr
    rebuilt = run_lgd("index", "rebuild", "--archive", archive)  # replaces it with a private one of ours
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert folder.stat().st_uid == 0 and run_lgd("search", "warfarin", "--archive", archive).returncode == 0


def test_a_truncated_segment_says_rebuild_and_rebuild_works(archive: Path) -> None:
    for seg in (archive / "fulltext").glob("*.seg"):
        seg.write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    for args in (["search", "warfarin"], ["search", "warfarin", "--patient", JANE], ["index", "check"],
                 ["index", "check", "--repair"], ["index", "optimize"]):
        proc = run_lgd(*args, "--archive", archive)
        assert proc.returncode == 4, (args, proc.stderr)
        assert "lgd index rebuild" in proc.stderr and "Ran out of input" not in proc.stderr.split("(")[0]
    rebuilt = run_lgd("index", "rebuild", "--archive", archive, "--json")
    assert rebuilt.returncode == 0 and rebuilt.json["pages"] == 3, rebuilt.stderr
    found = run_lgd("search", "warfarin", "--patient", JANE, "--archive", archive, "--json")
    assert found.returncode == 0 and found.json["total"] == 1
