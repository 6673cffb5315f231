"""`lgd coded show` and `lgd coded import` through their argparse wiring, on real fixtures and a real catalogue."""

from __future__ import annotations

from tests.conftest import reference_data_dir

import argparse
import io
import json
from pathlib import Path

import pytest

from index import Catalogue, DocumentRow, PatientRow
from index.coded import latest_coded_record, store_coded_record
from pipelines.errors import ExitCode, LgdError
from pipelines.records import read_record, record_from_json
from pipelines.records.command import register

REFERENCE = reference_data_dir()
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}")
PAYLOAD = REFERENCE / "gp2gp-ehr-extract/nia-pss-misc/LARGE_MSG_payload.xml"  # NHS number 9446363101
PAYLOAD_NHS = "9446363101"
OTHER_NHS = "9434765919"


def lgd(*argv: str) -> tuple[int, str]:
    """Run a `coded` sub-command the way pipelines.cli does: parse, call args.run(args, stdout)."""
    parser = argparse.ArgumentParser(prog="lgd")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(map(str, argv)))
    out = io.StringIO()
    return int(args.run(args, out)), out.getvalue()


def archive_with(tmp_path: Path, *patients: str) -> Path:
    archive = tmp_path / "archive"
    with Catalogue.open(archive) as cat:
        for nhs in patients:
            # A failed document is the lightest way to put a patient in the catalogue.
            cat.record_failure(
                PatientRow(nhs, "Test Patient"),
                DocumentRow(f"{nhs}.pdf", nhs * 6 + "0" * 4, nhs, 0, "failed", None, False, None, None, "test", "test", 0),
            )
    return archive


def test_show_json_is_one_document_in_the_issue_shape():
    code, out = lgd("coded", "show", REFERENCE / "gp2gp-ehr-extract/nia-pss-e2e/PWTP6.xml", "--json")
    assert code == ExitCode.ok
    doc = json.loads(out)
    assert set(doc) == {"format", "nhs_number", "events", "warnings"}
    assert doc["format"] == "gp2gp-ehr-extract" and doc["nhs_number"] is None
    first = doc["events"][0]
    assert {"date", "date_precision", "system", "code", "display", "type", "flags"} <= set(first)
    smoker = next(e for e in doc["events"] if e["display"] == "Current smoker")
    assert (smoker["date"], smoker["date_precision"], smoker["system"]) == ("2009", "year", "http://snomed.info/sct")


def test_show_table_lists_every_event_and_the_warnings():
    code, out = lgd("coded", "show", REFERENCE / "gpconnect-to-gp2gp-pairs/TC7/9465700193_Birdi_full_20210602.xml")
    assert code == ExitCode.ok
    assert "format      gp2gp-ehr-extract" in out and "NHS number  1234567890" in out
    assert out.count("absent_attachment") == 9
    assert "warning:" in out and "Modulus 11" in out


def test_show_refuses_a_non_record_with_exit_1():
    with pytest.raises(LgdError) as info:
        lgd("coded", "show", REFERENCE / "gp2gp-ehr-extract/nia-pss-misc/LARGE_MSG_ebxml.xml")
    assert info.value.exit_code == ExitCode.partial and info.value.code == "unknown_format"


def test_show_missing_file_is_usage():
    with pytest.raises(LgdError) as info:
        lgd("coded", "show", "/no/such/file.xml")
    assert info.value.exit_code == ExitCode.usage


def test_import_stores_and_reads_back(tmp_path):
    archive = archive_with(tmp_path, PAYLOAD_NHS)
    code, out = lgd("coded", "import", PAYLOAD, "--archive", archive, "--json")
    assert code == ExitCode.ok
    summary = json.loads(out)
    assert summary["patient"] == PAYLOAD_NHS and summary["coded"]["events"] == 5
    with Catalogue.open(archive) as cat:
        row = latest_coded_record(cat, PAYLOAD_NHS)
        audit = cat.audit_log(PAYLOAD_NHS, "coded_record_imported")
    original = read_record(PAYLOAD)
    assert row is not None and row.id == summary["coded"]["id"]
    assert (row.format, row.sha256, row.source_name) == ("gp2gp-ehr-extract", original.sha256, PAYLOAD.name)
    assert record_from_json(row.record, row.sha256) == original
    assert len(audit) == 1 and audit[0].detail["sha256"] == original.sha256
    # Importing the same file again stores nothing new.
    code, out = lgd("coded", "import", PAYLOAD, "--archive", archive, "--json")
    assert json.loads(out)["coded"]["id"] == row.id


