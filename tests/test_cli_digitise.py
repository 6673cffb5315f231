"""`lgd digitise` end to end, through the real command line: bad inputs, identity, the --json contract, exit codes.

Every test drives the `lgd` program in a subprocess (tests/conftest.py `run_lgd`, which also
fails on any traceback) and then looks at what it left behind: the JSON on stdout, the
SQLite catalogue, the PDF/A files, the quarantine folder and the inputs themselves.
OCR is the slow part, so documents are small (1-3 pages) and runs are shared per module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from pikepdf.pdfa import validate_written

from fixtures.bad_inputs import write_bad_inputs
from fixtures.generate import generate_pages
from index import Catalogue, FullText
from tests.conftest import LGD, REPO, run_lgd

# Valid (Modulus 11) numbers in the 999 test range, for folders and manifests written here.
NHS_A, NHS_B, NHS_C, NHS_D, NHS_E = "9990000018", "9990000026", "9990000034", "9990000042", "9990000050"
DOC_KEYS = {"source", "nhs_number", "status", "reason", "pages", "blank_pages", "duplicate_pages",
            "unreadable_pages", "pdfa", "pdfa_valid"}


# --- helpers ---------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_source(result: dict) -> dict[str, dict]:
    docs = result["documents"]
    out = {d["source"]: d for d in docs if d["status"] != "skipped"}
    return out


def quarantined(archive: Path) -> dict[str, list[dict]]:
    """reason.json of every quarantine folder, by source."""
    found: dict[str, list[dict]] = {}
    for reason in sorted((archive / "quarantine").glob("*/reason.json")):
        info = json.loads(reason.read_text())
        info["folder"] = reason.parent
        found.setdefault(info["source"], []).append(info)
    return found


def catalogue_rows(archive: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(f"file:{archive / 'catalogue.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot(archive: Path) -> dict:
    """What an archive error must not change: row counts, stored PDFs (by content) and quarantine."""
    counts = {t: catalogue_rows(archive, f"SELECT count(*) FROM {t}")[0][0]
              for t in ("patients", "documents", "pages", "entries", "audit")}
    pdfs = {str(p.relative_to(archive)): sha256(p) for p in sorted((archive / "pdf").rglob("*")) if p.is_file()}
    quarantine = sorted(str(p.relative_to(archive)) for p in (archive / "quarantine").rglob("*"))
    return {"rows": counts, "pdfs": pdfs, "quarantine": quarantine}


def tmp_litter(archive: Path) -> list[str]:
    return sorted(str(p.relative_to(archive)) for p in (archive / "tmp").rglob("*"))


def whole_archive_is_consistent(archive: Path) -> None:
    """Every digitised document has its pages and a valid PDF/A file; the index holds its pages."""
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        docs = catalogue.documents(status="ok")
        for doc in docs:
            pages = catalogue.pages(doc.id)
            assert [p.number for p in pages] == list(range(1, doc.page_count + 1)), doc.source
            path = archive / doc.pdfa_path
            assert path.is_file(), doc.source
            assert validate_written(path, "2b").passed, doc.source
        non_blank = sum(1 for d in docs for p in catalogue.pages(d.id) if not p.blank)
    with FullText.open(archive, create=False) as fulltext:
        assert fulltext.doc_count() == non_blank


@contextlib.contextmanager
def read_only(*paths: Path, recursive: bool = True) -> Iterator[None]:
    """Make `paths` unwritable even for root (`chattr +i`), as a read-only disk would be."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R" if recursive else "-f", "a-w", *map(str, paths)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chmod", "-R" if recursive else "-f", "u+w", *map(str, paths)], check=True)
        return
    flags = ["-R"] if recursive else []
    done = subprocess.run(["chattr", *flags, "+i", *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["chattr", *flags, "-i", *map(str, paths)], capture_output=True)
        pytest.skip(f"`chattr +i` failed ({done.stderr.strip()}): cannot make the archive read-only here")
    try:
        yield
    finally:
        subprocess.run(["chattr", *flags, "-i", *map(str, paths)], check=True)


def patient_folder(parent: Path, nhs: str, name: str, born: str = "01-02-1950") -> Path:
    folder = parent / f"{nhs} {name} {born}"
    folder.mkdir(parents=True)
    return folder


# --- shared inputs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_doc(tmp_path_factory) -> Path:
    """One good 2-page NDR-named image PDF, for runs against an archive that already holds documents."""
    batch = generate_pages(tmp_path_factory.mktemp("small"), pages=2, seed=41)
    (source,) = batch.sources
    return source


@pytest.fixture
def old_archive(digitised, tmp_path) -> Path:
    """A private copy of the session archive: earlier documents that an error must not touch."""
    copy = tmp_path / "archive"
    shutil.copytree(digitised.archive, copy)
    return copy


@dataclass(frozen=True)
class BadRun:
    inbox: Path
    archive: Path
    cases: dict[str, Path]  # case -> input file
    hashes: dict[Path, str]  # every input file -> sha256 before the run
    good: Path
    again: Path  # the same bytes as `good`, under another name
    proc: subprocess.CompletedProcess
    result: dict


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory) -> BadRun:
    """All bad inputs, one good 3-page document and a duplicate submission, in one run."""
    root = tmp_path_factory.mktemp("bad")
    inbox = root / "inbox"
    cases = write_bad_inputs(inbox / "ndr", seed=3)
    # The fixture names its PNG and .xyz cases like NDR PDFs, so identity rejects them before
    # their bytes are looked at. Put the same bytes in identified patient folders as well, so
    # the format checks themselves are exercised.
    for case, nhs, name, file in (("corrupt_image", NHS_A, "Cora Corrupt", "page1.png"),
                                  ("decompression_bomb", NHS_B, "Bob Bomb", "page1.png"),
                                  ("unknown_format", NHS_C, "Una Unknown", "letter.xyz")):
        target = patient_folder(inbox / "folders", nhs, name) / file
        shutil.copy(cases[case], target)
        cases[f"{case}_in_folder"] = target
    batch = generate_pages(root / "good", pages=3, seed=11)
    (good,) = batch.sources
    good = Path(shutil.copy(good, inbox / good.name))
    again = inbox / "resubmitted" / "rescan_0001.pdf"
    again.parent.mkdir()
    shutil.copy(good, again)
    # A manifest row identifies the resubmission as the same patient (its name is not NDR).
    nhs = good.name.split("]_[")[1]
    (inbox / "metadata.csv").write_text(f"FILEPATH,NHS-NO\nresubmitted/{again.name},{nhs}\n")
    hashes = {p: sha256(p) for p in inbox.rglob("*") if p.is_file()}
    archive = root / "archive"
    proc = run_lgd("digitise", inbox, "--archive", archive, "--jobs", "2", "--json",
                   "--manifest", inbox / "metadata.csv")
    return BadRun(inbox, archive, cases, hashes, good, again, proc, proc.json)


