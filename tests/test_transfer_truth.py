"""Covers and NDR bundles that tell the truth about hostile or unusual data (issue 12).

A plan is built by hand with every page omitted, each for a different recorded reason, so the
real pack PDF (fpdf2, pikepdf, PDF/A validation) is made without an archive and without OCR:
fast, and every reason and name below is written on purpose, not taken from a generator.
"""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
from pathlib import Path

import pikepdf
import pytest

from index.rows import OverrideRow
from pipelines.transfer.document import build_pack_pdf
from pipelines.transfer.ndr import COLUMNS, MAX_NAME_BYTES, MAX_NAME_CHARS, ndr_file_name, short_name, write_ndr
from pipelines.transfer.plan import PackPlan, PlannedDocument, PlannedPage

WHEN = dt.date(2026, 5, 1)
NHS = "9434765919"
SOURCE = "record.pdf"
RLO, LRI, PDI = "\u202e", "\u2066", "\u2069"
COVERED = {"date": "1990-01-02", "text": "chest inf", "status": "covered",
           "evidence": [{"display": "Lower respiratory tract infection", "system": "http://snomed.info/sct",
                         "code": "50417007", "date": "1990-01-02", "score": 0.91}]}


def _page(n: int, code: str, detail: dict, *, machine: str = "omit", override: OverrideRow | None = None,
          entries: tuple = (), reason: str = "") -> PlannedPage:
    return PlannedPage(1, SOURCE, n, "pdf/x.pdf", "omit", machine, reason or f"stored sentence for {code}",
                       entries, override, "card", code, detail)


