"""The synthetic coded records (fixtures/coded*.py): the readers get back what was written, and the truth is honest.

Fast: planning works on truth documents, so these tests use the committed sample's truth and
`synthetic_truth` (no page is drawn) rather than generating scans.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from fixtures import vocab
from fixtures.codes import CONCEPTS, DEGRADED, concept, is_synthetic, verhoeff_ok
from fixtures.coded import (annotate, large_record, paper_entries, plan_patient, record_pages, synthetic_truth,
                            write_renderings)
from fixtures.coded_model import EXTENSIONS, FORMATS, expected_events
from fixtures.evaluate_reconcile import evaluate, main as evaluate_main, oracle
from pipelines.records import read_record
from pipelines.records.model import date_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fixtures" / "sample"
READER_FORMAT = {"csv": "csv", "stu3": "fhir-stu3", "r4": "fhir-r4", "gp2gp": "gp2gp-ehr-extract"}
NOT_COVERAGE = {"degraded", "absent_attachment"}


def sample_truths() -> list[tuple[int, int, dict]]:
    index = json.loads((SAMPLE / "truth" / "index.json").read_text())
    return [(index["seed"], i, json.loads((SAMPLE / p["truth"]).read_text())) for i, p in enumerate(index["patients"])]


def read_key(e) -> tuple:
    return (date_text(e.date, e.precision), e.precision, e.display, e.type,
            tuple(sorted(set(e.flags) - {"translation_only"})), e.code)


@pytest.fixture(scope="module")
def synthetic() -> list[tuple[dict, object]]:
    """40 annotated synthetic patients (about 400 pages) with their plans."""
    out = []
    for i in range(40):
        truth = synthetic_truth(5, i, entries=30, letters=3)
        plan = plan_patient(5, i, truth)
        out.append((annotate(truth, plan), plan))
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[tuple[object, dict[str, Path]]]:
    """The sample's three patients plus four synthetic ones, written in every format."""
    out_dir = tmp_path_factory.mktemp("coded")
    plans = [plan_patient(seed, i, truth) for seed, i, truth in sample_truths()]
    plans += [plan_patient(9, i, synthetic_truth(9, i, letters=4)) for i in range(4)]
    return [(plan, write_renderings(out_dir, plan.patient)) for plan in plans]


# -- the code table --------------------------------------------------------------------------


def test_every_vocabulary_term_has_a_code():
    terms = {c.term for c in vocab.CHRONIC} | {d[1] for c in vocab.CHRONIC for d in c.drugs}
    terms |= {c.obs[1] for c in vocab.CHRONIC} | {c.complaint[1] for c in vocab.CHRONIC}
    terms |= {t for a in vocab.ACUTE for t in (a[1], a[4], a[6])} | {"paracetamol", "co-amoxiclav", "suture of skin"}
    terms |= {p[1] for p in vocab.PROCEDURES} | {p[5] for p in vocab.PROCEDURES}
    terms |= {a[1] for a in vocab.ALLERGIES} | {i[1] for i in vocab.IMMUNISATIONS} | {i[1] for i in vocab.INJURIES}
    for term in terms:
        c = concept(term)
        assert verhoeff_ok(c.snomed), (term, c.snomed)  # every SNOMED id, real or invented, is well formed
        assert c.display, term
    assert all(not is_synthetic(c.snomed) for c in DEGRADED.values())
    # GP2GP types an entry as an immunisation by its term; nothing else may look like one.
    assert all(("vaccin" in c.display.lower()) == (c.kind == "immunisation") for c in CONCEPTS.values())
    # Displays are a GP system's terms, not the card's words: a matcher has to bridge them.
    assert concept("hypertension").display == "Essential hypertension"
    assert concept("phenoxymethylpenicillin").display == "Phenoxymethylpenicillin 250mg tablets"
    assert concept("ferrous sulphate").display.startswith("Ferrous sulfate")


# -- renderings read back ----------------------------------------------------------------------


