"""The code table (pipelines/clinical/vocabulary/codes.tsv): it loads, names only real concepts, passes the
Verhoeff check, agrees with the terms of the public reference records, and maps no code whose
term says the fact is not the patient's present one; concepts_of_code normalises Read codes."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines.clinical.vocabulary import (
    CTV3_URI, DEFAULT_FOLDER, MAX_PHRASE_WORDS, READ_V2_URI, SNOMED_URI, Vocabulary, VocabularyError,
    normalise_code, verhoeff_ok, words_of,
)
from pipelines.records import systems
from tests.conftest import reference_data_dir

REFERENCE = reference_data_dir()
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}")
# The brief's cues: a code whose term says one of these does not state its concept as a fact.
CUES = ("family history", "suspected", "no ", "not ", "resolved", "at risk", "screening", "declined")
# HL7 codeSystem OIDs and FHIR system URLs of the three systems (NOTES.md section 4).
_OIDS = {"2.16.840.1.113883.2.1.3.2.4.15": SNOMED_URI, "2.16.840.1.113883.2.1.6.2": READ_V2_URI,
         "2.16.840.1.113883.2.1.3.2.4.14": CTV3_URI}
_URLS = {"http://snomed.info/sct": SNOMED_URI, "https://snomed.info/sct": SNOMED_URI,
         "http://read.info/readv2": READ_V2_URI, "http://read.info/ctv3": CTV3_URI}
_XML_CODE = re.compile(r"<(?:\w+:)?(?:code|translation|value)\b([^>]*)>")
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
_JOINING = frozenset({"and", "of", "the", "with", "in", "to", "-"})


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load()


def _rows() -> list[list[str]]:
    """codes.tsv read as plain text, independently of the loader."""
    text = (DEFAULT_FOLDER / "codes.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _named(vocab: Vocabulary, display: str) -> set[str]:
    """Preferred terms of every concept some phrase of `display` is a form of, joining words
    ("Administration of measles and mumps and rubella vaccine") dropped in a second reading."""
    words = words_of(display.replace("/", " / "))
    found = set()
    for variant in (words, [w for w in words if w not in _JOINING]):
        for i in range(len(variant)):
            for n in range(1, min(MAX_PHRASE_WORDS, len(variant) - i) + 1):
                concept = vocab.concept_of_words(variant[i:i + n])
                if concept is not None:
                    found.add(concept.preferred)
    return found


def _json_codings(node, where: str, out: dict[str, list[tuple[str, str]]]) -> None:
    if isinstance(node, dict):
        system = _URLS.get(str(node.get("system", "")).strip().rstrip("/").lower())
        if system and "code" in node:
            out[normalise_code(system, str(node["code"]))].append((str(node.get("display") or ""), where))
        for value in node.values():
            _json_codings(value, where, out)
    elif isinstance(node, list):
        for value in node:
            _json_codings(value, where, out)


@pytest.fixture(scope="module")
def reference_displays() -> dict[str, list[tuple[str, str]]]:
    """Every normalised code of the three systems in the reference data -> (display, file) pairs."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(REFERENCE.rglob("*")):
        where = str(path.relative_to(REFERENCE))
        if path.suffix == ".json":
            _json_codings(json.loads(path.read_text(encoding="utf-8-sig")), where, out)
        elif path.suffix == ".xml":
            for element in _XML_CODE.finditer(path.read_text(encoding="utf-8-sig", errors="replace")):
                attributes = dict(_ATTRIBUTE.findall(element.group(1)))
                system = _OIDS.get(attributes.get("codeSystem", ""))
                if system and "code" in attributes:
                    display = attributes.get("displayName", "").replace("&amp;", "&").replace("&apos;", "'")
                    out[normalise_code(system, attributes["code"])].append((display, where))
    return out


# --- the table --------------------------------------------------------------------------

def test_table_loads_and_covers_the_three_systems(vocab):
    by_system = defaultdict(int)
    for row in vocab.codes:
        by_system[row.system] += 1
    assert len(vocab.codes) == len(_rows()) >= 600
    assert by_system[SNOMED_URI] >= 400 and by_system[READ_V2_URI] >= 100 and by_system[CTV3_URI] >= 20
    assert Vocabulary.load() is vocab  # loaded once with the rest of the vocabulary


def test_every_concept_is_a_preferred_term(vocab):
    preferred = {concept.preferred for concept in vocab.concepts}
    for system, code, names, term, source in _rows():
        assert set(names.split(" + ")) <= preferred, (code, names)
    covered = {concept.section or "Drugs" for row in vocab.codes for concept in row.concepts}
    assert {"Long-term conditions", "Symptoms", "Allergy", "Procedures", "Immunisation",
            "Observations and investigations", "Acute illnesses and infections"} <= covered


def test_every_snomed_id_passes_verhoeff(vocab):
    snomed = [row.code for row in vocab.codes if row.system == SNOMED_URI]
    assert snomed and all(verhoeff_ok(code) for code in snomed)
    # The check itself: a valid id, one digit changed, two digits swapped.
    assert verhoeff_ok("22298006") and not verhoeff_ok("22298007") and not verhoeff_ok("22928006")


def test_no_term_says_the_fact_is_not_the_patients(vocab):
    for row in vocab.codes:
        term = f" {row.term.casefold()} "
        assert not [cue for cue in CUES if f" {cue}" in term], (row.where, row.term)