# --- bad inputs ------------------------------------------------------------------------------

# case -> the stable code it must fail with (the reason must also name the file)
EXPECTED = {
    "zero_byte": "empty_file",
    "truncated_pdf": "truncated",
    "encrypted_pdf": "encrypted_pdf",
    "not_a_scan": "not_a_scan",
    "bad_nhs_number": "nhs_number_invalid",
    "bad_name": "no_identity",
    "corrupt_image_in_folder": "corrupt_image",
    "decompression_bomb_in_folder": "decompression_bomb",
    "unknown_format_in_folder": "unknown_format",
}
# NDR-style names ending .png/.xyz: rejected by identity (NDR files are PDF or TIFF) or by format.
NDR_NAMED_IMAGES = {
    "corrupt_image": {"name_not_ndr", "corrupt_image"},
    "decompression_bomb": {"name_not_ndr", "decompression_bomb"},
    "unknown_format": {"name_not_ndr", "unknown_format"},
}


def _outcome(run: BadRun, case: str) -> dict:
    path = run.cases[case]
    # Page images in a patient folder are one document named after the folder.
    page_image = case.endswith("_in_folder") and path.suffix in (".png", ".jpg")
    source = path.parent.name if page_image else path.name
    matches = [d for d in run.result["documents"] if d["source"] == source]
    assert len(matches) == 1, (case, source, [d["source"] for d in run.result["documents"]])
    return matches[0]


