"""Grouped index commits through crashes: `lgd digitise` killed between a document's catalogue commit and the
index commit that holds its pages, then stopped by SIGTERM, then run to its end.

The real command runs in its own process group with one OCR process (--jobs 1); the test reads
the catalogue read-only, as another program would, and acts the moment a document is catalogued
but not yet indexed (the group commits after 50 documents or 10 s, and the next document's OCR
takes longer than the test's look). What must hold: SIGKILL leaves the document catalogued and
marked not indexed, absent from the index; the next run indexes it before anything else; SIGTERM
commits the index for what was stored; in the end the index and the catalogue agree.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from index import Catalogue, FullText
from pipelines.reindex import check
from tests.conftest import LGD, REPO, run_lgd
from tests.queue_support import make_inputs

DOCUMENTS = 3


def unindexed(archive: Path) -> list[tuple[int, int]]:
    """(document id, indexed) of every digitised document, read without ever blocking the writer."""
    try:
        db = sqlite3.connect(f"file:{archive / 'catalogue.sqlite'}?mode=ro", uri=True, timeout=0.5)
        try:
            return db.execute("SELECT id, indexed FROM documents WHERE status = 'ok' ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.Error:  # not made yet, or busy
        return []


def stop_when_stored_unindexed(inbox: Path, archive: Path, sig: signal.Signals, stored: int) -> subprocess.Popen:
    """Start `lgd digitise`; send `sig` (SIGKILL to its group, else to lgd alone) once `stored` documents are
    catalogued and the last of them is not yet indexed."""
    proc = subprocess.Popen([*LGD, "digitise", str(inbox), "--archive", str(archive), "--jobs", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not ((rows := unindexed(archive)) and len(rows) >= stored and rows[-1][1] == 0):
            assert proc.poll() is None, ("finished before it could be stopped", proc.communicate())
            assert time.monotonic() < deadline, "no document stored in time"
            time.sleep(0.02)
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)  # as a service manager stops it
        proc.communicate(timeout=120)
        return proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def index_state(archive: Path):
    with Catalogue.open(archive, create=False, readonly=True) as catalogue, \
            FullText.open(archive, create=False) as fulltext:
        return check(catalogue, fulltext), {key.split(":")[0] for key in fulltext.pages()}


def test_grouped_index_commits_survive_sigkill_and_sigterm(tmp_path):
    inbox = make_inputs(tmp_path / "in", (1,) * DOCUMENTS)
    archive = tmp_path / "archive"

    killed = stop_when_stored_unindexed(inbox, archive, signal.SIGKILL, 1)
    assert killed.returncode == -signal.SIGKILL
    [(first, indexed)] = unindexed(archive)
    assert indexed == 0  # catalogued whole, and marked for the next run to index
    report, in_index = index_state(archive)
    assert str(first) not in in_index and report.missing and not report.extra

    stopped = stop_when_stored_unindexed(inbox, archive, signal.SIGTERM, 2)
    assert stopped.returncode == 130, stopped.stderr
    rows = unindexed(archive)
    assert len(rows) >= 2 and all(indexed == 1 for _, indexed in rows)  # the leftover first, then what was stored
    report, in_index = index_state(archive)
    assert report.ok and {str(first), str(rows[1][0])} <= in_index

    done = run_lgd("digitise", inbox, "--archive", archive, "--jobs", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(d["status"] for d in done.json["documents"]) == ["ok"] * (DOCUMENTS - len(rows)) + \
        ["skipped"] * len(rows)
    report, in_index = index_state(archive)
    assert report.ok and report.catalogue_pages == DOCUMENTS and len(in_index) == DOCUMENTS
