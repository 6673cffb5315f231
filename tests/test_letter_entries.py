"""Letters are read whole: letterhead and Re:/Diagnosis block, body, and what follows the sign-off are all entries."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from PIL import Image, ImageDraw, ImageFont

from digitise.entries import entries_for, letter_entries
from digitise.kinds import classify
from digitise.model import Entry, PageKind, PageText
from digitise.ocr import TesseractEngine

from tests.wordlines import CHAR, line, page

TODAY = dt.date(2025, 6, 1)
BORN = dt.date(1950, 3, 5)
A4 = (1654, 2339)  # at 200 dpi


def alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


def assert_every_word_in_an_entry(text: PageText, entries: tuple[Entry, ...]) -> None:
    """Each word with a letter or digit is in the text of an entry whose box holds it, in reading order."""
    for w in text.words:
        if not alnum(w.text):
            continue
        holders = [e for e in entries if e.box[0] <= w.box[0] and e.box[1] <= w.box[1]
                   and w.box[2] <= e.box[2] and w.box[3] <= e.box[3]]
        assert any(w.text in e.text.split() for e in holders), (w, [e.text for e in entries])


WITH_DIAGNOSIS = page(
    line(120, (560, "Fennimore Royal Infirmary"), conf=96),
    line(170, (560, "Department of Respiratory Medicine"), conf=95),
    line(220, (700, "Tel: 01632 960683"), conf=95),
    line(380, (170, "Dr A Griffiths"), (1150, "8th December 1976")),
    line(425, (170, "The Surgery, Mill Lane"), (1150, "Our ref: THO/471")),
    line(560, (170, "Diagnosis:"), (420, "1. Asthma, poorly controlled")),
    line(605, (420, "2. Penicillin allergy (rash)")),
    line(720, (170, "Dear Dr Griffiths,")),
    line(790, (170, "Re: Martin Oldroyd, DOB 05/03/1950, NHS No 999 811 9154")),
    line(900, (170, "I saw Mr Oldroyd in clinic with wheeze on exertion.")),
    line(945, (170, "I have started a beclometasone inhaler 200mcg bd."), conf=84),
    line(1040, (170, "I will see him again in three months.")),
    line(1160, (170, "Yours sincerely,")),
    line(1330, (170, "Dr K. Thompson"), conf=60),
    line(1375, (170, "Consultant Respiratory Physician")),
    line(1480, (170, "PS His mother reports he reacted to amoxicillin too.")),
    line(1580, (170, "cc: Mr M Oldroyd, 4 Elm Road")),
)


def test_a_letter_is_read_whole():
    entries = letter_entries(WITH_DIAGNOSIS, *A4, BORN, TODAY)
    assert_every_word_in_an_entry(WITH_DIAGNOSIS, entries)
    head, body, tail = entries
    assert all(e.date == dt.date(1976, 12, 8) and e.date_text == "8th December 1976" for e in entries)
    assert head.text.startswith("Fennimore Royal Infirmary")
    assert "Diagnosis: 1. Asthma, poorly controlled 2. Penicillin allergy (rash)" in head.text
    assert "Re: Martin Oldroyd" in head.text  # the Re: block under the salutation is identification
    assert body.text == ("I saw Mr Oldroyd in clinic with wheeze on exertion. I have started a beclometasone "
                         "inhaler 200mcg bd. I will see him again in three months.")
    assert tail.text.startswith("Yours sincerely, Dr K. Thompson Consultant Respiratory Physician")
    assert "PS His mother reports he reacted to amoxicillin too." in tail.text
    assert tail.text.endswith("cc: Mr M Oldroyd, 4 Elm Road")


def test_each_part_keeps_its_box_and_confidence():
    head, body, tail = letter_entries(WITH_DIAGNOSIS, *A4, BORN, TODAY)
    assert head.box[1] == 120 and head.box[3] == 790 + 32
    assert body.box == (170, 900, 170 + CHAR * len("I saw Mr Oldroyd in clinic with wheeze on exertion."), 1040 + 32)
    assert tail.box[1] == 1160 and tail.box[3] == 1580 + 32
    assert body.confidence == pytest.approx((92 * 10 + 84 * 8 + 92 * 8) / 26, abs=0.1)
    tail_words = [w for w in WITH_DIAGNOSIS.words if w.box[1] >= 1160]
    assert tail.confidence == pytest.approx(sum(w.confidence for w in tail_words) / len(tail_words), abs=0.1)
    # Parts follow each other down the page and never overlap.
    assert head.box[3] < body.box[1] and body.box[3] < tail.box[1]


def test_a_diagnoses_block_above_the_salutation_is_kept():
    text = page(
        line(200, (170, "Re: Jane Smith DOB 03/05/1950"), (1150, "12/06/1998")),
        line(300, (170, "Diagnoses:"), (420, "Type 2 diabetes")),
        line(345, (420, "Hypertension")),
        line(460, (170, "Dear Dr Jones,")),
        line(540, (170, "Seen today.")),
    )
    entries = letter_entries(text, *A4, BORN, TODAY)
    assert_every_word_in_an_entry(text, entries)
    assert [e.date for e in entries] == [dt.date(1998, 6, 12)] * 2
    assert "Diagnoses: Type 2 diabetes Hypertension" in entries[0].text
    assert entries[1].text == "Seen today."


def test_other_sign_offs_end_the_body():
    text = page(
        line(300, (1150, "3 May 1996")),
        line(460, (170, "Dear Sarah,")),
        line(540, (170, "Thank you for seeing him.")),
        line(640, (170, "Kind regards,")),
        line(760, (170, "Dr P Shah")),
    )
    head, body, tail = letter_entries(text, *A4, BORN, TODAY)
    assert body.text == "Thank you for seeing him."
    assert tail.text == "Kind regards, Dr P Shah"
    assert head.date == body.date == tail.date == dt.date(1996, 5, 3)


def test_a_letter_without_salutation_or_sign_off_has_every_row_in_an_entry():
    # A discharge summary: the letterhead block holds the date; the rest is the body.
    text = page(
        line(120, (560, "Fennimore Royal Infirmary"), conf=96),
        line(165, (560, "Discharge summary"), (1150, "14/02/1987")),
        line(330, (170, "Admitted with chest pain. Troponin negative.")),
        line(375, (170, "ECG sinus rhythm. Discharged on aspirin 75mg od.")),
        line(520, (170, "Follow up: cardiology OPD 6/52")),
        line(700, (170, "________________________")),  # a ruled line, read as a word
    )
    entries = letter_entries(text, *A4, BORN, TODAY)
    assert_every_word_in_an_entry(text, entries)
    head, body = entries
    assert head.text == "Fennimore Royal Infirmary Discharge summary 14/02/1987"
    assert body.text == ("Admitted with chest pain. Troponin negative. ECG sinus rhythm. Discharged on aspirin "
                         "75mg od. Follow up: cardiology OPD 6/52")
    assert head.date == body.date == dt.date(1987, 2, 14)
    assert body.box[3] == 700 + 32  # the ruled line's box is inside the body's, its "word" not in the text


def test_an_undated_letter_without_salutation_is_one_entry():
    text = page(line(1400, (170, "Discharge summary: appendicectomy 3/5/76")),
                line(1445, (170, "Home on day 3.")))
    (entry,) = letter_entries(text, *A4, BORN, TODAY)
    assert entry.date is None  # the only date is far below the letter head
    assert entry.text == "Discharge summary: appendicectomy 3/5/76 Home on day 3."


def test_entries_for_a_letter_are_its_parts():
    assert len(entries_for(PageKind.letter, WITH_DIAGNOSIS, *A4, BORN, TODAY)) == 3


# --- real Tesseract on a typed letter with a hand-written PS ----------------------------------

SERIF = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
HAND = "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"


def _typed_letter() -> Image.Image:
    image = Image.new("L", A4, 246)
    draw = ImageDraw.Draw(image)
    typed = ImageFont.truetype(SERIF, 30)
    rows = [
        (820, 110, "Fennimore Royal Infirmary"),
        (820, 155, "Tel: 01632 960683"),
        (150, 330, "Dr A Griffiths"), (1050, 330, "8th December 1976"),
        (150, 470, "Diagnosis: Asthma, poorly controlled"),
        (150, 600, "Dear Dr Griffiths,"),
        (150, 700, "I saw Mr Oldroyd in clinic with wheeze on exertion."),
        (150, 745, "I have started a beclometasone inhaler."),
        (150, 870, "Yours sincerely,"),
        (150, 1030, "Dr K Thompson, Consultant Physician"),
        (150, 1160, "cc: Mr M Oldroyd"),
    ]
    for x, y, text in rows:
        draw.text((x, y), text, font=typed, fill=25)
    draw.text((150, 1280), "PS Allergic to penicillin", font=ImageFont.truetype(HAND, 44), fill=40)
    image.info["dpi"] = (200, 200)
    return image


def test_a_typed_letter_read_by_tesseract_is_read_whole():
    image = _typed_letter()
    text = TesseractEngine().read(image)
    assert classify(text, *A4, 200, False) is PageKind.letter
    entries = entries_for(PageKind.letter, text, *A4, BORN, TODAY)
    assert_every_word_in_an_entry(text, entries)
    assert len(entries) == 3 and all(e.date == dt.date(1976, 12, 8) for e in entries)
    head, body, tail = entries
    assert re.search(r"Diagnosis: Asthma", head.text), head.text
    assert "beclometasone" in body.text and "Diagnosis" not in body.text and "sincerely" not in body.text
    assert "penicillin" in tail.text.lower() and "cc:" in tail.text, tail.text