def test_a_batch_with_bad_inputs_exits_1_and_keeps_the_good_documents(bad_run):
    assert bad_run.proc.returncode == 1, bad_run.proc.stderr
    good = by_source(bad_run.result)[bad_run.good.name]
    assert good["status"] == "ok" and good["pdfa_valid"] and good["pages"] == 3, good
    assert validate_written(good["pdfa"], "2b").passed
    text_pdf = by_source(bad_run.result)[bad_run.cases["text_pdf"].name]
    assert text_pdf["status"] == "ok" and text_pdf["pdfa_valid"] and text_pdf["pages"] == 1, text_pdf
    assert validate_written(text_pdf["pdfa"], "2b").passed
    summary = bad_run.result["summary"]
    assert summary["ok"] == 2 and summary["skipped"] == 1
    assert summary["failed"] == len(EXPECTED) + len(NDR_NAMED_IMAGES)
    assert summary["documents"] == len(bad_run.result["documents"]) == summary["ok"] + summary["skipped"] + summary["failed"]
    whole_archive_is_consistent(bad_run.archive)


@pytest.mark.parametrize("case", sorted(EXPECTED) + sorted(NDR_NAMED_IMAGES))
def test_every_bad_input_fails_with_a_code_a_reason_and_a_quarantined_copy(bad_run, case):
    path = bad_run.cases[case]
    doc = _outcome(bad_run, case)
    expected = EXPECTED.get(case)
    assert doc["status"] == "failed", doc
    if expected:
        assert doc["code"] == expected, doc
    else:
        assert doc["code"] in NDR_NAMED_IMAGES[case], doc
    assert path.name in doc["reason"], doc  # the reason names the file it is about
    assert doc["pdfa"] is None and doc["pdfa_valid"] is False and doc["pages"] == 0
    # A copy in ARCHIVE/quarantine/<folder>/ with a reason.json that says the same.
    (info,) = quarantined(bad_run.archive)[doc["source"]]
    assert info["code"] == doc["code"] and info["reason"] == doc["reason"]
    (copy,) = info["files"]
    if doc["code"] == "not_a_scan":  # what is not a scan is named, never copied (issue 11)
        assert copy["path"] == str(path) and copy["copied"] is False and copy["name"] is None
    else:
        assert copy["path"] == str(path) and copy["copied"] is True
        assert sha256(info["folder"] / copy["name"]) == bad_run.hashes[path]
    # The original is left where it was, unchanged.
    assert path.is_file() and sha256(path) == bad_run.hashes[path]
    # And the catalogue remembers the failure.
    rows = catalogue_rows(bad_run.archive, "SELECT status, code FROM documents WHERE source = ?", doc["source"])
    assert rows == [("failed", doc["code"])]


def test_the_same_envelope_twice_in_one_run_is_digitised_once(bad_run):
    docs = [d for d in bad_run.result["documents"] if d["source"] in (bad_run.good.name, bad_run.again.name)]
    assert sorted(d["status"] for d in docs) == ["ok", "skipped"], docs
    ok = next(d for d in docs if d["status"] == "ok")
    skipped = next(d for d in docs if d["status"] == "skipped")
    assert ok["source"] in skipped["reason"] and skipped["code"] == "duplicate", skipped
    rows = catalogue_rows(bad_run.archive, "SELECT count(*) FROM documents WHERE sha256 = ?", bad_run.hashes[bad_run.good])
    assert rows == [(1,)]


