"""The catalogue's reconciliation, override and pack records: append-only, audited, latest wins."""

from __future__ import annotations

import datetime as dt

import pytest

from index import decisions
from index.catalogue import Catalogue
from index.rows import DocumentRow, PageDecisionRow, PageRow, PatientRow

NHS = "9990001236"


def _page(n: int) -> PageRow:
    return PageRow(n, 100, 100, 300, 0, 0.0, False, "0" * 16, None, 90.0, False, "card", "text")


@pytest.fixture
def catalogue(tmp_path):
    with Catalogue.open(tmp_path) as cat:
        doc = DocumentRow("a.pdf", "1" * 64, NHS, 2, "ok", "pdf/a.pdf", True, None, None, None, None, 10)
        cat.record_document(PatientRow(NHS, "Ann Example", dt.date(1950, 1, 1)), doc, [_page(1), _page(2)])
        yield cat


def _store(cat: Catalogue, decision: str = "omit") -> int:
    pages = [PageDecisionRow(1, 1, "include", "envelope"),
             PageDecisionRow(1, 2, decision, "all entries covered", ({"date": "1990-01-02", "status": "covered"},))]
    return decisions.store_reconciliation(cat, NHS, coded_format="csv", coded_sha256="b" * 64, coded_events=4,
                                          pages=pages, settings={"rules": 1}, actor="tester")


def test_a_run_is_stored_whole_with_its_evidence_and_audited(catalogue):
    run_id = _store(catalogue)
    run = decisions.latest_reconciliation(catalogue, NHS)
    assert run.id == run_id and run.coded_sha256 == "b" * 64 and run.settings == {"rules": 1}
    assert [(p.page, p.decision) for p in run.pages] == [(1, "include"), (2, "omit")]
    assert run.pages[1].entries[0]["status"] == "covered"
    audit = catalogue.audit_log(NHS, action="reconciled")
    assert audit[-1].detail["omit"] == 1 and audit[-1].actor == "tester"


def test_the_latest_override_wins_and_clearing_restores_the_machine_decision(catalogue):
    _store(catalogue)
    decisions.record_override(catalogue, NHS, 1, 2, "include", reason="letter mentions a sibling", actor="dr.a")
    assert decisions.latest_reconciliation(catalogue, NHS).pages[1].effective == "include"
    decisions.record_override(catalogue, NHS, 1, 2, None, reason="checked again", actor="dr.b")
    page = decisions.latest_reconciliation(catalogue, NHS).pages[1]
    assert page.override is None and page.effective == "omit"
    trail = decisions.overrides(catalogue, NHS)
    assert [(o.actor, o.decision) for o in trail] == [("dr.a", "include"), ("dr.b", None)]
    assert [a.action for a in catalogue.audit_log(NHS)][-2:] == ["override", "override_cleared"]


def test_overrides_outlive_a_new_reconciliation(catalogue):
    _store(catalogue)
    decisions.record_override(catalogue, NHS, 1, 1, "omit", reason="envelope copied in letter", actor="dr.a")
    _store(catalogue)
    assert decisions.latest_reconciliation(catalogue, NHS).pages[0].effective == "omit"


@pytest.mark.parametrize("args, error", [
    ((1, 3, "include"), KeyError),  # no such page
    ((1, 2, "maybe"), ValueError),
])
def test_bad_overrides_are_refused_and_store_nothing(catalogue, args, error):
    with pytest.raises(error):
        decisions.record_override(catalogue, NHS, *args, reason="x", actor="dr")
    assert decisions.overrides(catalogue, NHS) == ()


def test_an_override_needs_a_reason(catalogue):
    with pytest.raises(ValueError, match="reason"):
        decisions.record_override(catalogue, NHS, 1, 2, "omit", reason="  ", actor="dr")


def test_a_bad_decision_leaves_no_half_run(catalogue):
    with pytest.raises(ValueError):
        _store(catalogue, decision="perhaps")
    assert decisions.latest_reconciliation(catalogue, NHS) is None


def test_packs_are_recorded_with_their_run_and_hash(catalogue):
    run_id = _store(catalogue)
    decisions.record_pack(catalogue, NHS, run_id, format="7z", sha256="c" * 64, detail={"pages": 1}, actor="clerk")
    (pack,) = decisions.packs(catalogue, NHS)
    assert (pack.reconciliation_id, pack.format, pack.detail) == (run_id, "7z", {"pages": 1})
    assert catalogue.audit_log(NHS, action="pack_built")[-1].actor == "clerk"
