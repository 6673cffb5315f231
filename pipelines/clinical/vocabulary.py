"""Clinical search vocabulary: synonyms, GP shorthand and drug names, kept as data files.

The data lives in pipelines/clinical/vocabulary/ (README.md there explains the format and how to extend
it): one concept per line of synonyms.tsv or drugs.tsv, its equivalent forms separated by
tabs, preferred term first; ambiguous.tsv lists abbreviations that are never expanded.
Forms match case-insensitively as whole words or phrases of up to MAX_PHRASE_WORDS words;
symbols such as # and C/O match as written. Pure Python: the search engine asks this module
which spans of a query have other forms, and builds its own query from the answer.
codes.tsv ties SNOMED CT, Read v2 and CTV3 codes to concepts, so that a coded event of a
patient's record is recognised by its code before its display text (`concepts_of_code`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from .text import EDGE, normalise, words_of

DEFAULT_FOLDER = Path(__file__).with_name("vocabulary")
CONCEPT_FILES = ("synonyms.tsv", "drugs.tsv")
AMBIGUOUS_FILE = "ambiguous.tsv"
CODES_FILE = "codes.tsv"
# The canonical code-system URIs of pipelines/records/systems.py (SNOMED, READ_V2, CTV3).
# index/ must not import pipelines/, so they are repeated here; a test checks they agree.
SNOMED_URI = "http://snomed.info/sct"
READ_V2_URI = "http://read.info/readv2"
CTV3_URI = "http://read.info/ctv3"
CODE_SYSTEMS = {"snomed": SNOMED_URI, "readv2": READ_V2_URI, "ctv3": CTV3_URI}
# A term with one of these words does not state its concept as the patient's present fact
# ("Family history of asthma", "Suspected UTI", "Asthma resolved"): codes.tsv may not map it.
NOT_THE_FACT = re.compile(
    r"(?<![\w-])(family history|fh|suspected|query|no|not|nil|never|resolved|at risk|risk|"
    r"screening|declined|refused|negative|excluded|ruled out|absent|contraindicated|"
    r"contraindication|denies|transfer-degraded)(?![\w-])", re.IGNORECASE)
_READ_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.]{4}")
MAX_PHRASE_WORDS = 4
# Everyday words that must never be a form: matching is case-insensitive, so "ON" (omni
# nocte) or "AS" (aortic stenosis) would fire on ordinary prose and on query operators.
STOP_FORMS = frozenset(
    "a an and any are as at be but by do for from had has he her his if in is it its no nor "
    "not of on or she so than that the then this to up us was we were who with you".split())
_VOWELS = frozenset("aeiouy")
_SECTION = re.compile(r"#\s*---\s*(.+?)\s*-{3,}\s*$")


class VocabularyError(ValueError):
    """The vocabulary data is malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Concept:
    forms: tuple[str, ...]  # as written in the data, preferred term first
    where: str  # "synonyms.tsv:12", for messages
    section: str = ""  # the "# --- Heading ---" it is listed under, e.g. "Allergy"; "" before any

    @property
    def preferred(self) -> str:
        return self.forms[0]


@dataclass(frozen=True, slots=True)
class CodedConcepts:
    """One row of codes.tsv: a code and the concepts it states, with its term and provenance."""

    system: str  # canonical URI, e.g. SNOMED_URI
    code: str  # as normalise_code gives it
    concepts: tuple[Concept, ...]
    term: str  # the code's own description, for the reader
    source: str  # "reference-data:<file>" or "memory"
    where: str  # "codes.tsv:12", for messages


def verhoeff_ok(digits: str) -> bool:
    """True when the last digit is the Verhoeff check digit of the rest, as in every SNOMED CT id."""
    check = 0
    for i, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][int(digit)]]
    return check == 0


# Verhoeff's tables: multiplication in the dihedral group D5, and the position permutation.
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8))


def normalise_code(system: str, code: str) -> str:
    """The code as codes.tsv keys it: trimmed; a Read v2 or CTV3 code as its five characters,
    without a two-digit term id ("H33..00" -> "H33..") and with trailing dots restored ("H33")."""
    code = code.strip()
    if system in (READ_V2_URI, CTV3_URI):
        if len(code) == 7 and code[5:].isdigit():
            code = code[:5]
        if 0 < len(code) < 5:
            code = code.ljust(5, ".")
    return code


