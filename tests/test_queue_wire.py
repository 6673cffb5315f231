"""A worker's result as JSON: every page fact comes back as it went, and a result that lies about its PDF/A is refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from digitise.model import DatePrecision, Entry, Page, PageKind, PageText, ScanDoc, Word
from pipelines.ingest.worker import Done
from pipelines.queue import wire
from pipelines.queue.store import FolderStore, check_key


def _scan(tmp_path) -> ScanDoc:
    pdf = tmp_path / "results" / "k.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes(b"%PDF-1.7 not really\n%%EOF\n")
    words = (Word("Seen", (10, 20, 60, 40), 91.5, 0, 0), Word("cough", (70, 20, 130, 40), 77.25, 0, 1))
    entry = Entry(dt.date(1987, 3, 2), "2.3.87", "Seen cough", (10, 20, 130, 40), 84.4, DatePrecision.day)
    pages = (Page(1, 1240, 1754, 150, 90, -0.4, False, "ff00", None, PageText(words, "tesseract 5.3.0"), False,
                  PageKind.card, (entry,)),
             Page(2, 1240, 1754, 150, blank=True, phash="0000", duplicate_of=None, kind=PageKind.blank),
             Page(3, 1240, 1754, 150, duplicate_of=1, text=PageText((), "ppocr"), unreadable=True))
    return ScanDoc("1of1_x.pdf", (), dt.date(1950, 5, 3), pages, (), pdf, True, ("none",))


def test_page_facts_come_back_as_they_went(tmp_path):
    scan = _scan(tmp_path)
    text = wire.dump_done(Done(4, scan), "auto", "k.pdf")
    back = wire.load_done(text, 4, (tmp_path / "in.pdf",), tmp_path / "results")
    assert back.engine == "auto" and back.key == 4 and back.code == ""
    assert back.doc.pages == scan.pages and back.doc.born == scan.born and back.doc.pdfa == scan.pdfa
    assert back.doc.pdfa_valid and back.doc.pdfa_findings == ("none",) and back.doc.inputs == (tmp_path / "in.pdf",)
    failed = wire.load_done(wire.dump_done(Done(0, code="truncated", reason="cut short"), "tesseract", None), 0, (), tmp_path)
    assert failed.doc is None and (failed.code, failed.reason) == ("truncated", "cut short")


def test_a_result_whose_pdfa_is_not_the_one_read_or_lies_outside_the_store_is_refused(tmp_path):
    scan = _scan(tmp_path)
    text = wire.dump_done(Done(0, scan), "tesseract", "k.pdf")
    scan.pdfa.write_bytes(b"%PDF-1.7 another delivery's copy\n%%EOF\n")
    with pytest.raises(wire.NotWhole):
        wire.load_done(text, 0, (), tmp_path / "results")
    body = json.loads(text)
    body["doc"]["pdfa"] = "../../catalogue.sqlite"
    with pytest.raises(ValueError, match="not a file in the store"):
        wire.load_done(json.dumps(body), 0, (), tmp_path / "results")
    with pytest.raises(ValueError):
        wire.load_done('{"version": 99}', 0, (), tmp_path)
    with pytest.raises(ValueError, match="not a store key"):
        FolderStore(tmp_path).job("../../etc")
    assert check_key("a" * 64) == "a" * 64


def test_the_writers_prometheus_metrics_count_documents_pages_and_seconds():
    """What `lgd digitise --queue --metrics-port P` serves: the names a dashboard is built on."""
    from prometheus_client import REGISTRY, generate_latest

    from pipelines.queue.events import Metrics

    metrics = Metrics("writer")
    metrics.document("ok", 3, 1.5)
    metrics.document("ok", 2, 0.7)
    metrics.document("failed", 0, 0.2)
    text = generate_latest(REGISTRY).decode()
    assert 'lgd_writer_documents_total{outcome="ok"} 2.0' in text
    assert 'lgd_writer_documents_total{outcome="failed"} 1.0' in text
    assert "lgd_writer_pages_total 5.0" in text
    assert "lgd_writer_document_seconds_count 3.0" in text and 'lgd_writer_document_seconds_bucket{le="1.0"} 2.0' in text
