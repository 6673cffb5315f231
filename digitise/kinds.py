"""Tells what a page is (card, letter, result slip, envelope, blank) and whether its writing could be read."""

from __future__ import annotations

import datetime as dt
import re
from difflib import SequenceMatcher

from digitise.entries import HEADER_WORDS, leading_date
from digitise.model import PageKind, PageText
from digitise.results import is_result_slip, slip_rows
from digitise.rows import rows

MM_PER_INCH = 25.4
# Physical sizes (short side, long side) in mm, and how far a scan may stray from them:
# scanners crop a little inside or outside the paper edge.
A4_MM = (210.0, 297.0)
CARD_MM = (127.0, 177.8)  # 5 x 7 in
SIZE_TOLERANCE = 0.10
# An OCR'd phrase matches a marker when difflib's ratio reaches this: one or two slipped
# letters in "NATIONAL HEALTH SERVICE" still count, a different phrase does not.
FUZZY = 0.8
# Envelope fronts carry several of these printed labels; a letter carries at most one
# ("NHS No" in its Re: line), so two are needed. Continuation cards may print Surname,
# Forenames and NHS No too, so one of the envelope's titles must be among them, and a
# page with dated rows is a card whatever its heading says.
ENVELOPE_TITLES = ("national health service", "medical record", "family practitioner committee")
ENVELOPE_MARKERS = (*ENVELOPE_TITLES, "surname", "forenames", "nhs no", "date of birth")
ENVELOPE_MIN_MARKERS = 2
LETTER_MARKERS = ("dear dr", "yours sincerely", "yours faithfully", "consultant")
# Rows that start with a date: two make a page card-like even when its size is unknown.
CARD_MIN_DATE_ROWS = 2

# Unreadable pages. Measured on the synthetic fixtures (Tesseract 5, upright pages):
# legible handwriting's written words average 44-86 confidence and scrawl 15-22, with
# the printed heading excluded (it reads at 97 on any card). Below MIN_CONFIDENCE the
# words are mostly guesses; the few legible-but-rough pages this also flags are the
# price of the rule that a flagged page is always sent. The plausibility share catches
# confident nonsense: legible pages score 0.69 or more and scrawl about 0.36, so below
# MIN_PLAUSIBLE the text cannot be trusted to say what the page holds. Fewer than
# MIN_WORDS written words on a page the caller judged not blank means the engine found
# almost nothing in its ink (one scrawl hand OCRs as just the printed heading).
MIN_CONFIDENCE = 50.0
MIN_PLAUSIBLE = 0.50
MIN_WORDS = 3
GP_ABBREVIATIONS = frozenset(
    """c/o o/e rx dx bp htn t2dm iddm niddm dm urti lrti uti tds bd od qds prn mg mcg ml kg
    g nocte mane stat inh r/v f/u fu ref opd a&e d&v sob cp hx fhx sh ix ex nad nkda hb
    hba1c inr tsh pefr ecg cxr bmi wt ht tca ros mane ac pc po im iv sc top pv pr gp dr
    mr mrs ms l r lt rt bilat abdo ent obs gynae copd af ihd mi cva tia ca nsaid ppi ssri
    ocp hrt hc e45 tft lft fbc u&e esr crp msu ua""".split()
)
# Short words a writer uses. Scrawl OCRs as short letter clusters ("AR", "Qe", "PEG"), so
# a token of three letters or fewer must be a known word or abbreviation to count.
SHORT_WORDS = frozenset(
    """a i an as at be by do go he if in is it me my no of on or so to up us we x
    all and any are but can day did due for get got had has her him his how its may new
    nil not now off old one our out own per put ran saw see she six ten the too two use
    was way who why yes yet you age arm leg eye ear hip toe jaw rib cut fit flu ill pus
    rash dry wet low raw red hot sore pain""".split()
)
# A page the cheap ink test called blank keeps that verdict only if its sensitive OCR
# reads no word of two or more letters or digits at this confidence or above. Lone
# characters are what a punch hole, a rule or a speck reads as; below this confidence
# Tesseract's words are guesses at noise. A guess that passes keeps a page that was
# blank: paper wasted, never content lost.
WRITING_MIN_CHARS = 2
WRITING_CONFIDENCE = 40.0
_VOWELS = set("aeiouy")
_NUMBERISH = re.compile(r"^[<>~]?\d+([./:,-]\d+)*(%|mg|mcg|g|ml|kg|mmol|units?|x\d+)?$", re.I)


def _size_is(width: int, height: int, dpi: int, mm: tuple[float, float]) -> bool:
    if dpi <= 0 or width <= 0 or height <= 0:
        return False
    short, long_ = sorted((width / dpi * MM_PER_INCH, height / dpi * MM_PER_INCH))
    return (abs(short - mm[0]) <= SIZE_TOLERANCE * mm[0]
            and abs(long_ - mm[1]) <= SIZE_TOLERANCE * mm[1])


