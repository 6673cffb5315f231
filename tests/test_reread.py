"""Second looks at unread date cells: which cells, when a second reading is taken, and real Tesseract on one line."""

import datetime as dt
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from digitise import reread
from digitise.entries import segment_card, unread_date_cells
from digitise.model import PageText, Word
from digitise.ocr import Look, TesseractEngine

TODAY = dt.date(2025, 6, 1)
BORN = dt.date(1950, 3, 5)
CARD = (1500, 2100)
DPI = 300
CHAR = 18


def line(y, *cells, conf=85.0, line_no=0, h=32):
    out = []
    for x, text in cells:
        for w in text.split():
            out.append(Word(w, (x, y, x + CHAR * len(w), y + h), conf, line_no, 0))
            x += CHAR * (len(w) + 1)
    return out


HEADER = line(73, (43, "Date"), (342, "Clinical notes"), conf=97)


def card(*rows):
    return PageText(tuple(w for r in rows for w in r))


# A card whose second date cell reads "19 Nac 66": a month no rule may guess.
FIRST = line(170, (22, "12.05.60"), (320, "C/O cough 2/7. Rx amoxicillin 250mg tds"), line_no=1)
MISREAD = line(260, (22, "19 Nac 66"), (320, "Hb 9.0. ferrous sulphate 200mg tds cont"), line_no=2)
LAST = line(350, (22, "3/5/70"), (320, "Flu vacc given"), line_no=3)
PAGE = card(HEADER, FIRST, MISREAD, LAST)


class FixedLines:
    """An engine whose second looks read fixed texts, one per look in turn; it never reads pages."""

    name = "fixed"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.calls: list[tuple[tuple[int, int, int, int], Look]] = []

    def version(self) -> str:
        return "0"

    def read(self, image):
        raise AssertionError("a second look never reads the whole page")

    def read_line(self, image, box, look=Look()):
        self.calls.append((box, look))
        text = self.texts[len(self.calls) - 1] if len(self.calls) <= len(self.texts) else ""
        return PageText(tuple(line(box[1] + 4, (box[0] + 4, text), conf=70)))


def blank_card():
    return Image.new("L", CARD, 255)


def dates(text):
    return [e.date for e in segment_card(text, *CARD, BORN, TODAY)]


def test_only_cells_without_a_readable_date_are_looked_at_again():
    cells = unread_date_cells(PAGE, *CARD, BORN, TODAY)
    assert len(cells) == 1
    (cell,) = cells
    assert [w.text for w in cell.words] == ["19", "Nac", "66"]
    x0, y0, x1, y1 = cell.box
    assert x0 <= 22 and y0 < 260 and y1 > 292  # around the words, a little taller
    assert x1 < 320  # and never into the notes
    assert cell.year is None


def test_a_cell_with_a_lone_year_must_agree_with_it():
    text = card(HEADER, FIRST, line(260, (22, "11th Deo 1966"), (320, "Hb 9.0."), line_no=2), LAST)
    (cell,) = unread_date_cells(text, *CARD, BORN, TODAY)
    assert cell.year == 1966
    engine = FixedLines("11th Dec 1967", "11th Dec 1967", "11th Dec 1967")
    assert reread.date_cells(text, blank_card(), DPI, engine, BORN, TODAY) is text


def test_two_looks_that_agree_replace_the_cell():
    engine = FixedLines("19 Mar 66", "19 Mar 66 |", "")
    before = dates(PAGE)
    assert before == [dt.date(1960, 5, 12), None, dt.date(1970, 5, 3)]
    after = reread.date_cells(PAGE, blank_card(), DPI, engine, BORN, TODAY)
    assert dates(after) == [dt.date(1960, 5, 12), dt.date(1966, 3, 19), dt.date(1970, 5, 3)]
    assert [look for _, look in engine.calls] == list(reread.LOOKS)
    texts = [w.text for w in after.words]
    assert "Nac" not in texts and texts.count("Mar") == 1  # the first agreeing look's words
    assert all(w.line == 2 for w in after.words if w.text in ("19", "Mar"))
    # Every other word is untouched.
    assert set(PAGE.words) - set(MISREAD) <= set(after.words)


def test_one_look_is_never_enough_however_sure():
    engine = FixedLines("19 Mar 66", "l9 Nac 66", "")
    assert reread.date_cells(PAGE, blank_card(), DPI, engine, BORN, TODAY) is PAGE


