"""The search vocabulary: the data loads and validates, covers the fixture generator's notes, and
expands abbreviations, synonyms and drug names both ways."""

from __future__ import annotations

import pytest

from fixtures import vocab as fv
from pipelines.clinical.vocabulary import DEFAULT_FOLDER, Vocabulary, VocabularyError, words_of


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load()


def test_data_loads_and_is_broad(vocab):
    counts = {name: sum(c.where.startswith(name) for c in vocab.concepts)
              for name in ("synonyms.tsv", "drugs.tsv")}
    assert counts["synonyms.tsv"] >= 150
    assert counts["drugs.tsv"] >= 120
    assert (DEFAULT_FOLDER / "README.md").is_file()
    assert Vocabulary.load() is vocab  # cached per process


def _fixture_facts():
    """(as written on a fixture page, canonical term) for everything fixtures/vocab.py writes."""
    for c in fv.CHRONIC:
        yield c.abbr, c.term
        yield c.term, c.term  # letters spell the diagnosis out
        for drug, term in c.drugs:
            yield fv._split_drug(drug)[0], term
            yield term, term
        yield c.obs[0], c.obs[1]
        yield c.complaint
    for complaint, symptom, _, dx, dx_term, drug, drug_term in fv.ACUTE:
        yield complaint, symptom
        yield dx, dx_term
        yield fv._split_drug(drug)[0], drug_term
    for written, term, _, _, complaint, symptom in fv.PROCEDURES:
        yield written, term
        yield term, term
        yield complaint, symptom
    for written, term, _ in fv.ALLERGIES:
        yield written, term
    for written, term, _, _ in fv.IMMUNISATIONS:
        yield written, term
    for written, term, _ in fv.INJURIES:
        yield written.split(" - ")[0], term
    yield "sutured", "suture of skin"
    yield "co-amoxiclav", "co-amoxiclav"
    yield "paracetamol", "paracetamol"


# A letter's wording that is narrower than the coded term: each side is known, but they are
# different concepts (a hierarchy, not synonyms), so neither expands to the other.
NARROWER = {
    ("painful big toe", "joint pain"), ("a painful big toe", "joint pain"),
    ("right iliac fossa pain", "abdominal pain"), ("biliary colic", "abdominal pain"),
    ("poor urinary stream", "urinary symptoms"), ("a request for sterilisation", "contraception"),
}


def _related(concept, term: str) -> bool:
    """A form of `concept` and `term` contain one another as whole words ("#": "fracture of wrist")."""
    t = words_of(term)
    for form in concept.forms:
        f = words_of(form)
        for part, whole in ((f, t), (t, f)):
            if any(whole[i:i + len(part)] == part for i in range(len(whole) - len(part) + 1)):
                return True
    return False


@pytest.mark.parametrize("written,term", sorted(set(_fixture_facts())))
def test_every_fixture_term_and_written_form_is_covered(vocab, written, term):
    concept = vocab.concept(term)
    assert concept is not None, f"canonical term {term!r} is not a form of any concept"
    words = written.split()
    spans = vocab.expand_query_terms(words)
    assert spans, f"nothing in {written!r} is in the vocabulary"
    found = [vocab.concept(" ".join(words[s:e])) for s, e, _ in spans]
    if (written, term) in NARROWER:
        return
    assert any(c is concept or _related(c, term) for c in found), (
        f"{written!r} does not lead to {term!r}: spans {[c.preferred for c in found]}")


@pytest.mark.parametrize("a,b", [
    ("MI", "myocardial infarction"), ("MI", "heart attack"), ("heart attack", "myocardial infarction"),
    ("HTN", "hypertension"), ("HTN", "high blood pressure"), ("high blood pressure", "hypertension"),
    ("#", "fracture"), ("Ventolin", "salbutamol"), ("T2DM", "type 2 diabetes"), ("T2DM", "NIDDM"),
    ("URTI", "upper respiratory tract infection"), ("Rx", "prescribed"), ("C/O", "complains of"),
    ("O/E", "on examination"), ("Dx", "diagnosis"), ("appendicectomy", "appendectomy"),
    ("indometacin", "indomethacin"), ("bendroflumethiazide", "bendrofluazide"),
    ("levothyroxine", "thyroxine"), ("co-amoxiclav", "Augmentin"), ("SOB", "shortness of breath"),
    ("BNO", "bowels not opened"), ("NAD", "no abnormality detected"), ("tds", "three times daily"),
    ("prn", "as required"), ("nocte", "at night"), ("D&V", "diarrhoea and vomiting"),
])
def test_alternatives_both_ways(vocab, a, b):
    assert b.casefold() in {f.casefold() for f in vocab.alternatives(a)}
    assert a.casefold() in {f.casefold() for f in vocab.alternatives(b)}


def test_alternatives_are_case_insensitive_and_exclude_the_phrase(vocab):
    assert vocab.alternatives("heart ATTACK") == vocab.alternatives("Heart attack")
    assert "heart attack" not in vocab.alternatives("Heart Attack")
    assert "Ventolin" in vocab.alternatives("SALBUTAMOL")
    assert vocab.alternatives("URTI.") == vocab.alternatives("urti")  # edge punctuation
    assert "groin hernia" in vocab.alternatives("inguinal hernias")  # plural of a listed form
    assert "myocardial infarction" in vocab.alternatives("MIs")  # acronym plural
    assert vocab.alternatives("does") == ()  # not a plural of anything listed
    assert vocab.alternatives("warfarinn") == ()