def test_every_rendering_reads_back_to_the_same_events(rendered):
    planned = [e for plan, _ in rendered for e in expected_events(plan.patient, "csv")]
    # The cases that matter are all in this small set, so every format is tried on each of them.
    assert {f for e in planned for f in e.flags} >= {"degraded", "absent_attachment", "attachment", "group",
                                                     "authorisation", "issue"}
    assert {e.type for e in planned} >= {"problem", "observation", "medication", "allergy", "immunisation",
                                         "procedure", "plan", "encounter", "narrative"}
    assert {plan.patient.style for plan, _ in rendered} == {"emis", "snomed"}  # Read-first and SNOMED-first senders
    for plan, paths in rendered:
        across = {}
        for fmt in FORMATS:
            record = read_record(paths[fmt])
            assert record.format == READER_FORMAT[fmt]
            assert record.nhs_number == plan.patient.nhs_number
            assert not record.warnings, record.warnings
            got = sorted(read_key(e) for e in record.events)
            assert got == sorted(x.key() for x in expected_events(plan.patient, fmt)), fmt
            texts = Counter((e.display, e.type, e.text) for e in record.events if e.type != "encounter")
            assert texts == Counter((x.display, x.type, x.text) for x in expected_events(plan.patient, fmt)
                                    if x.type != "encounter"), fmt
            across[fmt] = Counter((k[0], k[1], k[2], k[5], k[4]) for k in got)
        # The same facts in all four: types differ only where GP2GP and STU3 have no procedure class.
        assert across["csv"] == across["stu3"] == across["r4"] == across["gp2gp"]


def test_partial_dates_keep_their_precision(rendered):
    seen = Counter()
    for plan, paths in rendered:
        for fmt in FORMATS:
            for e in read_record(paths[fmt]).events:
                seen[(fmt, e.precision)] += 1
    for fmt in FORMATS:
        assert seen[(fmt, "month")] and seen[(fmt, "year")] and seen[(fmt, "day")], fmt
    xml = "".join(paths["gp2gp"].read_text() for _, paths in rendered)
    assert re.search(r'<center value="\d{6}"/>', xml) and re.search(r'<availabilityTime value="\d{4}"/>', xml)


def test_sample_records_are_current(tmp_path):
    """The committed fixtures/sample/coded files and truth fields are what the code makes today."""
    index = json.loads((SAMPLE / "truth" / "index.json").read_text())
    for seed, i, truth in sample_truths():
        plan = plan_patient(seed, i, truth)
        paths = write_renderings(tmp_path, plan.patient)
        listed = index["patients"][i]["coded"]
        for fmt, path in paths.items():
            assert listed[fmt] == f"coded/{truth['nhs_number']}{EXTENSIONS[fmt]}"
            assert path.read_bytes() == (SAMPLE / listed[fmt]).read_bytes(), f"regenerate fixtures/sample ({fmt})"
        assert annotate(copy.deepcopy(truth), plan) == truth


def test_determinism(tmp_path):
    truth = synthetic_truth(3, 1)
    a = write_renderings(tmp_path / "a", plan_patient(3, 1, copy.deepcopy(truth)).patient)
    b = write_renderings(tmp_path / "b", plan_patient(3, 1, copy.deepcopy(truth)).patient)
    assert all(a[f].read_bytes() == b[f].read_bytes() for f in FORMATS)
    c = write_renderings(tmp_path / "c", plan_patient(4, 1, copy.deepcopy(truth)).patient)
    assert a["csv"].read_bytes() != c["csv"].read_bytes()


# -- the truth ---------------------------------------------------------------------------------


def _compatible(e, paper: dt.date) -> bool:
    if e.precision == "day":
        return e.date == paper
    if e.precision == "month":
        return (e.date.year, e.date.month) == (paper.year, paper.month)
    return e.date.year == paper.year


def test_truth_agrees_with_what_the_reader_sees(synthetic, tmp_path):
    """Checked against events read from the CSV, not against the planner's own bookkeeping."""
    for truth, plan in synthetic[:12]:
        events = read_record(write_renderings(tmp_path, plan.patient, ("csv",))["csv"]).events
        by_code: dict[str, list] = {}
        for e in events:
            if not NOT_COVERAGE & set(e.flags):
                by_code.setdefault(e.code, []).append(e)
        for _, page, _ in record_pages(truth):
            assert page["paper_only"] is not page["excludable"]
            for entry in page["entries"]:
                paper = dt.date.fromisoformat(entry["date"])
                assert [c["term"] for c in entry["coded"]] == [f["term"] for f in entry["facts"]]
                for c in entry["coded"]:
                    hits = by_code.get(concept(c["term"]).snomed, [])
                    if c["coded_as"] == "jan1":
                        assert any(e.date == dt.date(paper.year, 1, 1) and e.precision == "day" for e in hits)
                    elif c["coded"]:
                        assert any(_compatible(e, paper) and date_text(e.date, e.precision) == c["coded_date"]
                                   for e in hits), c
                    else:
                        assert not any(_compatible(e, paper) for e in hits), c


