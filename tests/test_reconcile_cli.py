"""`lgd reconcile` and `lgd review` on a real digitised archive (the synthetic sample batch)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from index import Catalogue
from index.decisions import latest_reconciliation
from tests.conftest import reference_data_dir, run_lgd

_KIND_TYPE = {"diagnosis": "problem", "symptom": "problem", "medication": "medication", "allergy": "allergy",
              "immunisation": "immunisation", "procedure": "procedure", "observation": "observation"}


@pytest.fixture
def archive(digitised, tmp_path) -> Path:
    """A private copy of the digitised sample, so runs and overrides here touch no other test."""
    copy = tmp_path / "archive"
    shutil.copytree(digitised.archive, copy)
    return copy


def _truth(digitised, nhs: str) -> dict:
    return json.loads((digitised.batch.truth / f"{nhs}.json").read_text())


def _patients(digitised) -> list[str]:
    return [p["nhs_number"] for p in json.loads(digitised.batch.index.read_text())["patients"]]


def perfect_csv(truth: dict, path: Path, leave_out: set[tuple[str, int]] = frozenset()) -> Path:
    """A coded record holding every paper fact at its entry date, except those on `leave_out` pages."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["date", "system", "code", "display", "type", "nhs_number"])
        for doc in truth["documents"]:
            for page in doc["pages"]:
                if (doc["source"], page["page"]) in leave_out:
                    continue
                for e in page["entries"]:
                    for fact in e["facts"]:
                        display = fact["term"] + (" allergy" if fact["kind"] == "allergy" else "")
                        out.writerow([e["date"], "http://snomed.info/sct", "1", display, _KIND_TYPE[fact["kind"]],
                                      truth["nhs_number"]])
    return path


