"""The archive folder's files, for real in tmp_path: atomic, idempotent PDF storage and copy-only quarantine."""

from __future__ import annotations

from tests.conftest import unwritable

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from index import ArchiveError, ArchiveStore, sha256_file

NHS = "9434765919"
NOW = dt.datetime(2026, 3, 1, 9, 30, 5, tzinfo=dt.timezone.utc)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> ArchiveStore:
    s = ArchiveStore(tmp_path / "lgd-archive")
    s.ensure()
    return s


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "inbox" / "1of1_Lloyd_George_Record_[Jane Smith]_[9434765919]_[03-02-1950].pdf"
    path.parent.mkdir()
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(3 * 1024 * 1024 + 17) + b"\n%%EOF\n")
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_sha256_file_streams_the_whole_file(pdf: Path) -> None:
    assert sha256_file(pdf) == hashlib.sha256(pdf.read_bytes()).hexdigest()


def test_ensure_creates_the_layout_and_refuses_a_file(tmp_path: Path, store: ArchiveStore) -> None:
    assert listing(store.root) == ["fulltext", "pdf", "quarantine", "tmp"]
    store.ensure()  # idempotent
    a_file = tmp_path / "archive.txt"
    a_file.write_text("x")
    with pytest.raises(ArchiveError) as caught:
        ArchiveStore(a_file).ensure()
    assert caught.value.code == "archive_not_folder"


def test_put_pdf_stores_by_content_hash_and_leaves_the_input(store: ArchiveStore, pdf: Path) -> None:
    original = pdf.read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    relative = store.put_pdf(NHS, pdf)
    assert relative == f"pdf/{NHS}/{sha}.pdf"
    assert store.path(relative).read_bytes() == original
    assert pdf.read_bytes() == original
    assert listing(store.tmp_dir) == []  # the temp file was renamed, not left behind

    before = store.path(relative).stat()
    assert store.put_pdf(NHS, pdf) == relative  # same bytes: nothing to do
    after = store.path(relative).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_put_pdf_repairs_a_target_whose_bytes_do_not_match_its_name(store: ArchiveStore, pdf: Path) -> None:
    relative = store.put_pdf(NHS, pdf)
    store.path(relative).write_bytes(b"damaged")
    assert store.put_pdf(NHS, pdf) == relative
    assert sha256_file(store.path(relative)) == sha256_file(pdf)


def test_put_pdf_refuses_an_nhs_number_that_could_escape_the_folder(store: ArchiveStore, pdf: Path) -> None:
    for bad in ("../../etc", "943476591", "94347659190", ""):
        with pytest.raises(ValueError):
            store.put_pdf(bad, pdf)
    with pytest.raises(ValueError):
        store.path("../outside.pdf")
    assert listing(store.pdf_dir) == []


def test_put_pdf_into_an_unwritable_archive_is_an_archive_error(store: ArchiveStore, pdf: Path) -> None:
    with unwritable(store.pdf_dir):
        with pytest.raises(ArchiveError) as caught:
            store.put_pdf(NHS, pdf)
    assert caught.value.code == "archive_readonly" and str(store.root) in caught.value.message
    assert listing(store.pdf_dir) == [] and listing(store.tmp_dir) == []
    assert pdf.exists()


def test_put_pdf_on_a_full_disk_leaves_no_partial_file(store: ArchiveStore, pdf: Path) -> None:
    # A file-size limit (as `ulimit -f` sets) makes the kernel refuse the write part-way,
    # the closest thing to a full disk that needs no mount. In a child process, so the
    # limit cannot touch pytest's own files.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from index import ArchiveError, ArchiveStore
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))
        try:
            ArchiveStore(Path({str(store.root)!r})).put_pdf({NHS!r}, Path({str(pdf)!r}))
        except ArchiveError as e:
            print(e.code.value)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "archive_full", done.stderr
    assert listing(store.tmp_dir) == []
    assert not any(p.is_file() for p in store.pdf_dir.rglob("*"))


def test_quarantine_copies_inputs_and_explains(store: ArchiveStore, tmp_path: Path) -> None:
    folder_doc = tmp_path / "9434765919 Jane Smith 03-02-1950"
    folder_doc.mkdir()
    pages = [folder_doc / "page 1.png", folder_doc / "page 2.png"]
    for i, p in enumerate(pages):
        p.write_bytes(f"image {i}".encode() * 100)

    where = store.quarantine(pages, folder_doc.name, "ocr_failed", "tesseract crashed on page 2", NOW)

    assert where.parent == store.quarantine_dir
    assert where.name == "20260301T093005-9434765919 Jane Smith 03-02-1950"
    assert [p.read_bytes() for p in pages] == [f"image {i}".encode() * 100 for i in range(2)]  # still there
    reason = json.loads((where / "reason.json").read_text())
    assert {k: reason[k] for k in ("source", "code", "reason", "at")} == {
        "source": folder_doc.name, "code": "ocr_failed", "reason": "tesseract crashed on page 2", "at": NOW.isoformat(),
    }
    for record, original in zip(reason["files"], pages, strict=True):
        assert record["copied"] and record["error"] is None and record["path"] == str(original)
        assert (where / record["name"]).read_bytes() == original.read_bytes()
        assert record["sha256"] == sha256_file(original) and record["bytes"] == original.stat().st_size
    assert listing(where) == ["0001-page 1.png", "0002-page 2.png", "reason.json"]

    again = store.quarantine(pages[:1], folder_doc.name, "ocr_failed", "again", NOW)
    assert again != where and again.name.endswith("-2")
    assert listing(again) == ["page 1.png", "reason.json"]


def test_quarantine_records_what_it_could_not_copy(store: ArchiveStore, tmp_path: Path) -> None:
    missing = tmp_path / "gone.pdf"
    a_folder = tmp_path / "a folder"
    a_folder.mkdir()
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)  # opening a FIFO would block: it must be refused without opening it
    huge = tmp_path / "huge.tif"
    huge.write_bytes(b"x" * 5000)
    fine = tmp_path / "fine.pdf"
    fine.write_bytes(b"%PDF")

    where = store.quarantine([missing, a_folder, fifo, huge, fine], "batch", "unreadable", "see files", NOW, max_copy_bytes=4096)

    files = json.loads((where / "reason.json").read_text())["files"]
    assert [f["copied"] for f in files] == [False, False, False, False, True]
    assert "No such file" in files[0]["error"]
    assert files[1]["error"] == files[2]["error"] == "not a regular file"
    assert files[3]["bytes"] == 5000 and "larger than 4096" in files[3]["error"]
    assert listing(where) == ["0005-fine.pdf", "reason.json"]
    assert huge.stat().st_size == 5000 and fine.exists() and fifo.exists()


def test_quarantine_into_an_unwritable_archive_is_an_archive_error(store: ArchiveStore, pdf: Path) -> None:
    original = pdf.read_bytes()
    with unwritable(store.quarantine_dir):
        with pytest.raises(ArchiveError) as caught:
            store.quarantine([pdf], pdf.name, "x", "y", NOW)
    assert caught.value.code == "archive_readonly"
    assert listing(store.quarantine_dir) == []
    assert pdf.read_bytes() == original
