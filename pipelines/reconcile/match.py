"""Is a paper entry already in the coded record? Concept by concept, at a compatible date.

Pure functions over plain data: the coded record is indexed once by concept, then each
entry's facts look for an event of the same concept, of a compatible type, at a compatible
date. An entry is `covered` only when every fact is; `paper-only` when a fact, read with
confidence, has no coded counterpart; `uncertain` whenever the reading itself cannot be
trusted (no date, low OCR confidence, no fact recognised, or words nobody can vouch for).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from pipelines.records.model import CodedEvent, date_text

from .facts import FactReader, Mention, Reading
from .settings import Settings

Status = Literal["covered", "paper-only", "uncertain"]
# Coded events that mark content which did not travel electronically: never coverage.
NOT_COVERAGE = frozenset({"degraded", "absent_attachment", "not_given", "uncertain"})
# Which coded event types may hold each kind of paper fact. An allergy is only covered by a
# coded allergy, and a coded allergy covers nothing else: confusing "penicillin allergy"
# with "penicillin prescribed" either way would lose the allergy or invent one.
_TYPES_FOR = {
    "allergy": frozenset({"allergy"}),
    "medication": frozenset({"medication"}),
    "immunisation": frozenset({"immunisation", "procedure", "observation", "other"}),
}
_ANY_BUT_ALLERGY = frozenset({"problem", "observation", "procedure", "referral", "plan", "narrative",
                              "encounter", "other", "immunisation", "medication"})


@dataclass(frozen=True, slots=True)
class PaperEntry:
    """A dated entry as the catalogue holds it, reduced to what matching needs."""

    date: dt.date | None
    precision: str  # day|month|year: how much of `date` the paper gave
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """One coded event that covers one fact of an entry, and how the match was made."""

    fact: str  # the concept's preferred term
    written: str  # the words on paper
    event: CodedEvent
    how: str  # "term" or "synonym", "+ocr" when the paper word was a misreading
    date_match: str  # day | month | year | year (1 January) | year written in entry
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
    status: Status
    why: str  # one line a clinician can read
    evidence: tuple[Evidence, ...] = ()
    uncovered: tuple[str, ...] = ()  # facts with no coded counterpart


@dataclass(frozen=True, slots=True)
class _Indexed:
    event: CodedEvent
    forms: frozenset[str]  # normalised words of the event's terms, to tell "term" from "synonym"


class CodedIndex:
    """A coded record's usable events, by the concepts their terms name."""

    def __init__(self, events: tuple[CodedEvent, ...], reader: FactReader) -> None:
        self.by_concept: dict[int, list[_Indexed]] = defaultdict(list)
        self.excluded = 0
        for event in events:
            terms = [event.display, event.text, *(c.display for c in event.translations)]
            if NOT_COVERAGE.intersection(event.flags) or event.date is None \
                    or any(reader.rules.excludes(t) for t in terms if t):
                self.excluded += 1
                continue
            seen: set[int] = set()
            forms = frozenset(" ".join(t.casefold().split()) for t in terms if t)
            for term in terms:
                if term:
                    seen = seen | reader.concepts_named(term)
            for concept in seen:
                self.by_concept[concept].append(_Indexed(event, forms))


def _date_match(entry: PaperEntry, years: tuple[int, ...], event: CodedEvent) -> tuple[str, float] | None:
    """How the coded date fits the paper date, with a weight; None if it does not."""
    paper, coded, precision = entry.date, event.date, event.precision
    if paper is None or coded is None:
        return None
    if entry.precision == "year" and coded.year == paper.year:
        return "year (paper)", 0.8
    if entry.precision == "month" and (coded.year, coded.month) == (paper.year, paper.month):
        return "month (paper)", 0.9
    if precision == "day" and coded == paper:
        return "day", 1.0
    if precision == "month" and (coded.year, coded.month) == (paper.year, paper.month):
        return "month", 0.9
    if precision == "year" and coded.year == paper.year:
        return "year", 0.8
    # Summarised records often date a fact 1 January of its year when only the year was known.
    if precision == "day" and (coded.month, coded.day) == (1, 1) and coded.year == paper.year:
        return "year (1 January)", 0.75
    if coded.year in years:  # "Tonsillectomy 1948 (hosp letter)" is coded in 1948
        return "year written in entry", 0.7
    return None


