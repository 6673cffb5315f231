"""Evidence: which coded events cover which facts of a paper entry, and the entry's status with its reason.

A coded event is recognised by its code first (pipelines/clinical/vocabulary/codes.tsv) and its display
text second; an event whose code and display name different concepts, or whose terms say
the fact is absent, doubtful or someone else's, covers nothing. A fact is covered by an event
of the same concept, a compatible type (an allergen only by a coded allergy), a compatible
date (the entry's, or one written in the fact's sentence; a letter's facts also at its
receipt) and, for a reading, the same value. An entry is covered only when every fact is and
every other word is accounted for (reading.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from .coded import CodedFact, date_text
from .reading import Mention, Reader, Reading, Role
from .text import EDGE, normalise
from .units import coded_values, same_unit
from .vocabulary import MAX_PHRASE_WORDS

# Coded events that mark content which did not travel electronically: never coverage.
NOT_COVERAGE = frozenset({"degraded", "absent_attachment", "not_given", "uncertain"})
# Words of a coded term that say it is not a present fact of this patient (besides the cues).
CODED_EXCLUSIONS = frozenset({"screening", "declined", "refused", "contraindicated", "contraindication",
                              "resolved", "history", "h/o", "risk", "expected", "planned", "requested"})
# Cue words that in a coded term's product name do not negate it: "Salbutamol inhaler CFC free".
CODED_NOT_CUES = frozenset({"free"})
_TYPES_FOR = {
    "allergy": frozenset({"allergy"}),
    "medication": frozenset({"medication"}),
    "immunisation": frozenset({"immunisation", "procedure", "observation", "other"}),
}
# Plans are intentions and narrative events free text, so neither states a fact; a
# medication event states a drug, not the condition it treats.
_ANY_BUT_ALLERGY = frozenset({"problem", "observation", "procedure", "referral", "encounter", "other", "immunisation"})
_VOUCHING_TYPES = _ANY_BUT_ALLERGY | {"allergy", "medication"}
# A letter is typed days or weeks after the visit it reports, and coded when it arrives.
LETTER_RECEIPT_DAYS = 42
# A slip carries sample, received and reported dates a few days apart and OCR may miss one; a
# result row, which must also match analyte and value, may be coded up to this many days away.
RESULT_DAYS = 7
_VALUE = re.compile(r"value:\s*([^;]+)", re.I)
# What a coded allergy records the patient had ("reaction: Vomiting", from FHIR reaction.manifestation).
_REACTION = re.compile(r"reaction:\s*([^;]+)", re.I)
_NUM = re.compile(r"\d+(?:\.\d+)?")


class EntryStatus(StrEnum):
    covered = "covered"
    paper_only = "paper-only"
    uncertain = "uncertain"


class EntryReason(StrEnum):
    """Why an entry has its status; the sentence is rendered at the edge (`why`)."""

    all_covered = "all_covered"
    no_clinical_content = "no_clinical_content"  # every word accounted for, none a fact
    not_coded = "not_coded"
    qualified = "qualified"  # a fact under negation, doubt or someone else's history
    no_date = "no_date"
    low_confidence = "low_confidence"
    unaccounted = "unaccounted"


@dataclass(frozen=True, slots=True)
class PaperEntry:
    """A dated entry as digitise found it on a page."""

    date: dt.date | None
    precision: str  # day|month|year: how much of `date` the paper gave
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """One coded event that covers one fact of an entry, and how the match was made."""

    fact: str
    written: str
    event: CodedFact
    how: str  # code | term | synonym, "+ocr" when the paper word was read through an OCR confusion
    date_match: str
    score: float

    def to_json(self) -> dict[str, object]:
        e = self.event
        return {
            "fact": self.fact, "written": self.written, "system": e.system, "code": e.code,
            "display": e.display, "date": date_text(e.date, e.precision), "date_precision": e.precision,
            "date_match": self.date_match, "how": self.how, "score": round(self.score, 3),
        }


@dataclass(frozen=True, slots=True)
class EntryFinding:
    entry: PaperEntry
    status: EntryStatus
    reason: EntryReason
    evidence: tuple[Evidence, ...] = ()
    uncovered: tuple[str, ...] = ()  # facts with no coded counterpart (or qualified ones)
    unaccounted: tuple[tuple[str, str], ...] = ()  # (word, role) nothing accounts for
    min_confidence: float = 0.0

    @property
    def why(self) -> str:
        """One line a clinician can read."""
        r = self.reason
        if r is EntryReason.all_covered:
            return f"{len(self.evidence)} fact(s) found in the coded record"
        if r is EntryReason.no_clinical_content:
            if self.status is EntryStatus.covered:
                return "no clinical fact: every word is narrative, shorthand, a name or an address"
            return "no clinical fact recognised in a card entry: it may not have been read"
        if r is EntryReason.not_coded:
            return "not in the coded record: " + ", ".join(dict.fromkeys(self.uncovered))
        if r is EntryReason.qualified:
            return "negated, doubtful or someone else's: " + ", ".join(dict.fromkeys(self.uncovered))
        if r is EntryReason.no_date:
            return "the entry's date could not be read"
        if r is EntryReason.low_confidence:
            return f"OCR confidence {self.entry.confidence:.0f} is below {self.min_confidence:.0f}"
        words = ", ".join(dict.fromkeys(f"{w} ({role})" for w, role in self.unaccounted[:6]))
        return f"words not accounted for: {words}"


@dataclass(frozen=True, slots=True)
class _Indexed:
    event: CodedFact
    how: str  # code | term
    forms: frozenset[str]  # words of the event's terms, to vouch for qualifiers the code also says
    values: tuple[str, ...]
    units: tuple[str, ...] = ()  # the unit of each value, "" when none is recorded


class CodedIndex:
    """A coded record's usable events, by the concepts their codes and terms name."""

    def __init__(self, events: tuple[CodedFact, ...], reader: Reader) -> None:
        self.by_concept: dict[int, list[_Indexed]] = defaultdict(list)
        self.usable: list[_Indexed] = []  # every event that may cover, named concepts or not (vouching)
        self.usable_by_year: dict[int, list[_Indexed]] = defaultdict(list)
        self.reactions: dict[int, frozenset[int]] = {}  # id(event) -> the concepts it records as a reaction
        self.excluded = 0
        self.conflicting = 0
        cues = (reader.lexicon.lists.cues - CODED_NOT_CUES) | CODED_EXCLUSIONS
        for event in events:
            terms = [t for t in (event.display, *(c.display for c in event.translations)) if t]
            if NOT_COVERAGE.intersection(event.flags) or event.date is None \
                    or any(_says_any(t, cues) for t in [*terms, _without_value(event.text)] if t):
                self.excluded += 1
                continue
            by_code = self._by_code(event, reader)
            by_term: set[int] = set()
            for term in terms + [_without_value(event.text)]:
                by_term |= concepts_named(term, reader)
            # A reaction is not what the event states (an allergy to penicillin, not a rash), so it
            # is neither matched as the event's concept nor a reason to call code and words at odds.
            reactions = frozenset().union(*(concepts_named(r, reader) for r in _REACTION.findall(event.text or "")))
            if by_code and by_term and not by_code & by_term:
                self.conflicting += 1  # the code and the words disagree: trust neither
                continue
            forms = frozenset(w.strip(EDGE).casefold() for t in terms + [event.text] for w in t.split())
            recorded = coded_values(event.text or "")
            values, units = tuple(v for v, _ in recorded), tuple(u for _, u in recorded)
            self.usable.append(_Indexed(event, "term", forms, values, units))
            self.usable_by_year[event.date.year].append(self.usable[-1])
            if reactions:
                self.reactions[id(event)] = reactions
            for concept in by_code:
                self.by_concept[concept].append(_Indexed(event, "code", forms, values, units))
            for concept in by_term - by_code:
                self.by_concept[concept].append(_Indexed(event, "term", forms, values, units))

    @staticmethod
    def _by_code(event: CodedFact, reader: Reader) -> set[int]:
        found: set[int] = set()
        for system, code in [(event.system, event.code), *((c.system, c.code) for c in event.translations)]:
            found |= {reader.position[id(c)] for c in reader.vocabulary.concepts_of_code(system, code)}
        return found


