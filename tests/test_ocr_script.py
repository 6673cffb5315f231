"""Characters no Lloyd George card holds: PP-OCR's words read with them are kept, marked and made uncertain."""

from __future__ import annotations

import unicodedata

import pytest
from PIL import Image, ImageDraw, ImageFont

from digitise import kinds
from digitise.model import PageKind
from digitise.ppocr import PpOcrEngine
from digitise.script import OUT_OF_SCRIPT_CONFIDENCE, REPLACEMENT, guarded, in_script, mend

TYPED = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def drawn(lines: list[str], size: tuple[int, int] = (1500, 200 + 120 * 6)) -> Image.Image:
    image = Image.new("L", size, 250)
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(TYPED, 56)
    for i, text in enumerate(lines):
        draw.text((60, 100 + 120 * i), text, font=face, fill=20)
    return image


@pytest.fixture(scope="module")
def ppocr() -> PpOcrEngine:
    return PpOcrEngine()


def test_a_word_read_with_a_circled_digit_is_kept_marked_and_uncertain(ppocr: PpOcrEngine) -> None:
    # The recogniser's alphabet holds circled digits ("①", once read for a scrawled "C/O");
    # drawn, PP-OCR reads them back as such. No CJK font is installed on the test machine.
    text = ppocr.read(drawn(["Seen \u2460 today \u2461 again"]))
    words = [(w.text, w.confidence) for w in text.words]
    assert [t for t, _ in words] == ["Seen", REPLACEMENT, "today", REPLACEMENT, "again"]  # nothing dropped
    assert all(c <= OUT_OF_SCRIPT_CONFIDENCE < kinds.MIN_CONFIDENCE for t, c in words if t == REPLACEMENT)
    assert all(c >= 90 for t, c in words if t != REPLACEMENT)
    assert all(w.box[2] > w.box[0] for w in text.words)


def test_clinical_symbols_read_by_ppocr_are_not_marked(ppocr: PpOcrEngine) -> None:
    text = ppocr.read(drawn(["Dose \u00bd tab \u2191 BP \u2713"]))
    assert [w.text for w in text.words] == ["Dose", "\u00bd", "tab", "\u2191", "BP", "\u2713"]
    assert min(w.confidence for w in text.words) > OUT_OF_SCRIPT_CONFIDENCE


def test_a_card_read_in_another_script_is_unreadable(ppocr: PpOcrEngine) -> None:
    text = ppocr.read(drawn(["\u2460\u2461 \u2462\u2463 \u2464", "\u2465\u2466 \u2467 \u2468\u2469", "\u246a \u246b\u246c"]))
    # The recogniser may read a circled pair as digits it looks like ("00" at 87): most words
    # are still marked, and the page is unreadable, so it is sent.
    marked = [w for w in text.words if REPLACEMENT in w.text]
    assert text.words and len(marked) >= 0.75 * len(text.words)
    assert kinds.is_unreadable(text, PageKind.card)


@pytest.mark.parametrize(("token", "expected"), [
    ("\u65e5\u672c", REPLACEMENT * 2),  # CJK
    ("\u30ab\u30bf", REPLACEMENT * 2),  # katakana
    ("\u0251sthma", REPLACEMENT + "sthma"),  # IPA alpha: Latin script, but no English writer's letter
    ("c\u03b1rdiac", "c" + REPLACEMENT + "rdiac"),  # Greek inside a Latin word
    ("\uff28b", "Hb"),  # a fullwidth letter is certainly its ASCII one
    ("\u0661\u0662", REPLACEMENT * 2),  # Arabic-Indic digits
])
def test_out_of_script_characters_are_replaced_and_the_word_made_uncertain(token: str, expected: str) -> None:
    text, confidence = guarded(token, 99.0)
    assert text == expected
    assert confidence == OUT_OF_SCRIPT_CONFIDENCE


@pytest.mark.parametrize("token", ["headache", "caf\u00e9", "Nguy\u1ec5n", "\u00b5g", "\u03bcmol/L", "\u03b2hCG",
                                   "\u03b2-blocker", "\u0394", "37.5\u00b0C", "\u00b1", "5\u00d7", "\u2264140/90",
                                   "\u2153", "\u00a35", "x\u00b2", "\u201cseen\u201d", "\u2640", "\u2014"])
def test_writing_of_english_clinical_notes_is_left_as_read(token: str) -> None:
    assert guarded(token, 93.0) == (unicodedata.normalize("NFC", token), 93.0)


def test_in_script_follows_unicode_properties_not_a_list_of_seen_characters() -> None:
    # Every letter of Latin-1 and Latin Extended-A/B is in script; no CJK ideograph or
    # hiragana is; private-use and control characters are not.
    assert all(in_script(chr(c)) for c in range(0x00C0, 0x0250) if unicodedata.category(chr(c))[0] == "L")
    assert not any(in_script(chr(c)) for c in range(0x4E00, 0x4E00 + 500))
    assert not any(in_script(chr(c)) for c in range(0x3041, 0x3097))
    assert not in_script("\ue000") and not in_script("\x07")
    assert mend("Seen today") == ("Seen today", False)
