"""Pages the cheap ink test calls blank are read once at full sensitivity: faint or margin writing is kept.

Every page here is drawn by hand with Pillow on a simulated card back (paper grain, dust,
the other side's writing showing through) and goes through the real stages with real
Tesseract.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from digitise import analyse, kinds, load
from digitise.model import PageKind, PageText, ScanDoc, Word
from digitise.ocr import TesseractEngine
from digitise.options import DigitiseOptions
from digitise.pipeline import StageContext, mark_duplicates, read_entries, read_scan, run

TODAY = dt.date(2025, 6, 1)
BORN = dt.date(1950, 3, 5)
CARD = (1500, 2100)  # 5 x 7 in at 300 dpi
DPI = 300
PAPER = 236
FONTS = {
    "femkeklaver": "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "dkg": "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "humor": "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
    "dejavu": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}


def card_back(seed: int, show_through: float = 0.0) -> np.ndarray:
    """Buff card paper with scanner noise, a few specks of dust and, optionally, the front seen through it."""
    rng = np.random.default_rng(seed)
    px = PAPER + rng.standard_normal(CARD[::-1]).astype(np.float32) * 2.0
    if show_through:
        ghost = Image.new("L", CARD, 0)
        draw = ImageDraw.Draw(ghost)
        font = ImageFont.truetype(FONTS["femkeklaver"], 50)
        for y in range(210, 2000, 90):
            draw.text((300, y), "C/O cough 3/7 Rx amoxil tds", font=font, fill=255)
        px -= np.asarray(ghost.transpose(Image.Transpose.FLIP_LEFT_RIGHT), np.float32) / 255 * show_through
    for _ in range(8):  # dust: a few pixels each, well darker than the paper
        x, y = rng.integers(100, CARD[0] - 100), rng.integers(100, CARD[1] - 100)
        px[y:y + 3, x:x + 3] -= 120
    return px


def scanned(px: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.clip(px, 0, 255).astype(np.uint8), "L")
    image.info["dpi"] = (DPI, DPI)
    return image


def write(image: Image.Image, at: tuple[int, int], text: str, font: str, size: int, darker: int) -> Image.Image:
    """`text` drawn `darker` grey levels below the paper: 65 is a pencil line, 200 a biro."""
    ImageDraw.Draw(image).text(at, text, font=ImageFont.truetype(FONTS[font], size), fill=PAPER - darker)
    return image


def margin_damage(px: np.ndarray) -> np.ndarray:
    """A punch hole and the shadow of the card's edge: dark, but in the margins and not writing."""
    h, w = px.shape
    yy, xx = np.ogrid[:h, :w]
    px[(yy - h // 2) ** 2 + (xx - 30) ** 2 < 22 ** 2] = 50
    px[:, w - 14:] -= 110
    return px


def digitise(tmp_path: Path, *images: Image.Image) -> ScanDoc:
    """The read, rescan and entry stages of the real pipeline over one document of these pages."""
    inputs = []
    for i, image in enumerate(images, start=1):
        path = tmp_path / f"page-{i:02d}.png"
        image.save(path, dpi=(DPI, DPI))
        inputs.append(path)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    ctx = StageContext(work, DigitiseOptions(today=TODAY), TesseractEngine())
    doc = ScanDoc("9990000018 Test Patient 05-03-1950", tuple(inputs), born=BORN)
    return run(doc, ctx, stages=(read_scan, mark_duplicates, read_entries))


def cheaply_blank(image: Image.Image) -> bool:
    return analyse.measure(image.reduce(3), DPI // 3).blank


@pytest.mark.parametrize("font, size", [("femkeklaver", 64), ("dkg", 64), ("humor", 52)])
def test_a_pencil_line_on_a_card_back_is_read(tmp_path, font, size):
    image = write(scanned(card_back(1, show_through=8)), (200, 900), "12/3/01 Pen allergy", font, size, darker=65)
    assert cheaply_blank(image)  # the ink test alone would have dropped it
    (page,) = digitise(tmp_path, image).pages
    assert not page.blank and page.kind is PageKind.card
    assert page.text is not None and kinds.shows_writing(page.text)
    assert page.entries, page.text.text
    # Hand-writing reads unevenly ("Pex", "allecy"): what matters is that it is read and kept.
    written = " ".join(e.date_text + " " + e.text for e in page.entries).lower()
    assert "pen" in written or "allergy" in written, written


def test_a_faint_entry_keeps_its_date(tmp_path):
    image = write(scanned(card_back(2)), (200, 900), "12/3/01 Pen allergy", "humor", 52, darker=65)
    (page,) = digitise(tmp_path, image).pages
    (entry,) = page.entries
    assert entry.date == dt.date(2001, 3, 12) and entry.text.lower() == "pen allergy"


def test_faint_writing_beside_a_dark_edge_shadow_is_read(tmp_path):
    # A shadowed edge darkens the page histogram, so a global threshold loses pencil this faint.
    image = write(scanned(margin_damage(card_back(3))), (200, 900), "12/3/01 Pen allergy", "femkeklaver", 64,
                  darker=40)
    assert cheaply_blank(image)
    (page,) = digitise(tmp_path, image).pages
    assert not page.blank and page.entries and kinds.shows_writing(page.text), page.text


def test_a_short_line_in_the_top_margin_counts(tmp_path):
    image = write(scanned(card_back(4)), (150, 18), "Seen 4/5/02 BP 130/80", "dejavu", 40, darker=190)
    assert cheaply_blank(image)  # above the 4% margin line the ink test does not look
    (page,) = digitise(tmp_path, image).pages
    assert not page.blank
    assert "4/5/02" in page.text.text and "130/80" in page.text.text
    assert any(e.date == dt.date(2002, 5, 4) for e in page.entries)


def test_a_written_page_keeps_its_scan_not_the_stretched_copy(tmp_path):
    image = write(scanned(card_back(5)), (200, 900), "12/3/01 Pen allergy", "humor", 52, darker=65)
    doc = digitise(tmp_path, image)
    (page,), (stored,) = doc.pages, doc.images
    kept = np.asarray(Image.open(stored).convert("L"), dtype=np.int16)
    assert kept.shape == (page.height, page.width)
    assert abs(int(np.median(kept)) - PAPER) <= 3  # the scan's own paper, not the copy's white
    if page.skew == 0 and page.rotation == 0:
        assert np.array_equal(kept, np.asarray(image, dtype=np.int16))


def test_truly_blank_backs_stay_blank_and_say_what_the_look_cost(tmp_path):
    backs = [
        scanned(card_back(10)),
        scanned(card_back(11, show_through=8)),  # the front's writing seen through the card
        scanned(margin_damage(card_back(12, show_through=6))),  # punch hole, edge shadow: the margin rule
    ]
    assert all(cheaply_blank(b) for b in backs)
    started = time.perf_counter()
    doc = digitise(tmp_path, *backs)
    elapsed = time.perf_counter() - started
    assert [p.blank for p in doc.pages] == [True, True, True]
    assert all(p.text is None and p.kind is PageKind.blank and p.entries == () for p in doc.pages)

    # The extra cost of a blank page: decoding it in full (a JPEG scan is otherwise only
    # previewed through the decoder's downscaling), normalising it, one OCR.
    engine = TesseractEngine()
    engine.read(backs[0])  # load the model outside the timing
    costs = []
    for i, back in enumerate(backs):
        path = tmp_path / f"timed-{i}.jpg"
        back.save(path, quality=75, dpi=(DPI, DPI))
        source = next(load.read_pages(path, max_pixels=60_000_000, max_pages=1))
        started = time.perf_counter()
        found = engine.read(analyse.sensitive(source.load(), source.dpi))
        costs.append(time.perf_counter() - started)
        assert not kinds.shows_writing(found), found.text
    print(f"\nblank card back (JPEG, 1500 x 2100): extra look {1000 * min(costs):.0f}-{1000 * max(costs):.0f} ms "
          f"a page (decode + normalise + OCR); three PNG backs through the stages {elapsed:.2f}s")
    assert max(costs) < 1.0


def test_what_counts_as_writing():
    def words(*pairs):
        return PageText(tuple(Word(t, (0, 0, 10, 10), c, 0) for t, c in pairs))

    assert kinds.shows_writing(words(("Pen", 60.0)))
    assert kinds.shows_writing(words(("12", 55.0)))
    assert kinds.shows_writing(words(("|", 95.0), (".", 90.0), ("a1", 45.0)))
    assert not kinds.shows_writing(words(("O", 96.0), ("|", 95.0), ("-", 90.0)))  # a punch hole, a rule
    assert not kinds.shows_writing(words(("Rah", 12.0), ("ee", 20.0)))  # guesses at noise
    assert not kinds.shows_writing(PageText(()))
