"""lgd digitise on a generated batch: every document stored as valid PDF/A, and what was read matches the ground truth."""

from __future__ import annotations

import json
import sqlite3

import pikepdf
from pikepdf.pdfa import validate_written

from digitise.options import DigitiseOptions
from fixtures.evaluate import score_archive
from index import Catalogue, FullText


def test_every_document_is_stored_as_valid_pdfa(digitised):
    assert digitised.returncode == 0, digitised.result
    docs = digitised.result["documents"]
    assert len(docs) == len(digitised.batch.sources)
    for doc in docs:
        assert doc["status"] == "ok" and doc["pdfa_valid"], doc
        report = validate_written(doc["pdfa"], "2b")
        assert report.passed, (doc["source"], report.findings[:3])
        with pikepdf.open(doc["pdfa"]) as pdf:
            assert len(pdf.pages) == doc["pages"]
    summary = digitised.result["summary"]
    assert summary["ok"] == len(docs) and summary["failed"] == 0
    assert summary["pages"] == digitised.batch.pages


def test_page_facts_match_ground_truth(digitised):
    score = score_archive(digitised.archive, digitised.batch.truth).as_dict()
    print("digitise accuracy on the sample batch:", score)
    assert score["pages"] == digitised.batch.pages
    assert score["rotation_accuracy"] >= 0.95
    assert score["blank_accuracy"] == 1.0
    assert score["duplicate_false"] == 0
    assert score["entry_date_recall_legible"] >= 0.8
    assert score["entry_date_precision"] >= 0.9
    assert score["illegible_pages_flagged"] in (None, 1.0)


def test_rescans_that_read_well_are_found_and_poorly_read_ones_kept(digitised):
    """A rescan is marked only when both scans read well; one too poorly read to compare stays a page."""
    good = DigitiseOptions().duplicate_text_min_confidence
    truth = {d["source"]: d for p in digitised.batch.patients for d in json.loads(p.read_text())["documents"]}
    found = kept = 0
    with Catalogue.open(digitised.archive, create=False, readonly=True) as catalogue:
        for row in catalogue.documents(status="ok"):
            pages = {p.number: p for p in catalogue.pages(row.id)}
            for want in truth[row.source]["pages"]:
                if want["duplicate_of"] is None:
                    continue
                page, first = pages[want["page"]], pages[want["duplicate_of"]]
                if min(page.confidence, first.confidence) >= good:
                    assert page.duplicate_of == want["duplicate_of"], (row.source, want["page"])
                    found += 1
                else:
                    assert page.duplicate_of is None, (row.source, want["page"])
                    kept += 1
    print(f"rescans in the sample: {found} found, {kept} too poorly read to compare and kept as pages")
    assert found + kept >= 1


def test_json_page_lists_agree_with_catalogue(digitised):
    with Catalogue.open(digitised.archive, create=False, readonly=True) as catalogue:
        stored = {d.source: d for d in catalogue.documents(status="ok")}
        for doc in digitised.result["documents"]:
            pages = catalogue.pages(stored[doc["source"]].id)
            assert doc["blank_pages"] == [p.number for p in pages if p.blank]
            assert doc["duplicate_pages"] == [p.number for p in pages if p.duplicate_of]
            assert doc["unreadable_pages"] == [p.number for p in pages if p.unreadable]
            for p in pages:
                if p.blank:
                    assert p.words == () and p.text == ""  # a blank page is never OCR'd
                else:
                    assert p.words and all(0 <= w[5] <= 100 for w in p.words)


def test_text_layer_comes_from_the_same_ocr_run(digitised):
    """The PDF/A's invisible text is exactly the words stored in the catalogue."""
    with Catalogue.open(digitised.archive, create=False, readonly=True) as catalogue:
        row = next(d for d in catalogue.documents(status="ok") if d.page_count > 2)
        page = next(p for p in catalogue.pages(row.id) if not p.blank and len(p.words) > 5)
        with pikepdf.open(digitised.archive / row.pdfa_path) as pdf:
            import pypdfium2

            doc = pypdfium2.PdfDocument(pdf.filename)
            text = doc[page.number - 1].get_textpage().get_text_range()
        layer = text.split()
        stored = [w[0] for w in page.words]
        assert layer[: len(stored)] == stored[: len(layer)]


def test_pages_are_searchable(digitised):
    with Catalogue.open(digitised.archive, create=False, readonly=True) as catalogue:
        entry = next(e for e in catalogue.entries() if len(e.text.split()) > 3)
        word = max(entry.text.split(), key=len).strip(".,")
        nhs = catalogue.document(entry.document_id).nhs_number
    with FullText.open(digitised.archive, create=False) as fulltext:
        result = fulltext.search(word, nhs_number=nhs)
    assert result.total >= 1
    assert any(hit.document_id == entry.document_id and hit.page == entry.page for hit in result.hits)


def test_catalogue_is_a_sqlite_database_with_the_documents(digitised):
    conn = sqlite3.connect(digitised.archive / "catalogue.sqlite")
    (count,) = conn.execute("select count(*) from documents where status='ok'").fetchone()
    assert count == len(digitised.result["documents"])