def test_sources_name_a_reference_file_or_memory(vocab):
    for row in vocab.codes:
        if row.source != "memory":
            assert (REFERENCE / row.source.removeprefix("reference-data:")).is_file() or not REFERENCE.is_dir(), row


@needs_reference
def test_codes_in_the_reference_data_are_displayed_there_as_their_concepts(vocab, reference_displays):
    checked = 0
    for row in vocab.codes:
        seen = reference_displays.get(row.code)
        if not seen:
            assert row.source == "memory", (row.where, "its file does not hold the code")
            continue
        wanted = {concept.preferred for concept in row.concepts}
        assert any(_named(vocab, display) & wanted for display, _ in seen), \
            (row.where, row.term, sorted({d for d, _ in seen}))
        checked += 1
    assert checked >= 300


@needs_reference
def test_reference_sources_hold_the_code_with_the_term(vocab, reference_displays):
    for row in vocab.codes:
        if row.source.startswith("reference-data:"):
            file = row.source.removeprefix("reference-data:")
            assert (row.term, file) in reference_displays[row.code], row.where


# --- lookups ------------------------------------------------------------------------------

def test_system_uris_match_the_records_model():
    assert (SNOMED_URI, READ_V2_URI, CTV3_URI) == (systems.SNOMED, systems.READ_V2, systems.CTV3)


def _names(concepts) -> list[str]:
    return [concept.preferred for concept in concepts]


def test_an_allergy_code_states_the_allergy_and_the_drug(vocab):
    assert _names(vocab.concepts_of_code(SNOMED_URI, "91936005")) == ["penicillin allergy", "allergy", "penicillin"]
    assert _names(vocab.concepts_of_code(SNOMED_URI, "68566005")) == ["urinary tract infection"]


def test_read_codes_match_with_or_without_term_id_and_dots(vocab):
    for written in ("H33..", "H33..00", "H33", " H33..11 "):
        assert _names(vocab.concepts_of_code(READ_V2_URI, written)) == ["asthma"], written
    assert _names(vocab.concepts_of_code(CTV3_URI, "XE0Uc")) == ["hypertension"]
    assert vocab.concepts_of_code(READ_V2_URI, "h33..") == ()  # Read codes are case-sensitive
    assert normalise_code(SNOMED_URI, "1000004") == "1000004"  # a 7-digit SNOMED id is not a Read code


def test_unknown_codes_and_systems_give_nothing(vocab):
    assert _names(vocab.concepts_of_code(SNOMED_URI, " 86290005")) == ["respiratory rate"]  # leading space
    assert vocab.concepts_of_code(SNOMED_URI, "160377001") == ()  # FH: Asthma
    assert vocab.concepts_of_code(READ_V2_URI, "195967001") == ()  # a SNOMED id under Read v2
    assert vocab.concepts_of_code("urn:oid:2.16.840.1.113883.2.1.6.3", "EMISNQWI3") == ()


# --- malformed tables ---------------------------------------------------------------------

def _folder(tmp_path: Path, codes: str) -> Path:
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "synonyms.tsv").write_text("# --- Long-term conditions ---\nasthma\tasthmatic\n"
                                         "# --- Allergy ---\nallergy\tallergic\n", encoding="utf-8")
    (folder / "drugs.tsv").write_text("penicillin\tpenicillins\n", encoding="utf-8")
    (folder / "codes.tsv").write_text("# system code concepts term source\n" + codes, encoding="utf-8")
    return folder


def test_a_good_small_table_loads(tmp_path):
    vocab = Vocabulary.load(_folder(tmp_path, "snomed\t91936005\tallergy + penicillin\tAllergy to penicillin\tmemory\n"
                                              "readv2\tH33..00\tasthma\tAsthma\tmemory\n"))
    assert _names(vocab.concepts_of_code(SNOMED_URI, "91936005")) == ["allergy", "penicillin"]
    assert vocab.codes[1].code == "H33.." and vocab.codes[1].where == "codes.tsv:3"


@pytest.mark.parametrize("line, problem", [
    ("snomed\t195967001\tasthma\tAsthma\n", "five tab-separated fields"),
    ("icd10\tJ45\tasthma\tAsthma\tmemory\n", "unknown code system"),
    ("snomed\t195967002\tasthma\tAsthma\tmemory\n", "Verhoeff"),
    ("snomed\t12ab\tasthma\tAsthma\tmemory\n", "digits"),
    ("readv2\tH3\u00b73..\tasthma\tAsthma\tmemory\n", "Read code"),
    ("snomed\t195967001\tasthmatic\tAsthma\tmemory\n", "not the preferred term"),
    ("snomed\t195967001\tasthma + wheeze\tAsthma\tmemory\n", "'wheeze'"),
    ("snomed\t160377001\tasthma\tFamily history of asthma\tmemory\n", "says 'Family history'"),
    ("snomed\t195967001\tasthma\tAsthma\tguess\n", "source"),
    ("snomed\t195967001\tasthma\tAsthma\tmemory\nsnomed\t195967001\tasthma\tAsthma\tmemory\n", "already listed at codes.tsv:2"),
])
def test_malformed_rows_are_rejected_with_their_place(tmp_path, line, problem):
    with pytest.raises(VocabularyError, match=r"codes\.tsv:\d") as caught:
        Vocabulary.load(_folder(tmp_path, line))
    assert problem in str(caught.value)


def test_a_folder_without_a_code_table_has_no_codes(tmp_path):
    folder = _folder(tmp_path, "")
    (folder / "codes.tsv").unlink()
    assert Vocabulary.load(folder).codes == ()