def test_a_second_run_skips_what_is_done_without_ocr(bad_run):
    before = snapshot(bad_run.archive)
    ids = catalogue_rows(bad_run.archive, "SELECT id, source, created FROM documents WHERE status = 'ok' ORDER BY id")
    proc = run_lgd("digitise", bad_run.good, bad_run.again, bad_run.cases["text_pdf"],
                   "--archive", bad_run.archive, "--json", "--jobs", "2", "--manifest", bad_run.inbox / "metadata.csv")
    assert proc.returncode == 0, proc.stderr
    docs = proc.json["documents"]
    assert [d["status"] for d in docs] == ["skipped"] * 3, docs
    assert all(d["code"] == "already_done" for d in docs)
    first = by_source(bad_run.result)[bad_run.good.name]
    for d in docs:
        if d["source"] in (bad_run.good.name, bad_run.again.name):
            # What is stored is reported again, as it was the first time.
            for key in ("nhs_number", "pages", "blank_pages", "duplicate_pages", "unreadable_pages", "pdfa", "pdfa_valid"):
                assert d[key] == first[key], (key, d, first)
    # Nothing was digitised again: same rows, same PDFs, no new audit entries.
    assert snapshot(bad_run.archive) == before
    assert catalogue_rows(bad_run.archive, "SELECT id, source, created FROM documents WHERE status = 'ok' ORDER BY id") == ids
    assert proc.json["summary"]["seconds"] < 5  # three documents' worth of OCR would be far slower
    assert tmp_litter(bad_run.archive) == []


def test_json_goes_to_stdout_and_messages_to_stderr(bad_run):
    # run_lgd parsed stdout as one JSON document; the per-file complaints are on stderr.
    assert bad_run.cases["zero_byte"].name in bad_run.proc.stderr
    assert '"documents"' not in bad_run.proc.stderr
    for doc in bad_run.result["documents"]:
        assert DOC_KEYS <= doc.keys(), doc
        assert "/" not in doc["source"]


# --- identity at the command line ------------------------------------------------------------


@dataclass(frozen=True)
class IdentityRun:
    inbox: Path
    archive: Path
    folder: Path
    widths: list[int]  # page1..page12
    manifest_file: Path
    part: Path
    proc: subprocess.CompletedProcess
    result: dict


@pytest.fixture(scope="module")
def identity_run(tmp_path_factory) -> IdentityRun:
    root = tmp_path_factory.mktemp("identity")
    inbox = root / "inbox"
    # A patient folder of twelve page images, written in a scrambled order; page n is
    # 1000 + 20n pixels wide so the stored page order shows which file went where.
    folder = patient_folder(inbox, NHS_D, "Jane Natural")
    widths = [1000 + 20 * n for n in range(1, 13)]
    for n in (7, 12, 1, 10, 3, 11, 2, 9, 4, 8, 6, 5):
        Image.new("L", (widths[n - 1], 1400), 250).save(folder / f"page{n}.png", dpi=(300, 300))
    # An unidentifiable file name that a metadata.csv row identifies.
    bad = write_bad_inputs(root / "bad", seed=5)
    manifest_file = inbox / "scan_0001.pdf"
    shutil.copy(bad["bad_name"], manifest_file)
    (inbox / "metadata.csv").write_text(f"FILEPATH,NHS-NO,NAME,DOB\nscan_0001.pdf,{NHS_E[:3]} {NHS_E[3:6]} {NHS_E[6:]},Ann Manifest,02-03-1944\n")
    # Part 2 of a two-part record whose part 1 was not given.
    part = inbox / f"2of2_Lloyd_George_Record_[Pat Partial]_[{NHS_A}]_[05-06-1970].pdf"
    shutil.copy(bad["text_pdf"], part)
    archive = root / "archive"
    proc = run_lgd("digitise", inbox, "--archive", archive, "--manifest", inbox / "metadata.csv", "--json", "--jobs", "2")
    return IdentityRun(inbox, archive, folder, widths, manifest_file, part, proc, proc.json)