def _without_value(text: str) -> str:
    """An event's own words: its text without the readings and reactions recorded with it."""
    return _REACTION.sub("", _VALUE.sub("", text or ""))


def _says_any(term: str, cues: frozenset[str]) -> bool:
    words = [w.strip(EDGE).casefold() or w for w in term.split()]
    padded = f" {' '.join(words)} "
    return any(w in cues for w in words) or "?" in term or " family history " in padded


def concepts_named(text: str, reader: Reader) -> set[int]:
    """Every fact concept any phrase of a coded term names, nested ones included.

    A coded "Fracture of wrist" states a fracture as well as a fracture of the wrist, so it
    covers a paper "#"; the reverse does not hold, because paper is read longest-first.
    """
    words = [w.strip(EDGE).casefold() for w in text.split() if w.strip(EDGE)]
    found: set[int] = set()
    joining = {"and", "of", "the", "with", "in", "-"}
    for variant in (words, [w for w in words if w not in joining]):
        for i in range(len(variant)):
            for n in range(1, min(MAX_PHRASE_WORDS, len(variant) - i) + 1):
                concept = reader.vocabulary.concept_of_words(variant[i:i + n])
                if concept is not None and reader.is_fact(concept):
                    found.add(reader.position[id(concept)])
    return found


def _date_fits(paper: dt.date, precision: str, event: CodedFact, receipt: bool) -> tuple[str, float] | None:
    coded, cp = event.date, event.precision
    if coded is None:
        return None
    if precision == "year" and coded.year == paper.year:
        return "year (paper)", 0.8
    if precision == "month" and (coded.year, coded.month) == (paper.year, paper.month):
        return "month (paper)", 0.9
    if cp == "day" and coded == paper:
        return "day", 1.0
    if cp == "month" and (coded.year, coded.month) == (paper.year, paper.month):
        return "month", 0.9
    if cp == "year" and coded.year == paper.year:
        return "year", 0.8
    # Summarised records often date a fact 1 January of its year when only the year was known.
    if cp == "day" and (coded.month, coded.day) == (1, 1) and coded.year == paper.year:
        return "year (1 January)", 0.75
    if receipt and cp == "day" and 0 <= (coded - paper).days <= LETTER_RECEIPT_DAYS:
        return "letter received", 0.8
    return None


