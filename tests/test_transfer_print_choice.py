"""`lgd pack --format print` prints the cheaper of the minimal pack and the whole record (issue 12).

A short record whose pages are nearly all paper-only prints on fewer sheets whole than as a pack
(cover, index of omitted pages, blank backs): then the whole record goes, behind a cover saying why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest

from index import Catalogue
from index.decisions import packs
from pipelines.transfer.printing import choose_print, whole_record_may_be_shorter
from pipelines.cli import build_parser
from pipelines.errors import ExitCode, LgdError
from pipelines.transfer.pack_command import _options
from tests.conftest import run_lgd


def test_the_whole_record_wins_ties_and_is_built_only_when_it_can_win():
    assert choose_print(6, 5, 6).printed == "whole_record"  # same paper, nothing left out
    assert choose_print(6, 5, 7).printed == "minimal_pack"
    assert choose_print(4, 5, None).printed == "minimal_pack"
    assert not whole_record_may_be_shorter(4, 5) and whole_record_may_be_shorter(5, 5)
    said = choose_print(6, 5, 5).line  # what `lgd pack --format print` prints on stdout
    assert said.startswith("printed the whole record (5 sheets") and "would take 6 sheets" in said
    assert "--keep-minimal" in said and "printed the minimal pack (4 sheets)" in choose_print(4, 4, 5).line


@pytest.fixture(scope="module")
def short_record(digitised, tmp_path_factory):
    """A copy of the sample archive and a patient checked against a coded record that covers none of its pages."""
    root = tmp_path_factory.mktemp("print")
    archive = root / "archive"
    shutil.copytree(digitised.archive, archive)
    nhs = json.loads(digitised.batch.index.read_text())["patients"][3]["nhs_number"]
    coded = root / "coded.csv"
    coded.write_text("date,system,code,display,type\n2001-02-03,http://snomed.info/sct,73211009,Diabetes mellitus,problem\n")
    return archive, nhs, coded


def _print(archive, nhs, out, *extra):
    return run_lgd("pack", "--patient", nhs, "--format", "print", "--out", out, "--archive", archive, "--json", *extra)


def test_a_pack_no_shorter_than_the_record_prints_the_whole_record_with_a_cover_saying_why(short_record, tmp_path):
    archive, nhs, coded = short_record
    proc = _print(archive, nhs, tmp_path / "p", "--coded", coded)
    assert proc.returncode == 0, proc.stderr
    doc, choice = proc.json, proc.json["print_choice"]
    assert choice["printed"] == "whole_record", choice
    assert choice["sheets_whole_record"] <= choice["sheets_minimal_pack"]
    assert doc["sheets"]["pack"] == choice["sheets_whole_record"] and doc["pages_included"] == doc["pages_total"]
    pdf = Path(doc["outputs"][0])
    with pikepdf.open(pdf) as opened:
        assert -(-len(opened.pages) // 2) == choice["sheets_whole_record"]
        assert len(opened.pages) == doc["pages_total"] + 1, "the cover, then every record page, no blank page"
    cover = " ".join(subprocess.run(["pdftotext", "-l", "1", str(pdf), "-"], capture_output=True, text=True,
                                    check=True).stdout.split())
    assert "printed in full" in cover and "nothing is left out" in cover
    assert f"would take {choice['sheets_minimal_pack']} sheet(s)" in cover
    with Catalogue.open(archive, create=False, readonly=True) as cat:
        assert packs(cat, nhs)[-1].detail["print_choice"] == choice


def test_keep_minimal_prints_the_pack_anyway_and_says_what_it_costs(short_record, tmp_path):
    archive, nhs, _ = short_record
    proc = _print(archive, nhs, tmp_path / "p", "--keep-minimal")
    assert proc.returncode == 0, proc.stderr
    choice = proc.json["print_choice"]
    assert choice["printed"] == "minimal_pack" and proc.json["sheets"]["pack"] == choice["sheets_minimal_pack"]
    assert choice["sheets_paper_record"] <= choice["sheets_minimal_pack"]
    args = build_parser().parse_args(["pack", "--patient", nhs, "--format", "ndr", "--out", str(tmp_path / "n"),
                                      "--keep-minimal"])
    with pytest.raises(LgdError, match="--keep-minimal applies to print") as wrong:
        _options(args)
    assert wrong.value.exit_code == ExitCode.usage
