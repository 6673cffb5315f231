"""Reading a paper entry word by word: every word is a clinical concept, or accounted for, or not.

The evidence model (docs/hazard-log.md H35-H39). Each word of an entry gets one role:

- a *concept* of the shared vocabulary (diagnosis, symptom, drug, allergy, procedure,
  immunisation, observation), matched as written or through OCR confusion classes within
  one concept's own forms (rn/m, 0/o, 1/l/i, 5/s; never a generic edit distance, which maps
  hypotension onto hypertension);
- a *value* bound to a concept in its sentence (a reading after an observation, a dose or
  frequency after a drug, a duration), or a *date*;
- *accounted* without a fact: reviewed recording shorthand, a person's name after a title,
  the patient's own names, an institution's name, an address, or narrative English
  (lexicon.py);
- otherwise *unaccounted*: a cue (negation, doubt, someone else's history), a loaded
  everyday word, a medical word that matched nothing, a number bound to nothing, or an
  unknown token (a misread, an abbreviation, a brand name). Unaccounted words make their
  entry uncertain, so its page is sent. No clause is skipped wholesale.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from digitise.dates import find_dates

from .lexicon import Lexicon
from .text import EDGE, fold, normalise, words_of
from .vocabulary import MAX_PHRASE_WORDS, Concept, Vocabulary

Kind = Literal["condition", "medication", "allergy", "immunisation", "procedure", "observation"]
INCIDENTAL_SECTIONS = frozenset({"Recording shorthand", "Dosing and preparations"})
# Concepts of those sections that are clinical facts all the same.
FACT_CONCEPTS = frozenset({"no known drug allergies", "did not attend"})
OCR_MIN_LENGTH = 5  # shorter words fold onto too many others
# Dashes, bullets and a lone "<" or ">" of a reference range ("(< 21)"): punctuation, not words.
_PUNCTUATION = frozenset("-\u2013\u2014*\u2022\u00b7|/\\.,;:_~=<>\u2264\u2265")
_SENTENCE_END = re.compile(r"[.;!?]$")
_SECTION_KINDS: dict[str, Kind] = {
    "Allergy": "allergy", "Immunisation": "immunisation", "Procedures": "procedure",
    "Observations and investigations": "observation",
}
_NUMBER = re.compile(r"^[<>~]?\d+(?:[.,]\d+)?(?:/\d+(?:[.,]\d+)?)?$")  # 7.2, 140/90, <5
_VALUE_WITH_UNIT = re.compile(r"^[<>~]?\d+(?:[.,]\d+)?([a-zµ/%^0-9.*]+)$", re.I)  # 500mg, 2cm, 5ml, 37.5c
_RANGE = re.compile(r"^\(?\d+(?:[.,]\d+)?\s*[-\u2013]\s*\d+(?:[.,]\d+)?\)?$")  # (130-170)
_YEAR = re.compile(r"^(1[89]\d\d|20\d\d)$")
# A reference range as OCR spaces it ("133 - 146", "60- 110", "< 5.0"), written closed up on a
# result row so it reads as one range, not as more readings.
_SPACED_RANGE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[-\u2013]\s*(\d+(?:\.\d+)?)(?![\d.])")
_SPACED_BOUND = re.compile(r"(?<![\w.])([<>\u2264\u2265])\s+(?=\d)")
_DURATION = re.compile(r"^\d+/(?:52|12|7|24|40)$")  # 2/52 weeks, 3/12 months, 5/7 days, 24 hours
_TIMES = re.compile(r"^x\d+$|^\d+x$", re.I)
_POSTCODE_OUT = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?$")
_POSTCODE_IN = re.compile(r"^\d[A-Z]{2}$")
_PHONE = re.compile(r"^\(?0\d{2,5}\)?$|^\d{3,8}$")
_ID_LABELS = frozenset({"tel", "telephone", "fax", "ext", "phone", "mobile", "mrn", "hosp", "dob", "d.o.b", "born"})
_FLAGS = frozenset({"h", "l", "hh", "ll", "a", "*", "high", "low"})
_ALLERGY_WORDS = frozenset({"allergy", "allergic", "allergies", "reaction", "reactions", "sensitive", "sensitivity",
                            "intolerant", "intolerance", "hypersensitivity"})
_REF_OWNERS = frozenset({"our", "your"})  # "Our ref: AB/123"; a bare "ref" is a referral
NAME_MAX_WORDS = 3  # "Dr J. A. Patel"


class Role(StrEnum):
    concept = "concept"
    value = "value"
    date = "date"
    shorthand = "shorthand"
    name = "name"
    institution = "institution"
    address = "address"
    identifier = "identifier"
    narrative = "narrative"
    # unaccounted:
    cue = "cue"
    loaded = "loaded"
    medical = "medical word not recognised"
    terse = "word on a card that no list accounts for"
    unbound = "number, dose or unit bound to no fact"
    unknown = "unknown word"


UNACCOUNTED = frozenset({Role.cue, Role.loaded, Role.medical, Role.terse, Role.unbound, Role.unknown})


@dataclass(frozen=True, slots=True)
class Token:
    raw: str  # as written, punctuation included
    word: str  # case-folded, edge punctuation stripped
    sentence: int


@dataclass(frozen=True, slots=True)
class Mention:
    """One clinical fact named in a text."""

    concept: int  # index into Vocabulary.concepts
    preferred: str
    kind: Kind
    written: str
    start: int  # token index
    end: int  # one past the last token
    sentence: int
    ocr: bool = False  # recognised through an OCR confusion class
    qualified: bool = False  # a negation, doubt or other-person cue comes before it in its sentence
    allergen: bool = False  # a drug or substance named in a sentence about an allergy
    values: tuple[str, ...] = ()  # readings bound to it ("140/90", "7.2")
    units: tuple[str, ...] = ()  # the units written after its readings ("mmol/L")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a text says: its tokens with their roles, its facts, and the dates written in each sentence."""

    tokens: tuple[Token, ...]
    roles: tuple[Role, ...]
    mentions: tuple[Mention, ...]
    dates: tuple[tuple[int, dt.date, str], ...]  # (sentence, date, precision)

    def unaccounted(self) -> list[tuple[int, Role]]:
        """(token index, role) of every word nothing accounts for."""
        return [(i, r) for i, r in enumerate(self.roles) if r in UNACCOUNTED]

    def sentence_dates(self, sentence: int) -> list[tuple[dt.date, str]]:
        return [(d, p) for s, d, p in self.dates if s == sentence]

    def narrative_date(self, sentence: int) -> list[tuple[dt.date, str]]:
        """The dates of the fact's own sentence, else the last full date written before it.

        A letter says when once ("I saw him in clinic on 1 Jun 96.") and then what was found,
        sentence by sentence; those facts belong to that visit. Only a full date carries
        forward: a year in passing ("a fracture in 1995") dates its own sentence alone.
        """
        own = self.sentence_dates(sentence)
        if own:
            return own
        earlier = [(s, d, p) for s, d, p in self.dates if s < sentence and p == "day"]
        return [(d, p) for s, d, p in earlier if s == earlier[-1][0]] if earlier else []


