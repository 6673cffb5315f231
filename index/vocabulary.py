"""Clinical search vocabulary: synonyms, GP shorthand and drug names, kept as data files.

The data lives in index/vocabulary/ (README.md there explains the format and how to extend
it): one concept per line of synonyms.tsv or drugs.tsv, its equivalent forms separated by
tabs, preferred term first; ambiguous.tsv lists abbreviations that are never expanded.
Forms match case-insensitively as whole words or phrases of up to MAX_PHRASE_WORDS words;
symbols such as # and C/O match as written. Pure Python: the search engine asks this module
which spans of a query have other forms, and builds its own query from the answer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FOLDER = Path(__file__).with_name("vocabulary")
CONCEPT_FILES = ("synonyms.tsv", "drugs.tsv")
AMBIGUOUS_FILE = "ambiguous.tsv"
MAX_PHRASE_WORDS = 4
# Punctuation that surrounds words in running text without being part of a form.
_EDGE = "\"'.,;:!?()[]{}\u2018\u2019\u201c\u201d"
# Everyday words that must never be a form: matching is case-insensitive, so "ON" (omni
# nocte) or "AS" (aortic stenosis) would fire on ordinary prose and on query operators.
STOP_FORMS = frozenset(
    "a an and any are as at be but by do for from had has he her his if in is it its no nor "
    "not of on or she so than that the then this to up us was we were who with you".split())
_VOWELS = frozenset("aeiouy")
_SECTION = re.compile(r"#\s*---\s*(.+?)\s*-{3,}\s*$")


class VocabularyError(ValueError):
    """The vocabulary data is malformed; the message names the file and line."""


def words_of(text: str) -> list[str]:
    """Lower-cased words of `text` as the vocabulary compares them (edge punctuation dropped)."""
    return [w for w in (word.strip(_EDGE).casefold() for word in text.split()) if w]


def normalise(text: str) -> str:
    return " ".join(words_of(text))


@dataclass(frozen=True, slots=True)
class Concept:
    forms: tuple[str, ...]  # as written in the data, preferred term first
    where: str  # "synonyms.tsv:12", for messages
    section: str = ""  # the "# --- Heading ---" it is listed under, e.g. "Allergy"; "" before any

    @property
    def preferred(self) -> str:
        return self.forms[0]


def _word_is_abbreviation(word: str) -> bool:
    """Shorthand by its look: #, C/O, T2DM, HTN, ACEi, tds, Rx, Hb, -ve (not single letters)."""
    w = word.strip(_EDGE)
    letters = [c for c in w if c.isalpha()]
    if not letters:
        return bool(w) and not w.replace(".", "").isdigit()
    if w[0] in "+-" or any(not (c.isalnum() or c in "-'") for c in w):
        return True
    if len(letters) >= 2 and any(c.isdigit() for c in w):
        return True
    upper = sum(c.isupper() for c in letters)
    if upper >= 2 and 2 * upper >= len(letters):
        return True
    return len(letters) > 1 and not any(c.casefold() in _VOWELS for c in letters)


# Endings that make a word from a word (ulcer/ulceration, deaf/deafness): not a clipping.
_DERIVATIONS = frozenset("s es ed ing ion tion ation ness ity ive ic al ral red ia ae y ly ous tous "
                         "iform er ers ment ism ist ance ence".split())


def _is_subsequence(short: str, long: str) -> bool:
    chars = iter(long)
    return all(c in chars for c in short)


def _clipped(short: str, long: str, ratio: float = 0.6) -> bool:
    """`short` is cut down from `long` (vacc: vaccine, sats: saturations, R: right)."""
    if not short or short == long or short[0] != long[0] or len(short) > ratio * len(long):
        return False
    if long.startswith(short) and (long[len(short):] in _DERIVATIONS or long[len(short)] == "-"):
        return False
    return _is_subsequence(short, long)


def _shortens(form: str, other: str) -> bool:
    """`form` abbreviates `other` word by word (Flu vacc: flu vaccine, Mech back pain: mechanical
    back pain) or, if it has at most five letters, as a whole (Men C: meningococcal C vaccine)."""
    first = form.split()[0]
    if len(first) > 1 and first.istitle():  # Amoxil, Haldol: names (brands), not clippings
        return False
    a, b = words_of(form), words_of(other)
    if len(a) == len(b):
        return a != b and all(x == y or _clipped(x, y) for x, y in zip(a, b))
    compact = "".join(a)
    return (len(compact) <= 5 and not set(a) <= set(b) and not b[0].startswith(a[0])
            and _clipped(compact, "".join(b), 0.5))


