"""Laboratory result slips: told from their table rows, one entry per row, dated with the sample's date."""

from __future__ import annotations

import datetime as dt

from PIL import Image, ImageDraw, ImageFont

from digitise.entries import entries_for
from digitise.kinds import classify, is_unreadable
from digitise.model import Entry, PageKind, PageText
from digitise.ocr import TesseractEngine

from tests.wordlines import CHAR, line, page

TODAY = dt.date(2025, 6, 1)
BORN = dt.date(1950, 3, 5)
ODD = (1000, 1000, 300)  # neither card nor A4: the words alone must tell


def assert_every_word_in_an_entry(text: PageText, entries: tuple[Entry, ...]) -> None:
    for w in text.words:
        if not any(c.isalnum() for c in w.text):
            continue
        holders = [e for e in entries if e.box[0] <= w.box[0] and e.box[1] <= w.box[1]
                   and w.box[2] <= e.box[2] and w.box[3] <= e.box[3]]
        assert any(w.text in e.text.split() for e in holders), (w, [e.text for e in entries])


# No "Specimen", "Result" or "Reference range" anywhere: the rows alone make it a slip.
HAEMATOLOGY = page(
    line(40, (40, "HAEMATOLOGY"), (600, "Date reported 04/04/1992")),
    line(90, (40, "SMITH John"), (600, "DOB 05/03/1950")),
    line(190, (40, "Haemoglobin"), (330, "10.9"), (430, "g/dL"), (600, "13.0 - 17.0"), (820, "L")),
    line(240, (40, "WBC"), (330, "6.1"), (430, "x10^9/L"), (600, "4.0 - 11.0")),
    line(290, (40, "Platelets"), (330, "250"), (430, "x10^9/L"), (600, "150 - 400")),
    line(340, (40, "MCV"), (330, "72"), (430, "fL"), (600, "80 - 100"), (820, "L")),
    line(440, (40, "Film: microcytic hypochromic, ?iron deficiency")),
)


def test_table_rows_make_a_result_slip():
    assert classify(HAEMATOLOGY, *ODD, False) is PageKind.result
    assert classify(HAEMATOLOGY, 1654, 2339, 200, False) is PageKind.result  # on A4 paper too
    assert classify(HAEMATOLOGY, 1500, 2100, 300, False) is PageKind.result  # card-sized


def test_one_entry_per_row_dated_with_the_report_date_when_no_sample_date():
    entries = entries_for(PageKind.result, HAEMATOLOGY, *ODD[:2], BORN, TODAY)
    assert_every_word_in_an_entry(HAEMATOLOGY, entries)
    rows = [e.text for e in entries]
    assert rows == [
        "HAEMATOLOGY Date reported 04/04/1992 SMITH John DOB 05/03/1950",
        "Haemoglobin 10.9 g/dL 13.0 - 17.0 L",
        "WBC 6.1 x10^9/L 4.0 - 11.0",
        "Platelets 250 x10^9/L 150 - 400",
        "MCV 72 fL 80 - 100 L",
        "Film: microcytic hypochromic, ?iron deficiency",
    ]
    assert {e.date for e in entries} == {dt.date(1992, 4, 4)}  # never the DOB
    assert {e.date_text for e in entries} == {"04/04/1992"}
    hb = entries[1]
    assert hb.box == (40, 190, 820 + CHAR, 190 + 32) and hb.confidence == 92.0


def test_the_sample_date_wins_over_the_report_date():
    text = page(
        line(40, (40, "Clinical Biochemistry"), (600, "Reported: 14/03/1988")),
        line(90, (40, "Sample taken 12/03/1988"), (600, "Received 13/03/1988")),
        line(190, (40, "Sodium 139 mmol/L (133-146)")),
        line(240, (40, "Potassium 5.9 mmol/L (3.5-5.3) H")),
        line(290, (40, "Creatinine 98 umol/L (64-104)")),
    )
    assert classify(text, *ODD, False) is PageKind.result
    entries = entries_for(PageKind.result, text, *ODD[:2], BORN, TODAY)
    assert {(e.date, e.date_text) for e in entries} == {(dt.date(1988, 3, 12), "12/03/1988")}
    assert [e.text for e in entries][1:] == ["Sodium 139 mmol/L (133-146)", "Potassium 5.9 mmol/L (3.5-5.3) H",
                                             "Creatinine 98 umol/L (64-104)"]


def test_the_label_nearest_a_date_names_it():
    text = page(
        line(40, (40, "Specimen: Serum Received: 13/03/1988")),  # a receipt date, for all the "Specimen"
        line(90, (40, "Date of birth 05/03/1950 Sample date: 12/03/1988")),
        line(190, (40, "Sodium 139 mmol/L (133-146)")),
        line(240, (40, "Potassium 4.1 mmol/L (3.5-5.3)")),
        line(290, (40, "Urea 5.0 mmol/L (2.5-7.8)")),
    )
    entries = entries_for(PageKind.result, text, *ODD[:2], BORN, TODAY)
    assert {e.date for e in entries} == {dt.date(1988, 3, 12)}


