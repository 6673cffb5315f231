"""A slip's table read as rows of one analyte each, on real OCR output; and the reading rules those rows meet.

Generated slips (fixtures.results, two of its layouts) are read as `--engine auto` reads
result slips: by PP-OCR, with Tesseract's confident words where PP-OCR read none (route.fill:
the grid's one-letter "K" is lost by PP-OCR's shrunken detection); a slip drawn here in a layout the generator does not make
(two blocks side by side, units on the same line, a note written by hand in the margin) is read
by Tesseract, lgd's default engine.
"""

from __future__ import annotations

import datetime as dt
import random
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from digitise import route
from digitise.entries import entries_for
from digitise.kinds import classify
from digitise.model import PageKind, PageText, Word
from digitise.ocr import TesseractEngine
from digitise.ppocr import PpOcrEngine
from digitise.results import in_blocks, parted, slip_rows
from digitise.rows import rows
from fixtures import names, results
from pipelines.clinical import default_reader
from pipelines.clinical.evidence import CodedIndex, EntryStatus, PaperEntry, assess
from pipelines.clinical.units import coded_values, same_unit
from pipelines.records.model import CodedEvent
from tests.wordlines import line, page

TODAY = dt.date(2025, 6, 1)
SAMPLE = dt.date(2012, 3, 14)
SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
HAND = "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"


def _generated(seed: int, layout: str):
    rng = random.Random(seed)
    patient = names.make_patient(rng)
    slip = results.result_slip(rng, np.random.default_rng(seed), patient, SAMPLE, layout)
    image = slip.image.convert("L")
    image.info["dpi"] = (200, 200)
    return image, slip.detail["rows"], patient.dob


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold())


def _rows_of(entries, truth_rows) -> dict[str, list[str]]:
    """For each analyte of the truth, the entries whose text starts with its printed label."""
    return {r["label"]: [e.text for e in entries if _fold(e.text).startswith(_fold(r["label"]) + " ")]
            for r in truth_rows}


@pytest.fixture(scope="module")
def ppocr() -> PpOcrEngine:
    return PpOcrEngine()


@pytest.mark.parametrize("seed, layout", [(4, "grid"), (3, "two_column")])
def test_generated_slip_rows_hold_one_analyte_each(ppocr, seed, layout):
    """Each analyte's entry holds its own value, unit and range and no other analyte's, in either layout."""
    image, truth, born = _generated(seed, layout)
    first = TesseractEngine().read(image)
    text, _ = route.fill(route.choose(first, ppocr.read(image)), first)
    for w in text.words:  # PP-OCR's word boxes are used only when sane: inside the page, with an area
        assert 0 <= w.box[0] < w.box[2] <= image.width and 0 <= w.box[1] < w.box[3] <= image.height, w
    assert classify(text, image.width, image.height, 200, False) is PageKind.result
    entries = entries_for(PageKind.result, text, image.width, image.height, born, TODAY)
    assert {e.date for e in entries} == {SAMPLE}
    found = _rows_of(entries, truth)
    labels = [_fold(r["label"]) for r in truth]
    for r in truth:
        assert len(found[r["label"]]) == 1, (r, [e.text for e in entries])
        row = _fold(found[r["label"]][0])
        assert r["value"] in row.split() and _fold(r["unit"]) in row, (r, row)
        assert _fold(r["range"]).split()[-1] in row, (r, row)
        assert sum(f" {label} " in f" {row} " for label in labels) == 1, row  # no neighbour's name
    if layout == "two_column":  # before: both blocks' names and values on one line, units after both
        assert len(rows(text.words)) < len(slip_rows(text.words))


def _drawn_slip() -> Image.Image:
    """An A4 report at 200 dpi in a layout the generator does not make: two blocks of four cells side
    by side (units and ranges on the result's own line), and a note written by hand in the margin."""
    image = Image.new("L", (1654, 2339), 246)
    draw = ImageDraw.Draw(image)
    typed, bold = ImageFont.truetype(SANS, 29), ImageFont.truetype(SANS, 34)
    draw.text((827, 130), "Clinical Biochemistry", font=bold, fill=25, anchor="ms")
    draw.text((150, 220), "Collected: 11/01/2023", font=typed, fill=25, anchor="ls")
    table = [("Sodium", "137", "mmol/L", "133 - 146", "Potassium", "6.1", "mmol/L", "3.5 - 5.3"),
             ("Urea", "4.1", "mmol/L", "2.5 - 7.8", "Creatinine", "79", "umol/L", "59 - 104")]
    for i, cells in enumerate(table):
        for x, cell in zip((150, 400, 510, 650, 880, 1130, 1240, 1380), cells):
            draw.text((x, 320 + 44 * i), cell, font=typed, fill=25, anchor="ls")
    draw.text((900, 520), "Seen: repeat K", font=ImageFont.truetype(HAND, 44), fill=50, anchor="ls")
    image.info["dpi"] = (200, 200)
    return image


