"""Valid but unusual scans are read, not refused with another tool's advice (issue 11)."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import run_lgd

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NAME = "1of1_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].{ext}"
FOLDER = "9434765919 Jo Bloggs 01-02-1960"  # page images go in a patient folder


def card(mode: str = "L") -> Image.Image:
    image = Image.new("RGB", (1500, 1000), (235, 235, 235))
    ImageDraw.Draw(image).text((100, 200), "12/03/2001 Asthma r/v. PEFR 400", fill=(20, 20, 20),
                               font=ImageFont.truetype(FONT, 40))
    return image.convert(mode)


def digitise(tmp_path: Path, path: Path):
    proc = run_lgd("digitise", tmp_path / "in", "--archive", tmp_path / "archive", "--json")
    assert "Traceback" not in proc.stderr
    return proc, proc.json["documents"][0]


def test_a_cmyk_jpeg_is_read(tmp_path):
    path = tmp_path / "in" / FOLDER / "page1.jpg"
    path.parent.mkdir(parents=True)
    card("CMYK").save(path, dpi=(300, 300), quality=90)
    proc, doc = digitise(tmp_path, path)
    assert doc["status"] == "ok" and "pdfa-backend" not in doc["reason"], doc


def test_a_jpeg_with_an_invalid_orientation_tag_is_read_with_a_warning(tmp_path):
    path = tmp_path / "in" / FOLDER / "page1.jpg"
    path.parent.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 9  # Orientation: 1-8 are valid
    card("RGB").save(path, dpi=(300, 300), quality=90, exif=exif)
    proc, doc = digitise(tmp_path, path)
    assert doc["status"] == "ok" and "rotation" not in doc["reason"], doc


def test_an_absurd_resolution_is_taken_as_300_dpi(tmp_path):
    path = tmp_path / "in" / FOLDER / "page1.png"
    path.parent.mkdir(parents=True)
    card().save(path, dpi=(0.001, 1e8))
    proc, doc = digitise(tmp_path, path)
    assert doc["status"] == "ok", doc


def test_a_pdf_whose_mediabox_is_written_upside_down_is_read(tmp_path):
    path = tmp_path / "in" / NAME.format(ext="pdf")
    path.parent.mkdir()
    buffer = io.BytesIO()
    card().save(buffer, "PDF", resolution=300)
    with pikepdf.open(io.BytesIO(buffer.getvalue())) as pdf:
        box = [float(v) for v in pdf.pages[0].mediabox]
        pdf.pages[0].mediabox = pikepdf.Array([box[2], box[3], box[0], box[1]])  # corners swapped: negative size
        pdf.save(path)
    proc, doc = digitise(tmp_path, path)
    assert doc["status"] == "ok" and doc["pages"] == 1, doc


def test_a_page_too_big_at_its_resolution_is_read_at_one_that_fits(tmp_path):
    path = tmp_path / "in" / NAME.format(ext="pdf")
    path.parent.mkdir()
    big = Image.new("L", (9000, 9000), 235)  # a 30-inch page scanned at 300 dpi: 81 Mpx, over the limit
    ImageDraw.Draw(big).text((600, 900), "12/03/2001 Asthma r/v. PEFR 400", fill=20, font=ImageFont.truetype(FONT, 200))
    big.save(path, "PDF", resolution=300)
    proc, doc = digitise(tmp_path, path)
    assert doc["status"] == "ok" and doc["pages"] == 1, doc
