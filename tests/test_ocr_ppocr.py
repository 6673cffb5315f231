"""PP-OCRv6 (rapidocr) behind lgd's OCR seam, and `--engine auto`'s routing, on small drawn pages with the real engines."""

from __future__ import annotations

import datetime as dt

import pytest
from PIL import Image, ImageDraw, ImageFont

from digitise import route
from digitise.kinds import is_unreadable
from digitise.model import PageKind, PageText
from digitise.ocr import ENGINES, TesseractEngine
from digitise.ppocr import PpOcrEngine, split_box

DPI = 300
CARD = (1500, 2100)  # 5 x 7 in at 300 dpi
A4 = (2480, 3508)
HAND = "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf"
TYPED = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def page(size: tuple[int, int], lines: list[tuple[int, int, str]], font: str, px: int) -> Image.Image:
    image = Image.new("L", size, 250)
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(font, px)
    for x, y, text in lines:
        draw.text((x, y), text, font=face, fill=20)
    image.info["dpi"] = (DPI, DPI)
    return image


@pytest.fixture(scope="module")
def ppocr() -> PpOcrEngine:
    return PpOcrEngine()


@pytest.fixture(scope="module")
def tesseract() -> TesseractEngine:
    return TesseractEngine()


CARD_LINES = [(60, 60, "Date"), (400, 60, "Clinical notes"),
              (60, 200, "12/03/1987"), (400, 200, "Sore throat 3 days. Tonsils red."),
              (60, 320, "04/11/1988"), (400, 320, "Cough and wheeze. Rx salbutamol"),
              (60, 440, "21/06/1990"), (400, 440, "Sprained ankle. Advised rest")]


def test_reads_a_handwritten_line_with_words_in_page_pixels(ppocr: PpOcrEngine) -> None:
    image = page(CARD, [(120, 300, "Painful knee after fall yesterday")], HAND, 64)
    text = ppocr.read(image)
    words = [w.text.lower() for w in text.words]
    # Femke Klaver's "e" sometimes reads as "o" ("yestorday"): four words of five, exactly.
    assert len({"painful", "knee", "after", "fall", "yesterday"} & set(words)) >= 4
    assert text.engine.startswith("ppocr ")
    for w in text.words:
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert 250 <= y0 and y1 <= 420  # on the line that was drawn, not elsewhere
        assert 0 <= w.confidence <= 100
    xs = [w.box[0] for w in text.words]
    assert xs == sorted(xs)  # one line, left to right


def test_read_line_places_words_back_on_the_page(ppocr: PpOcrEngine) -> None:
    image = page(CARD, [(120, 300, "Painful knee"), (120, 700, "Seen today")], HAND, 64)
    text = ppocr.read_line(image, (80, 660, 1000, 800))
    assert [w.text.lower() for w in text.words] == ["seen", "today"]
    assert all(80 <= w.box[0] and w.box[2] <= 1000 and 660 <= w.box[1] and w.box[3] <= 800 for w in text.words)


def test_model_loads_once_per_process(ppocr: PpOcrEngine) -> None:
    image = page((600, 200), [(20, 60, "Seen today")], HAND, 48)
    ppocr.read(image)
    model = ppocr._ocr
    ppocr.read(image)
    assert model is not None and ppocr._ocr is model
    assert ENGINES["ppocr"] is PpOcrEngine


def test_split_box_shares_the_line_by_characters() -> None:
    boxes = split_box((100, 10, 210, 40), ["ab", "cdefgh"])  # 2 + space + 6 = 9 characters
    assert boxes[0][0] == 100 and boxes[-1][2] == 210
    assert boxes[0][2] <= boxes[1][0]  # a gap where the space is
    assert boxes[1][2] - boxes[1][0] > 2 * (boxes[0][2] - boxes[0][0])


def test_auto_routes_a_card_to_ppocr_and_a_letter_to_tesseract(ppocr: PpOcrEngine, tesseract: TesseractEngine) -> None:
    card = page(CARD, CARD_LINES, HAND, 56)
    first = tesseract.read(card)
    assert route.wants_hand(first, card, DPI)
    chosen = route.choose(first, ppocr.read(card))
    assert chosen.engine.startswith("ppocr")
    letter = page(A4, [(200, 300 + 80 * i, line) for i, line in enumerate(
        ["St Mary's Hospital", "Dear Dr Smith,", "Thank you for referring this patient",
         "with a cough of two weeks.", "Yours sincerely,", "Consultant Physician"])], TYPED, 40)
    assert not route.wants_hand(tesseract.read(letter), letter, DPI)