def _plan(name: str) -> PackPlan:
    forced = OverrideRow(1, NHS, 1, 4, "omit", "duplicate of the discharge letter", "dr.jones",
                         dt.datetime(2026, 4, 2, 10, 0))
    pages = (
        _page(1, "blank", {}),
        _page(2, "rescan", {"of": 1, "source": "other.pdf"}),
        _page(3, "all_covered", {"entries": 1}, entries=(COVERED,)),
        _page(4, "entries_not_covered", {"entries": 2, "paper-only": 1}, machine="include", override=forced),
        _page(5, "", {}, reason="all 3 entries are in the coded record"),  # a run stored before reason codes
    )
    doc = PlannedDocument(1, SOURCE, "pdf/x.pdf", None, len(pages), None, None, dt.datetime(2026, 3, 1, 9, 0))
    return PackPlan(NHS, name, dt.date(1950, 3, 4), 7, dt.datetime(2026, 4, 1, 9, 0), "csv", "c0" * 32, 12,
                    (doc,), pages)


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A pack for a name with a right-to-left override, an isolate and characters DejaVu Sans cannot draw."""
    name = f"Ann {RLO}Smith{LRI}x{PDI} 王明"
    plan = _plan(name)
    out = tmp_path_factory.mktemp("truth") / "pack.pdf"
    doc = build_pack_pdf(plan, tmp_path_factory.mktemp("archive"), out, coded=None, with_electronic=False,
                         practice=f"Riverside{RLO} Surgery", when=WHEN)
    return plan, doc, _text(out)


def test_each_omitted_page_is_listed_with_its_own_reason(hostile):
    _, _, text = hostile
    flat = " ".join(text.split())
    assert "left out because everything on them is in the coded record" not in flat
    assert "page 1 Reason: blank" in flat
    assert "page 2 Reason: a rescan of page 1 of other.pdf, which is sent" in flat
    assert "page 3 Reason: every entry on it (1) is in the coded record" in flat
    assert "page 4 Reason: left out by dr.jones's decision on 02-Apr-2026: duplicate of the discharge letter" in flat
    assert "reconciliation had included it: 1 paper-only of 2 entries" in flat
    assert "page 5 Reason: all 3 entries are in the coded record" in flat  # old runs: the sentence stored then
    assert "5 page(s) were left out: 1 blank, 1 rescan of a page that is sent, 1 with every entry in the coded " \
           "record, 1 by a clinician's decision, 1 for the reason an older reconciliation run recorded" in flat


def test_names_lose_bidi_controls_and_undrawable_characters_show_a_mark(hostile):
    _, doc, text = hostile
    for control in (RLO, LRI, PDI):
        assert control not in text
    assert "Ann Smithx \ufffd\ufffd" in text, "王明 is not in DejaVu Sans: shown as replacement marks, not dropped"
    assert "Riverside Surgery" in text
    with pikepdf.open(doc.path) as pdf:
        assert not set(str(pdf.docinfo["/Title"])) & {RLO, LRI, PDI}


def test_a_very_long_name_is_shortened_by_the_ndr_rule_and_kept_whole_in_metadata(hostile, tmp_path):
    plan, doc, _ = hostile
    long = "Anna " + " ".join(f"Middle{chr(97 + i % 26)}" for i in range(50)) + " Featherstonehaugh"
    assert len(long) > 390
    bundle = write_ndr(PackPlan(**{**_fields(plan), "name": long}), doc, tmp_path / "ndr", ods_code="A81001",
                       when=WHEN, user="=HYPERLINK(\"http://x\")")
    (f,) = bundle.files
    assert f.path.is_file() and f.path.name.startswith("1of1_Lloyd_George_Record_[Anna Middlea ")
    assert f.path.name.endswith(f" Featherstonehaugh]_[{NHS}]_[04-03-1950].pdf")
    assert len(f.path.name.encode()) < 255
    with open(bundle.metadata, newline="", encoding="utf-8") as fh:
        header, row = list(csv.reader(fh))
    assert tuple(header) == COLUMNS and header[-1] == "PATIENT-NAME"
    values = dict(zip(header, row))
    assert values["PATIENT-NAME"] == long
    assert values["USER-ID"] == "'=HYPERLINK(\"http://x\")"
    assert any("PATIENT-NAME" in w for w in bundle.warnings)


def test_metadata_cells_that_a_spreadsheet_would_run_get_a_quote(hostile, tmp_path):
    plan, doc, _ = hostile
    for i, lead in enumerate(("=", "+", "-", "@", "\t", "\r")):
        bundle = write_ndr(PackPlan(**{**_fields(plan), "name": f"{lead}Ann Smith"}), doc, tmp_path / f"n{i}",
                           ods_code="A81001", when=WHEN, user=f"{lead}cmd|' /C calc'!A0")
        with open(bundle.metadata, newline="", encoding="utf-8") as fh:
            row = next(csv.DictReader(fh))
        user = row["USER-ID"]
        assert user.startswith("'") or user[0] not in "=+-@\t\r", repr(user)
        assert row["PATIENT-NAME"][0] not in "=+-@\t\r", repr(row["PATIENT-NAME"])


def test_short_names_keep_first_given_and_family_name_within_the_limits():
    assert short_name("Mary-Jane O'Brien") == "Mary Jane O Brien"
    many = "Zoë " + " ".join(["Ann"] * 100) + " Smith"
    shown = short_name(many)
    assert shown.startswith("Zoë Ann") and shown.endswith(" Smith") and len(shown) <= MAX_NAME_CHARS
    wide = "王" * 100 + " " + "李" * 10
    assert len(short_name(wide).encode()) <= MAX_NAME_BYTES and short_name(wide).endswith(" " + "李" * 10)
    assert len(short_name("X" * 390)) == MAX_NAME_CHARS
    name = ndr_file_name(2, 3, "A" * 390, NHS, dt.date(1950, 3, 4))
    assert len(name.encode()) <= 255 and name.startswith("2of3_Lloyd_George_Record_[")


def _fields(plan: PackPlan) -> dict:
    return {f: getattr(plan, f) for f in PackPlan.__dataclass_fields__}
