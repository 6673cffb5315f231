"""A scan whose identity disagrees with the patient already stored is refused, never merged (H1, issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import img2pdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from index import Catalogue
from tests.conftest import run_lgd

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NDR = "1of1_Lloyd_George_Record_[{name}]_[{nhs}]_[{dob}].pdf"


def scan(folder: Path, name: str, nhs: str, dob: str, text: str = "12/03/2001 Asthma r/v. PEFR 400") -> Path:
    """A one-page typed card as an NDR-named PDF (small, so OCR takes a moment)."""
    image = Image.new("L", (1500, 1000), 235)
    ImageDraw.Draw(image).text((100, 200), text, fill=20, font=ImageFont.truetype(FONT, 40))
    png = folder / f"{nhs}-{name}.png"
    image.save(png, dpi=(300, 300))
    path = folder / NDR.format(name=name, nhs=nhs, dob=dob)
    path.write_bytes(img2pdf.convert(str(png), layout_fun=img2pdf.get_fixed_dpi_layout_fun((300, 300))))
    png.unlink()
    return path


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, Path]:
    """An archive holding Janet Wilson's one scan, and that scan."""
    folder = tmp_path_factory.mktemp("scans")
    original = scan(folder, "Janet Wilson", "9434765919", "15-06-1935")
    archive = tmp_path_factory.mktemp("archive") / "a"
    assert run_lgd("digitise", folder, "--archive", archive, "--json").returncode == 0
    return archive, original


@pytest.fixture
def archive(first) -> Path:
    return first[0]


def digitise(archive: Path, tmp_path: Path, *scans: tuple[str, str, str]):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, nhs, dob in scans:
        scan(folder, name, nhs, dob, text=f"14/05/2003 Eczema r/v {name}")
    return run_lgd("digitise", folder, "--archive", archive, "--json")


def reasons(archive: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((archive / "quarantine").glob("*/reason.json"))]


@pytest.mark.parametrize("name, dob", [("Janet Smith", "15-06-1935"), ("Janet Wilson", "16-06-1935")])
def test_another_name_or_birth_date_under_a_stored_nhs_number_is_refused(archive, tmp_path, name, dob):
    before = len(reasons(archive))
    proc = digitise(archive, tmp_path, (name, "9434765919", dob))
    assert proc.returncode == 1
    (doc,) = proc.json["documents"]
    assert doc["status"] == "failed" and doc["code"] == "identity_conflict"
    reason = reasons(archive)[before:]
    assert reason[0]["stored"]["name"] == "Janet Wilson" and reason[0]["stored"]["born"] == "1935-06-15"
    assert reason[0]["given"] == {"nhs_number": "9434765919", "name": name, "born": "-".join(reversed(dob.split("-")))}
    with Catalogue.open(archive, readonly=True) as cat:
        assert cat.patient("9434765919").name == "Janet Wilson"
        assert len(cat.documents("9434765919", status="ok")) == 1


def test_a_middle_name_or_capitals_are_the_same_patient(archive, tmp_path):
    proc = digitise(archive, tmp_path, ("JANET MARY WILSON", "9434765919", "15-06-1935"))
    assert proc.returncode == 0 and proc.json["documents"][0]["status"] == "ok"


def test_two_identities_for_one_nhs_number_in_one_batch_are_not_merged(tmp_path):
    proc = digitise(tmp_path / "archive", tmp_path, ("Alan Jones", "9990000018", "01-01-1950"),
                    ("Alan Brown", "9990000018", "01-01-1950"))
    statuses = sorted(d["status"] for d in proc.json["documents"])
    assert proc.returncode == 1 and statuses == ["failed", "ok"]


def test_the_same_bytes_under_another_nhs_number_are_refused(first, tmp_path):
    archive, original = first
    folder = tmp_path / "again"
    folder.mkdir()
    (folder / NDR.format(name="Alan Jones", nhs="9990000018", dob="01-01-1950")).write_bytes(original.read_bytes())
    proc = run_lgd("digitise", folder, "--archive", archive, "--json")
    (doc,) = proc.json["documents"]
    assert proc.returncode == 1 and doc["code"] == "identity_conflict"
    assert "Janet" not in doc["reason"] and original.name not in doc["reason"]  # another patient's identity is not shown
    with Catalogue.open(archive, readonly=True) as cat:
        assert cat.patient("9990000018") is None


def test_an_envelope_printed_for_another_patient_is_flagged_for_review(tmp_path):
    sample = Path(__file__).parents[1] / "fixtures/sample/scans"
    tif = next(sample.glob("1of1_*9993355933*.tif"))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / NDR.format(name="Jo Bloggs", nhs="9434765919", dob="01-02-1960").replace(".pdf", ".tif")).write_bytes(
        tif.read_bytes())
    archive = tmp_path / "archive"
    proc = run_lgd("digitise", folder, "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json["documents"][0]["status"] == "ok"  # identity is the file name's
    assert any("reads NHS number 999 335 5933" in w for w in proc.json["summary"]["warnings"]), proc.json["summary"]
    with Catalogue.open(archive, readonly=True) as cat:
        assert cat.patient("9434765919").name == "Jo Bloggs" and cat.patient("9993355933") is None