def test_auto_reads_a_result_slip_again_with_ppocr(ppocr: PpOcrEngine, tesseract: TesseractEngine) -> None:
    # A printed table: Tesseract reads it confidently, but slips go to PP-OCR whatever its
    # confidence (route.TABLE_KINDS), and PP-OCR's reading keeps the values and units.
    rows = [("Sodium", "139", "mmol/L", "(133 - 146)"), ("Potassium", "4.1", "mmol/L", "(3.5 - 5.3)"),
            ("Urea", "6.2", "mmol/L", "(2.5 - 7.8)"), ("Creatinine", "88", "umol/L", "(59 - 104)")]
    lines = [(100, 100, "Department of Clinical Chemistry"), (100, 180, "Sample date: 12.03.87")]
    for i, (name, value, unit, ref) in enumerate(rows):
        y = 320 + 90 * i
        lines += [(100, y, name), (700, y, value), (950, y, unit), (1300, y, ref)]
    slip = page(CARD, lines, TYPED, 40)
    first = tesseract.read(slip)
    assert route.wants_hand(first, slip, DPI)
    chosen = route.choose(first, ppocr.read(slip))
    assert chosen.engine.startswith("ppocr")
    read = {w.text.strip("()") for w in chosen.words}
    assert {"139", "4.1", "6.2", "88", "Creatinine"} <= read


def test_small_print_ppocr_does_not_detect_is_kept_from_tesseracts_reading(
        ppocr: PpOcrEngine, tesseract: TesseractEngine) -> None:
    # PP-OCR detects on the page shrunk to 544 pixels: a lab's footnote at about 6 pt on a
    # 200 dpi slip is lost there. Tesseract reads it at full size, and `fill` keeps its words.
    slip = Image.new("L", (1654, 2339), 250)
    draw = ImageDraw.Draw(slip)
    draw.text((150, 300), "Haemoglobin 135 g/L Platelets 264", font=ImageFont.truetype(TYPED, 30), fill=20)
    draw.text((150, 2200), "Sample received haemolysed, potassium not reported",
              font=ImageFont.truetype(TYPED, 15), fill=20)
    slip.info["dpi"] = (200, 200)
    first, hand = tesseract.read(slip), ppocr.read(slip)
    assert "haemolysed" not in {w.text.strip(",.") for w in hand.words}, "PP-OCR now reads this print: make it smaller"
    filled, n = route.fill(route.choose(first, hand), first)
    read = [w.text.strip(",.") for w in filled.words]
    assert {"haemolysed", "potassium", "reported"} <= set(read) and n >= 3
    assert read.count("Haemoglobin") == 1 and read.index("Haemoglobin") < read.index("haemolysed")
    assert filled.text.splitlines()[-1].startswith("Sample received")


def test_fill_keeps_only_confident_words_where_the_hand_reading_has_none() -> None:
    from digitise.model import Word

    hand = PageText((Word("Asthma", (100, 100, 300, 160), 95.0, 0), Word("r/v", (320, 100, 420, 160), 95.0, 0)),
                    engine="ppocr")
    first = PageText((Word("Asthrna", (105, 98, 298, 158), 60.0, 0),  # the same word: hand's reading stays
                      Word("NHS", (100, 20, 200, 60), 92.0, 1),  # printed, where PP-OCR read nothing
                      Word("x", (900, 900, 920, 920), 95.0, 2),  # a speck
                      Word("K", (440, 105, 460, 155), 93.0, 0),  # one letter on a line PP-OCR read
                      Word("wibble", (100, 400, 300, 460), 40.0, 3)),  # not read as confidently as print
                     engine="tesseract")
    filled, n = route.fill(hand, first)
    assert [(w.text, w.line) for w in filled.words] == [("NHS", 0), ("Asthma", 1), ("r/v", 1), ("K", 1)] and n == 2  # K joins the line
    assert filled.engine == "ppocr" and route.fill(hand, PageText(())) == (hand, 0)


def test_a_page_neither_engine_reads_stays_unreadable(ppocr: PpOcrEngine, tesseract: TesseractEngine) -> None:
    # Scrawl: overlapping strokes no engine can read as words.
    image = Image.new("L", CARD, 250)
    draw = ImageDraw.Draw(image)
    for row in range(6):
        y = 250 + row * 150
        points = [(80 + i * 9, y + (37 * i * i + 11 * row) % 60) for i in range(140)]
        draw.line(points, fill=30, width=5)
    image.info["dpi"] = (DPI, DPI)
    first, hand = tesseract.read(image), ppocr.read(image)
    chosen = route.choose(first, hand)
    assert is_unreadable(chosen, PageKind.card)


def test_auto_keeps_tesseract_on_a_card_of_typed_entries(tesseract: TesseractEngine) -> None:
    # Printed entries on a card: Tesseract reads them as confidently as print (>= 85), so
    # the page is not read a second time, and its better reading of print is kept.
    card = page(CARD, CARD_LINES, TYPED, 44)
    first = tesseract.read(card)
    assert route._written_confidence(first) >= route.PRINT_CONFIDENCE
    assert not route.wants_hand(first, card, DPI)
    assert {"salbutamol", "wheeze", "12/03/1987"} <= {w.text.strip(".,") for w in first.words}


def test_options_accept_auto_and_ppocr() -> None:
    from digitise.options import DigitiseOptions

    assert DigitiseOptions(engine="auto", today=dt.date(2025, 1, 1)).engine == "auto"
    assert DigitiseOptions(engine="ppocr").engine == "ppocr"
    with pytest.raises(ValueError):
        DigitiseOptions(engine="easyocr")
