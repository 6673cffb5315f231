"""Which characters an English Lloyd George record can hold, and what to make of a word read with others.

PP-OCRv6's recogniser chooses among about 18,700 characters, 16,000 of them CJK, plus
kana, IPA letters, circled digits and dingbats. On a card written in English any of
those is a guess at a scrawl. Dropping the word would hide that something was written
(a fact could vanish), so the word is kept with the foreign characters marked and its
confidence lowered below the unreadable threshold: the page and its entry are then
treated as any other poorly read writing is.

"In script" is decided from Unicode's own blocks and scripts, not from what the fixtures
happen to contain: the Latin letters of European alphabets (patients' names carry
accents), ASCII digits, and the punctuation, currency, super/subscripts, letterlike
symbols, number forms, arrows and mathematical operators that clinical notes use
(µ ° ± × ≤ ↑ ⅓ ℃ ✓ ♀); Greek letters too (Δ for diagnosis, β-blocker). A run of letters
that mixes Greek with Latin ("cαrdiac") is a misread, as Unicode's confusable detection
(UTS #39) treats mixed-script words, except for one Greek letter leading Latin ones, the
clinical prefix notation (µg, βhCG, γGT, αFP); "αsthma" therefore passes as written.
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\ufffd"
# A word read with a character outside the script gets at most this confidence: below the
# page's unreadable threshold (kinds.MIN_CONFIDENCE, 50) and reconcile's entry and page
# thresholds (60), like the words Tesseract reads from a scrawl.
OUT_OF_SCRIPT_CONFIDENCE = 25.0

# Unicode blocks (first, last) whose letters are Latin writing, and those whose
# punctuation, numbers and symbols English clinical writing uses.
_LATIN_LETTER_BLOCKS = ((0x0000, 0x024F), (0x1E00, 0x1EFF))  # Basic Latin to Latin Extended-B; Latin Extended Additional
_GREEK = (0x0370, 0x03FF)
_COPTIC_IN_GREEK = (0x03E2, 0x03EF)
_COMMON_BLOCKS = (
    (0x0000, 0x00FF),  # Basic Latin, Latin-1 Supplement (£ ° ± × µ ½ ²)
    (0x2000, 0x206F),  # General Punctuation (– — ‘ ’ “ ” • … ′ ″)
    (0x2070, 0x209F),  # Superscripts and Subscripts
    (0x20A0, 0x20CF),  # Currency Symbols
    (0x2100, 0x214F),  # Letterlike Symbols (℃ № ™)
    (0x2150, 0x218F),  # Number Forms (⅓ Ⅳ)
    (0x2190, 0x21FF),  # Arrows (↑ ↓ →)
    (0x2200, 0x22FF),  # Mathematical Operators (≤ ≥ ≈ −)
)
# Marks clinicians write that Unicode files among the dingbats and miscellaneous symbols:
# ticks and crosses against a checklist, the signs for female and male.
_CLINICAL_MARKS = frozenset("✓✔✗✘♀♂")
_FULLWIDTH = (0xFF01, 0xFF5E)  # the ASCII characters again, at the width of CJK type


def _within(code: int, ranges) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def _letter_script(c: str) -> str | None:
    """'latin', 'greek' or None (another script, or a Latin letter only phoneticians write)."""
    code = ord(c)
    if _within(code, _LATIN_LETTER_BLOCKS):
        return "latin"
    if _GREEK[0] <= code <= _GREEK[1] and not _COPTIC_IN_GREEK[0] <= code <= _COPTIC_IN_GREEK[1]:
        return "greek"
    return None


def in_script(c: str) -> bool:
    """Whether one character can stand in an English Lloyd George record (mixing aside)."""
    category = unicodedata.category(c)
    if category[0] == "C" or category[0] == "M":  # controls, formats, private use, unassigned; lone combining marks
        return c in "\t\n "
    if category[0] == "L":
        return _letter_script(c) is not None
    if category == "Nd":
        return c.isascii()
    return _within(ord(c), _COMMON_BLOCKS) or c in _CLINICAL_MARKS


def certain_latin(c: str) -> str | None:
    """The Latin character `c` certainly stands for, if any: a fullwidth form is the same ASCII
    character set wide. Look-alikes ("①" read for "C/O", "ɑ" for "a") are guesses, so None."""
    if _FULLWIDTH[0] <= ord(c) <= _FULLWIDTH[1]:
        return unicodedata.normalize("NFKC", c)
    return None


def mend(token: str) -> tuple[str, bool]:
    """`token` with every out-of-script character replaced (by its certain Latin reading, else
    U+FFFD), and whether any was. In a run of letters that mixes Latin and Greek (other than
    a one-letter Greek prefix), the Greek letters are the out-of-script ones."""
    token = unicodedata.normalize("NFC", token)
    chars = [c if in_script(c) else (certain_latin(c) or REPLACEMENT) for c in token]
    changed = chars != list(token)
    run: list[int] = []
    for i in range(len(chars) + 1):
        if i < len(chars) and chars[i].isalpha() and chars[i] != REPLACEMENT:
            run.append(i)
            continue
        scripts = {_letter_script(chars[j]) for j in run}
        prefix = len(run) > 1 and _letter_script(chars[run[0]]) == "greek" \
            and all(_letter_script(chars[j]) == "latin" for j in run[1:])
        if scripts == {"latin", "greek"} and not prefix:
            for j in run:
                if _letter_script(chars[j]) == "greek":
                    chars[j] = REPLACEMENT
            changed = True
        run = []
    return "".join(chars), changed


def guarded(token: str, confidence: float) -> tuple[str, float]:
    """The token as it may be stored, and its confidence: lowered to OUT_OF_SCRIPT_CONFIDENCE when
    any character had to be replaced, even by a certain reading (the recogniser was reading
    another script there, so the rest of the word is in doubt too)."""
    text, changed = mend(token)
    return (text, min(confidence, OUT_OF_SCRIPT_CONFIDENCE)) if changed else (text, confidence)
