"""digitise.settle: the hand-writing engine's non-words settled from Tesseract's reading or by OCR's letter confusions.

Pure tests on hand-made readings with the real clinical word list (dictionaries, vocabulary and
the lexicon's lists); the integration is tests/test_engine_default.py, which reads a drawn
hand-written card with `--engine auto`.
"""

from __future__ import annotations

import pytest

from digitise.model import PageText, Word
from digitise.settle import SETTLED_CONFIDENCE, settle
from pipelines.clinical import default_reader


@pytest.fixture(scope="module")
def words():
    reader = default_reader()
    assert reader.lexicon.dictionaries.available, "install hunspell-en-gb and hunspell-en-med (scripts/setup.sh)"
    return reader


def line(*texts: str, conf: float = 98.0, y: int = 100) -> PageText:
    out, x = [], 100
    for t in texts:
        out.append(Word(t, (x, y, x + 40 * len(t), y + 60), conf, 0))
        x += 40 * len(t) + 30
    return PageText(tuple(out), engine="test")


def texts(page: PageText) -> list[str]:
    return [w.text for w in page.words]


def test_a_misread_is_settled_by_the_letters_ocr_confuses(words):
    hand = line("C/O", "hoadache", "3/7.", "Forrous", "sulphato", "200mg", "tds")
    got, n = settle(hand, None, words)
    assert texts(got) == ["C/O", "headache", "3/7.", "Ferrous", "sulphate", "200mg", "tds"] and n == 3
    assert [w.confidence for w in got.words if w.text in ("headache", "Ferrous")] == [SETTLED_CONFIDENCE] * 2
    assert [w.box for w in got.words] == [w.box for w in hand.words]


def test_a_misread_is_settled_from_the_other_engines_word_in_the_same_box(words):
    hand = line("Eczema", "r/v.", "E45", "cream", "ropoat")
    first = line("Eczoma", "r/v.", "E45", "croam", "repeat", conf=62.0)
    got, n = settle(hand, first, words)
    assert texts(got) == ["Eczema", "r/v.", "E45", "cream", "repeat"] and n == 1


def test_words_shorthand_numbers_and_names_are_left_alone(words):
    hand = line("Sore", "throat.", "Pen", "V", "250mg", "qds", "10/7.", "O/E", "creps", "Dr", "Patel")
    assert settle(hand, line("Sone", "thnoat.", "Pen", "Y", "250mg", "ads", "10/7.", "O/E", "crops", "Dr", "Patol"),
                  words) == (hand, 0)


def test_an_ambiguous_misread_stays_as_read(words):
    # "bost" could be "best", "bust" or "boat"... no single reading: nothing is guessed.
    hand = line("Asthma", "r/v.", "Bost", "PEFR", "350")
    got, n = settle(hand, None, words)
    assert texts(got)[2] == "Bost" and n == 0


def test_never_settled_into_a_word_reconcile_may_pass_over(words):
    # "soon" -> "seen" would be one e/o swap away; "seen" is on the reviewed narrative list.
    assert not words.settles_into("seen") and not words.settles_into("the")
    hand = line("Asthma", "r/v.", "Soen", "PEFR", "350")
    got, _ = settle(hand, None, words)
    assert texts(got)[2] != "seen"


def test_a_capital_inside_a_word_is_lowered(words):
    got, n = settle(line("C/O", "wRist", "pain"), None, words)
    assert texts(got) == ["C/O", "wrist", "pain"] and n == 1


def test_the_other_reading_must_be_close_in_spelling(words):
    # Tesseract's word in the same box is a different word altogether: not taken.
    got, n = settle(line("Roaction"), line("Vaccination"), words)
    assert texts(got) == ["Reaction"] and n == 1  # the confusions settle it instead
    got, n = settle(line("Xqzt"), line("Asthma"), words)
    assert texts(got) == ["Xqzt"] and n == 0


def test_print_symbols_are_read_as_the_letters_a_hand_wrote(words):
    # PP-OCR's characters are print's: a looped hand-written "o" comes out as a copyright sign,
    # an "x" as a multiplication sign. Nobody writes either in a clinical note.
    hand = line("C/©", "cough", "2/7.", "©/E", "creps", "L", "base.", "D×", "LRTI", "sutured", "×4", "c/©")
    got, n = settle(hand, None, words)
    assert texts(got) == ["C/O", "cough", "2/7.", "O/E", "creps", "L", "base.", "DX", "LRTI", "sutured", "x4", "c/o"]
    assert n == 5 and all(w.confidence == SETTLED_CONFIDENCE for w in got.words if w.text in ("C/O", "O/E", "x4"))


def test_a_character_no_record_holds_is_dropped_and_the_rest_settled(words):
    # digitise.script shows "③" (a scrawled "A") as U+FFFD at confidence 25. Dropped, the rest of
    # the word is settled from Tesseract's; the word stays as unsure as it was. A word of
    # nothing else is kept: it says something was written there.
    hand = PageText((Word("\ufffdsthma", (100, 100, 300, 160), 25.0, 0), Word("R/v.", (320, 100, 420, 160), 98.0, 0),
                     Word("\ufffd\ufffd", (440, 100, 520, 160), 25.0, 0)), engine="test")
    first = line("Asthma", "R/v.", conf=70.0)
    got, n = settle(hand, first, words)
    assert texts(got) == ["Asthma", "R/v.", "\ufffd\ufffd"] and n == 1
    assert [w.confidence for w in got.words] == [25.0, 98.0, 25.0]