def _same_values(paper: tuple[str, ...], coded: tuple[str, ...]) -> bool:
    want = [n for v in paper for n in _NUM.findall(v)]
    return bool(want) and all(any(float(n) == float(c) for c in coded) for n in want)


def _same_units(paper: tuple[str, ...], coded: tuple[str, ...], result: bool) -> bool:
    """Whether the paper's units say what the coded value's unit says.

    A unit written on both must be the same unit. A result row and its coded result must both
    show a unit or neither: a row whose unit was not read cannot be told from one in another
    unit, and a coded value without one cannot say which it was.
    """
    recorded = [u for u in coded if u]
    if result and bool(recorded) != bool(paper):
        return False
    return all(any(same_unit(p, c) for c in recorded) for p in paper) if recorded else True


def _best(m: Mention, entry: PaperEntry, reading: Reading, index: CodedIndex, letter: bool,
          result: bool = False) -> Evidence | None:
    types = _TYPES_FOR["allergy"] if m.allergen else _TYPES_FOR.get(m.kind, _ANY_BUT_ALLERGY)
    if result:  # a row of a laboratory report is a result, whatever else its word can mean (folate, calcium)
        if not m.values:
            return None
        types = frozenset({"observation"})
    when = [(entry.date, entry.precision, letter)] if entry.date else []
    written = reading.narrative_date(m.sentence) if letter else reading.sentence_dates(m.sentence)
    when += [(d, p, False) for d, p in written]
    best: Evidence | None = None
    for item in index.by_concept.get(m.concept, ()):
        if item.event.type not in types:
            continue
        if m.values and not (_same_values(m.values, item.values) and _same_units(m.units, item.units, result)):
            continue
        fits = [f for d, p, receipt in when if (f := _date_fits(d, p, item.event, receipt)) is not None]
        if result and not fits and entry.date and item.event.precision == "day" \
                and abs((item.event.date - entry.date).days) <= RESULT_DAYS:
            fits = [("within a week of the slip, same value", 0.85)]
        if not fits:
            continue
        label, weight = max(fits, key=lambda f: f[1])
        written = " ".join(m.written.casefold().split())
        how = item.how if item.how == "code" else ("term" if written in " ".join(item.forms) else "synonym")
        score = weight * (0.85 if m.ocr else 1.0)
        if best is None or score > best.score:
            best = Evidence(m.preferred, m.written, item.event, how + ("+ocr" if m.ocr else ""), label, score)
    return best


