"""Card segmentation and letter entries from word boxes, and entry dates measured against real OCR."""

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from digitise.entries import entries_for, letter_entries, rows, segment_card
from digitise.model import DatePrecision, PageKind, PageText, Word

TODAY = dt.date(2025, 6, 1)
BORN = dt.date(1950, 3, 5)
CARD = (1500, 2100)
A4 = (1654, 2339)
CHAR = 18  # pixels per character in the synthetic boxes


def line(y, *cells, conf=90.0, line_no=0, block=0, h=32):
    """Words of `cells` [(x, "some words"), ...] on one row whose top is `y`."""
    out = []
    for x, text in cells:
        for w in text.split():
            out.append(Word(w, (x, y, x + CHAR * len(w), y + h), conf, line_no, block))
            x += CHAR * (len(w) + 1)
    return out


def page(*lines):
    return PageText(tuple(w for ln in lines for w in ln))


HEADER = line(73, (43, "Date"), (342, "Clinical notes"), conf=97)


def test_card_entries_by_date_column():
    text = page(
        HEADER,
        line(170, (22, "12.05.50"), (320, "C/O dysuria 2/7. O/E urine dip +ve"), conf=80),
        line(260, (320, "UTI. Rx trimethoprim 200mg bd"), conf=70),
        line(440, (26, "20th Oct 1951|"), (323, "# L wrist after fall. Ref A&E")),
        line(620, (20, "3/5/52"), (320, "BP 150/95. Dx HTN. Start atenolol 50mg od")),
    )
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [e.date for e in entries] == [dt.date(1950, 5, 12), dt.date(1951, 10, 20), dt.date(1952, 5, 3)]
    first = entries[0]
    assert first.text == "C/O dysuria 2/7. O/E urine dip +ve UTI. Rx trimethoprim 200mg bd"
    assert first.date_text == "12.05.50"
    assert first.box == (22, 170, 320 + CHAR * len("C/O dysuria 2/7. O/E urine dip +ve"), 260 + 32)
    assert first.confidence == pytest.approx((80 * 8 + 70 * 5) / 13, abs=0.1)
    assert entries[1].date_text == "20th Oct 1951"  # the divider glued to the year is not a digit
    assert entries[1].text == "# L wrist after fall. Ref A&E"
    assert entries[2].text == "BP 150/95. Dx HTN. Start atenolol 50mg od"


def test_rows_ignore_the_engines_blocks():
    # Tesseract often reads the date column as its own block, lines numbered apart from the notes.
    dates = line(170, (22, "3/5/76"), line_no=5, block=2) + line(440, (22, "4/6/76"), line_no=6, block=2)
    notes = line(175, (320, "C/O cough"), line_no=0) + line(265, (320, "Rx amoxicillin"), line_no=1) \
        + line(436, (320, "Flu vacc given"), line_no=2)
    text = PageText(tuple(notes + dates))
    assert len(rows(text.words)) == 3
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [(e.date, e.text) for e in entries] == [
        (dt.date(1976, 5, 3), "C/O cough Rx amoxicillin"),
        (dt.date(1976, 6, 4), "Flu vacc given"),
    ]


def test_header_alone_makes_no_entry_but_undated_text_is_kept():
    header_only = page(HEADER, line(170, (22, "3/5/76"), (320, "C/O cough")))
    assert [e.date for e in segment_card(header_only, *CARD, BORN, TODAY)] == [dt.date(1976, 5, 3)]

    undated = page(HEADER, line(170, (320, "penicillin allergy - rash")),
                   line(260, (22, "3/5/76"), (320, "C/O cough")))
    first, second = segment_card(undated, *CARD, BORN, TODAY)
    assert (first.date, first.date_text, first.text) == (None, "", "penicillin allergy - rash")
    assert second.date == dt.date(1976, 5, 3)