def test_a_patient_folder_is_one_document_in_natural_page_order(identity_run):
    assert identity_run.proc.returncode == 0, identity_run.proc.stderr
    doc = by_source(identity_run.result)[identity_run.folder.name]
    assert doc["status"] == "ok" and doc["nhs_number"] == NHS_D and doc["pages"] == 12, doc
    with Catalogue.open(identity_run.archive, create=False, readonly=True) as catalogue:
        (row,) = catalogue.documents(nhs_number=NHS_D)
        assert row.source == identity_run.folder.name
        pages = catalogue.pages(row.id)
    # page1, page2, ... page9, page10, page11, page12: not page1, page10, page11, page12, page2.
    assert [p.width for p in pages] == identity_run.widths


def test_a_sample_folder_keeps_the_pages_in_the_order_of_the_truth(digitised):
    """The generated folder record runs to page10; its pages must come back as the truth lists them."""
    index = json.loads(digitised.batch.index.read_text())
    folder = next(p for p in index["patients"] if p["container"] == "folder")
    truth = json.loads((digitised.batch.out / folder["truth"]).read_text())
    (doc_truth,) = truth["documents"]
    assert len(doc_truth["pages"]) >= 10
    with Catalogue.open(digitised.archive, create=False, readonly=True) as catalogue:
        (row,) = [d for d in catalogue.documents(nhs_number=folder["nhs_number"]) if d.source == doc_truth["source"]]
        pages = catalogue.pages(row.id)
    # Envelope, card and letter sizes differ; sorted, a page's size does not depend on its rotation.
    got = [(sorted((p.width, p.height)), p.blank) for p in pages]
    want = [(sorted((t["width"], t["height"])), t["blank"]) for t in doc_truth["pages"]]
    assert got == want


def test_a_manifest_row_identifies_an_unnamed_file(identity_run):
    doc = by_source(identity_run.result)[identity_run.manifest_file.name]
    assert doc["status"] == "ok" and doc["nhs_number"] == NHS_E and doc["pdfa_valid"], doc
    rows = catalogue_rows(identity_run.archive, "SELECT nhs_number, name, born FROM patients WHERE nhs_number = ?", NHS_E)
    assert rows == [(NHS_E, "Ann Manifest", "1944-03-02")]


def test_a_missing_part_is_a_warning_in_the_summary(identity_run):
    doc = by_source(identity_run.result)[identity_run.part.name]
    assert doc["status"] == "ok" and doc["nhs_number"] == NHS_A
    warnings = identity_run.result["summary"]["warnings"]
    assert any(NHS_A in w and "part 1 of 2 is missing" in w for w in warnings), warnings
    rows = catalogue_rows(identity_run.archive, "SELECT part, parts FROM documents WHERE nhs_number = ?", NHS_A)
    assert rows == [(2, 2)]


# --- the --json contract ---------------------------------------------------------------------


def test_json_documents_use_base_names_and_one_based_page_lists(digitised):
    result = digitised.result
    assert set(result) == {"documents", "summary"}
    names = {p.name for p in digitised.batch.sources}
    assert {d["source"] for d in result["documents"]} == names
    for doc in result["documents"]:
        assert DOC_KEYS <= doc.keys(), doc
        assert doc["status"] in ("ok", "skipped", "failed")
        for key in ("blank_pages", "duplicate_pages", "unreadable_pages"):
            assert all(1 <= n <= doc["pages"] for n in doc[key]), (key, doc)
            assert doc[key] == sorted(set(doc[key]))
        assert isinstance(doc["pdfa_valid"], bool) and Path(doc["pdfa"]).is_file()
    # The page numbers are those of the truth (1-based, within the file), not 0-based indexes.
    truth_blank, truth_dup = {}, {}
    for patient in json.loads(digitised.batch.index.read_text())["patients"]:
        for d in json.loads((digitised.batch.out / patient["truth"]).read_text())["documents"]:
            truth_blank[d["source"]] = [p["page"] for p in d["pages"] if p["blank"]]
            truth_dup[d["source"]] = [p["page"] for p in d["pages"] if p["duplicate_of"] is not None]
    for doc in result["documents"]:
        assert doc["blank_pages"] == truth_blank[doc["source"]], doc["source"]
        # Every page reported as a rescan is one, numbered as the truth numbers it; a rescan
        # too poorly read to compare with its first scan is kept as a page of its own.
        assert set(doc["duplicate_pages"]) <= set(truth_dup[doc["source"]]), doc["source"]
    assert any(truth_blank.values()) and any(truth_dup.values())  # the sample exercises both lists
    summary = result["summary"]
    for key in ("documents", "ok", "skipped", "failed", "pages", "warnings", "interrupted"):
        assert key in summary, key


