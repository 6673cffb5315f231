"""`lgd digitise --force`: a document already in the archive read again with another engine, in place.

One small generated record (an envelope front and a card) is digitised with Tesseract, then
again with PP-OCR and --force, through the real command line and both real engines. The
new reading must replace the old one (PDF/A, words, entries, index) on the same document
of the same patient, and the audit trail must say who read it again with what.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fixtures.generate import generate_pages
from index import Catalogue, FullText
from tests.conftest import run_lgd


def _audit(archive: Path, action: str) -> list[dict]:
    with sqlite3.connect(archive / "catalogue.sqlite") as conn:
        rows = conn.execute("SELECT nhs_number, actor, detail FROM audit WHERE action = ? ORDER BY id", (action,))
        return [{"nhs_number": nhs, "actor": actor, **json.loads(detail)} for nhs, actor, detail in rows]


def _stored(archive: Path) -> tuple:
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        (doc,) = catalogue.documents(status="ok")
        pages = catalogue.pages(doc.id)
        return doc, [[w[0] for w in p.words] for p in pages], [p.number for p in pages if not p.blank]


@pytest.fixture(scope="module")
def forced(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("force")
    generate_pages(root / "batch", pages=2, seed=7)
    scans, archive = root / "batch" / "scans", root / "archive"
    first = run_lgd("digitise", scans, "--archive", archive, "--engine", "tesseract", "--jobs", "1", "--json")
    assert first.returncode == 0, first.stderr
    before = _stored(archive)
    again = run_lgd("digitise", scans, "--archive", archive, "--engine", "ppocr", "--jobs", "1", "--json")
    forced = run_lgd("digitise", scans, "--archive", archive, "--engine", "ppocr", "--force", "--jobs", "1", "--json")
    return {"archive": archive, "before": before, "again": again, "forced": forced, "after": _stored(archive)}


def test_without_force_a_stored_document_is_skipped(forced: dict) -> None:
    (doc,) = forced["again"].json["documents"]
    assert doc["status"] == "skipped" and doc["code"] == "already_done"


def test_force_replaces_the_reading_of_the_same_document_and_patient(forced: dict) -> None:
    assert forced["forced"].returncode == 0, forced["forced"].stderr
    (out,) = forced["forced"].json["documents"]
    assert out["status"] == "ok" and out["pdfa_valid"]
    (old, old_words, _), (new, new_words, read) = forced["before"], forced["after"]
    # Identity kept: the same document row, source, content and patient.
    assert (new.id, new.source, new.sha256, new.nhs_number, new.page_count) == \
        (old.id, old.source, old.sha256, old.nhs_number, old.page_count)
    # The reading replaced: a new PDF/A (the old file gone), other words.
    archive = forced["archive"]
    assert new.pdfa_path != old.pdfa_path and new.pdfa_valid
    assert (archive / new.pdfa_path).is_file() and not (archive / old.pdfa_path).exists()
    assert new_words != old_words
    # The index holds each read page of the document once: the old reading's pages were replaced.
    with FullText.open(archive, create=False) as fulltext:
        assert set(fulltext.pages()) == {f"{new.id}:{n}" for n in read}
        assert fulltext.doc_count() == len(read)


def test_force_is_audited_with_the_engine_before_and_after(forced: dict) -> None:
    archive = forced["archive"]
    (first,) = _audit(archive, "digitise")
    (redone,) = _audit(archive, "redigitise")
    old, new = forced["before"][0], forced["after"][0]
    assert first["engine"] == "tesseract" and all(k.startswith("tesseract") for k in first["pages_read_by"])
    assert redone["engine"] == "ppocr" and all(k.startswith("ppocr") for k in redone["pages_read_by"])
    assert redone["nhs_number"] == old.nhs_number and redone["document_id"] == old.id
    assert (redone["pdfa_before"], redone["pdfa_after"]) == (old.pdfa_path, new.pdfa_path)
    assert redone["actor"]
