"""The pack document (issue 5): plan, PDF/A-2b pack, print layout, NDR files and the coded-record section.

Real programs on the digitised synthetic sample: the archive from the session fixture is copied
(the tests store a reconciliation in it), packs are built with pikepdf and fpdf2, validated with
pikepdf.pdfa and read back with pdftotext.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pikepdf
import pytest
from pikepdf.pdfa import validate_written

from index import decisions
from index.catalogue import Catalogue
from index.rows import DocumentRow, PageDecisionRow, PageRow, PatientRow, ReconciliationRow
from index.store import sha256_file
from pipelines.errors import ExitCode
from pipelines.identity import parse_ndr_filename, read_manifest
from pipelines.records.model import CodedEvent, CodedRecord, Coding
from pipelines.transfer.document import build_pack_pdf
from pipelines.transfer.electronic import EVENTS_PER_PRINTED_PAGE
from pipelines.transfer.ndr import COLUMNS, ndr_file_name, ndr_name_part, write_ndr
from pipelines.transfer.plan import PackBuildError, make_plan, order_documents, plan_pack
from pipelines.transfer.printing import print_summary, recto_padding, sheets
from pipelines.transfer.stamp import BAND, RecordStamp, apply_mark, render_marks
from pipelines.transfer.render import Sheet, to_pikepdf

WHEN = dt.date(2026, 5, 1)
CODED_SHA = "c0ded" + "0" * 59
RUN_SETTINGS = {"entry_min_confidence": 60.0, "page_min_confidence": 60.0, "rescan_min_similarity": 90.0,
                "rules_version": 2, "fingerprint": "ab" * 32}
SNOMED = "http://snomed.info/sct"
EVIDENCE = {
    "fact": "Chest infection", "written": "chest inf", "system": SNOMED, "code": "50417007",
    "display": "Lower respiratory tract infection", "date": "1990-01-02", "date_precision": "day",
    "date_match": "day", "how": "synonym", "score": 0.912,
}


def pages_text(pdf: Path, first: int | None = None, last: int | None = None, layout: bool = False) -> list[str]:
    """Each page's text layer as pdftotext reads it (in reading order, or as laid out), whitespace collapsed."""
    args = ["pdftotext", *(["-layout"] if layout else []), *(["-f", str(first)] if first else []), *(["-l", str(last)] if last else []), str(pdf), "-"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [" ".join(page.split()) for page in out.split("\f")[:-1]]


@dataclass(frozen=True)
class Packable:
    archive: Path
    nhs: str
    run: ReconciliationRow
    omitted: frozenset[tuple[str, int]]
    undecided: tuple[str, int]
    forced_in: tuple[str, int]
    forced_out: tuple[str, int]


@pytest.fixture(scope="module")
def packable(digitised, tmp_path_factory) -> Packable:
    """A copy of the sample archive with a reconciliation of the two-part record stored in it.

    Every third page is omitted with evidence; the last page has no decision; one omitted page is
    forced in and one included page forced out by clinician overrides.
    """
    archive = tmp_path_factory.mktemp("pack") / "lgd-archive"
    shutil.copytree(digitised.archive, archive)
    with Catalogue.open(archive) as cat:
        nhs = max(cat.patients(), key=lambda p: len(cat.documents(p.nhs_number))).nhs_number
        docs = order_documents(cat.documents(nhs, status="ok"))
        assert len(docs) == 2, "the sample's first patient is a two-part NDR record"
        every = [(d, p.number) for d in docs for p in cat.pages(d.id)]
        rows, omitted = [], set()
        for d, n in every[:-1]:  # the last page is left undecided
            omit = n % 3 == 0
            entries = ({"date": "1990-01-02", "text": "chest inf", "status": "covered", "why": "coded",
                        "evidence": [EVIDENCE]},) if omit else ()
            rows.append(PageDecisionRow(d.id, n, "omit" if omit else "include",
                                        "all 1 entries covered" if omit else "1 paper-only of 1 entries", entries))
            if omit:
                omitted.add((d.source, n))
        decisions.store_reconciliation(cat, nhs, coded_format="csv", coded_sha256=CODED_SHA, coded_events=3,
                                       pages=rows, settings=RUN_SETTINGS, actor="test")
        forced_in = next(r for r in rows if r.decision == "omit")
        forced_out = next(r for r in rows if r.decision == "include" and r.page > 1)
        decisions.record_override(cat, nhs, forced_in.document_id, forced_in.page, "include",
                                  reason="mentions a family history", actor="dr.test")
        decisions.record_override(cat, nhs, forced_out.document_id, forced_out.page, "omit",
                                  reason="duplicate of a letter", actor="dr.test")
        run = decisions.latest_reconciliation(cat, nhs)
        source = {d.id: d.source for d in docs}
        fin, fout = (source[forced_in.document_id], forced_in.page), (source[forced_out.document_id], forced_out.page)
        omitted = (omitted - {fin}) | {fout}
        undecided = (every[-1][0].source, every[-1][1])
    return Packable(archive, nhs, run, frozenset(omitted), undecided, fin, fout)


@pytest.fixture(scope="module")
def plan(packable):
    with Catalogue.open(packable.archive, readonly=True) as cat:
        return plan_pack(cat, packable.nhs, packable.run)


@pytest.fixture(scope="module")
def pack(plan, packable, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "pack.pdf"
    return build_pack_pdf(plan, packable.archive, out, coded=None, with_electronic=False,
                          practice="Riverside Surgery (test)", when=WHEN)


# --- the plan -------------------------------------------------------------------------------


def test_plan_applies_overrides_and_includes_a_page_with_no_decision(plan, packable):
    assert {(p.source, p.page) for p in plan.omitted} == packable.omitted
    assert len(plan.included) + len(plan.omitted) == plan.full_record_pages
    (undecided,) = plan.undecided
    assert (undecided.source, undecided.page) == packable.undecided and undecided.included
    assert {(p.source, p.page) for p in plan.overridden} == {packable.forced_in, packable.forced_out}
    keys = [(p.source, p.page) for p in plan.pages]
    assert keys == sorted(keys, key=lambda k: (k[0].split("of")[0], k[1])), "parts in order, pages by number"


def _row(id_: int, source: str, part: int | None) -> DocumentRow:
    return DocumentRow(source, str(id_) * 64, "9990001236", 1, "ok", f"pdf/{id_}.pdf", True, part, 2 if part else None,
                       None, None, 1, dt.datetime(2026, 1, id_, tzinfo=dt.timezone.utc), id_)


def test_documents_are_ordered_by_record_then_part_whatever_order_they_were_catalogued():
    a2, other, a1 = _row(1, "2of2_LG_[A].pdf", 2), _row(2, "scan.tif", None), _row(3, "1of2_LG_[A].pdf", 1)
    assert [d.id for d in order_documents([a2, other, a1])] == [3, 1, 2]


def test_a_run_that_decides_pages_the_archive_does_not_hold_is_refused():
    patient = PatientRow("9990001236", "Ann Example", dt.date(1950, 1, 1))
    doc = _row(1, "a.pdf", None)
    page = PageRow(1, 10, 10, 300, 0, 0.0, False, "0", None, 90.0, False, "card", "")
    run = ReconciliationRow(7, patient.nhs_number, "csv", CODED_SHA, 1, dt.datetime(2026, 1, 1), "t", {},
                            (PageDecisionRow(1, 1, "include", "x"), PageDecisionRow(1, 2, "omit", "x")))
    with pytest.raises(PackBuildError) as e:
        make_plan(patient, [doc], {1: [page]}, run)
    assert e.value.code == "pack_stale_run" and "document 1 page 2" in str(e.value)
    with pytest.raises(PackBuildError) as e:
        make_plan(replace(patient, nhs_number="9990001244"), [doc], {1: [page]}, run)
    assert e.value.code == "pack_wrong_run"


def test_inputs_that_were_never_digitised_are_named_on_the_cover(plan, packable, tmp_path):
    failed = replace(plan, failed_sources=("3of3_Lloyd_George_Record_[lost].pdf",))
    pack = build_pack_pdf(failed, packable.archive, tmp_path / "f.pdf", coded=None, with_electronic=False,
                          practice=None, when=WHEN)
    cover = pages_text(pack.path, 1, 1)[0]
    assert "are NOT in this pack: 3of3_Lloyd_George_Record_[lost].pdf" in cover and "Send the paper originals" in cover
    assert plan.full_record_sheets() == -(-plan.full_record_pages // 2)
    assert plan.full_record_sheets(duplex=False) == plan.full_record_pages


# --- the pack PDF ---------------------------------------------------------------------------


def test_the_pack_is_cover_index_and_exactly_the_included_pages_in_order(pack, plan, packable):
    text = pages_text(pack.path)
    assert len(text) == pack.pages == 1 + 1 + len(plan.included)  # one cover page and one index page here
    assert [(p.source, p.page) for p in pack.record] == [(p.source, p.page) for p in plan.included]
    assert not {(p.source, p.page) for p in pack.record} & packable.omitted
    assert packable.undecided in {(p.source, p.page) for p in pack.record}
    archive_pdfs = {d.source: packable.archive / d.pdfa_path for d in plan.documents}
    n, read = len(plan.included), 0
    for p in pack.record:
        (original,) = pages_text(archive_pdfs[p.source], p.page, p.page)
        page = text[p.pack_page - 1]
        assert page.startswith(original), f"text layer of {p.source} p.{p.page} not kept"
        read += bool(original)
        assert f"page {p.number} of {n}" in page and f"source: {p.source}, page {p.page} of" in page
        assert "NHS " + " ".join((packable.nhs[:3], packable.nhs[3:6], packable.nhs[6:])) in page
    assert read >= n - 2, "most included pages carry OCR text (blank backs do not)"


def test_the_cover_is_real_text_with_identity_counts_and_the_coded_record(pack, plan, packable):
    cover = pages_text(pack.path, 1, 1, layout=True)[0]
    nhs = packable.nhs
    for expected in (
        plan.name, f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}", f"{plan.born.day:02d}-{plan.born:%b}-{plan.born.year}",
        "Riverside Surgery (test)", "01-May-2026", CODED_SHA, "csv",
        f"Pages in the full digitised record {plan.full_record_pages}",
        f"Pages included in this pack {len(plan.included)}", f"Pages omitted {len(plan.omitted)}",
        "Clinician overrides applied 2", "Pages with no decision 1 (included)",
        "OCR confidence at least 60.0 per entry", "Rules fingerprint version 2, " + "ab" * 32,
    ):
        assert expected in cover, expected


def test_the_index_lists_every_omitted_page_with_its_reason_and_covering_entries(pack, plan, packable):
    index = pages_text(pack.path, 2, 2)[0]
    for source, page in sorted(packable.omitted):
        assert f"{source}, page {page}" in index
    assert "all 1 entries covered" in index and "Lower respiratory tract infection" in index
    assert "SNOMED CT 50417007" in index and "score 0.91" in index and "matched by synonym" in index
    assert "left out by dr.test's decision on" in index and "duplicate of a letter" in index
    assert "mentions a family history" in index  # the override that forced a page in is listed too


def test_the_pack_has_bookmarks_per_section_and_passes_pdfa_2b(pack, plan):
    with pikepdf.open(pack.path) as pdf, pdf.open_outline() as outline:
        titles = [item.title for item in outline.root]
    sources = [d.source for d in plan.documents if plan.document_pages(d.document_id, included=True)]
    assert titles[:2] == ["Cover sheet", "Pages omitted from this pack"]
    assert [t.rsplit(" (", 1)[0] for t in titles[2:]] == sources
    report = validate_written(pack.path, "2b")
    assert report.passed, report.summary()
    assert pack.validation == "PDF/A-2b: pass" and pack.sha256 == sha256_file(pack.path)


def test_the_pack_is_reproducible_and_leaves_the_archive_untouched(pack, plan, packable, tmp_path):
    before = {d.pdfa_path: sha256_file(packable.archive / d.pdfa_path) for d in plan.documents}
    again = build_pack_pdf(plan, packable.archive, tmp_path / "again.pdf", coded=None, with_electronic=False,
                           practice="Riverside Surgery (test)", when=WHEN)
    assert again.sha256 == pack.sha256 and again.record == pack.record
    assert before == {path: sha256_file(packable.archive / path) for path in before}
    assert all(Path(path).stem == sha for path, sha in before.items())


def test_a_pack_with_every_page_omitted_is_the_cover_and_the_index(plan, packable, tmp_path):
    none = replace(plan, pages=tuple(replace(p, decision="omit") for p in plan.pages))
    pack = build_pack_pdf(none, packable.archive, tmp_path / "none.pdf", coded=None, with_electronic=False,
                          practice=None, when=WHEN, duplex=True)
    assert [s.kind for s in pack.sections] == ["cover", "omitted_index"] and pack.record == ()
    assert "Pages included in this pack 0" in pages_text(pack.path, 1, 1, layout=True)[0]
    assert validate_written(pack.path, "2b").passed


def test_a_damaged_archive_file_stops_the_pack(plan, packable, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(packable.archive, archive)
    victim = archive / plan.included[0].pdfa_path
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"\n%tampered\n")
    with pytest.raises(PackBuildError) as e:
        build_pack_pdf(plan, archive, tmp_path / "p.pdf", coded=None, with_electronic=False, practice=None, when=WHEN)
    assert e.value.exit_code == ExitCode.archive_error and "content hash" in str(e.value)
    assert not (tmp_path / "p.pdf").exists()


def test_a_rotated_page_is_stamped_along_its_shown_foot(tmp_path):
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(300, 500))
    pdf.pages[0].Rotate = 90  # shown 500 wide and 300 high; the shown foot is user space's right edge
    sheet = Sheet()
    marks = render_marks(sheet, [RecordStamp(500, "Ann Example", "page 1 of 1", "source: a.pdf, page 1 of 1")])
    drawn = to_pikepdf(sheet)  # kept open until saved: the copied mark's data is read from it
    apply_mark(pdf, pdf.pages[0], drawn.pages[marks[0]], grow=True)
    assert [float(v) for v in pdf.pages[0].mediabox] == [0, 0, 300 + BAND, 500]
    pdf.save(tmp_path / "r.pdf")
    out = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    assert "page 1 of 1" in out and "source: a.pdf, page 1 of 1" in out  # upright: read left to right


# --- print ----------------------------------------------------------------------------------


def test_recto_padding_starts_every_non_empty_section_on_an_odd_page():
    assert recto_padding([1, 1, 3, 0, 2]) == (0, 1, 1, 0, 1)
    assert recto_padding([2, 2, 1]) == (0, 0, 0)
    assert sheets(7) == 4 and sheets(7, duplex=False) == 7


def test_the_print_layout_starts_each_section_on_a_recto_and_counts_sheets(plan, packable, tmp_path):
    pack = build_pack_pdf(plan, packable.archive, tmp_path / "print.pdf", coded=None, with_electronic=False,
                          practice=None, when=WHEN, duplex=True)
    assert [s.first_page % 2 for s in pack.sections] == [1] * len(pack.sections)
    text = pages_text(pack.path)
    blanks = [i for i, t in enumerate(text) if "intentionally blank" in t]
    assert len(blanks) == pack.blank_pages > 0 and pack.pages == len(text)
    assert [p.pack_page for p in pack.record] == [i + 1 for i, t in enumerate(text) if "source: " in t]
    summary = print_summary(plan, pack)
    assert summary.duplex and summary.pack_sheets == -(-pack.pages // 2)
    assert summary.full_record_sheets == -(-plan.full_record_pages // 2)
    assert f"{summary.pack_sheets} sheet(s) double-sided" in summary.line
    assert validate_written(pack.path, "2b").passed


# --- NDR ------------------------------------------------------------------------------------


def test_ndr_files_follow_the_naming_convention_and_metadata_csv_is_exact(plan, pack, packable, tmp_path):
    out = tmp_path / "ndr"
    bundle = write_ndr(plan, pack, out, ods_code="a81001", when=WHEN, user="tester", max_bytes=400_000)
    n = len(bundle.files)
    assert n > 1, "a small limit splits the pack"
    for i, f in enumerate(bundle.files, start=1):
        assert f.path.name == ndr_file_name(i, n, plan.name, plan.nhs_number, plan.born)
        parsed = parse_ndr_filename(f.path.name)
        assert (parsed.part, parsed.parts, parsed.patient.nhs_number, parsed.patient.born) == (i, n, packable.nhs, plan.born)
        assert f.path.stat().st_size <= 400_000 and validate_written(f.path, "2b").passed
    assert sum(f.pages for f in bundle.files) == pack.pages
    with open(bundle.metadata, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header, *rows = list(reader)
    assert tuple(header) == COLUMNS
    assert len(rows) == n
    row = dict(zip(header, rows[0]))
    assert row["FILEPATH"] == f"/{packable.nhs}/{bundle.files[0].path.name}" and row["PAGE COUNT"] == str(bundle.files[0].pages)
    assert (row["GP-PRACTICE-CODE"], row["NHS-NO"], row["SECTION"], row["SUB-SECTION"]) == ("A81001", packable.nhs, "LG", "")
    assert row["SCAN-DATE"] == f"{plan.digitised_on:%d/%m/%Y}" and row["UPLOAD"] == "01/05/2026" and row["USER-ID"] == "tester"
    assert len({r[7] for r in rows}) == n  # one SCAN-ID per file
    manifest = read_manifest(bundle.metadata)  # lgd's own ingest reads it back
    assert all(manifest.lookup(f.path).patient.nhs_number == packable.nhs for f in bundle.files)
    assert not list(tmp_path.glob(".ndr.*")), "no temporary folder left behind"
    again = write_ndr(plan, pack, tmp_path / "ndr2", ods_code="A81001", when=WHEN, user="tester", max_bytes=400_000)
    assert [f.scan_id for f in again.files] == [f.scan_id for f in bundle.files]


def test_ndr_refuses_a_used_folder_and_warns_without_an_ods_code(plan, pack, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(PackBuildError) as e:
        write_ndr(plan, pack, used, ods_code=None, when=WHEN)
    assert e.value.code == "ndr_out_exists"
    bundle = write_ndr(plan, pack, tmp_path / "one", ods_code=None, when=WHEN, user="tester")
    assert len(bundle.files) == 1 and bundle.files[0].path.name.startswith("1of1_Lloyd_George_Record_[")
    assert bundle.rows[0]["GP-PRACTICE-CODE"] == "" and "ODS" in bundle.warnings[0]


def test_ndr_refuses_a_pack_laid_out_for_printing(plan, pack, tmp_path):
    with pytest.raises(PackBuildError) as e:
        write_ndr(plan, replace(pack, duplex=True), tmp_path / "n", ods_code=None, when=WHEN)
    assert e.value.code == "ndr_duplex_pack" and not (tmp_path / "n").exists()


def test_ndr_names_keep_letters_and_spaces_only():
    assert ndr_name_part("Mary-Jane  O'Brien") == "Mary Jane O Brien"
    assert ndr_file_name(1, 2, "Zoë Ann", "9990001236", dt.date(1950, 3, 4)) == \
        "1of2_Lloyd_George_Record_[Zoë Ann]_[9990001236]_[04-03-1950].pdf"


# --- the coded record -----------------------------------------------------------------------


def _coded(nhs: str) -> CodedRecord:
    events = (
        CodedEvent(dt.date(1999, 2, 3), "day", SNOMED, "195967001", "Asthma", "problem"),
        CodedEvent(dt.date(1980, 1, 1), "year", SNOMED, "38341003", "Hypertensive disorder", "problem", ("inactive",)),
        CodedEvent(dt.date(2001, 5, 1), "month", SNOMED, "91936005", "Allergy to penicillin", "allergy"),
        CodedEvent(dt.date(2010, 6, 7), "day", "urn:oid:2.16.840.1.113883.2.1.6.9", "MEDX1", "Salbutamol 100mcg inhaler",
                   "medication", ("authorisation",), (Coding(SNOMED, "320176004", "Salbutamol inhaler"),)),
        CodedEvent(dt.date(1960, 3, 3), "day", SNOMED, "871751006", "Measles vaccination", "immunisation"),
        CodedEvent(dt.date(2005, 9, 9), "day", SNOMED, "185349003", "Encounter for check up", "encounter",
                   text="BP checked, advised review"),
        CodedEvent(None, None, "http://read.info/readv2", "H33..", "Asthma (Read)", "observation"),
    )
    return CodedRecord("csv", nhs, events, warnings=("row 9: unreadable date",), sha256=CODED_SHA)


def test_with_electronic_renders_every_event_and_estimates_the_printing_it_replaces(plan, packable, tmp_path):
    record = _coded(packable.nhs)
    pack = build_pack_pdf(plan, packable.archive, tmp_path / "e.pdf", coded=record, with_electronic=True,
                          practice=None, when=WHEN)
    section = pack.sections[-1]
    assert section.kind == "electronic" and section.first_page == pack.pages - section.pages + 1
    text = " ".join(pages_text(pack.path, section.first_page))
    for e in record.events:
        assert e.display in text and e.code in text, e.display
    assert "Salbutamol inhaler" in text and "SNOMED CT 320176004" in text and "EMIS drug MEDX1" in text
    assert "BP checked, advised review" in text and "row 9: unreadable date" in text and "no date" in text
    assert text.index("Asthma") < text.index("Hypertensive disorder"), "active problems first"
    assert pack.electronic.events == 7 and pack.electronic.pages == section.pages
    assert pack.electronic.estimated_gp_print_pages == -(-7 // EVENTS_PER_PRINTED_PAGE)
    assert validate_written(pack.path, "2b").passed
    with pikepdf.open(pack.path) as pdf, pdf.open_outline() as outline:
        assert outline.root[-1].title == "Coded electronic record"


def test_with_electronic_refuses_a_coded_record_the_run_did_not_check(plan, packable, tmp_path):
    other = replace(_coded(packable.nhs), sha256="f" * 64)
    with pytest.raises(PackBuildError) as e:
        build_pack_pdf(plan, packable.archive, tmp_path / "x.pdf", coded=other, with_electronic=True,
                       practice=None, when=WHEN)
    assert e.value.code == "pack_coded_changed"
    with pytest.raises(PackBuildError) as e:
        build_pack_pdf(plan, packable.archive, tmp_path / "x.pdf", coded=None, with_electronic=True,
                       practice=None, when=WHEN)
    assert e.value.code == "pack_no_coded"