def test_a_rerun_reports_everything_skipped_with_the_same_facts(digitised, old_archive):
    proc = run_lgd("digitise", digitised.batch.scans, "--archive", old_archive, "--json", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.json["summary"]["skipped"] == len(digitised.result["documents"]) and proc.json["summary"]["ok"] == 0
    first = {d["source"]: d for d in digitised.result["documents"]}
    for doc in proc.json["documents"]:
        assert doc["status"] == "skipped", doc
        want = {**first[doc["source"]], "pdfa": first[doc["source"]]["pdfa"].replace(str(digitised.archive), str(old_archive))}
        for key in ("nhs_number", "pages", "blank_pages", "duplicate_pages", "unreadable_pages", "pdfa", "pdfa_valid"):
            assert doc[key] == want[key], (key, doc)


def test_help_mentions_the_exit_codes():
    for args in (["--help"], ["digitise", "--help"]):
        proc = run_lgd(*args)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
        assert "exit codes" in text
        for code in ("0", "1", "2", "3", "4", "130"):
            assert f"\n  {code} " in text, (code, text)
    assert "--manifest" in run_lgd("digitise", "--help").stdout


def test_a_missing_path_is_bad_usage_with_one_line(tmp_path):
    archive = tmp_path / "archive"
    proc = run_lgd("digitise", tmp_path / "no-such-scans", "--archive", archive, "--json", check_json=False)
    assert proc.returncode == 2
    # --json always prints exactly one JSON document: here, the error.
    assert json.loads(proc.stdout)["error"] == {"code": "usage", "message": proc.stderr.strip().removeprefix("lgd: "), "exit_code": 2}
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-scans" in lines[0], proc.stderr
    assert not archive.exists()  # nothing created for a command that did nothing


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "65"])
def test_bad_jobs_is_bad_usage(tmp_path, jobs):
    proc = run_lgd("digitise", tmp_path, "--archive", tmp_path / "a", "--jobs", jobs)
    assert proc.returncode == 2
    assert "--jobs" in proc.stderr and proc.stdout == ""


def test_no_command_and_unknown_options_are_bad_usage(tmp_path):
    assert run_lgd().returncode == 2
    proc = run_lgd("digitise", tmp_path, "--no-such-option")
    assert proc.returncode == 2 and "--no-such-option" in proc.stderr


# --- an archive that cannot be written -------------------------------------------------------


def _assert_archive_error(proc: subprocess.CompletedProcess, archive: Path, words: tuple[str, ...]) -> None:
    assert proc.returncode == 4, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lgd: ") and str(archive) in last and any(w in last for w in words), proc.stderr


def test_a_read_only_archive_is_exit_4_and_left_as_it_was(old_archive, small_doc):
    before = snapshot(old_archive)
    with read_only(old_archive):
        proc = run_lgd("digitise", small_doc, "--archive", old_archive, "--json", check_json=False)
    _assert_archive_error(proc, old_archive, ("cannot be written",))
    assert snapshot(old_archive) == before
    assert small_doc.is_file()
    # Once the disk is writable again, the same command stores the document.
    again = run_lgd("digitise", small_doc, "--archive", old_archive, "--json")
    assert again.returncode == 0 and [d["status"] for d in again.json["documents"]] == ["ok"], again.stderr
    whole_archive_is_consistent(old_archive)


