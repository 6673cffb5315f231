"""Reading the clinical facts out of a paper entry or a coded event's text, with the shared vocabulary.

A *fact* is a mention of a vocabulary concept that records something clinical (a diagnosis,
symptom, drug, allergy, procedure, immunisation or observation), as opposed to how the note
was written (C/O, Rx, r/v, bd). Words that are neither a fact nor listed as incidental in
rules.toml are *unexplained*: reconciliation cannot vouch for them, so their entry is sent.

OCR misreads ("thycoxine", "feccous") are matched to a concept only when one vocabulary form
is within a small edit distance after folding the letters Tesseract confuses, and no other
form is as close; such matches are marked `ocr` so the evidence says so.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from index.fulltext import fold
from index.vocabulary import MAX_PHRASE_WORDS, Concept, Vocabulary, normalise

Kind = Literal["condition", "medication", "allergy", "immunisation", "procedure", "observation"]
RULES_FILE = Path(__file__).with_name("rules.toml")
FUZZY_MIN_LENGTH = 5  # shorter words have too many neighbours one edit away
# Sentence ends and clause openers that close an examination clause ("O/E chest clr. Rx ...").
_CLAUSE_END = re.compile(r"[.;]$")
_SENTENCE_END = re.compile(r"[.;!?]$")
_EDGE = "\"'.,;:!?()[]{}\u2018\u2019\u201c\u201d-\u2014\u2013*"
_JOINING = frozenset({"and", "of", "the", "with", "in", "-"})
_YEAR = re.compile(r"^(19\d\d|20[0-3]\d)$")
_SECTION_KINDS: dict[str, Kind] = {
    "Allergy": "allergy",
    "Immunisation": "immunisation",
    "Procedures": "procedure",
    "Observations and investigations": "observation",
}


@dataclass(frozen=True, slots=True)
class Rules:
    """rules.toml, read once: what may be left without a code of its own."""

    incidental_sections: frozenset[str]
    fact_concepts: frozenset[str]
    allergy_cues: frozenset[str]
    examination_cues: frozenset[str]
    words: frozenset[str]
    coded_exclusions: frozenset[str] = frozenset()
    descriptors: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> Rules:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return cls(
            frozenset(data["incidental_sections"]),
            frozenset(normalise(t) for t in data["fact_concepts"]),
            frozenset(data["allergy_cues"]),
            frozenset(normalise(t) for t in data["examination_cues"]),
            frozenset(w.casefold() for w in data["words"].split() + data.get("sites", "").split()),
            frozenset(t.casefold() for t in data.get("coded_exclusions", ())),
            frozenset(t.casefold() for t in data.get("descriptors", ())),
        )

    def excludes(self, term: str) -> bool:
        """Whether a coded term says its fact is not the patient's, absent or uncertain."""
        words = [w.strip(_EDGE).casefold() or w for w in term.split()]
        padded = f" {' '.join(words)} "
        return any(f" {cue} " in padded for cue in self.coded_exclusions)


@dataclass(frozen=True, slots=True)
class Mention:
    """One fact found in a text: which concept, the words as written, and how it was recognised."""

    concept: int  # index into Vocabulary.concepts
    preferred: str
    kind: Kind
    written: str
    ocr: bool = False  # recognised despite an OCR misreading
    sentence: int = 0  # which sentence of the text it is in (split at . ; ! ?)
    after_allergy_cue: bool = False  # an allergy word came earlier in the same sentence


@dataclass(frozen=True, slots=True)
class Reading:
    """What a text says: its facts, words nobody could vouch for, and the years it mentions."""

    facts: tuple[Mention, ...]
    unexplained: tuple[str, ...]
    years: tuple[int, ...]
    allergy_sentences: frozenset[int] = frozenset()  # sentences that name an allergy

    @property
    def allergy(self) -> bool:
        return bool(self.allergy_sentences)

    def allergen(self, fact: Mention) -> bool:
        """A drug or allergy named in a sentence about an allergy: only a coded allergy covers it."""
        return fact.kind in ("medication", "allergy") and fact.sentence in self.allergy_sentences

    def reaction(self, fact: Mention) -> bool:
        """A condition after the allergy word in its sentence ("allergic to X - rash"): part of the allergy."""
        return fact.kind == "condition" and fact.after_allergy_cue and any(
            self.allergen(f) for f in self.facts if f.sentence == fact.sentence)


