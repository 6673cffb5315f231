"""The hand-written adversarial corpus: no page holding an uncoded fact may be omitted, from scans or as written.

Many of these fail against rules tuned to the fixture generator; that is the point of the
corpus (tests/adversarial/README.md). Controls are recorded and printed, never asserted.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from index import Catalogue
from index.decisions import latest_reconciliation
from tests.adversarial.corpus import (Case, coded_csv, digitised_kind, fill, load_cases, page_text, patient,
                                      reconcile_inputs, without_hidden, write_scans)
from tests.conftest import run_lgd

CASES = load_cases()
SERIAL = {c.id: i for i, c in enumerate(CASES)}
MUST_INCLUDE = [c for c in CASES if c.expect == "include"]
CONTROLS = [c for c in CASES if c.expect == "omit_ok"]
# Typed pages in dark ink must read almost word for word, or a failure could be OCR's, not the rules'.
TYPED_MIN_RECALL = 0.9


def test_the_corpus_is_well_formed(tmp_path):
    """Enough cases of each expectation, valid invented NHS numbers, coded records lgd can read."""
    from pipelines.identity import nhs_number_valid
    from pipelines.records.detect import read_record

    assert len(MUST_INCLUDE) >= 45 and len(CONTROLS) >= 20
    numbers = [patient(SERIAL[c.id], c).nhs for c in CASES]
    assert len(set(numbers)) == len(CASES) and all(n.startswith("999") and nhs_number_valid(n) for n in numbers)
    for case in CASES:
        who = patient(SERIAL[case.id], case)
        path = tmp_path / f"{case.id}.csv"
        path.write_text(coded_csv(case, who), encoding="utf-8")
        record = read_record(path)
        assert record.format == "csv" and record.nhs_number == who.nhs and len(record.events) == len(case.coded)
        assert not case.hidden or all(case.hidden not in page_text(without_hidden(case), p)
                                      for p in without_hidden(case).pages), case.id


@dataclass(frozen=True)
class ScannedPage:
    """One page of a case as the archive holds it after `lgd digitise`, with the stored decision."""

    source: str
    number: int
    kind: str
    blank: bool
    unreadable: bool
    text: str
    decision: str
    reason: str


# I, l and 1 (and O and 0) are one glyph apart in a sans-serif face; reconcile must cope with them.
_OCR_FOLD = str.maketrans("l10", "iio")


def _words(text: str) -> list[str]:
    """Runs of letters and digits, so "130 - 170" and "130-170" read alike and a stray mark costs nothing."""
    return re.findall(r"[a-z0-9]+", text.casefold().translate(_OCR_FOLD))


def recall(expected: str, read: str) -> float:
    """The share of the written words (as a multiset) that OCR read exactly."""
    want, got = Counter(_words(expected)), Counter(_words(read))
    return sum((want & got).values()) / max(1, sum(want.values()))


def _typed(case: Case) -> bool:
    """Typed in dark ink throughout: a page with a note written by hand in its margin is not."""
    return case.hand == "typed" and case.ink <= 60 and not any(p.margin for p in case.pages)


@dataclass(frozen=True)
class Scanned:
    archive: Path
    coded: Path  # folder of the patients' CSV files, named by NHS number
    pages: dict[str, list[ScannedPage]]  # by case id

    def __getitem__(self, case_id: str) -> list[ScannedPage]:
        return self.pages[case_id]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Scanned:
    """Every case rendered, digitised once with `lgd digitise`, and reconciled with `lgd reconcile`."""
    root = tmp_path_factory.mktemp("adversarial")
    scans, coded, archive = root / "scans", root / "coded", root / "archive"
    scans.mkdir()
    coded.mkdir()
    started = time.monotonic()
    with (root / "leavers.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["nhs_number", "coded"])
        for case in CASES:
            who = patient(SERIAL[case.id], case)
            write_scans(case, SERIAL[case.id], scans)
            (coded / f"{who.nhs}.csv").write_text(coded_csv(case, who), encoding="utf-8")
            out.writerow([who.nhs, f"coded/{who.nhs}.csv"])
    rendered = time.monotonic()
    proc = run_lgd("digitise", scans, "--archive", archive, "--jobs", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    digitised = time.monotonic()
    # One process for every patient (the reader loads once); `--patient` is checked on one below.
    proc = run_lgd("reconcile", "--batch", root / "leavers.csv", "--archive", archive, "--json")
    assert proc.returncode == 0 and not proc.json["summary"]["failed"], proc.stdout[-2000:] + proc.stderr[-2000:]
    print(f"\nadversarial corpus: rendered in {rendered - started:.0f}s, digitised in {digitised - rendered:.0f}s, "
          f"reconciled in {time.monotonic() - digitised:.0f}s")
    found: dict[str, list[ScannedPage]] = {}
    with Catalogue.open(archive, create=False) as cat:
        for case in CASES:
            nhs = patient(SERIAL[case.id], case).nhs
            run = latest_reconciliation(cat, nhs)
            assert run is not None, case.id
            decided = {(p.document_id, p.page): p for p in run.pages}
            pages = []
            for doc in sorted(cat.documents(nhs, status="ok"), key=lambda d: (d.part or 1, d.id)):
                for p in cat.pages(doc.id):
                    d = decided[(doc.id, p.number)]
                    pages.append(ScannedPage(doc.source, p.number, p.kind, p.blank, p.unreadable, p.text,
                                             d.decision, d.reason))
            found[case.id] = pages
    return Scanned(archive, coded, found)


def test_every_case_was_digitised_page_for_page(scanned):
    for case in CASES:
        assert len(scanned[case.id]) == len(case.pages), case.id


@pytest.mark.parametrize("case", [c for c in CASES if _typed(c)], ids=lambda c: c.id)
def test_typed_scans_read_word_for_word_and_classified_as_intended(scanned, case):
    """The harness check: a typed page's failure must be the rules', not OCR's or the page classifier's."""
    for page, got in zip(case.pages, scanned[case.id]):
        assert got.kind == digitised_kind(case), (case.id, got.kind)
        written = fill(page_text(case, page), patient(SERIAL[case.id], case))
        if written.strip():
            assert recall(written, got.text) >= TYPED_MIN_RECALL, (case.id, got.text)
        if case.hidden and case.hidden in written:
            assert recall(case.hidden, got.text) >= 0.5, (case.id, case.hidden, got.text)


@pytest.mark.parametrize("case", MUST_INCLUDE, ids=lambda c: c.id)
def test_a_page_with_an_uncoded_fact_is_sent_end_to_end(scanned, case):
    for page in scanned[case.id]:
        assert page.decision == "include", (
            f"{case.id}: {page.source} page {page.number} ({page.kind}) was omitted: {page.reason}. "
            f"Hidden fact: {case.hidden!r}. Why it must be sent: {case.why} OCR read: {page.text!r}")


def test_end_to_end_summary_and_the_per_patient_command_agrees(scanned, capsys):
    """Print the corpus's numbers; `lgd reconcile --patient` must agree with the batch run."""
    first = MUST_INCLUDE[0]
    who = patient(SERIAL[first.id], first)
    proc = run_lgd("reconcile", "--patient", who.nhs, "--coded", scanned.coded / f"{who.nhs}.csv",
                   "--archive", scanned.archive, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [p["decision"] for p in proc.json["pages"]] == [p.decision for p in scanned[first.id]]
    pages = [p for c in MUST_INCLUDE for p in scanned[c.id]]
    controls = [p for c in CONTROLS for p in scanned[c.id]]
    wrongly = sorted({c.id for c in MUST_INCLUDE for p in scanned[c.id] if p.decision != "include"})
    misread = sorted(c.id for c in CASES for p in scanned[c.id] if p.kind != digitised_kind(c))
    unreadable = sorted({c.id for c in MUST_INCLUDE for p in scanned[c.id] if p.unreadable or p.blank})
    with capsys.disabled():
        print(f"\nadversarial end to end: {len(pages)} must-include pages, "
              f"{sum(p.decision == 'include' for p in pages)} included; "
              f"{sum(p.decision == 'omit' for p in controls)} of {len(controls)} control pages omitted")
        print(f"  wrongly omitted: {', '.join(wrongly) or 'none'}")
        print(f"  classified other than intended: {', '.join(misread) or 'none'}")
        print(f"  must-include pages flagged unreadable or blank (sent, or not, without being read): "
              f"{', '.join(unreadable) or 'none'}")


# -- text level: the same cases straight into the decision function -----------------------


@pytest.fixture(scope="module")
def decide(tmp_path_factory):
    """decide(case) -> [(decision, reason), ...] through reconcile's decision function, no OCR."""
    from pipelines.clinical import default_reader
    from pipelines.clinical.evidence import CodedIndex
    from pipelines.reconcile.decide import decide_record
    from pipelines.reconcile.settings import Settings

    reader, work = default_reader(), tmp_path_factory.mktemp("adversarial-text")

    def run(case: Case) -> list[tuple[str, str]]:
        pages, events, names = reconcile_inputs(case, SERIAL[case.id], work)
        return [(d.decision, d.reason) for d in decide_record(pages, CodedIndex(events, reader), reader, Settings(), names)]
    return run


@pytest.mark.parametrize("case", MUST_INCLUDE, ids=lambda c: c.id)
def test_a_page_with_an_uncoded_fact_is_sent_as_written(decide, case):
    for number, (decision, reason) in enumerate(decide(case), start=1):
        assert decision == "include", (f"{case.id} page {number} was omitted: {reason}. "
                                       f"Hidden fact: {case.hidden!r}. Why it must be sent: {case.why}")


def test_text_level_summary(decide, capsys):
    """Controls omitted, and which must-include pages are sent only for some other reason (diagnostics)."""
    outcomes = {c.id: decide(c) for c in CONTROLS}
    assert all(len(outcomes[c.id]) == len(c.pages) for c in CONTROLS)
    omitted = [i for i, o in outcomes.items() if all(d == "omit" for d, _ in o)]
    failing = [c.id for c in MUST_INCLUDE if any(d != "include" for d, _ in decide(c))]
    telling = [c.id for c in MUST_INCLUDE if all(d == "omit" for d, _ in decide(without_hidden(c)))]
    with capsys.disabled():
        print(f"\nadversarial as written: {len(MUST_INCLUDE) - len(failing)} of {len(MUST_INCLUDE)} must-include "
              f"cases sent, {len(omitted)} of {len(CONTROLS)} controls omitted; {len(telling)} must-include cases "
              f"would be omitted without their hidden fact, so the rules are seen to catch it: {', '.join(telling) or 'none'}")
        print(f"  wrongly omitted: {', '.join(failing) or 'none'}")
