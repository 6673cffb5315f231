"""Moving a document filed under the wrong patient (issue 11): catalogue, PDF, index and audit follow."""

from __future__ import annotations

import json
import shutil

import pytest

from index import Catalogue, FullText
from index.decisions import latest_reconciliation
from pipelines.errors import LgdError
from pipelines.patient import reassign
from pipelines.reconcile import ensure_reconciled


@pytest.fixture
def archive(digitised, tmp_path):
    copy = tmp_path / "archive"
    shutil.copytree(digitised.archive, copy)
    return copy


def test_a_document_moves_with_its_pdf_index_and_audit(archive, digitised):
    with Catalogue.open(archive, readonly=True) as cat:
        doc = next(d for d in cat.documents("9994649884", status="ok") if d.source.startswith("2of2"))
        before = (archive / doc.pdfa_path).read_bytes()
    done = reassign(archive, doc.source, "9434765919", "NDR correction: wrong NHS number", actor="dr.test")
    assert done["from"] == "9994649884" and done["to"] == "9434765919"
    with Catalogue.open(archive, readonly=True) as cat:
        moved = cat.document(doc.id)
        assert moved.nhs_number == "9434765919" and moved.pdfa_path.startswith("pdf/9434765919/")
        assert (archive / moved.pdfa_path).read_bytes() == before and not (archive / doc.pdfa_path).exists()
        actions = [(a[0], a[1]) for a in cat._conn.execute(
            "SELECT action, nhs_number FROM audit WHERE action LIKE 'reassign%' ORDER BY id")]
        assert actions == [("reassign_out", "9994649884"), ("reassign_in", "9434765919")]
        detail = json.loads(cat._conn.execute("SELECT detail FROM audit WHERE action = 'reassign_in'").fetchone()[0])
        assert detail["reason"] == "NDR correction: wrong NHS number"
    with FullText.open(archive, create=False) as ft:
        patients = ft.page_patients()
        assert {v for k, v in patients.items() if k.startswith(f"{doc.id}:")} == {"9434765919"}


def test_the_former_patients_reconciliation_is_not_reused_after_a_move(archive, digitised):
    nhs = "9994649884"
    coded = digitised.batch.coded / f"{nhs}.csv"
    with Catalogue.open(archive, create=False) as cat:
        first = ensure_reconciled(cat, nhs, coded, actor="test")
        doc = next(d for d in cat.documents(nhs, status="ok") if d.source.startswith("2of2"))
    reassign(archive, doc.source, "9434765919", "wrong patient", actor="dr.test")
    with Catalogue.open(archive, create=False) as cat:
        again = ensure_reconciled(cat, nhs, actor="test")
        assert again.id != first.id and {p.document_id for p in again.pages} != {p.document_id for p in first.pages}


@pytest.mark.parametrize("source, to, reason, code", [
    ("no-such-document.pdf", "9434765919", "x", "no_document"),
    (None, "9994649884", "x", "usage"),  # already that patient's
    (None, "9434765919", "two\nlines", "usage"),
])
def test_bad_requests_are_refused_and_change_nothing(archive, source, to, reason, code):
    with Catalogue.open(archive, readonly=True) as cat:
        doc = next(d for d in cat.documents("9994649884", status="ok"))
    with pytest.raises(LgdError) as e:
        reassign(archive, source or doc.source, to, reason, actor="dr.test")
    assert e.value.code == code
    with Catalogue.open(archive, readonly=True) as cat:
        assert cat.document(doc.id).nhs_number == "9994649884"