def test_unreadable_date_cell_starts_an_undated_entry():
    text = page(
        line(170, (22, "3/5/76"), (320, "C/O cough")),
        line(260, (22, "Wee ya)"), (320, "Sprained L ankle. RICE")),
        line(350, (320, "review 1/52")),
    )
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [(e.date, e.date_text) for e in entries] == [(dt.date(1976, 5, 3), "3/5/76"), (None, "Wee ya)")]
    assert entries[1].text == "Wee ya) Sprained L ankle. RICE review 1/52"  # kept, in case it was notes


def test_inline_dates_start_entries_without_a_column():
    text = page(
        line(170, (40, "3/5/76 C/O cough 3/52. O/E chest clr. Rx amoxicillin 250mg tds")),
        line(260, (40, "review if no better, advised fluids and paracetamol qds")),
        line(350, (40, "12 Jun 78 Tetanus booster given L arm")),
    )
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [e.date for e in entries] == [dt.date(1976, 5, 3), dt.date(1978, 6, 12)]
    assert entries[0].text.endswith("advised fluids and paracetamol qds")
    assert entries[1].text == "Tetanus booster given L arm"
    assert entries[1].date_text == "12 Jun 78"


def test_inline_date_in_the_notes_column():
    text = page(HEADER, line(170, (22, "3/5/76"), (320, "C/O cough")),
                line(260, (320, "4/6/76 Flu vacc given")))
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [(e.date, e.text) for e in entries] == [(dt.date(1976, 5, 3), "C/O cough"),
                                                   (dt.date(1976, 6, 4), "Flu vacc given")]


def test_a_date_out_of_card_order_is_not_trusted():
    text = page(*(line(170 + 90 * i, (22, d), (320, "seen")) for i, d in
                  enumerate(["3/5/76", "4/6/76", "8/7/96", "9/8/76", "1/9/76"])))
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [e.date for e in entries] == [dt.date(1976, 5, 3), dt.date(1976, 6, 4), None,
                                         dt.date(1976, 8, 9), dt.date(1976, 9, 1)]
    assert entries[2].date_text == "8/7/96"


def test_month_precision_and_clinical_numbers_in_the_notes():
    text = page(line(170, (22, "May 1976"), (320, "BP 150/95 r/v 3/12")),
                line(260, (320, "PEFR 380")))
    (entry,) = segment_card(text, *CARD, BORN, TODAY)
    assert (entry.date, entry.precision) == (dt.date(1976, 5, 1), DatePrecision.month)
    assert entry.text == "BP 150/95 r/v 3/12 PEFR 380"


def test_ruled_lines_are_not_words():
    text = page(line(170, (22, "3/5/76"), (296, "|"), (320, "|C/O cough")),
                line(230, (20, "________________")))
    (entry,) = segment_card(text, *CARD, BORN, TODAY)
    assert entry.text == "C/O cough"


def test_nothing_read_means_no_entries():
    assert segment_card(PageText(()), *CARD, BORN, TODAY) == ()


LETTER = page(
    line(150, (600, "Fennimore Royal Infirmary"), conf=96),
    line(280, (700, "Tel: 01632 960683"), conf=95),
    line(420, (170, "Our ref: THO/471"), (1150, "8th December 1976"), conf=95),
    line(540, (170, "Dear Dr Griffiths,"), conf=96),
    line(610, (170, "Re: Martin Oldroyd, DOB 05/03/1950, NHS No 999 811 9154"), conf=94),
    line(685, (170, "I saw Mr Oldroyd in the clinic today with right iliac"), conf=90),
    line(727, (170, "fossa pain. He underwent appendicectomy."), conf=80),
    line(790, (170, "I have not arranged follow up."), conf=90),
    line(1065, (170, "Yours sincerely,"), conf=95),
    line(1245, (170, "Mr K. Thompson FRCS"), conf=95),
)