def test_phrase_spans_longest_first(vocab):
    spans = vocab.expand_query_terms("heart attack 1998".split())
    assert [(s, e) for s, e, _ in spans] == [(0, 2)]
    assert {"myocardial infarction", "MI"} <= set(spans[0][2])

    spans = vocab.expand_query_terms("high blood pressure since 2001".split())
    assert [(s, e) for s, e, _ in spans] == [(0, 3)]  # not "blood pressure" (BP)
    assert "HTN" in spans[0][2]

    words = "C/O SOB 3/7 . O/E creps L base . Rx amoxicillin tds".split()
    spans = {" ".join(words[s:e]): alts for s, e, alts in vocab.expand_query_terms(words)}
    assert "complains of" in spans["C/O"] and "shortness of breath" in spans["SOB"]
    assert "on examination" in spans["O/E"] and "crepitations" in spans["creps"]
    assert "Amoxil" in spans["amoxicillin"] and "three times daily" in spans["tds"]

    spans = vocab.expand_query_terms(["heart attack", "1998"])  # a quoted phrase as one word
    assert [(s, e) for s, e, _ in spans] == [(0, 1)] and "MI" in spans[0][2]

    spans = vocab.expand_query_terms(["#", "NOF"])
    assert [(s, e) for s, e, _ in spans] == [(0, 2)]  # fractured neck of femur, not "#" alone
    assert "fractured neck of femur" in spans[0][2]


def test_ambiguous_abbreviations_are_not_expanded(vocab):
    for form in ("CP", "PU", "PE", "MS", "OD"):
        assert vocab.alternatives(form) == ()
        assert vocab.expand_query_terms([form]) == []
    assert "CP" not in vocab.alternatives("chest pain")
    assert "od" not in vocab.alternatives("once daily")


def test_abbreviation_labels(vocab):
    for form in ("HTN", "#", "C/O", "T2DM", "tds", "Rx", "Flu vacc", "pen V", "Mech back pain", "wt"):
        assert vocab.is_abbreviation(form), form
    for form in ("hypertension", "Ventolin", "salbutamol", "heart attack", "Hypothyroid",
                 "tired", "angina", "Polio (oral)"):
        assert not vocab.is_abbreviation(form), form


def _write(folder, synonyms: str, drugs: str = "paracetamol\tCalpol\n", ambiguous: str = ""):
    folder.mkdir(exist_ok=True)
    (folder / "synonyms.tsv").write_text(synonyms, encoding="utf-8")
    (folder / "drugs.tsv").write_text(drugs, encoding="utf-8")
    if ambiguous:
        (folder / "ambiguous.tsv").write_text(ambiguous, encoding="utf-8")
    return folder


def test_a_form_on_two_lines_is_rejected_naming_both(tmp_path):
    folder = _write(tmp_path / "v", "# comment\nmyocardial infarction\tMI\theart attack\n\n"
                    "mitral incompetence\tmi\n")
    with pytest.raises(VocabularyError) as error:
        Vocabulary.load(folder)
    message = str(error.value)
    assert "synonyms.tsv:2" in message and "synonyms.tsv:4" in message
    assert "myocardial infarction" in message and "mitral incompetence" in message
    assert "ambiguous.tsv" in message  # says how to allow it


def test_a_form_in_both_files_is_rejected(tmp_path):
    folder = _write(tmp_path / "v", "pain relief\tanalgesia\tCalpol\n")
    with pytest.raises(VocabularyError, match=r"synonyms.tsv:1.*drugs.tsv:1"):
        Vocabulary.load(folder)


def test_listing_a_form_as_ambiguous_allows_it_and_stops_expansion(tmp_path):
    folder = _write(tmp_path / "v", "myocardial infarction\tMI\theart attack\n"
                    "mitral incompetence\tMI\tmitral regurgitation\n",
                    ambiguous="# MI is both\nMI\tmyocardial infarction\tmitral incompetence\n")
    vocab = Vocabulary.load(folder)
    assert vocab.alternatives("MI") == ()
    assert vocab.alternatives("heart attack") == ("myocardial infarction",)


@pytest.mark.parametrize("line,problem", [
    ("asthma\n", "no other form"),
    ("at night\tnocte\ton\n", "everyday word"),
    ("complains of\tC/O\tc/o\n", "twice on the same line"),
    ("mmr\tmeasles mumps and rubella vaccine\n", "more than 4 words"),
    ("asthma\t\tasthmatic\n", "empty form"),
])
def test_malformed_lines_are_rejected_with_their_place(tmp_path, line, problem):
    folder = _write(tmp_path / "v", "# header\n" + line)
    with pytest.raises(VocabularyError, match="synonyms.tsv:2") as error:
        Vocabulary.load(folder)
    assert problem in str(error.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(VocabularyError, match="does not exist"):
        Vocabulary.load(tmp_path / "nowhere")