@pytest.mark.parametrize("folder", ["pdf", "tmp", "fulltext"])
def test_a_read_only_part_of_the_archive_is_exit_4_not_a_bad_input(old_archive, small_doc, folder):
    """Only one folder unwritable: found part-way through the document, after OCR or before it."""
    failed = "SELECT count(*) FROM documents WHERE status = 'failed'"
    before, failures = snapshot(old_archive), catalogue_rows(old_archive, failed)
    with read_only(old_archive / folder, recursive=False):
        proc = run_lgd("digitise", small_doc, "--archive", old_archive, "--json", "--jobs", "1", check_json=False)
    _assert_archive_error(proc, old_archive, ("cannot be written",))
    after = snapshot(old_archive)
    # The input is not blamed (not quarantined, no failure row) and earlier documents are untouched.
    assert after["quarantine"] == before["quarantine"] and catalogue_rows(old_archive, failed) == failures
    assert tmp_litter(old_archive) == []
    if folder == "fulltext":
        # The document's catalogue transaction committed before the index refused its pages:
        # it is kept, marked unindexed, and the next run indexes it without OCR.
        assert after["rows"]["documents"] == before["rows"]["documents"] + 1
        assert catalogue_rows(old_archive, "SELECT count(*) FROM documents WHERE indexed = 0") == [(1,)]
        expected = "skipped"
    else:
        assert after == before
        expected = "ok"
    again = run_lgd("digitise", small_doc, "--archive", old_archive, "--json")
    assert again.returncode == 0, again.stderr
    assert [d["status"] for d in again.json["documents"]] == [expected]
    whole_archive_is_consistent(old_archive)


# --- an archive on a full disk ---------------------------------------------------------------


def _limited(limit: int):
    def preexec() -> None:
        # Without ignoring SIGXFSZ the kernel kills the writer; ignored, write() fails with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_is_exit_4_and_loses_nothing(old_archive, small_doc):
    """A file-size limit (as `ulimit -f` sets) makes every write past it fail, as a full disk does."""
    before = snapshot(old_archive)
    limit = small_doc.stat().st_size // 2
    proc = subprocess.run([*LGD, "digitise", str(small_doc), "--archive", str(old_archive), "--json", "--jobs", "2"],
                          capture_output=True, text=True, cwd=REPO, timeout=300, preexec_fn=_limited(limit))
    _assert_archive_error(proc, old_archive, ("full",))
    assert snapshot(old_archive) == before  # the good input is not quarantined or marked failed
    assert tmp_litter(old_archive) == []
    assert small_doc.is_file()
    again = run_lgd("digitise", small_doc, "--archive", old_archive, "--json")
    assert again.returncode == 0 and [d["status"] for d in again.json["documents"]] == ["ok"], again.stderr
    whole_archive_is_consistent(old_archive)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A real, small filesystem (tmpfs) that can be filled: needs root and permission to mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the RLIMIT_FSIZE test covers a full disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_filled_disk_at_any_point_keeps_the_archive_consistent(digitised, small_doc, small_disk):
    """ENOSPC for real: the archive on a nearly full tmpfs, with less or more room left."""
    size = small_doc.stat().st_size
    outcomes = []
    for room in (size // 2, 2 * size, 4 * size):
        archive = small_disk / f"archive-{room}"
        shutil.copytree(digitised.archive, archive)
        before = snapshot(archive)
        free = shutil.disk_usage(small_disk).free
        filler = small_disk / "filler"
        with filler.open("wb") as f:
            left = max(0, free - room)
            while left > 0:
                left -= f.write(b"\0" * min(left, 1 << 20))
        proc = subprocess.run([*LGD, "digitise", str(small_doc), "--archive", str(archive), "--json", "--jobs", "1"],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        filler.unlink()
        assert "Traceback" not in proc.stderr
        outcomes.append(proc.returncode)
        if proc.returncode == 4:
            _assert_archive_error(proc, archive, ("full",))
            assert snapshot(archive) == before
        else:
            assert proc.returncode == 0, proc.stderr
            assert [d["status"] for d in json.loads(proc.stdout)["documents"]] == ["ok"]
        assert tmp_litter(archive) == []
        whole_archive_is_consistent(archive)
        shutil.rmtree(archive)
    assert 4 in outcomes, outcomes