def test_letter_date_and_body():
    # The letterhead and the sign-off are entries too (tests/test_letter_entries.py); the body is the middle one.
    head, entry, tail = letter_entries(LETTER, *A4, BORN, TODAY)
    assert (entry.date, entry.date_text) == (dt.date(1976, 12, 8), "8th December 1976")
    assert entry.text == ("I saw Mr Oldroyd in the clinic today with right iliac fossa pain. "
                          "He underwent appendicectomy. I have not arranged follow up.")
    assert entry.box[1] == 685 and entry.box[3] == 790 + 32
    assert head.text.startswith("Fennimore Royal Infirmary") and tail.text == "Yours sincerely, Mr K. Thompson FRCS"


def test_letter_date_is_never_the_dob():
    text = page(
        line(420, (170, "Re: Jane Smith DOB 03/05/1950")),
        line(480, (170, "D.O.B. 03/05/1950 clinic 12/06/1998")),
        line(540, (170, "Dear Dr Jones,")),
        line(610, (170, "Seen today.")),
    )
    head, body = letter_entries(text, *A4, BORN, TODAY)
    assert head.date == body.date == dt.date(1998, 6, 12)
    assert body.text == "Seen today."


def test_letter_without_salutation_or_date():
    text = page(line(1400, (170, "Discharge summary: appendicectomy 3/5/76")))
    (entry,) = letter_entries(text, *A4, BORN, TODAY)
    assert entry.date is None  # the only date is far below the letter head
    assert entry.text == "Discharge summary: appendicectomy 3/5/76"


def test_entries_for_dispatches_on_kind():
    card = page(line(170, (22, "3/5/76"), (320, "C/O cough")))
    assert len(entries_for(PageKind.card, card, *CARD, BORN, TODAY)) == 1
    assert len(entries_for(PageKind.letter, LETTER, *A4, BORN, TODAY)) == 3  # head, body, sign-off
    assert entries_for(PageKind.envelope, card, *CARD, BORN, TODAY) == ()
    assert entries_for(PageKind.blank, None, *CARD, BORN, TODAY) == ()


def test_date_and_note_glued_across_the_divider():
    glued = Word("28/2/1963|C/O", (22, 170, 390, 202), 80.0, 0)  # the divider is at x=300
    text = page([glued], line(170, (410, "cough 3/52")), line(260, (22, "4/3/63"), (320, "r/v")))
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [(e.date, e.date_text, e.text) for e in entries] == [
        (dt.date(1963, 2, 28), "28/2/1963", "C/O cough 3/52"), (dt.date(1963, 3, 4), "4/3/63", "r/v")]


def test_a_garbled_date_cell_keeps_its_year():
    text = page(line(170, (22, "161, jm 1978"), (320, "Asthma r/v")),
                line(260, (22, "3/5/78"), (320, "C/O cough")),
                line(350, (22, "Wee ya)"), (320, "BP 150/95")))
    entries = segment_card(text, *CARD, BORN, TODAY)
    assert [(e.date, e.precision) for e in entries] == [
        (dt.date(1978, 1, 1), DatePrecision.year), (dt.date(1978, 5, 3), DatePrecision.day),
        (None, DatePrecision.day)]
    assert entries[0].date_text == "161, jm 1978"


def test_a_month_is_in_order_with_a_day_inside_it():
    text = page(line(170, (22, "10/5/76"), (320, "seen")), line(260, (22, "May 1976"), (320, "seen")),
                line(350, (22, "1/6/76"), (320, "seen")))
    assert [e.date for e in segment_card(text, *CARD, BORN, TODAY)] == [
        dt.date(1976, 5, 10), dt.date(1976, 5, 1), dt.date(1976, 6, 1)]


# --- Entry dates against real OCR of generated scans -----------------------------------------

UNDO_TURN = {90: "ROTATE_90", 180: "ROTATE_180", 270: "ROTATE_270"}  # undo a clockwise scan turn