def kind_of(concept: Concept) -> Kind:
    if concept.where.startswith("drugs.tsv") or concept.section == "Drug classes":
        return "medication"
    return _SECTION_KINDS.get(concept.section, "condition")


def tokens_of(text: str) -> tuple[Token, ...]:
    out, sentence = [], 0
    for raw in text.split():
        word = raw.strip(EDGE).casefold() or ("?" if "?" in raw else "")  # "? appendicitis": the query is a cue
        if word and not all(c in _PUNCTUATION for c in word):  # a lone dash, bullet or "(<"; "#" and "?" are words
            out.append(Token(raw, word or raw.strip(), sentence))
        # "O/E.", "Dr.", "St." and initials ("J.") do not end a sentence.
        if _SENTENCE_END.search(raw) and raw.casefold().rstrip(".") not in ("o/e", "dr", "mr", "mrs", "ms", "st") \
                and not (len(word) == 1 and word.isalpha()):
            sentence += 1
    return tuple(out)


class Reader:
    """Reads texts with one vocabulary and lexicon; build once (it indexes every form by its OCR fold)."""

    def __init__(self, vocabulary: Vocabulary, lexicon: Lexicon) -> None:
        self.vocabulary = vocabulary
        self.lexicon = lexicon
        self.position = {id(c): i for i, c in enumerate(vocabulary.concepts)}
        folded: dict[str, set[int]] = {}
        for i, concept in enumerate(vocabulary.concepts):
            if not self.is_fact(concept):
                continue
            for form in concept.forms:
                key = normalise(form)
                if " " not in key and len(key) >= OCR_MIN_LENGTH and key not in vocabulary.ambiguous:
                    folded.setdefault(fold(key), set()).add(i)
        # Only folds that lead to one concept: "hypotension" and "hypertension" fold apart, so
        # neither can stand for the other.
        self._folded = {k: next(iter(v)) for k, v in folded.items() if len(v) == 1}

    @functools.cached_property
    def _written_forms(self) -> frozenset[str]:
        """Every single word of every vocabulary form and of the lexicon's lists, case-folded."""
        lists = self.lexicon.lists
        words = {w for c in self.vocabulary.concepts for f in c.forms for w in words_of(f)}
        for listed in (lists.shorthand, lists.dosing, lists.units, lists.loaded, lists.cues, lists.titles,
                       lists.services, lists.institutions, lists.address, lists.prescribing,
                       lists.immunisation_details, lists.result_print, lists.form_print):
            words |= listed
        return frozenset(words)

    def knows(self, word: str) -> bool:
        """Whether `word` is a word at all to lgd: listed, in the vocabulary or in a dictionary (digitise.settle)."""
        w = word.casefold()
        return w in self.lexicon.lists.function_words or w in self.lexicon.lists.narrative or self.settles_into(word)

    def settles_into(self, word: str) -> bool:
        """Whether a misread word may be settled into `word` (digitise.settle): a word of the vocabulary,
        the lexicon's lists or the dictionaries, but not a function word or one of the reviewed
        narrative words, which reconcile may pass over on a card (H85)."""
        w = word.casefold()
        lists = self.lexicon.lists
        if w in lists.function_words or w in lists.narrative:
            return False
        if w in self._written_forms:
            return True
        d = self.lexicon.dictionaries
        return d.available and (d.english(w) or d.english(w.capitalize()) or d.medical(w))

    def is_fact(self, concept: Concept) -> bool:
        return concept.section not in INCIDENTAL_SECTIONS or normalise(concept.preferred) in FACT_CONCEPTS

    def _phrase(self, words: list[str], i: int) -> tuple[int, Concept] | None:
        for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
            concept = self.vocabulary.concept(" ".join(words[i:i + n]))
            if concept is not None and self.is_fact(concept):
                return n, concept
        return None

    def _ocr(self, word: str) -> Concept | None:
        if len(word) < OCR_MIN_LENGTH or not any(c.isalpha() for c in word):
            return None
        i = self._folded.get(fold(word))
        return self.vocabulary.concepts[i] if i is not None else None

    def read(self, text: str, *, names: tuple[str, ...] = (), born: dt.date | None = None,
             today: dt.date | None = None, printed: frozenset[str] = frozenset(), row: bool = False,
             prose: bool = True) -> Reading:
        """Read `text`; `names` are the patient's own names, `printed` the words of the form it is written on.

        `prose`: the text is typed prose (a letter, a report), where most English words are the
        telling, not the facts. A card entry is not: a GP writes a few words, each for a reason
        ("Frail and unwell", "Raped", "Bailiffs"), so there only the reviewed narrative list and
        function words are narrative, and any other English word leaves the entry uncertain (H84).

        `row`: the text is one row of a laboratory report (analyte, value, unit, range, flag), so
        only its first number is the reading, and after it only a unit, a flag and a reference range
        ("133-146", "(<5)") are accounted for: a second number (another sample's column) is not.
        """
        if row:
            text = _SPACED_BOUND.sub(r"\1", _SPACED_RANGE.sub(r"\1-\2", text))
        tokens = tokens_of(text)
        words = [t.word for t in tokens]
        roles: list[Role | None] = [None] * len(tokens)
        mentions: list[Mention] = []
        dates = self._dates(tokens, roles, born, today or dt.date.today())
        own_names = {n.casefold() for n in names}
        i = 0
        while i < len(tokens):
            if roles[i] is not None:
                i += 1
                continue
            found = self._phrase(words, i)
            ocr = False
            if found is None:
                concept = self._ocr(words[i])
                if concept is not None and not self.lexicon.loaded(words[i]):
                    found, ocr = (1, concept), True
            if found is not None:
                n, concept = found
                written = " ".join(t.raw.strip(EDGE) for t in tokens[i:i + n])
                mentions.append(Mention(self.position[id(concept)], concept.preferred, kind_of(concept), written,
                                        i, i + n, tokens[i].sentence, ocr))
                roles[i:i + n] = [Role.concept] * n
                i += n
                continue
            roles[i] = Role.shorthand if words[i] in printed else self._word_role(tokens, i, own_names, roles, prose)
            i += 1
        mentions = _bind(tokens, roles, mentions, self.lexicon, row)
        return Reading(tokens, tuple(r or Role.unknown for r in roles), tuple(mentions), dates)

    def _dates(self, tokens: tuple[Token, ...], roles: list[Role | None], born: dt.date | None,
               today: dt.date) -> tuple[tuple[int, dt.date, str], ...]:
        """Mark the tokens that write a date; return each date with its sentence."""
        text, starts = "", []
        for t in tokens:
            starts.append(len(text))
            text += t.raw + " "
        found = []
        for m in find_dates(text, born, today):
            hit = [k for k, s in enumerate(starts) if s < m.end and s + len(tokens[k].raw) > m.start]
            for k in hit:
                roles[k] = Role.date
            if hit:
                found.append((tokens[hit[0]].sentence, m.date, str(m.precision)))
        for k, t in enumerate(tokens):  # "Tonsillectomy 1948": a year written alone is a date of that year
            if roles[k] is None and _YEAR.match(t.word) and int(t.word) <= today.year:
                roles[k] = Role.date
                found.append((t.sentence, dt.date(int(t.word), 1, 1), "year"))
        return tuple(found)

    def _word_role(self, tokens: tuple[Token, ...], i: int, own_names: set[str], roles: list[Role | None],
                   prose: bool = True) -> Role:
        lists = self.lexicon.lists
        t = tokens[i]
        w = t.word
        prev = tokens[i - 1] if i else None
        capital = t.raw.strip(EDGE)[:1].isupper()
        if w in own_names:
            return Role.name
        if prev is not None and (w == "ref" and prev.word in _REF_OWNERS
                                 or w in ("no", "number") and prev.word in ("nhs", "hosp", "hospital")):
            return Role.identifier  # "Our ref:", "NHS No:": labels of the identifier after them
        if w in ("no", "number") and t.raw.endswith((":", ".")) and i + 1 < len(tokens) \
                and any(c.isdigit() for c in tokens[i + 1].word):
            return Role.identifier  # "Lab No: A5336979", "Hosp No. 123": a label, not a negation
        if self.lexicon.cue(w) or t.raw.strip() == "?" or t.raw.startswith("?"):
            return Role.cue
        if w in lists.shorthand:
            return Role.shorthand
        if capital and self._after_title(tokens, i, roles):
            return Role.name
        if w in lists.postnominals and prev is not None and roles[i - 1] == Role.name:  # "Barker FRCS"
            return Role.name
        if capital and i + 1 < len(tokens) and tokens[i + 1].word in lists.postnominals \
                and not self.lexicon.dictionaries.medical(w):
            return Role.name  # "Authorised by: Jones (BMS)"
        if w.rstrip(".") in lists.titles and i + 1 < len(tokens) and tokens[i + 1].raw[:1].isupper():
            return Role.name
        if capital and not any(c.isdigit() for c in w) and self._in_institution(tokens, i):
            return Role.institution
        if any(c.isdigit() for c in w):
            if prev is not None and roles[i - 1] == Role.identifier and prev.word in ("no", "number"):
                return Role.identifier
            return self._identifier(tokens, i) or Role.unbound
        if w in ("year", "years", "yr", "yrs") and prev is not None and prev.word.isdigit() \
                and i + 1 < len(tokens) and tokens[i + 1].word == "old":
            roles[i - 1] = Role.identifier  # "a 39 year old man": an age
            return Role.identifier
        if w == "old" and prev is not None and roles[i - 1] == Role.identifier and prev.word.startswith("y"):
            return Role.identifier
        if w in lists.prescribing and w not in lists.function_words:
            return Role.unbound  # bound later to a drug in its sentence, else unaccounted
        if self.lexicon.loaded(w):
            return Role.loaded
        if w in lists.address and prev is not None and prev.raw[:1].isupper() and capital:
            return Role.address
        if w in lists.services:
            return Role.institution
        if (w in lists.dosing or w in lists.units) and w not in lists.function_words:
            return Role.unbound  # bound later to a drug or a reading, else unaccounted
        if self.lexicon.narrative(w, t.raw.strip(EDGE)):
            if prose or w in lists.function_words or w in lists.narrative:
                return Role.narrative
            return Role.terse
        if not w.isalpha() or not self.lexicon.dictionaries.english(w):
            return Role.unknown
        return Role.medical

    def _after_title(self, tokens: tuple[Token, ...], i: int, roles: list[Role | None]) -> bool:
        """Whether token i is one of the few Capitalised words of a name right after a title."""
        for back in range(1, NAME_MAX_WORDS + 1):
            k = i - back
            if k < 0 or roles[k] != Role.name or tokens[k].raw.endswith(",") or (_SENTENCE_END.search(tokens[k].raw) and len(tokens[k].word) > 1
                                                   and tokens[k].word.rstrip(".") not in self.lexicon.lists.titles):
                return False
            if tokens[k].word.rstrip(".") in self.lexicon.lists.titles:
                return True
        return False

    def _in_institution(self, tokens: tuple[Token, ...], i: int) -> bool:
        """Whether token i is in a run of Capitalised words (with "of", "and", "&") holding an institution word."""
        joins = {"of", "and", "&", "the", "for", "st", "st."}
        lo = i
        while lo > 0 and (tokens[lo - 1].raw[:1].isupper() or tokens[lo - 1].word in joins) \
                and not _SENTENCE_END.search(tokens[lo - 1].raw):
            lo -= 1
        hi = i
        while hi + 1 < len(tokens) and (tokens[hi + 1].raw[:1].isupper() or tokens[hi + 1].word in joins) \
                and not _SENTENCE_END.search(tokens[hi].raw):
            hi += 1
        run = [t for t in tokens[lo:hi + 1] if t.word not in joins]
        return len(run) >= 2 and any(t.word in self.lexicon.lists.institutions for t in run)

    def _identifier(self, tokens: tuple[Token, ...], i: int) -> Role | None:
        """Postcodes, phone and reference numbers after their label, house numbers before a street."""
        t, raw = tokens[i], tokens[i].raw.strip(EDGE)
        nxt = tokens[i + 1].raw.strip(EDGE) if i + 1 < len(tokens) else ""
        prev = tokens[i - 1].raw.strip(EDGE) if i else ""
        if (_POSTCODE_OUT.match(raw) and _POSTCODE_IN.match(nxt)) or (_POSTCODE_IN.match(raw) and _POSTCODE_OUT.match(prev)):
            return Role.identifier
        labels = [tokens[k].word.rstrip(":.") for k in range(max(0, i - 3), i)]
        owned_ref = any(a in _REF_OWNERS and b == "ref" for a, b in zip(labels, labels[1:]))
        nhs_no = any(a in ("nhs", "hosp", "hospital") and b in ("no", "number") for a, b in zip(labels, labels[1:]))
        if owned_ref or nhs_no or (any(label in _ID_LABELS for label in labels) and (_PHONE.match(raw) or raw.isalnum())):
            return Role.identifier
        if raw.isdigit() and len(raw) <= 4 and nxt[:1].isupper() and i + 2 < len(tokens) \
                and tokens[i + 2].word in self.lexicon.lists.address:
            return Role.identifier  # "12 High Street"
        if t.word.isdigit() and len(t.word) == 10 or (len(t.word) in (3, 4) and prev.isdigit() and len(prev) == 3):
            return Role.identifier  # an NHS number, written whole or as 3 3 4
        return None