def _vouched_sentences(left: list[tuple[int, Role]], entry: PaperEntry, reading: Reading, reader: Reader,
                       index: CodedIndex, letter: bool) -> tuple[set[int], list[Evidence]]:
    """Sentences whose leftover words one coded term of a fitting date says, whole ("Vitiligo." against "Vitiligo").

    Terms outside the vocabulary (most of SNOMED) name no concept, so their paper words would
    stay unaccounted for ever. A sentence's leftover words are vouched for only all together and
    only by one event that also says the sentence's narrative words: "breast lump" is not vouched
    for by a "Breast pain" and a "Lump in groin" of the same day. A cue (no, ?, FH) is never vouched for, and events whose terms say absent,
    doubtful or someone else's are not in the index at all (H25, H48).
    """
    by_sentence: dict[int, list[int]] = defaultdict(list)
    for i, role in left:
        by_sentence[reading.tokens[i].sentence].append(i)
    vouched: set[int] = set()
    found: list[Evidence] = []
    function_words = reader.lexicon.lists.function_words
    for sentence, indices in by_sentence.items():
        # Its narrative words too: "Lyme" is a place in the dictionary, "Lyme disease" is not "Coeliac disease".
        said_by_sentence = indices + [i for i, t in enumerate(reading.tokens) if t.sentence == sentence
                                      and reading.roles[i] is Role.narrative and t.word not in function_words]
        words = {reading.tokens[i].word for i in said_by_sentence}
        if any(reading.roles[i] is Role.cue for i in indices) or not any(w.isalpha() and len(w) >= 3 for w in words):
            continue
        when = [(entry.date, entry.precision, letter)] if entry.date else []
        written = reading.narrative_date(sentence) if letter else reading.sentence_dates(sentence)
        when += [(d, p, False) for d, p in written]
        # Every fitting date is in the paper date's year, or up to 42 days after it (a letter's receipt).
        years = sorted({y for d, _, _ in when for y in (d.year, d.year + 1)})
        for item in (item for y in years for item in index.usable_by_year.get(y, ())):
            if item.event.type not in _VOUCHING_TYPES or not words <= item.forms:
                continue
            fits = [f for d, p, receipt in when if (f := _date_fits(d, p, item.event, receipt)) is not None]
            if fits:
                label, weight = max(fits, key=lambda f: f[1])
                said_here = " ".join(reading.tokens[i].raw.strip(EDGE) for i in indices)
                found.append(Evidence(said_here, said_here, item.event, "coded term says the sentence", label, weight))
                vouched.update(indices)
                break
    return vouched, found