def kind_of(concept: Concept) -> Kind:
    if concept.where.startswith("drugs.tsv") or concept.section == "Drug classes":
        return "medication"
    return _SECTION_KINDS.get(concept.section, "condition")


class FactReader:
    """Finds facts in texts; build once per vocabulary (it indexes every form for OCR matching)."""

    def __init__(self, vocabulary: Vocabulary, rules: Rules) -> None:
        self.vocabulary = vocabulary
        self.rules = rules
        self._position = {id(c): i for i, c in enumerate(vocabulary.concepts)}
        # One-word forms long enough to match fuzzily, folded the way OCR confuses letters.
        folded: dict[str, set[int]] = {}
        for i, concept in enumerate(vocabulary.concepts):
            for form in concept.forms:
                key = normalise(form)
                if " " not in key and len(key) >= FUZZY_MIN_LENGTH and key not in vocabulary.ambiguous:
                    folded.setdefault(fold(key), set()).add(i)
        self._named: dict[str, frozenset[int]] = {}
        self._folded_keys = list(folded)
        self._slash_shorthand = frozenset(
            key for c in vocabulary.concepts if self.is_incidental(c)
            for key in map(normalise, c.forms) if len(key) == 3 and key[1] == "/")
        self._folded = folded

    # -- concepts -----------------------------------------------------------------------

    def is_incidental(self, concept: Concept) -> bool:
        return concept.section in self.rules.incidental_sections and \
            normalise(concept.preferred) not in self.rules.fact_concepts

    def _exact(self, words: list[str], i: int) -> tuple[int, Concept] | None:
        """The longest phrase starting at word i that is a vocabulary form: (length, concept)."""
        for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
            concept = self.vocabulary.concept(" ".join(words[i:i + n]))
            if concept is not None:
                return n, concept
        return None

    def _fuzzy(self, word: str) -> Concept | None:
        """The one concept whose form is a near miss of `word` after OCR folding, if unambiguous."""
        key = fold(normalise(word))
        if len(key) < FUZZY_MIN_LENGTH or not key.isalpha():
            return None
        limit = 1 if len(key) < 8 else 2
        hits = process.extract(key, self._folded_keys, scorer=Levenshtein.distance, score_cutoff=limit, limit=4)
        if not hits:
            return None
        best = min(d for _, d, _ in hits)
        concepts = set().union(*(self._folded[k] for k, d, _ in hits if d == best))
        return self.vocabulary.concepts[concepts.pop()] if len(concepts) == 1 else None

    def concepts_named(self, text: str) -> set[int]:
        """Every clinical concept any phrase of `text` names, nested ones included.

        A coded "Fracture of wrist" states a fracture as well as a fracture of the wrist, so it
        covers a paper "#"; the reverse does not hold, because paper is read longest-first.
        """
        cached = self._named.get(text)
        if cached is not None:
            return cached
        words = [w.strip(_EDGE).casefold() for w in text.split() if w.strip(_EDGE)]
        found: set[int] = set()
        # Coded terms are formal ("Measles, mumps and rubella vaccination"): read them also
        # without their joining words, so the phrase fits the vocabulary's four-word forms.
        for variant in (words, [w for w in words if w not in _JOINING]):
            for i in range(len(variant)):
                for n in range(1, min(MAX_PHRASE_WORDS, len(variant) - i) + 1):
                    concept = self.vocabulary.concept_of_words(variant[i:i + n])
                    if concept is not None and not self.is_incidental(concept):
                        found.add(self._position[id(concept)])
        if len(self._named) < 100_000:  # records repeat their terms (every issue of a drug)
            self._named[text] = frozenset(found)
        return found

    # -- reading ------------------------------------------------------------------------

    def read(self, text: str, *, ignore: Iterable[str] = (), fuzzy: bool = True) -> Reading:
        """The facts of `text`; `ignore` lists extra incidental words (the patient's own names)."""
        raw = [w for w in text.split() if w.strip(_EDGE)]
        words = [w.strip(_EDGE).casefold() for w in raw]
        ignored = {w.casefold() for w in ignore}
        facts: list[Mention] = []
        unexplained: list[str] = []
        years: list[int] = []
        allergy_sentences: set[int] = set()
        sentence, cue_seen = 0, False
        examining = False
        i = 0

        def mention(concept: Concept, written: str, ocr: bool = False) -> Mention:
            return Mention(self._position[id(concept)], concept.preferred, kind_of(concept), written, ocr,
                           sentence, cue_seen)

        while i < len(words):
            word, closes = words[i], bool(_CLAUSE_END.search(raw[i]))
            found = self._exact(words, i)
            if found is not None:
                n, concept = found
                closes = bool(_CLAUSE_END.search(raw[i + n - 1]))
                written = " ".join(w.strip(_EDGE) for w in raw[i:i + n])
                key = normalise(written)
                if key in self.rules.examination_cues:
                    examining, closes = True, False  # "O/E." opens the clause despite its stop
                elif kind_of(concept) == "allergy" or key in self.rules.allergy_cues:
                    allergy_sentences.add(sentence)
                    facts.append(mention(concept, written))
                    cue_seen = True
                elif not (examining or self.is_incidental(concept) or self._names_a_clinic(words, i + n)):
                    facts.append(mention(concept, written))
                i += n
            else:
                if _YEAR.match(word):
                    years.append(int(word))
                if word in self.rules.examination_cues:
                    examining, closes = True, False
                elif word in self.rules.allergy_cues:
                    allergy_sentences.add(sentence)
                    cue_seen = True
                elif not (examining or self._ignorable(word, ignored) or self._dosing(words, i)):
                    concept = self._fuzzy(word) if fuzzy else None
                    # "ALLERGY: Elastoplast (blisters)": a word after the allergen is its reaction.
                    reaction = cue_seen and any(f.sentence == sentence and f.kind in ("medication", "allergy")
                                                for f in facts)
                    if concept is None and not reaction:
                        unexplained.append(raw[i].strip(_EDGE))
                    elif concept is not None and not self.is_incidental(concept):
                        facts.append(mention(concept, raw[i].strip(_EDGE), ocr=True))
                i += 1
            if closes:
                examining = False
            if _SENTENCE_END.search(raw[i - 1]):
                sentence, cue_seen = sentence + 1, False
        return Reading(tuple(facts), tuple(unexplained), tuple(years), frozenset(allergy_sentences))

    def _ignorable(self, word: str, ignored: set[str]) -> bool:
        # Values, doses, durations and dates (160/90, 50mg, 2/52, 1948) carry digits; they
        # qualify a fact rather than being one. Lone letters are sides and list marks.
        return (any(c.isdigit() for c in word) or len(word) < 2 or word in self.rules.words
                or word in ignored or not any(c.isalpha() for c in word) or self._misread_shorthand(word))

    def _misread_shorthand(self, word: str) -> bool:
        # "c/v", "k/v" for r/v: a letter-slash-letter mark one letter away from recording
        # shorthand (r/v, c/o, f/u, h/o) records how, not what, whichever it was.
        return (len(word) == 3 and word[1] == "/" and
                any(Levenshtein.distance(word, form) <= 1 for form in self._slash_shorthand))

    @staticmethod
    def _names_a_clinic(words: list[str], after: int) -> bool:
        # "seen in the fracture clinic": the name of a clinic, not a fracture.
        return after < len(words) and words[after] == "clinic"

    def _dosing(self, words: list[str], i: int) -> bool:
        # An ambiguous abbreviation straight after a dose is a dosing instruction ("50mg od"),
        # not the other meaning ("OD" is also an overdose, so alone it stays unexplained).
        return words[i] in self.vocabulary.ambiguous and i > 0 and any(c.isdigit() for c in words[i - 1])



@functools.lru_cache(maxsize=2)
def default_reader(vocabulary_folder: str | None = None) -> FactReader:
    return FactReader(Vocabulary.load(vocabulary_folder), Rules.load())