def test_every_page_gets_a_decision_with_evidence_and_the_run_is_stored(digitised, archive, tmp_path):
    nhs = _patients(digitised)[1]
    truth = _truth(digitised, nhs)
    proc = run_lgd("reconcile", "--patient", nhs, "--coded", perfect_csv(truth, tmp_path / "r.csv"),
                   "--archive", archive, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = proc.json
    assert doc["patient"] == nhs and doc["coded"]["format"] == "csv" and len(doc["coded"]["sha256"]) == 64
    truth_pages = {(d["source"], p["page"]): p for d in truth["documents"] for p in d["pages"]}
    assert {(p["source"], p["page"]) for p in doc["pages"]} == set(truth_pages)
    for p in doc["pages"]:
        t = truth_pages[(p["source"], p["page"])]
        assert p["decision"] in ("include", "omit") and p["reason"]
        if t["kind"] == "envelope":
            assert p["decision"] == "include"
        if p["decision"] == "omit" and not t["blank"] and t["duplicate_of"] is None:
            assert p["entries"] and all(e["status"] == "covered" and e["evidence"] for e in p["entries"])
            ev = p["entries"][0]["evidence"][0]
            assert set(ev) >= {"system", "code", "display", "date", "date_precision", "how", "score"}
    s = doc["summary"]
    assert s["pages"] == len(doc["pages"]) == s["include"] + s["omit"] and s["omit"] > 0
    with Catalogue.open(archive, create=False) as cat:
        run = latest_reconciliation(cat, nhs)
        assert run.coded_sha256 == doc["coded"]["sha256"] and len(run.pages) == s["pages"]
        assert cat.audit_log(nhs, action="reconciled")


def test_a_page_whose_facts_are_not_coded_is_always_sent(digitised, archive, tmp_path):
    """The safety property end to end: leave every page's facts out in turn; none may be omitted."""
    for nhs in _patients(digitised):
        truth = _truth(digitised, nhs)
        written = {(d["source"], p["page"]) for d in truth["documents"] for p in d["pages"]
                   if p["entries"] and p["duplicate_of"] is None}  # a rescan may go: its original is sent
        proc = run_lgd("reconcile", "--patient", nhs, "--coded", perfect_csv(truth, tmp_path / f"{nhs}.csv", written),
                       "--archive", archive, "--json")
        assert proc.returncode == 0, proc.stderr
        for p in proc.json["pages"]:
            if (p["source"], p["page"]) in written:
                assert p["decision"] == "include", p


def test_a_record_of_another_patient_is_refused_and_nothing_is_stored(digitised, archive):
    nhs = _patients(digitised)[0]
    other = reference_data_dir() / "gpconnect-stu3" / "spec-examples" / "allergies_response1.json"
    proc = run_lgd("reconcile", "--patient", nhs, "--coded", other, "--archive", archive, "--json")
    assert proc.returncode == 1 and proc.json["error"]["code"] == "nhs_mismatch"
    assert "not of " + nhs in proc.stderr
    with Catalogue.open(archive, create=False) as cat:
        assert latest_reconciliation(cat, nhs) is None


@pytest.mark.parametrize("content, code", [
    (b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><EhrExtract>&b;</EhrExtract>",
     "hostile_xml"),
    (b'{"resourceType": "Bundle", "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/'
     b'GPConnect-StructuredRecord-Bundle-1"]}, "entry": [', "malformed_json"),
    (b"not a record at all\n", "unknown_format"),
])
def test_bad_and_hostile_coded_files_are_refused_clearly(digitised, archive, tmp_path, content, code):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(content)
    proc = run_lgd("reconcile", "--patient", _patients(digitised)[0], "--coded", bad, "--archive", archive, "--json")
    assert proc.returncode == 1 and proc.json["error"]["code"] == code, proc.stderr


def test_without_a_coded_record_reconcile_says_how_to_give_one(digitised, archive):
    proc = run_lgd("reconcile", "--patient", _patients(digitised)[0], "--archive", archive)
    assert proc.returncode == 1 and "lgd coded import" in proc.stderr


def test_a_patient_not_in_the_archive_is_refused(archive, tmp_path):
    proc = run_lgd("reconcile", "--patient", "9434765919", "--coded", tmp_path / "x.csv", "--archive", archive)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("date,system,code,display,type\n2001-01-01,http://snomed.info/sct,1,Asthma,problem\n")
    proc = run_lgd("reconcile", "--patient", "9434765919", "--coded", csv_path, "--archive", archive)
    assert proc.returncode == 1 and "no digitised record" in proc.stderr


def test_a_stored_record_is_used_when_none_is_given(digitised, archive, tmp_path):
    nhs = _patients(digitised)[0]
    path = perfect_csv(_truth(digitised, nhs), tmp_path / "r.csv")
    assert run_lgd("coded", "import", path, "--archive", archive).returncode == 0
    proc = run_lgd("reconcile", "--patient", nhs, "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json["coded"]["format"] == "csv"
    table = run_lgd("reconcile", "--patient", nhs, "--archive", archive)
    assert "pages:" in table.stdout and "to send" in table.stdout


def test_overrides_are_audited_and_win(digitised, archive, tmp_path):
    nhs = _patients(digitised)[1]
    run_lgd("reconcile", "--patient", nhs, "--coded", perfect_csv(_truth(digitised, nhs), tmp_path / "r.csv"),
            "--archive", archive)
    review = run_lgd("review", "--patient", nhs, "--archive", archive, "--json").json
    omitted = next(p for p in review["pages"] if p["decision"] == "omit")
    ref = f"{omitted['source']}:{omitted['page']}"
    assert run_lgd("review", "--patient", nhs, "--include", ref, "--archive", archive).returncode == 2  # no reason
    forced = run_lgd("review", "--patient", nhs, "--include", ref, "--reason", "mentions a sibling's illness",
                     "--archive", archive)
    assert forced.returncode == 0, forced.stderr
    after = run_lgd("review", "--patient", nhs, "--archive", archive, "--json").json
    page = next(p for p in after["pages"] if (p["source"], p["page"]) == (omitted["source"], omitted["page"]))
    assert page["decision"] == "include" and page["machine_decision"] == "omit"
    assert page["override"]["reason"] == "mentions a sibling's illness" and page["override"]["by"]
    rerun = run_lgd("reconcile", "--patient", nhs, "--archive", archive, "--json").json
    assert next(p for p in rerun["pages"] if (p["source"], p["page"]) == (omitted["source"], omitted["page"]))["decision"] == "include"
    run_lgd("review", "--patient", nhs, "--clear", ref, "--reason", "checked: nothing new", "--archive", archive)
    history = run_lgd("review", "--patient", nhs, "--history", "--archive", archive, "--json").json["overrides"]
    assert [h["decision"] for h in history] == ["include", None]
    with Catalogue.open(archive, create=False) as cat:
        assert [a.action for a in cat.audit_log(nhs) if a.action.startswith("override")] == ["override", "override_cleared"]
    bad = run_lgd("review", "--patient", nhs, "--omit", "nosuch.pdf:1", "--reason", "x", "--archive", archive)
    assert bad.returncode == 2 and "no such page" in bad.stderr
    # Without accounts nobody can be the second clinician, so a page lgd sends cannot be left out (H55).
    sent = next(p for p in after["pages"] if p["machine_decision"] == "include")
    refused = run_lgd("review", "--patient", nhs, "--omit", sent["id"], "--reason", "not needed", "--archive", archive)
    assert refused.returncode == 6 and "two clinicians" in refused.stderr


def test_batch_reconciles_many_patients_and_reports_failures(digitised, archive, tmp_path):
    patients = _patients(digitised)
    rows = [(nhs, perfect_csv(_truth(digitised, nhs), tmp_path / f"{nhs}.csv").name) for nhs in patients[:2]]
    rows.append(("9434765919", ""))  # not in the archive
    manifest = tmp_path / "leavers.csv"
    manifest.write_text("nhs_number,coded\n" + "".join(f"{n},{c}\n" for n, c in rows))
    proc = run_lgd("reconcile", "--batch", manifest, "--archive", archive, "--json")
    assert proc.returncode == 1
    results = {r["patient"]: r for r in proc.json["patients"]}
    assert all(results[n]["ok"] for n in patients[:2]) and not results["9434765919"]["ok"]
    assert proc.json["summary"]["failed"] == 1 and proc.json["summary"]["pages"] > 0


@pytest.mark.parametrize("rendering", ["csv", "stu3", "r4", "gp2gp"])
def test_no_paper_only_page_is_omitted_against_the_generated_coded_records(digitised, archive, tmp_path, rendering):
    """Safety on the sample with its generated coded records (distractors included), scored by the truth."""
    from fixtures.evaluate_reconcile import evaluate
    from pipelines.reconcile import reconcile_patient

    index = json.loads(digitised.batch.index.read_text())
    paths = []
    with Catalogue.open(archive, create=False) as cat:
        for p in index["patients"]:
            doc = reconcile_patient(cat, p["nhs_number"], digitised.batch.out / p["coded"][rendering]).to_json()
            paths.append(tmp_path / f"{p['nhs_number']}.json")
            paths[-1].write_text(json.dumps(doc))
    report = evaluate(digitised.batch.truth, paths)
    assert report["overall"]["missed_count"] == 0, report["overall"]["missed"]
    assert report["overall"]["omitted_excludable"] > 0 and not report["not_reconciled"]