def _reaction(m: Mention, evidence: list[Evidence], index: CodedIndex) -> Evidence | None:
    """A reaction ("allergic to penicillin - rash") is covered only if the coded allergy itself records it.

    Recorded as its reaction ("reaction: Rash", FHIR reaction.manifestation) or in its own words.
    """
    for e in evidence:
        if e.event.type != "allergy":
            continue
        if m.concept in index.reactions.get(id(e.event), ()) \
                or any(item.event is e.event for item in index.by_concept.get(m.concept, ())):
            return Evidence(m.preferred, m.written, e.event, "reaction recorded with the allergy", e.date_match,
                            e.score)
    return None


def assess(entry: PaperEntry, reader: Reader, index: CodedIndex, *, min_confidence: float,
           names: tuple[str, ...] = (), letter: bool = False, factless_ok: bool = False,
           result: bool = False, printed: frozenset[str] = frozenset(),
           requests_covered: bool = False, requested: frozenset[str] = frozenset(), prose: bool = True) -> EntryFinding:
    """The status of one paper entry against the coded record, with its evidence.

    `factless_ok`: an entry whose every word is accounted for but names no fact may be
    covered (a letterhead, a sign-off). Not on cards: a card entry records a consultation,
    so reading no fact in one means it was not read. `result`: the entry is a row of a
    laboratory report, covered only by a coded result of the same analyte, date and value;
    `printed`: the words of the form the entry is written on; `requests_covered`: on a result slip
    with a covered row, a panel named without a value (FBC, U&E on the request line) adds no fact;
    `requested`: analytes whose rows on the slip are covered, so their names on the request line
    above the table ("Request: Ferritin and ESR") add nothing either; `prose`: typed prose (a letter,
    a slip), not a card entry, whose every English word is read as carrying a fact (Reader.read).
    """
    reading = reader.read(entry.text, names=names, printed=printed, row=result, prose=prose)
    evidence, uncovered, qualified = [], [], []
    for m in reading.mentions:
        if m.qualified:
            qualified.append(m.preferred)
            continue
        found = _best(m, entry, reading, index, letter, result) or _reaction(m, evidence, index)
        if found is None and result and not m.values and (requests_covered and normalise(m.preferred)
                                                          in reader.lexicon.lists.panels or m.preferred in requested):
            continue  # a panel or analyte named on the request line: its results are the slip's rows, judged one by one
        if found is None:
            uncovered.append(m.preferred)
        else:
            evidence.append(found)
    # A word the covering coded term also says ("# R wrist" against "Fracture of wrist") is vouched for.
    said = {w for e in evidence for t in (e.event.display, e.event.text) for w in
            (x.strip(EDGE).casefold() for x in t.split())}
    left = [(i, role) for i, role in reading.unaccounted()
            if not (role in (Role.loaded, Role.medical) and reading.tokens[i].word in said)]
    vouched, by_term = _vouched_sentences(left, entry, reading, reader, index, letter)
    evidence += by_term
    unaccounted = tuple((reading.tokens[i].raw.strip(EDGE), role.value) for i, role in left if i not in vouched)
    common = dict(evidence=tuple(evidence), unaccounted=unaccounted, min_confidence=min_confidence)
    trusted = entry.confidence >= min_confidence
    if entry.date is None:
        return EntryFinding(entry, EntryStatus.uncertain, EntryReason.no_date, uncovered=tuple(uncovered), **common)
    if not trusted:
        return EntryFinding(entry, EntryStatus.uncertain, EntryReason.low_confidence, uncovered=tuple(uncovered),
                            **common)
    if uncovered:
        return EntryFinding(entry, EntryStatus.paper_only, EntryReason.not_coded,
                            uncovered=tuple(uncovered + qualified), **common)
    if qualified:
        return EntryFinding(entry, EntryStatus.paper_only, EntryReason.qualified, uncovered=tuple(qualified), **common)
    if unaccounted:
        return EntryFinding(entry, EntryStatus.uncertain, EntryReason.unaccounted, **common)
    if not evidence:
        status = EntryStatus.covered if factless_ok else EntryStatus.uncertain
        return EntryFinding(entry, status, EntryReason.no_clinical_content, **common)
    return EntryFinding(entry, EntryStatus.covered, EntryReason.all_covered, **common)
