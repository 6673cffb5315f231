"""Page kinds from size and text, and unreadable-page detection."""

from digitise.kinds import classify, is_unreadable, plausible
from digitise.model import PageKind, PageText, Word


def text(*lines, conf=90.0):
    words = []
    for i, ln in enumerate(lines):
        x = 40
        for w in ln.split():
            words.append(Word(w, (x, 100 + 90 * i, x + 18 * len(w), 132 + 90 * i), conf, i))
            x += 18 * (len(w) + 1)
    return PageText(tuple(words))


ODD = (1000, 1000, 300)  # a size that is neither card nor A4


def test_blank_wins():
    assert classify(text("NATIONAL HEALTH SERVICE"), 1500, 2100, 300, blank=True) is PageKind.blank


def test_size_alone():
    assert classify(None, 1500, 2100, 300, False) is PageKind.card  # 5 x 7 in
    assert classify(None, 2100, 1500, 300, False) is PageKind.card  # turned
    assert classify(None, 1654, 2339, 200, False) is PageKind.letter  # A4
    assert classify(None, 2480, 3508, 300, False) is PageKind.letter
    assert classify(None, 1600, 2400, 200, False) is PageKind.letter  # a loose crop, within 10%
    assert classify(None, 1000, 1000, 300, False) is PageKind.unknown
    assert classify(None, 1500, 2100, 0, False) is PageKind.unknown  # no dpi, no size


def test_envelope_markers_with_ocr_slips():
    envelope = text("NATI0NAL HEALTH SERVlCE", "MEDICAL REC0RD", "Surname SMITH", "Forenames John",
                    "NHS No. 999 123 4567")
    assert classify(envelope, 2175, 1575, 300, False) is PageKind.envelope
    assert classify(envelope, *ODD, False) is PageKind.envelope
    # A card heading has Surname and NHS No too, but no envelope title.
    card_head = text("Surname SMITH Forenames John NHS No 999 123 4567", "3/5/76 C/O cough",
                     "4/6/76 Flu vacc given")
    assert classify(card_head, *ODD, False) is PageKind.card


def test_letter_by_text():
    letter = text("Dear Dr Jones,", "Re: Jane Smith, DOB 03/05/1950, NHS No 999 123 4567",
                  "Thank you for referring this lady.", "Yours sincerely,", "Consultant Physician")
    assert classify(letter, *ODD, False) is PageKind.letter
    assert classify(letter, 1654, 2339, 200, False) is PageKind.letter


def test_card_by_dated_rows():
    card = text("Date Clinical notes", "3/5/76 C/O cough 3/52", "12 Jun 78 Tetanus booster given")
    assert classify(card, *ODD, False) is PageKind.card
    one_date = text("3/5/76 C/O cough 3/52", "BP 150/95")
    assert classify(one_date, *ODD, False) is PageKind.unknown


def test_legible_pages_are_readable():
    card = text("Date Clinical notes", "3/5/76 C/O cough 3/52. O/E chest clr. Rx amoxicillin 250mg tds",
                "12 Jun 78 Allergic to penicillin - rash", "BP 150/95. Dx HTN. Start atenolol 50mg od")
    assert not is_unreadable(card, PageKind.card)


def test_low_confidence_is_unreadable():
    card = text("3/5/76 C/O cough 3/52. O/E chest clr. Rx amoxicillin 250mg tds", conf=35)
    assert is_unreadable(card, PageKind.card)


def test_confident_garbage_is_unreadable():
    # What Tesseract makes of a scrawl, sometimes with middling confidence.
    scrawl = text("Rah a AAR AR AR! 88 Hea es iad ALORA AG cagagts PEPE PG", "MLR ay: pha Se atciigiyt:",
                  "AA IS op gw PRAIA Rit Ani Qe tRgeE dIlat ;;;;; lll ty att ORE rd", conf=70)
    assert is_unreadable(scrawl, PageKind.card)


def test_a_heading_alone_is_unreadable():
    # One scrawl hand OCRs as nothing but the card's printed heading, at 97% confidence.
    assert is_unreadable(text("Date Clinical notes", conf=97), PageKind.card)
    assert is_unreadable(PageText(()), PageKind.letter)
    assert is_unreadable(None, PageKind.card)
    assert not is_unreadable(None, PageKind.blank)


def test_plausible_tokens():
    for good in ("cough", "C/O", "O/E", "Rx", "250mg", "150/95", "3/52", "T2DM", "HbA1c", "amoxicillin",
                 "URTI.", "(rash)", "tds", "L", "to", "x4", "37.5", "94%", "Consultant"):
        assert plausible(good), good
    for bad in ("lll", "tRgeE", "a@b", "Qe", "AAR", "bcdfgh", "“erat;", ";;;"):
        assert not plausible(bad), bad