def test_excludable_means_every_fact_coded(synthetic):
    kinds = Counter()
    for truth, _ in synthetic:
        for _, page, _ in record_pages(truth):
            facts = [c for e in page["entries"] for c in e["coded"]]
            if page["blank"] or page["duplicate_of"]:
                assert page["excludable"]
            elif page["kind"] == "envelope" or not page["entries"]:
                assert page["paper_only"]
            else:
                assert page["excludable"] == all(c["coded"] for c in facts)
                kinds[page["excludable"]] += 1
    share = kinds[True] / sum(kinds.values())
    assert 0.45 <= share <= 0.65, share  # about 55% of written pages fully coded


def test_precisions_and_distractors(synthetic, tmp_path):
    coded_as, stand_ins = Counter(), Counter()
    for truth, _ in synthetic:
        for _, page, source in record_pages(truth):
            for e in page["entries"]:
                for c in e["coded"]:
                    coded_as[c["coded_as"]] += c["coded"]
                    stand_ins[c["stand_in"]] += not c["coded"]
    total = sum(v for k, v in coded_as.items() if k)
    assert 0.62 < coded_as["exact"] / total < 0.8
    for how in ("month", "year", "jan1"):
        assert 0.04 < coded_as[how] / total < 0.22, how
    assert {"none", "other_date", "other_concept", "degraded", "placeholder"} <= set(stand_ins)
    flags = Counter(f for _, plan in synthetic[:10]
                    for e in read_record(write_renderings(tmp_path, plan.patient, ("gp2gp",))["gp2gp"]).events
                    for f in e.flags)
    assert flags["degraded"] and flags["absent_attachment"] and flags["issue"] and flags["group"]


def test_placeholder_letters_are_paper_only(synthetic):
    seen = 0
    for truth, plan in synthetic:
        for _, page, _ in record_pages(truth):
            if page["kind"] == "letter" and any(c["stand_in"] == "placeholder" for c in page["entries"][0]["coded"]):
                seen += 1
                assert page["paper_only"] and not any(c["coded"] for c in page["entries"][0]["coded"])
                assert any(e.type == "narrative" and "absent_attachment" in e.flags and e.date == page["letter_date"]
                           for e in expected_events(plan.patient, "csv"))
    assert seen


def test_electronic_history_has_no_paper_counterpart(synthetic):
    for truth, plan in synthetic[:10]:
        last = max(e["date"] for _, page, _ in record_pages(truth) for e in page["entries"])
        later = [e for e in expected_events(plan.patient, "csv") if e.date > last]
        assert 20 <= len(later) <= 100, len(later)
        assert any(e.type == "medication" and "issue" in e.flags for e in later)


# -- evaluator, oracle, benchmark inputs -------------------------------------------------------


def _reconcile(truth: dict, omit) -> dict:
    pages = [{"source": doc["source"], "page": p["page"], "decision": "omit" if omit(p) else "include", "reason": "",
              "entries": []} for doc in truth["documents"] for p in doc["pages"]]
    return {"patient": truth["nhs_number"], "coded": {"format": "csv", "sha256": "", "events": 0}, "pages": pages,
            "summary": {}}


def test_evaluator_counts_misses_and_compaction(synthetic, tmp_path, capsys):
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    truths = [t for t, _ in synthetic[:5]]
    for t in truths:
        (truth_dir / f"{t['nhs_number']}.json").write_text(json.dumps(t))
    for name, omit in (("perfect", lambda p: p["excludable"]), ("all", lambda p: True), ("none", lambda p: False)):
        (tmp_path / f"{name}.json").write_text(json.dumps([_reconcile(t, omit) for t in truths]))
    perfect = evaluate(truth_dir, [tmp_path / "perfect.json"])["overall"]
    assert perfect["missed_count"] == 0 and perfect["compaction"] == 1.0
    everything = evaluate(truth_dir, [tmp_path / "all.json"])["overall"]
    assert everything["missed_count"] == everything["paper_only"] > 0
    assert evaluate(truth_dir, [tmp_path / "none.json"])["overall"]["compaction"] == 0.0
    assert evaluate_main([str(truth_dir), str(tmp_path / "all.json"), "--strict"]) == 1
    assert "MISSED" in capsys.readouterr().out
    assert evaluate_main([str(truth_dir), str(tmp_path / "perfect.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["missed"] == []
    pages = oracle(truth_dir)
    assert len(pages) == perfect["pages"]
    assert all({"date", "text"} <= set(e) for p in pages for e in p["entries"])


def test_benchmark_inputs(tmp_path):
    entries = paper_entries(7, 60)
    assert len(entries) == 60 and entries == paper_entries(7, 60)
    assert all(isinstance(d, dt.date) and text for d, text in entries)
    path = large_record(7, "9434765919", events=900, fmt="stu3", out_dir=tmp_path, paper=50)
    record = read_record(path)
    assert record.nhs_number == "9434765919" and 900 <= len(record.events) <= 930