def _lines(text: PageText) -> list[str]:
    return [" ".join(w.text for w in r.words).lower() for r in rows(text.words)]


def _has_phrase(lines: list[str], phrase: str) -> bool:
    """Whether some run of words on a line reads as `phrase`, allowing OCR slips."""
    n = len(phrase.split())
    # SequenceMatcher caches its analysis of the second sequence, so keep the phrase there
    # and try the cheap upper bounds before the full ratio: pages hold hundreds of windows.
    matcher = SequenceMatcher(None, "", phrase)
    for line in lines:
        words = re.sub(r"[^a-z0-9& ]", " ", line).split()
        for i in range(max(1, len(words) - n + 1)):
            window = " ".join(words[i:i + n])
            if not window:
                continue
            matcher.set_seq1(window)
            if matcher.real_quick_ratio() >= FUZZY and matcher.quick_ratio() >= FUZZY and matcher.ratio() >= FUZZY:
                return True
    return False


def classify(text: PageText | None, width: int, height: int, dpi: int, blank: bool) -> PageKind:
    """The page's kind from its ink, physical size and words; unknown when nothing is clear."""
    if blank:
        return PageKind.blank
    lines = _lines(text) if text else []
    found = {m for m in ENVELOPE_MARKERS if _has_phrase(lines, m)}
    letter_text = any(_has_phrase(lines, m) for m in LETTER_MARKERS)
    date_rows = _date_rows(text) if text else 0
    if (len(found) >= ENVELOPE_MIN_MARKERS and found & set(ENVELOPE_TITLES) and not letter_text
            and date_rows < CARD_MIN_DATE_ROWS):
        return PageKind.envelope
    # Slips come on any paper, A4 and card-sized too, so their rows decide before the size
    # does; a letter quoting results, or a card of dated entries, stays what it is.
    if text and not letter_text and date_rows < CARD_MIN_DATE_ROWS and is_result_slip(slip_rows(text.words)):
        return PageKind.result
    if _size_is(width, height, dpi, A4_MM):
        return PageKind.letter
    if _size_is(width, height, dpi, CARD_MM):
        return PageKind.card
    if letter_text:
        return PageKind.letter
    if date_rows >= CARD_MIN_DATE_ROWS:
        return PageKind.card
    return PageKind.unknown


def _date_rows(text: PageText) -> int:
    # Only whether rows start with a date matters here, not which century: no limit.
    return sum(leading_date(r.words, None, dt.date.max) is not None for r in rows(text.words))


def plausible(token: str) -> bool:
    """Whether an OCR'd token looks like something a person wrote: a word, a number, shorthand."""
    t = token.strip(".,;:()[]{}\"'!?")
    if not t:
        return False
    low = t.lower()
    if low in GP_ABBREVIATIONS or _NUMBERISH.match(t):
        return True
    if len(t) == 1:
        return t.isdigit() or t in "LRIax#+-"
    if re.search(r"(.)\1\1", low) or re.search(r"[^\w/&%+.-]", t):
        return False  # "lll", "a@b": repeated strokes and stray symbols are scribble
    letters = [c for c in low if c.isalpha()]
    if len(letters) < 0.8 * len(t):
        return bool(re.fullmatch(r"[a-z]+\d+[a-z]*|\d+[a-z]+", low))  # "T2DM", "50mg", "x4"
    if len(letters) <= 3:
        return low in SHORT_WORDS
    vowels = sum(c in _VOWELS for c in letters) / len(letters)
    # Mixed case inside a word ("dIlat", "tRgeE") is how OCR spells a scrawl, not a writer.
    if not (t.isupper() or t.islower() or (t[0].isupper() and t[1:].islower())):
        return False
    return 0.15 <= vowels <= 0.75


def shows_writing(text: PageText) -> bool:
    """Whether OCR read anything that looks like writing: a word of 2+ letters or digits, read with some confidence."""
    return any(sum(c.isalnum() for c in w.text) >= WRITING_MIN_CHARS and w.confidence >= WRITING_CONFIDENCE
               for w in text.words)


def is_unreadable(text: PageText | None, kind: PageKind) -> bool:
    """True when the page's writing is largely unreadable (or unread): the page must then be sent."""
    if kind is PageKind.blank:
        return False
    if text is None:
        return True
    # The printed card heading reads perfectly on a card whose writing does not: it is
    # not evidence that the writing was read.
    words = [w for w in text.words if any(c.isalnum() for c in w.text)
             and not (kind is PageKind.card and _bare(w.text) in HEADER_WORDS)]
    if len(words) < MIN_WORDS:
        return True
    chars = sum(len(w.text) for w in words)
    if sum(w.confidence * len(w.text) for w in words) / chars < MIN_CONFIDENCE:
        return True
    share = sum(plausible(w.text) for w in words) / len(words)
    return share < MIN_PLAUSIBLE


def _bare(word: str) -> str:
    return re.sub(r"[^a-z0-9]", "", word.lower())