def test_import_refuses_a_patient_not_in_the_archive(tmp_path):
    archive = archive_with(tmp_path, OTHER_NHS)
    with pytest.raises(LgdError) as info:
        lgd("coded", "import", PAYLOAD, "--archive", archive)
    assert info.value.exit_code == ExitCode.partial and info.value.code == "no_patient"
    assert PAYLOAD_NHS in str(info.value) and "not in the archive" in str(info.value)
    with Catalogue.open(archive) as cat:
        assert latest_coded_record(cat, OTHER_NHS) is None


def test_import_refuses_a_record_of_another_patient(tmp_path):
    archive = archive_with(tmp_path, PAYLOAD_NHS, OTHER_NHS)
    with pytest.raises(LgdError) as info:
        lgd("coded", "import", PAYLOAD, "--archive", archive, "--patient", OTHER_NHS)
    assert info.value.code == "nhs_mismatch" and info.value.exit_code == ExitCode.partial
    with Catalogue.open(archive) as cat:
        assert latest_coded_record(cat, OTHER_NHS) is None and latest_coded_record(cat, PAYLOAD_NHS) is None


def test_import_refuses_test_numbers_and_records_without_a_patient(tmp_path):
    archive = archive_with(tmp_path, OTHER_NHS)
    with pytest.raises(LgdError) as info:  # NHS number 1234567890 fails Modulus 11
        lgd("coded", "import", REFERENCE / "gpconnect-to-gp2gp-pairs/TC7/9465701483_Dougill_full_20210602.json", "--archive", archive)
    assert info.value.code == "nhs_mismatch" and "Modulus 11" in str(info.value)
    with pytest.raises(LgdError) as info:  # "Test Harness": no NHS number at all
        lgd("coded", "import", REFERENCE / "gp2gp-ehr-extract/nia-pss-e2e/PWTP2.xml", "--archive", archive)
    assert info.value.code == "no_patient" and "--patient" in str(info.value)


def test_import_csv_with_patient_given(tmp_path):
    archive = archive_with(tmp_path, OTHER_NHS)
    csv = tmp_path / "summary.csv"
    csv.write_text("date,system,code,display,type\n2009-03,SNOMED,22298006,Myocardial infarction,problem\n")
    code, _ = lgd("coded", "import", csv, "--archive", archive, "--patient", OTHER_NHS)
    assert code == ExitCode.ok
    with Catalogue.open(archive) as cat:
        row = latest_coded_record(cat, OTHER_NHS)
    assert row.record["nhs_number"] == OTHER_NHS and row.record["events"][0]["date"] == "2009-03"
    with pytest.raises(LgdError) as info:
        lgd("coded", "import", csv, "--archive", archive, "--patient", "1234567890")
    assert info.value.exit_code == ExitCode.usage


def test_latest_record_wins(tmp_path):
    archive = archive_with(tmp_path, OTHER_NHS)
    with Catalogue.open(archive) as cat:
        first = store_coded_record(cat, OTHER_NHS, {"format": "csv", "events": []}, "csv", "a" * 64, "one.csv")
        second = store_coded_record(cat, OTHER_NHS, {"format": "csv", "events": [{"type": "other"}]}, "csv", "b" * 64, "two.csv")
        again = store_coded_record(cat, OTHER_NHS, {"format": "csv", "events": []}, "csv", "a" * 64, "one.csv")
        assert first < second < again
        assert latest_coded_record(cat, OTHER_NHS).source_name == "one.csv"
        with pytest.raises(KeyError):
            store_coded_record(cat, PAYLOAD_NHS, {"format": "csv", "events": []}, "csv", "c" * 64, "x.csv")


def test_import_into_a_missing_archive_is_an_archive_error(tmp_path):
    from index import ArchiveError

    with pytest.raises(ArchiveError):
        lgd("coded", "import", PAYLOAD, "--archive", tmp_path / "nowhere")


def test_help_documents_exit_codes():
    parser = argparse.ArgumentParser(prog="lgd")
    register(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    with pytest.raises(SystemExit), __import__("contextlib").redirect_stdout(out):
        parser.parse_args(["coded", "import", "--help"])
    assert "exit codes:" in out.getvalue() and "--patient" in out.getvalue()