class Vocabulary:
    """Concepts indexed by the normalised text of every form; see the module docstring."""

    def __init__(self, concepts: list[Concept], ambiguous: dict[str, str] | None = None):
        self.concepts = tuple(concepts)
        self.ambiguous = dict(ambiguous or {})  # normalised form -> "file:line"
        self._index: dict[str, int] = {}
        for i, concept in enumerate(self.concepts):
            for form in concept.forms:
                key = normalise(form)
                if key not in self.ambiguous:
                    self._index[key] = i
        self._abbreviations = self._find_abbreviations()

    @classmethod
    def load(cls, folder: str | Path | None = None) -> Vocabulary:
        """The vocabulary in `folder` (default index/vocabulary), validated; cached per folder."""
        return _load(Path(folder or DEFAULT_FOLDER).resolve())

    # --- lookups -------------------------------------------------------------------------

    def _lookup(self, words: list[str], original_last: str = "") -> int | None:
        key = " ".join(words)
        if not key or key in self.ambiguous:
            return None
        if key in self._index:
            return self._index[key]
        # Plurals: "knees", "fractures", and acronyms written "MIs", "UTIs".
        last = words[-1]
        bare = original_last.strip(_EDGE)
        acronym_plural = len(bare) >= 3 and bare.endswith("s") and bare[:-1].isupper()
        if last.endswith("s") and (len(last) >= 5 or acronym_plural):
            singular = " ".join([*words[:-1], last[:-1]])
            i = self._index.get(singular)
            if i is not None and (acronym_plural or not self.is_abbreviation(singular)):
                return i
        return None

    def concept(self, phrase: str) -> Concept | None:
        """The concept `phrase` is a form of, or None (unknown or ambiguous)."""
        parts = phrase.split()
        i = self._lookup(words_of(phrase), parts[-1] if parts else "")
        return None if i is None else self.concepts[i]

    def concept_of_words(self, words: list[str]) -> Concept | None:
        """As `concept`, for words already lower-cased with edge punctuation stripped (`words_of`)."""
        i = self._lookup(words)
        return None if i is None else self.concepts[i]

    def alternatives(self, phrase: str) -> tuple[str, ...]:
        """Every other form of the concept `phrase` is a form of; () if none or ambiguous."""
        concept = self.concept(phrase)
        if concept is None:
            return ()
        key = normalise(phrase)
        return tuple(f for f in concept.forms
                     if normalise(f) != key and normalise(f) not in self.ambiguous)

    def expand_query_terms(self, words: list[str]) -> list[tuple[int, int, tuple[str, ...]]]:
        """Spans (start, end) of `words` that are forms, longest first from the left, with their
        alternatives: ["heart", "attack", "1998"] -> [(0, 2, ("myocardial infarction", "MI", ...))]."""
        normal = [normalise(w) for w in words]
        spans, i = [], 0
        while i < len(words):
            for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                chunk = normal[i:i + n]  # a quoted phrase may arrive as one word
                if all(chunk) and self._lookup(" ".join(chunk).split(), words[i + n - 1]) is not None:
                    phrase = " ".join(words[i:i + n])
                    alternatives = self.alternatives(phrase)
                    if alternatives:
                        spans.append((i, i + n, alternatives))
                        i += n
                        break
            else:
                i += 1
        return spans

    # --- abbreviations ---------------------------------------------------------------------

    def _find_abbreviations(self) -> frozenset[str]:
        return frozenset(
            normalise(form) for concept in self.concepts for form in concept.forms
            if any(_word_is_abbreviation(w) for w in form.split())
            or any(_shortens(form, other) for other in concept.forms))

    def is_abbreviation(self, form: str) -> bool:
        """Whether a form is shorthand (HTN, #, C/O, tds, pen V, Flu vacc) rather than a word or
        name (hypertension, Ventolin). A heuristic on the data, used to label test queries."""
        key = normalise(form)
        return key in self._abbreviations or any(_word_is_abbreviation(w) for w in form.split())


def _read_rows(path: Path) -> list[tuple[int, list[str], str]]:
    """(line number, tab-separated fields, section heading) of each data line."""
    rows, section = [], ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1).strip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rows.append((number, [field.strip() for field in line.split("\t")], section))
    return rows


@functools.lru_cache(maxsize=8)
def _load(folder: Path) -> Vocabulary:
    if not folder.is_dir():
        raise VocabularyError(f"vocabulary folder {folder} does not exist")
    ambiguous: dict[str, str] = {}
    if (folder / AMBIGUOUS_FILE).exists():
        for number, fields, _ in _read_rows(folder / AMBIGUOUS_FILE):
            ambiguous.setdefault(normalise(fields[0]), f"{AMBIGUOUS_FILE}:{number}")
    concepts: list[Concept] = []
    seen: dict[str, str] = {}  # normalised form -> where it was first listed
    for name in CONCEPT_FILES:
        for number, fields, section in _read_rows(folder / name):
            where = f"{name}:{number}"
            if any(not f for f in fields):
                raise VocabularyError(f"{where}: empty form (two tabs together or a trailing tab)")
            if len(fields) < 2:
                raise VocabularyError(f"{where}: '{fields[0]}' has no other form; a concept "
                                      "line needs at least two tab-separated forms")
            keys = set()
            for form in fields:
                key = normalise(form)
                if not key:
                    raise VocabularyError(f"{where}: form '{form}' is only punctuation")
                if len(key.split()) > MAX_PHRASE_WORDS:
                    raise VocabularyError(f"{where}: '{form}' has more than {MAX_PHRASE_WORDS} words")
                if key in STOP_FORMS:
                    raise VocabularyError(f"{where}: '{form}' is an everyday word and would match "
                                          "ordinary text; list it in ambiguous.tsv instead")
                if key in keys:
                    raise VocabularyError(f"{where}: '{form}' is listed twice on the same line")
                keys.add(key)
                if key in seen and key not in ambiguous:
                    raise VocabularyError(
                        f"'{form}' is a form of two concepts: {seen[key]} and {where} "
                        f"('{fields[0]}'). Keep it on one line, or list it in {AMBIGUOUS_FILE} "
                        "so that it is never expanded")
                seen.setdefault(key, f"{where} ('{fields[0]}')")
            concepts.append(Concept(tuple(fields), where, section))
    return Vocabulary(concepts, ambiguous)