def _types_for(fact: Mention, reading: Reading) -> frozenset[str]:
    if reading.allergen(fact):
        return _TYPES_FOR["allergy"]
    return _TYPES_FOR.get(fact.kind, _ANY_BUT_ALLERGY)


def _best(fact: Mention, entry: PaperEntry, reading: Reading, index: CodedIndex) -> Evidence | None:
    types = _types_for(fact, reading)
    best: Evidence | None = None
    for item in index.by_concept.get(fact.concept, ()):
        if item.event.type not in types:
            continue
        fit = _date_match(entry, reading.years, item.event)
        if fit is None:
            continue
        written = " ".join(fact.written.casefold().split())
        how = "term" if any(written == f or written in f.split() for f in item.forms) else "synonym"
        score = fit[1] * (1.0 if how == "term" else 0.95) * (0.85 if fact.ocr else 1.0)
        if fact.ocr:
            how += "+ocr"
        if best is None or score > best.score:
            best = Evidence(fact.preferred, fact.written, item.event, how, fit[0], score)
    return best


def _broader(fact: Mention, entry: PaperEntry, reading: Reading, index: CodedIndex, reader: FactReader) -> Evidence | None:
    """Coverage of "itchy rash" by a coded rash: the fact with its descriptor words dropped, if all of it is coded."""
    words = fact.written.split()
    kept = [w for w in words if w.strip(".,;:()").casefold() not in reader.rules.descriptors]
    if len(kept) == len(words) or not kept:
        return None
    heads = reader.read(" ".join(kept), fuzzy=False).facts
    found = [_best(dataclasses.replace(h, sentence=fact.sentence), entry, reading, index) for h in heads]
    if not heads or any(f is None for f in found):
        return None
    best = max(found, key=lambda e: e.score)
    dropped = " ".join(w for w in words if w not in kept)
    return dataclasses.replace(best, fact=fact.preferred, written=fact.written, how=f"{best.how}, broader ({dropped} dropped)",
                               score=best.score * 0.9)


def assess(entry: PaperEntry, index: CodedIndex, reader: FactReader, settings: Settings,
           ignore: tuple[str, ...] = ()) -> EntryFinding:
    """Decide whether one paper entry is covered by the coded record; see the module docstring."""
    reading = reader.read(entry.text, ignore=ignore)
    # The reaction (rash, wheeze) belongs to its allergy: a coded allergy carries it.
    facts = tuple(f for f in reading.facts if not reading.reaction(f))
    evidence, uncovered = [], []
    for fact in facts:
        found = _best(fact, entry, reading, index) or _broader(fact, entry, reading, index, reader)
        if found is None:
            uncovered.append(fact.preferred)
        else:
            evidence.append(found)
    trusted = entry.confidence >= settings.entry_min_confidence
    if uncovered and trusted and entry.date is not None:
        return EntryFinding(entry, "paper-only", "not in the coded record: " + ", ".join(dict.fromkeys(uncovered)),
                            tuple(evidence), tuple(uncovered))
    if entry.date is None:
        return EntryFinding(entry, "uncertain", "the entry's date could not be read", tuple(evidence))
    if not trusted:
        return EntryFinding(entry, "uncertain", f"OCR confidence {entry.confidence:.0f} is below "
                            f"{settings.entry_min_confidence:.0f}", tuple(evidence), tuple(uncovered))
    if not facts:
        return EntryFinding(entry, "uncertain", "no clinical fact recognised")
    # A qualifier the coded term also says ("# R wrist" against "Fracture of wrist") is vouched for.
    said = {w.strip(".,;:()").casefold() for e in evidence for t in (e.event.display, e.event.text) for w in t.split()}
    unexplained = [w for w in reading.unexplained if w.casefold() not in said]
    if unexplained:
        words = ", ".join(dict.fromkeys(unexplained[:6]))
        return EntryFinding(entry, "uncertain", f"words not understood: {words}", tuple(evidence))
    return EntryFinding(entry, "covered", f"{len(evidence)} fact(s) found in the coded record", tuple(evidence))
