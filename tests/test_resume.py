"""An interrupted `lgd digitise` (Ctrl-C or SIGKILL part-way through a batch) and the re-run that resumes it.

The real command runs in its own process group, as it would in a terminal; the test waits
until the catalogue (read-only, as another program would read it) shows documents stored,
then interrupts the whole group. What must hold afterwards: every stored document is whole
(pages, a valid PDF/A file), nothing is left in ARCHIVE/tmp, and a re-run skips what was
done, digitises the rest and indexes every page.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from pikepdf.pdfa import validate_written

from tests.conftest import LGD, REPO, run_lgd
from fixtures.generate import generate_pages
from index import Catalogue, FullText

DOCUMENTS = 8


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """Eight small (2-page) NDR-named image PDFs, one patient each."""
    root = tmp_path_factory.mktemp("resume")
    inbox = root / "inbox"
    inbox.mkdir()
    for i in range(DOCUMENTS):
        batch = generate_pages(root / f"gen{i}", pages=2, seed=100 + i)
        for source in batch.sources:
            shutil.copy(source, inbox / source.name)
    assert len(list(inbox.iterdir())) == DOCUMENTS  # eight different patients
    return inbox


def ok_documents(archive: Path) -> int:
    """Digitised documents, read as another program would: read-only, never blocking the writer."""
    try:
        conn = sqlite3.connect(f"file:{archive / 'catalogue.sqlite'}?mode=ro", uri=True, timeout=0.5)
        try:
            return conn.execute("SELECT count(*) FROM documents WHERE status = 'ok'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or busy
        return 0


def interrupt(inbox: Path, archive: Path, sig: signal.Signals, group: bool = True,
              seen: list[int] | None = None) -> tuple[subprocess.Popen, str, str, float]:
    """Start a batch with two workers, send `sig` to its process group (or the main process alone)
    once two documents are stored; `seen` receives the worker pids alive just before."""
    proc = subprocess.Popen(
        [*LGD, "digitise", str(inbox), "--archive", str(archive), "--jobs", "2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while ok_documents(archive) < 2:
            assert proc.poll() is None, ("finished before it could be interrupted", proc.communicate())
            assert time.monotonic() < deadline, "no document stored in time"
            time.sleep(0.05)
        if seen is not None:
            seen.extend(children(proc.pid))
        if group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)  # as a service manager or `kill PID` does: the workers get nothing
        sent = time.monotonic()
        out, err = proc.communicate(timeout=120)
        return proc, out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def children(pid: int) -> list[int]:
    return [int(p) for t in Path(f"/proc/{pid}/task").iterdir()
            for p in (t / "children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def assert_consistent(archive: Path) -> dict[str, int]:
    """Every digitised document has all its pages and a valid PDF/A; returns source -> id."""
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        docs = catalogue.documents()
        assert all(d.status == "ok" for d in docs), [(d.source, d.reason) for d in docs if d.status != "ok"]
        for doc in docs:
            pages = catalogue.pages(doc.id)
            assert doc.page_count == 2 and [p.number for p in pages] == [1, 2], doc.source
            path = archive / doc.pdfa_path
            assert path.is_file(), doc.source
            report = validate_written(path, "2b")
            assert report.passed, (doc.source, report.findings[:3])
        return {d.source: d.id for d in docs}


def assert_resumes(inbox: Path, archive: Path, done_before: dict[str, int]) -> None:
    """A re-run skips what was stored, digitises the rest, and leaves every page indexed."""
    proc = run_lgd("digitise", inbox, "--archive", archive, "--jobs", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    docs = proc.json["documents"]
    assert len(docs) == DOCUMENTS and proc.json["summary"]["documents"] == DOCUMENTS
    status = {d["source"]: d["status"] for d in docs}
    assert {s for s, st in status.items() if st == "skipped"} == set(done_before)
    assert {s for s, st in status.items() if st == "ok"} == {p.name for p in inbox.iterdir()} - set(done_before)
    assert proc.json["summary"]["skipped"] == len(done_before) and proc.json["summary"]["failed"] == 0
    assert proc.json["summary"]["interrupted"] is False
    after = assert_consistent(archive)
    assert len(after) == DOCUMENTS
    assert all(after[s] == i for s, i in done_before.items())  # the earlier rows were kept, not redone
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        non_blank = sum(1 for d in catalogue.documents() for p in catalogue.pages(d.id) if not p.blank)
        assert catalogue.unindexed_documents() == ()
    with FullText.open(archive, create=False) as fulltext:
        assert fulltext.doc_count() == non_blank
    assert list((archive / "tmp").iterdir()) == []


def test_ctrl_c_keeps_finished_documents_and_a_rerun_resumes(inbox, tmp_path):
    archive = tmp_path / "archive"
    proc, out, err, waited = interrupt(inbox, archive, signal.SIGINT)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err
    assert "interrupted" in err and "run again" in err
    # Still one JSON document on stdout, saying what was stored before the interruption.
    result = json.loads(out)
    assert result["summary"]["interrupted"] is True
    stored = assert_consistent(archive)
    assert 2 <= len(stored) < DOCUMENTS
    reported_ok = {d["source"] for d in result["documents"] if d["status"] == "ok"}
    assert reported_ok == set(stored)  # the report and the catalogue agree
    assert waited < 60, waited  # at most the documents in flight are finished first
    assert list((archive / "tmp").iterdir()) == []  # work folders are removed on the way out
    assert_resumes(inbox, archive, stored)


def test_sigkill_loses_at_most_the_documents_in_flight(inbox, tmp_path):
    archive = tmp_path / "archive"
    proc, _, _, _ = interrupt(inbox, archive, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    stored = assert_consistent(archive)
    assert 2 <= len(stored) < DOCUMENTS
    # The killed run could not clean up after itself; the re-run does (asserted in assert_resumes).
    assert_resumes(inbox, archive, stored)


def test_a_second_run_on_a_busy_archive_is_refused_clearly(inbox, tmp_path):
    """Two batches writing one archive would OCR the same documents and race to store them."""
    archive = tmp_path / "archive"
    first = subprocess.Popen(
        [*LGD, "digitise", str(inbox), "--archive", str(archive), "--jobs", "1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (archive / "catalogue.sqlite").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = run_lgd("digitise", inbox, "--archive", archive, "--json", check_json=False)
        assert first.poll() is None, "the first run finished too soon for this test"
        assert second.returncode == 4, second.stderr
        assert "Another `lgd digitise`" in second.stderr and str(archive) in second.stderr
        assert json.loads(second.stdout)["error"]["exit_code"] == 4  # one JSON document: the error
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode in (0, 130)
    assert_consistent(archive)


def test_digitise_clears_only_its_own_leftovers_in_tmp(inbox, tmp_path):  # issue 11
    archive = tmp_path / "archive"
    assert run_lgd("digitise", inbox, "--archive", archive, "--json").returncode in (0, 1)
    packing = archive / "tmp" / "pack-running"  # as `lgd pack` names its working folder
    packing.mkdir()
    (packing / "pack.pdf").write_bytes(b"in progress")
    dead = archive / "tmp" / "job-0123abcd"  # what a killed digitise leaves
    dead.mkdir()
    run_lgd("digitise", inbox, "--archive", archive, "--json")
    assert (packing / "pack.pdf").read_bytes() == b"in progress" and not dead.exists()


def test_sigterm_to_the_main_process_stops_like_ctrl_c(inbox, tmp_path):  # issue 11
    archive = tmp_path / "archive"
    seen: list[int] = []
    proc, out, err, waited = interrupt(inbox, archive, signal.SIGTERM, group=False, seen=seen)
    assert proc.returncode == 130, (proc.returncode, err)
    assert json.loads(out)["summary"]["interrupted"] is True and "Traceback" not in err
    time.sleep(1)
    assert seen and not any(alive(p) for p in seen)
    assert_resumes(inbox, archive, assert_consistent(archive))


def test_workers_die_with_a_killed_main_process(inbox, tmp_path):  # issue 11
    archive = tmp_path / "archive"
    seen: list[int] = []
    proc, _, _, _ = interrupt(inbox, archive, signal.SIGKILL, group=False, seen=seen)
    assert proc.returncode == -signal.SIGKILL and seen
    deadline = time.monotonic() + 10
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in seen), "workers outlived lgd"