def _scan_images(path: Path) -> list:
    from PIL import Image, ImageSequence

    if path.is_dir():
        from natsort import natsorted

        return [Image.open(p).convert("L") for p in natsorted(path.iterdir(), key=lambda p: p.name)]
    if path.suffix == ".pdf":
        import pikepdf

        with pikepdf.open(path) as pdf:  # image-only: one image per page, taken as stored
            return [pikepdf.PdfImage(next(iter(pg.get_images().values()))).as_pil_image().convert("L")
                    for pg in pdf.pages]
    return [f.convert("L") for f in ImageSequence.Iterator(Image.open(path))]


def _upright(image, truth: dict):
    """The page as the pipeline will see it: turned back upright, then deskewed."""
    from PIL import Image

    if truth["scan_rotation"]:
        image = image.transpose(getattr(Image.Transpose, UNDO_TURN[truth["scan_rotation"]]))
    if truth["skew_deg"]:
        image = image.rotate(-truth["skew_deg"], resample=Image.BICUBIC, fillcolor=255)
    return image


def measure_card_dates(out: Path, today: dt.date) -> dict:
    """Entry-date accuracy of segment_card over every card page (no rescans) of a generated batch."""
    from digitise.ocr import TesseractEngine

    engine = TesseractEngine()
    stats = dict(pages=0, truth=0, found=0, legible_truth=0, legible_found=0, dated=0, wrong=0, coarse=0)
    for truth_file in sorted((out / "truth").glob("[0-9]*.json")):
        patient = json.loads(truth_file.read_text())
        born = dt.date.fromisoformat(patient["dob"])
        for doc in patient["documents"]:
            images = _scan_images(out / "scans" / doc["source"])
            for p in doc["pages"]:
                if p["kind"] != "card" or p["duplicate_of"] is not None:
                    continue
                image = _upright(images[p["page"] - 1], p)
                try:
                    text = engine.read(image)
                except RuntimeError:  # tesserocr on a page of pure scrawl: nothing read
                    text = PageText(())
                entries = segment_card(text, image.width, image.height, born, today)
                dates = [e.date for e in entries if e.date and e.precision is DatePrecision.day]
                want = [dt.date.fromisoformat(e["date"]) for e in p["entries"]]
                hits = sum(d in dates for d in want)
                stats["pages"] += 1
                stats["truth"] += len(want)
                stats["found"] += hits
                stats["legible_truth"] += len(want) if p["legible"] else 0
                stats["legible_found"] += hits if p["legible"] else 0
                stats["dated"] += len(dates)
                stats["wrong"] += sum(d not in want for d in dates)
                stats["coarse"] += sum(1 for e in entries if e.date and e.precision is not DatePrecision.day)
    return stats


@pytest.mark.timeout(120)
def test_card_dates_against_ground_truth(tmp_path):
    generate = pytest.importorskip("fixtures.generate")
    started = time.perf_counter()
    generate.generate_batch(tmp_path, patients=3, seed=0)
    s = measure_card_dates(tmp_path, TODAY)
    accuracy = s["found"] / s["truth"]
    legible = s["legible_found"] / s["legible_truth"]
    wrong = s["wrong"] / max(1, s["dated"])
    print(f"\ncard entry dates: {s['found']}/{s['truth']} = {accuracy:.1%} on {s['pages']} card pages "
          f"({legible:.1%} of legible pages); {s['wrong']} of {s['dated']} day dates wrong ({wrong:.1%}); "
          f"{s['coarse']} month/year-only dates; {time.perf_counter() - started:.0f}s")
    assert s["pages"] >= 8
    # Measured 75.0% (57/76) for seed 0 with Tesseract 5.3; seeds 0-5 together 80.4%
    # (415/516, 64-94% per seed). The misses are OCR's: typed dates whose separators read
    # as digits ("1520277"), hand-written months beyond repair ("Jon", "Fer"), scrawl.
    assert accuracy >= 0.60
    # A wrong date is worse than none: 0 of 57 here, 6 of 421 (1.4%) over seeds 0-5,
    # every one a single misread digit ("13/09/82" for 03/09/82).
    assert wrong <= 0.05