def _word_is_abbreviation(word: str) -> bool:
    """Shorthand by its look: #, C/O, T2DM, HTN, ACEi, tds, Rx, Hb, -ve (not single letters)."""
    w = word.strip(EDGE)
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

    def __init__(self, concepts: list[Concept], ambiguous: dict[str, str] | None = None,
                 codes: tuple[CodedConcepts, ...] = ()):
        self.concepts = tuple(concepts)
        self.ambiguous = dict(ambiguous or {})  # normalised form -> "file:line"
        self.codes = tuple(codes)
        self._by_code = {(row.system, row.code): row for row in self.codes}
        self._index: dict[str, int] = {}
        for i, concept in enumerate(self.concepts):
            for form in concept.forms:
                key = normalise(form)
                if key not in self.ambiguous:
                    self._index[key] = i
        self._abbreviations = self._find_abbreviations()

    @classmethod
    def load(cls, folder: str | Path | None = None) -> Vocabulary:
        """The vocabulary in `folder` (default pipelines/clinical/vocabulary), validated; cached per folder."""
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
        bare = original_last.strip(EDGE)
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

    def concepts_of_code(self, system_uri: str, code: str) -> tuple[Concept, ...]:
        """The concepts codes.tsv ties this code to, () when the code is not listed. `system_uri`
        is a canonical URI (SNOMED_URI, READ_V2_URI, CTV3_URI); Read codes may carry a term id."""
        system = system_uri.strip()
        row = self._by_code.get((system, normalise_code(system, code)))
        return row.concepts if row else ()

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
    codes = _load_codes(folder / CODES_FILE, concepts) if (folder / CODES_FILE).exists() else ()
    return Vocabulary(concepts, ambiguous, codes)


def _code_problem(system: str, code: str) -> str:
    """Why `code` cannot be a code of `system` (a canonical URI), or "" if it can."""
    if system == SNOMED_URI:
        if not (code.isdigit() and 6 <= len(code) <= 18 and code[0] != "0"):
            return f"SNOMED CT id '{code}' is not 6 to 18 digits"
        return "" if verhoeff_ok(code) else f"SNOMED CT id '{code}' fails its Verhoeff check digit"
    if not _READ_CODE.fullmatch(code):
        return f"'{code}' is not a five-character Read code"
    return ""


def _load_codes(path: Path, concepts: list[Concept]) -> tuple[CodedConcepts, ...]:
    by_preferred = {concept.preferred: concept for concept in concepts}
    rows: list[CodedConcepts] = []
    seen: dict[tuple[str, str], str] = {}
    for number, fields, _ in _read_rows(path):
        where = f"{CODES_FILE}:{number}"
        if len(fields) != 5 or not all(fields):
            raise VocabularyError(f"{where}: expected five tab-separated fields "
                                  "(system, code, concepts, term, source), none empty")
        name, raw_code, names, term, source = fields
        system = CODE_SYSTEMS.get(name)
        if system is None:
            raise VocabularyError(f"{where}: unknown code system '{name}' "
                                  f"(use {', '.join(CODE_SYSTEMS)})")
        code = normalise_code(system, raw_code)
        problem = _code_problem(system, code)
        if problem:
            raise VocabularyError(f"{where}: {problem}")
        if (system, code) in seen:
            raise VocabularyError(f"{where}: {name} {code} is already listed at {seen[system, code]}")
        seen[system, code] = where
        unknown = [n for n in names.split(" + ") if n.strip() not in by_preferred]
        if unknown:
            raise VocabularyError(f"{where}: '{unknown[0].strip()}' is not the preferred term (first "
                                  "form) of any line of synonyms.tsv or drugs.tsv")
        cue = NOT_THE_FACT.search(term)
        if cue:
            raise VocabularyError(f"{where}: the term '{term}' says '{cue.group(0)}', so the code does "
                                  "not state its concept as a present fact; leave it out")
        if source != "memory" and not (source.startswith("reference-data:") and source[15:]):
            raise VocabularyError(f"{where}: source must be 'memory' or 'reference-data:<file>'")
        rows.append(CodedConcepts(system, code, tuple(by_preferred[n.strip()] for n in names.split(" + ")),
                                  term, source, where))
    return tuple(rows)