def test_looks_that_disagree_leave_the_cell_unread():
    engine = FixedLines("19 Mar 66", "19 May 66", "19 Mar 66")
    assert reread.date_cells(PAGE, blank_card(), DPI, engine, BORN, TODAY) is PAGE


def test_no_more_looks_once_agreement_is_out_of_reach():
    engine = FixedLines("", "", "19 Mar 66")
    assert reread.date_cells(PAGE, blank_card(), DPI, engine, BORN, TODAY) is PAGE
    assert len(engine.calls) == 2


def test_letters_and_unreadable_cards_get_no_second_look():
    engine = FixedLines("19 Mar 66", "19 Mar 66", "19 Mar 66")
    a4 = Image.new("L", (1654, 2339), 255)  # A4 at 200 dpi: a letter
    assert reread.date_cells(PAGE, a4, 200, engine, BORN, TODAY) is PAGE
    scrawl = PageText(tuple(Word(w.text, w.box, 12.0, w.line, w.block) for w in PAGE.words))
    assert reread.date_cells(scrawl, blank_card(), DPI, engine, BORN, TODAY) is scrawl
    assert engine.calls == []


@pytest.fixture(scope="module")
def engine():
    return TesseractEngine()


def _written(text: str, at: tuple[int, int], size: int = 44) -> Image.Image:
    image = Image.new("L", CARD, 250)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Oblique.ttf", size)
    ImageDraw.Draw(image).text(at, text, fill=30, font=font)
    image.info["dpi"] = (DPI, DPI)
    return image


def test_tesseract_reads_one_line_in_page_pixels_in_every_look(engine):
    image = _written("12.09.78", (60, 600))
    box = (30, 580, 420, 680)
    for look in reread.LOOKS:
        text = engine.read_line(image, box, look)
        assert [w.text for w in text.words] == ["12.09.78"], look
        (word,) = text.words
        x0, y0, x1, y1 = word.box
        assert 40 <= x0 <= 80 and 590 <= y0 <= 625 and 240 <= x1 <= 330 and 630 <= y1 <= 675, (look, word.box)


def test_a_line_read_leaves_the_page_mode_alone(engine):
    image = _written("C/O cough 2/7", (400, 300))
    engine.read_line(image, (380, 280, 900, 380))
    whole = engine.read(image)
    assert " ".join(w.text for w in whole.words) == "C/O cough 2/7"


def test_a_second_look_dates_two_fixture_cells_the_page_read_missed(engine):
    """Two date cells of a generated dkg-hand card (seed 11), as the whole-page read left them.

    "12.09.78" runs into the card's edge and read as "b2.09./6" at confidence 0; "23 Sep 87"
    read as "23 dep 87". Read again on their own, the looks agree on both.
    """
    born = dt.date(1937, 10, 22)
    image = Image.new("L", CARD, 240)
    image.paste(Image.open(Path(__file__).parent / "data" / "card-date-cells.png").convert("L"), (0, 220))
    image.info["dpi"] = (DPI, DPI)
    text = PageText((
        *HEADER,
        Word("b2.09./6", (34, 243, 275, 291), 0.0, 4, 4),
        Word("21/11/80", (26, 420, 283, 472), 96.7, 5, 4),
        Word("23", (22, 522, 75, 560), 95.9, 6, 4),
        Word("dep", (110, 512, 195, 578), 69.7, 6, 4),
        Word("87", (229, 524, 286, 560), 92.1, 6, 4),
        *line(250, (320, "Vasectomy done under LA"), line_no=12),
        *line(430, (320, "Typhoid vacc given"), line_no=13),
        *line(530, (320, "Typhoid vacc given"), line_no=14),
        *line(150, (26, "02.03.75"), (320, "C/O cough 2/7"), line_no=3),
        *line(620, (24, "13/05/90"), (320, "Flu vacc given"), line_no=7),
    ))
    before = [e.date for e in segment_card(text, *CARD, born, TODAY)]
    assert before == [dt.date(1975, 3, 2), None, dt.date(1980, 11, 21), None, dt.date(1990, 5, 13)]
    after = reread.date_cells(text, image, DPI, engine, born, TODAY)
    entries = segment_card(after, *CARD, born, TODAY)
    assert [e.date for e in entries][1:4] == [dt.date(1978, 9, 12), dt.date(1980, 11, 21), dt.date(1987, 9, 23)]
    assert [e.text for e in entries][1:4] == ["Vasectomy done under LA", "Typhoid vacc given", "Typhoid vacc given"]