def test_a_slip_in_two_columns_with_units_under_the_values():
    # Each table line is two rows: names and values, then their units and ranges (one read "10*9/1").
    text = page(
        line(40, (40, "Haematology"), (600, "Collected: 4.9.84")),
        line(190, (40, "Hb"), (200, "14.9"), (600, "PLT"), (760, "276")),
        line(235, (40, "g/dl (11.5 - 16.5)"), (600, "10*9/1 (150 - 400)")),
        line(300, (40, "WBC"), (200, "13.1H"), (600, "MCV"), (760, "90")),
        line(345, (40, "10*9/L (4.0 - 11.0)"), (600, "fL (80 - 100)")),
        line(450, (40, "Authorised by: Dixon (BMS)")),
    )
    assert classify(text, *ODD, False) is PageKind.result
    entries = entries_for(PageKind.result, text, *ODD[:2], BORN, TODAY)
    assert_every_word_in_an_entry(text, entries)
    # Two blocks side by side: read block by block, each line its own analyte's name, value, unit and range.
    assert [e.text for e in entries] == [
        "Haematology Collected: 4.9.84",
        "Hb 14.9 g/dl (11.5 - 16.5)",
        "WBC 13.1H 10*9/L (4.0 - 11.0)",
        "PLT 276 10*9/1 (150 - 400)",
        "MCV 90 fL (80 - 100)",
        "Authorised by: Dixon (BMS)",
    ]
    assert {e.date for e in entries} == {dt.date(1984, 9, 4)}


def test_an_undated_slip_has_undated_entries():
    text = page(line(190, (40, "Sodium 139 mmol/L")), line(240, (40, "Potassium 4.1 mmol/L")),
                line(290, (40, "Urea 5.0 mmol/L")))
    assert classify(text, *ODD, False) is PageKind.result
    entries = entries_for(PageKind.result, text, *ODD[:2], BORN, TODAY)
    assert [e.date for e in entries] == [None, None, None]


def test_cards_and_letters_with_numbers_are_not_slips():
    card = page(line(100, (22, "3/5/76"), (320, "BP 150/95 Hb 9.0 g/dl")), line(190, (22, "4/6/76"), (320, "PEFR 380")),
                line(280, (22, "9/8/76"), (320, "Wt 82 kg. INR 2.5 (2-3)")), line(370, (320, "Sodium 139 mmol/L")))
    assert classify(card, *ODD, False) is PageKind.card
    letter = page(line(100, (40, "Dear Dr Jones,")), line(190, (40, "Sodium 139 mmol/L (133-146)")),
                  line(240, (40, "Potassium 5.9 mmol/L (3.5-5.3)")), line(290, (40, "Urea 7.1 mmol/L (2.5-7.8)")),
                  line(380, (40, "Yours sincerely,")))
    assert classify(letter, *ODD, False) is PageKind.letter
    # Two result-like rows among many of prose are a letter's table, not a slip.
    prose = page(*(line(100 + 50 * i, (40, "He remains well and is taking his tablets as advised")) for i in range(8)),
                 line(600, (40, "Sodium 139 mmol/L (133-146)")), line(650, (40, "Urea 7.1 mmol/L (2.5-7.8)")),
                 line(700, (40, "Potassium 4.0 mmol/L (3.5-5.3)")))
    assert classify(prose, *ODD, False) is PageKind.unknown


# --- real Tesseract on a typed slip ----------------------------------------------------------

SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def _slip() -> Image.Image:
    """An A5 biochemistry slip at 200 dpi, typed, with one hand-written note."""
    image = Image.new("L", (1169, 1654), 244)
    draw = ImageDraw.Draw(image)
    head = ImageFont.truetype(SANS, 30)
    table = ImageFont.truetype(MONO, 30)
    draw.text((60, 60), "FENNIMORE PATHOLOGY", font=head, fill=20)
    draw.text((60, 110), "Clinical Biochemistry", font=head, fill=20)
    draw.text((60, 200), "OLDROYD, Martin   DOB 05/03/1950", font=head, fill=20)
    draw.text((60, 250), "Specimen: Serum   Collected: 12/03/1988", font=head, fill=20)
    draw.text((60, 300), "Reported: 14/03/1988", font=head, fill=20)
    rows = [("Test", "Result", "Units", "Reference range"),
            ("Sodium", "139", "mmol/L", "(133-146)"),
            ("Potassium", "5.9 H", "mmol/L", "(3.5-5.3)"),
            ("Urea", "7.1", "mmol/L", "(2.5-7.8)"),
            ("Creatinine", "98", "umol/L", "(64-104)")]
    for i, (name, value, unit, reference) in enumerate(rows):
        y = 420 + 60 * i
        for x, cell in ((60, name), (420, value), (620, unit), (820, reference)):
            draw.text((x, y), cell, font=table, fill=20)
    draw.text((60, 800), "Comment: ?haemolysed, repeat", font=head, fill=20)
    draw.text((60, 900), "Seen - repeat U&E 2/52", font=ImageFont.truetype(
        "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf", 40), fill=60)
    image.info["dpi"] = (200, 200)
    return image


def test_a_typed_slip_read_by_tesseract():
    text = TesseractEngine().read(_slip())
    assert classify(text, 1169, 1654, 200, False) is PageKind.result
    assert not is_unreadable(text, PageKind.result)
    entries = entries_for(PageKind.result, text, 1169, 1654, BORN, TODAY)
    assert_every_word_in_an_entry(text, entries)
    assert {e.date for e in entries} == {dt.date(1988, 3, 12)}  # collected, not reported, not the DOB
    texts = [e.text for e in entries]
    for want in ("Sodium 139 mmol/L (133-146)", "Potassium 5.9 H mmol/L (3.5-5.3)", "Urea 7.1 mmol/L (2.5-7.8)",
                 "Creatinine 98 umol/L (64-104)"):
        assert want in texts, texts
    assert any("haemolysed" in t for t in texts) and any("2/52" in t for t in texts), texts