def _bind(tokens: tuple[Token, ...], roles: list[Role | None], mentions: list[Mention], lexicon: Lexicon,
          row: bool = False) -> list[Mention]:
    """Bind numbers, units, doses and durations to the fact they qualify; mark qualified and allergen facts."""
    lists = lexicon.lists
    out = []
    by_sentence: dict[int, list[Mention]] = {}
    for m in mentions:
        by_sentence.setdefault(m.sentence, []).append(m)
    for m in mentions:
        before = [k for k in range(len(tokens)) if tokens[k].sentence == m.sentence and k < m.start]
        qualified = tokens[m.start].raw.lstrip("(\"'").startswith("?") or any(
            roles[k] == Role.cue for k in before) or any(
            roles[k] == Role.cue and tokens[k].word in lists.negation for k in range(m.end, min(m.end + 2, len(tokens)))
            if tokens[k].sentence == m.sentence)
        allergen = m.kind in ("medication", "allergy") and any(
            o.kind == "allergy" for o in by_sentence[m.sentence]) or (m.kind == "medication" and any(
                tokens[k].word in _ALLERGY_WORDS for k in before))
        values: list[str] = []
        units: list[str] = []
        k = m.end
        # What follows a fact up to the next fact or the sentence's end qualifies it.
        while k < len(tokens) and tokens[k].sentence == m.sentence and roles[k] not in (Role.concept,):
            w, raw = tokens[k].word, tokens[k].raw.strip(EDGE)
            if row and values and m.kind == "observation" and roles[k] in (Role.unbound, Role.identifier) \
                    and _NUMBER.match(raw) and not _bounds_range(tokens[k].raw):
                roles[k] = Role.unbound  # a second reading on one row: another column's, never accounted for
            elif roles[k] == Role.unbound and m.kind == "observation" and values and k > m.end \
                    and roles[k - 1] == Role.value and (w in lists.units or fold(w) in lexicon.folded_units):
                roles[k] = Role.value  # the reading's unit, "10*9/L" too, which reads like a number with a unit
                if not units:
                    units.append(raw)
            elif roles[k] == Role.unbound:
                if m.kind == "observation" and (_NUMBER.match(raw) or _VALUE_WITH_UNIT.match(raw) or _RANGE.match(raw)):
                    roles[k] = Role.value
                    if not _RANGE.match(raw) and not tokens[k].raw.startswith("(") and not (row and values):
                        values.append(raw)
                elif m.kind in ("medication", "immunisation") and (
                        w in lists.dosing or _VALUE_WITH_UNIT.match(raw) or _TIMES.match(raw) or _NUMBER.match(raw)):
                    roles[k] = Role.value
                elif m.kind == "medication" and w in lists.prescribing:
                    roles[k] = Role.value
                elif _DURATION.match(raw):
                    roles[k] = Role.value
                elif (w in lists.units or fold(w) in lexicon.folded_units) and k > m.end and roles[k - 1] == Role.value:
                    roles[k] = Role.value  # "umol/1": a unit as OCR reads it
                    if values and not units:
                        units.append(raw)
            elif row and roles[k] in (Role.narrative, Role.unknown) and w in _FLAGS and k > m.end \
                    and roles[k - 1] == Role.value:
                roles[k] = Role.value  # "591 H umol/L": the laboratory's high/low flag
            k += 1
        if m.kind == "immunisation":  # "DTP given L arm. Batch 2140": site and batch go with the vaccine
            for k in range(len(tokens)):
                if tokens[k].sentence in (m.sentence, m.sentence + 1) and roles[k] in UNACCOUNTED and (
                        tokens[k].word in lists.immunisation_details
                        or (k and tokens[k - 1].word == "batch" and any(c.isdigit() for c in tokens[k].word))):
                    roles[k] = Role.value
        # "Reaction to sulphonamides": the allergy's own words go with its allergen.
        if allergen:
            for k in range(len(tokens)):
                if tokens[k].sentence == m.sentence and roles[k] == Role.loaded and tokens[k].word in _ALLERGY_WORDS:
                    roles[k] = Role.value
        # A prescribing word before its drug ("Start thyroxine") goes with it too.
        if m.kind == "medication":
            for k in before:
                if roles[k] == Role.unbound and tokens[k].word in lists.prescribing:
                    roles[k] = Role.value
        out.append(Mention(m.concept, m.preferred, m.kind, m.written, m.start, m.end, m.sentence, m.ocr,
                           qualified, allergen, tuple(values), tuple(units)))
    return out


def _bounds_range(raw: str) -> bool:
    """Whether a number as written is a reference range's bound: "(<5)", "<0.5", "(133-146)", "[3.5-5.3]"."""
    bare = raw.strip(EDGE)
    return raw.lstrip()[:1] in "([" or bare[:1] in "<>\u2264\u2265" or bool(_RANGE.match(bare))
