"""`lgd pack` end to end on the digitised sample: every format, opened by the real tools, and batch."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest

from index import Catalogue
from index.decisions import latest_reconciliation, packs
from tests.conftest import run_lgd

PASSPHRASE = "correct horse battery staple orbit lantern"


@pytest.fixture(scope="module")
def packed(digitised, tmp_path_factory):
    """A private copy of the sample archive in which every patient is reconciled against its GP2GP record."""
    root = tmp_path_factory.mktemp("pack")
    archive = root / "archive"
    shutil.copytree(digitised.archive, archive)
    index = json.loads(digitised.batch.index.read_text())
    for p in index["patients"]:
        coded = digitised.batch.out / p["coded"]["gp2gp"]
        assert run_lgd("reconcile", "--patient", p["nhs_number"], "--coded", coded, "--archive", archive).returncode == 0
    secret = root / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    return archive, [p["nhs_number"] for p in index["patients"]], secret, digitised.batch


def _pack(archive, nhs, fmt, out, *extra):
    return run_lgd("pack", "--patient", nhs, "--format", fmt, "--out", out, "--archive", archive, "--json", *extra)


def test_a_7z_pack_opens_in_7zip_and_verifies(packed, tmp_path):
    archive, patients, secret, _ = packed
    proc = _pack(archive, patients[1], "7z", tmp_path / "out", "--passphrase-file", secret)
    assert proc.returncode == 0, proc.stderr
    doc = proc.json
    assert doc["pages_total"] == doc["pages_included"] + doc["pages_omitted"] and doc["pages_omitted"] > 0
    seven = Path(doc["outputs"][0])
    listing = subprocess.run(["7zz", "l", "-slt", f"-p{PASSPHRASE}", str(seven)], capture_output=True, text=True)
    assert listing.returncode == 0 and "Path = pack.pdf" in listing.stdout and "manifest.sig" in listing.stdout
    extracted = tmp_path / "x"
    subprocess.run(["7zz", "x", f"-p{PASSPHRASE}", f"-o{extracted}", str(seven)], check=True, capture_output=True)
    with pikepdf.open(extracted / "pack.pdf") as pdf:
        assert len(pdf.pages) == doc["pack"]["pages"]
        with Catalogue.open(archive, create=False) as cat:
            run = latest_reconciliation(cat, patients[1])
        included = sum(1 for p in run.pages if p.effective == "include")
        assert len(pdf.pages) >= included + 1  # cover (and index) before the included pages
    verified = run_lgd("verify", seven, "--passphrase-file", secret, "--archive", archive, "--json")
    assert verified.returncode == 0 and verified.json["ok"], verified.stdout
    with Catalogue.open(archive, create=False) as cat:
        (record,) = [p for p in packs(cat, patients[1]) if p.format == "7z"]
        assert record.sha256 == doc["pack"]["sha256"] and record.reconciliation_id == doc["reconciliation"]["run"]
        assert cat.audit_log(patients[1], action="pack_built")


def test_an_iso_pack_split_for_small_media_lists_with_isoinfo(packed, tmp_path):
    archive, patients, secret, _ = packed
    proc = _pack(archive, patients[2], "iso", tmp_path / "iso", "--passphrase-file", secret, "--media", "1.5M",
                 "--with-electronic")
    assert proc.returncode == 0, proc.stderr
    images = [Path(p) for p in proc.json["outputs"] if p.endswith(".iso")]
    assert len(images) >= 2
    for image in images:
        listing = subprocess.run(["isoinfo", "-l", "-J", "-i", str(image)], capture_output=True, text=True)
        assert listing.returncode == 0 and "README.TXT" in listing.stdout
        assert patients[2] not in listing.stdout  # no patient data in names
    assert proc.json["electronic"]["events"] > 0
    assert run_lgd("verify", images[0], "--passphrase-file", secret, "--archive", archive).returncode == 0


def test_print_and_ndr_packs(packed, tmp_path):
    archive, patients, _, _ = packed
    printed = _pack(archive, patients[0], "print", tmp_path / "print")
    assert printed.returncode == 0, printed.stderr
    pdf_path = Path(printed.json["outputs"][0])
    with pikepdf.open(pdf_path) as pdf:
        assert len(pdf.pages) % 2 == 0 or len(pdf.pages) == printed.json["pack"]["pages"]
    assert "sheet" in printed.json["print"]
    ndr = _pack(archive, patients[0], "ndr", tmp_path / "ndr", "--ods", "Y12345")
    assert ndr.returncode == 0, ndr.stderr
    metadata = tmp_path / "ndr" / "metadata.csv"
    rows = list(csv.DictReader(metadata.open()))
    assert list(rows[0]) == ["FILEPATH", "PAGE COUNT", "GP-PRACTICE-CODE", "NHS-NO", "SECTION", "SUB-SECTION",
                             "SCAN-DATE", "SCAN-ID", "USER-ID", "UPLOAD", "PATIENT-NAME"]
    assert all(r["NHS-NO"] == patients[0] and "_Lloyd_George_Record_[" in r["FILEPATH"] for r in rows)


def test_a_media_pack_without_a_passphrase_is_refused(packed, tmp_path):
    archive, patients, _, _ = packed
    proc = _pack(archive, patients[0], "7z", tmp_path / "out")
    assert proc.returncode == 2 and "--passphrase-file" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_new_passphrase_is_written_once_to_a_private_file(packed, tmp_path):
    archive, patients, _, _ = packed
    secret = tmp_path / "new.txt"
    proc = _pack(archive, patients[0], "usb", tmp_path / "stick", "--new-passphrase-file", secret)
    assert proc.returncode == 0, proc.stderr
    phrase = secret.read_text().strip()
    assert len(phrase.split()) == 8 and (secret.stat().st_mode & 0o777) == 0o600
    assert phrase not in proc.stdout + proc.stderr
    for f in (tmp_path / "stick").rglob("*"):
        if f.is_file():
            assert phrase.encode() not in f.read_bytes()
    assert run_lgd("verify", tmp_path / "stick", "--passphrase-file", secret, "--archive", archive).returncode == 0
    again = _pack(archive, patients[0], "7z", tmp_path / "other", "--new-passphrase-file", secret)
    assert again.returncode == 2 and "exists" in again.stderr


def test_pack_reconciles_first_or_says_why_it_cannot(digitised, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(digitised.archive, archive)
    index = json.loads(digitised.batch.index.read_text())
    nhs = index["patients"][0]["nhs_number"]
    refused = _pack(archive, nhs, "print", tmp_path / "p1")
    assert refused.returncode == 1 and "lgd coded import" in refused.stderr
    coded = digitised.batch.out / index["patients"][0]["coded"]["csv"]
    built = _pack(archive, nhs, "print", tmp_path / "p2", "--coded", coded)
    assert built.returncode == 0, built.stderr
    with Catalogue.open(archive, create=False) as cat:
        assert latest_reconciliation(cat, nhs).id == built.json["reconciliation"]["run"]


def test_batch_builds_neutrally_named_packs_and_reports_totals(packed, tmp_path):
    archive, patients, secret, _ = packed
    leavers = tmp_path / "leavers.csv"
    leavers.write_text("nhs_number\n" + "\n".join([*patients[:2], "9434765919"]) + "\n")
    proc = run_lgd("pack", "--batch", leavers, "--format", "7z", "--out", tmp_path / "packs", "--archive", archive,
                   "--new-passphrase-file", tmp_path / "phrases.csv", "--json")
    assert proc.returncode == 1
    assert [p["ok"] for p in proc.json["packs"]] == [True, True, False]
    assert sorted(d.name for d in (tmp_path / "packs").iterdir()) == ["pack-001", "pack-002"]
    phrases = list(csv.DictReader((tmp_path / "phrases.csv").open()))
    assert [r["nhs_number"] for r in phrases] == patients[:2]
    s = proc.json["summary"]
    assert s["failed"] == 1 and s["pages_total"] == s["pages_included"] + s["pages_omitted"] and s["sheets_saved"] > 0


def test_pack_never_reuses_a_relaxed_run(digitised, tmp_path):  # H39
    archive = tmp_path / "archive"
    shutil.copytree(digitised.archive, archive)
    index = json.loads(digitised.batch.index.read_text())
    nhs = index["patients"][0]["nhs_number"]
    coded = digitised.batch.out / index["patients"][0]["coded"]["csv"]
    relaxed = run_lgd("reconcile", "--patient", nhs, "--coded", coded, "--archive", archive, "--min-confidence", "0",
                      "--json")
    assert relaxed.returncode == 0 and relaxed.json["rules"]["entry_min_confidence"] == 0
    assert len(relaxed.json["rules"]["fingerprint"]) == 64
    built = _pack(archive, nhs, "print", tmp_path / "p")
    assert built.returncode == 0, built.stderr
    assert built.json["reconciliation"]["run"] != relaxed.json["run"]  # reconciled again on the defaults
    with Catalogue.open(archive, create=False) as cat:
        run = latest_reconciliation(cat, nhs)
        assert run.id == built.json["reconciliation"]["run"] and run.settings["entry_min_confidence"] == 60.0
    again = _pack(archive, nhs, "print", tmp_path / "q")
    assert again.json["reconciliation"]["run"] == run.id  # the defaults' run is reused as it stands


def test_a_record_with_a_part_never_digitised_is_refused_unless_allowed(digitised, tmp_path):  # H42
    part1 = next(p for p in digitised.batch.scans.rglob("1of2_*.pdf"))
    nhs = part1.name.split("_[")[2].split("]")[0]
    coded = next(digitised.batch.coded.glob(f"{nhs}.csv"))
    only = tmp_path / "scans"
    only.mkdir()
    shutil.copy(part1, only / part1.name)
    archive = tmp_path / "archive"
    assert run_lgd("digitise", only, "--archive", archive, "--json").returncode in (0, 1)
    refused = _pack(archive, nhs, "print", tmp_path / "p", "--coded", coded)
    assert refused.returncode == 1 and "part 2 of 2" in refused.stderr and "--allow-missing-parts" in refused.stderr
    built = _pack(archive, nhs, "print", tmp_path / "q", "--coded", coded, "--allow-missing-parts")
    assert built.returncode == 0, built.stderr
    assert built.json["missing_parts"] == [f"part 2 of 2 of {part1.name[5:]}"]
    cover = subprocess.run(["pdftotext", "-f", "1", "-l", "1", built.json["outputs"][0], "-"], capture_output=True,
                           text=True, check=True).stdout
    assert "INCOMPLETE" in cover and "part 2 of 2" in cover