def test_a_drawn_slip_of_two_blocks_is_read_block_by_block():
    image = _drawn_slip()
    text = TesseractEngine().read(image)
    assert classify(text, image.width, image.height, 200, False) is PageKind.result
    entries = entries_for(PageKind.result, text, image.width, image.height, None, TODAY)
    texts = [re.sub(r"\s*-\s*", "-", e.text) for e in entries]  # Tesseract reads "133 - 146" spaced or not
    assert texts[1:5] == ["Sodium 137 mmol/L 133-146", "Urea 4.1 mmol/L 2.5-7.8",
                          "Potassium 6.1 mmol/L 3.5-5.3", "Creatinine 79 umol/L 59-104"], texts
    assert {e.date for e in entries} == {dt.date(2023, 1, 11)}
    # The hand-written note is in an entry of its own words, never dropped.
    assert any("repeat" in t.casefold() for t in texts[5:]), texts


def test_rows_of_one_block_are_left_alone():
    text = page(line(40, (40, "Sodium 139 mmol/L (133-146)"), (700, "Received 13/03/1988")),
                line(90, (40, "Potassium 4.1 mmol/L (3.5-5.3)")), line(140, (40, "Urea 5.0 mmol/L (2.5-7.8)")))
    assert in_blocks(rows(text.words)) == rows(text.words)


def test_glued_labels_and_values_are_parted():
    glued = [Word(t, (0, 0, 100, 10), 90.0, 0) for t in ("Sex:F", "D0B:15/06/1935", "Bilirubin3", "HbA1c", "12:30")]
    assert [w.text for w in parted(glued)] == ["Sex:", "F", "DOB:", "15/06/1935", "Bilirubin", "3", "HbA1c",
                                               "12:30"]
    assert [w.box for w in parted(glued[:1])] == [(0, 0, 67, 10), (83, 0, 100, 10)]


# -- the rules a row meets (hazard H43) ---------------------------------------------------------


def test_units_compare_as_what_they_measure():
    assert same_unit("x10^9/L", "10*9/l") and same_unit("IU/L", "U/L") and same_unit("umol/1", "µmol/L")
    assert not same_unit("mmol/L", "mg/dL") and not same_unit("g/L", "g/dL")
    # The digits of a unit are not a value.
    assert coded_values("value: 6.1 10*9/L") == (("6.1", "10*9/L"),)
    assert coded_values("value: 140/90 mmHg") == (("140", "mmHg"), ("90", "mmHg"))


@pytest.fixture(scope="module")
def reader():
    return default_reader()


def _row(reader, text: str, coded: str) -> EntryStatus:
    event = CodedEvent(SAMPLE, "day", "urn:oid:2.16.840.1.113883.2.1.6.3", "ADVK", "Serum potassium level",
                       "observation", source_ref="row", text=coded)
    entry = PaperEntry(SAMPLE, "day", text, 95.0)
    return assess(entry, reader, CodedIndex((event,), reader), min_confidence=60, result=True).status


def test_a_result_row_is_covered_only_by_the_same_value_and_unit(reader):
    assert _row(reader, "Potassium 4.1 mmol/L 3.5 - 5.3", "value: 4.1 mmol/L") is EntryStatus.covered
    assert _row(reader, "Potassium 4.1 mmol/L (3.5-5.3) H", "value: 4.1 mmol/l") is EntryStatus.covered
    assert _row(reader, "Potassium 4.1 mmol/1 (3.5 - 5.3)", "value: 4.1 mmol/L") is EntryStatus.covered  # l read as 1
    assert _row(reader, "Potassium 4.1 mg/dL 3.5 - 5.3", "value: 4.1 mmol/L") is not EntryStatus.covered
    assert _row(reader, "Potassium 4.1 3.5 - 5.3", "value: 4.1 mmol/L") is not EntryStatus.covered  # unit not read
    assert _row(reader, "Potassium 4.7 mmol/L 3.5 - 5.3", "value: 4.1 mmol/L") is not EntryStatus.covered


def test_a_second_reading_on_a_row_is_never_accounted_for(reader):
    """A cumulative report's second column is another sample: the row is not covered by the first's value."""
    assert _row(reader, "Potassium 4.1 6.2 mmol/L 3.5 - 5.3", "value: 4.1 mmol/L") is not EntryStatus.covered
    assert _row(reader, "Potassium 4.1 mmol/L 6.2", "value: 4.1 mmol/L") is not EntryStatus.covered
