"""The search quality test set built from fixture ground truth: styles, determinism, typos, recall."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from fixtures.search_queries import STYLES, Query, build_queries, misspell, recall_at_k, styled_texts
from pipelines.clinical.vocabulary import Vocabulary, words_of

SAMPLE_TRUTH = Path(__file__).resolve().parent.parent / "fixtures" / "sample" / "truth"


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load()


@pytest.fixture(scope="module")
def sample_queries() -> list[Query]:
    return build_queries(SAMPLE_TRUTH, seed=7)


def _truth_pages(truth_dir: Path) -> dict[tuple[str, str, int], dict]:
    pages = {}
    for path in truth_dir.glob("*.json"):
        if path.name != "index.json":
            record = json.loads(path.read_text())
            for doc in record["documents"]:
                for page in doc["pages"]:
                    pages[record["nhs_number"], doc["source"], page["page"]] = page
    return pages


def _osa_distance(a: str, b: str) -> int:
    """Edit distance counting a swap of neighbouring letters as one edit."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def test_all_styles_are_generated_from_readable_paper_facts(sample_queries):
    counts = Counter(q.style for q in sample_queries)
    assert set(counts) == set(STYLES)
    assert all(counts[s] >= 20 for s in STYLES), counts
    pages = _truth_pages(SAMPLE_TRUTH)
    for q in sample_queries:
        page = pages[q.nhs_number, q.source, q.page]
        assert page["kind"] in ("card", "letter") and page["legible"] and not page["blank"]
        assert page["duplicate_of"] is None
        facts = [f for e in page["entries"] for f in e["facts"]]
        assert any(f["term"] == q.fact_term for f in facts)
        if q.style == "exact":
            assert q.text in {f["written"] for f in facts}
        assert (q.source, q.page) in q.expected
        for source, number in q.pages:  # every listed answer states the fact too
            other = pages[q.nhs_number, source, number]
            assert any(f["term"] == q.fact_term for e in other["entries"] for f in e["facts"])


def test_no_query_is_asked_twice_for_a_patient(sample_queries):
    keys = [(q.nhs_number, q.style, " ".join(words_of(q.text))) for q in sample_queries]
    assert len(keys) == len(set(keys))


def test_deterministic_by_seed(sample_queries):
    assert build_queries(SAMPLE_TRUTH, seed=7) == sample_queries
    assert build_queries(SAMPLE_TRUTH, seed=8) != sample_queries


def test_misspellings_differ_by_one_edit_in_a_long_word(sample_queries):
    exact = {(q.nhs_number, q.source, q.page, q.fact_term): q.text
             for q in sample_queries if q.style == "exact"}
    rng = random.Random(0)
    checked = 0
    for q in sample_queries:
        if q.style != "misspelt":
            continue
        original = exact.get((q.nhs_number, q.source, q.page, q.fact_term))
        if original is None:  # its exact twin was asked from another page of the patient
            continue
        checked += 1
        assert _osa_distance(original, q.text) == 1, (original, q.text)
        changed = [(a, b) for a, b in zip(original.split(), q.text.split()) if a != b]
        assert len(changed) == 1 and len(changed[0][0]) >= 5 and changed[0][0][0] == changed[0][1][0]
    assert checked >= 20
    for text in ("Lac R hand", "HTN", "BP 160/90", "Rx"):
        assert misspell(text, rng) is None  # no word of five letters or more
    for _ in range(200):
        typo = misspell("tonsillectomy", rng)
        assert typo != "tonsillectomy" and _osa_distance("tonsillectomy", typo) == 1


def test_abbreviation_and_synonym_styles(vocab):
    def styles(written, term, seed=0):
        return dict(styled_texts(written, term, random.Random(seed), vocab))

    htn = styles("HTN", "hypertension")
    assert htn["abbreviation"] == "hypertension"  # a written abbreviation spelt out
    assert htn["synonym"] in vocab.alternatives("HTN") and not vocab.is_abbreviation(htn["synonym"])
    letter = styles("hypertension", "hypertension")
    assert letter["abbreviation"] in {"HTN", "HBP", "raised BP", "high BP"}
    ventolin = styles("Ventolin prn", "salbutamol")
    assert "abbreviation" not in ventolin  # salbutamol has no abbreviation
    assert ventolin["synonym"].endswith(" prn") and ventolin["synonym"] != "Ventolin prn"
    wrist = styles("# L wrist after fall", "fracture of wrist")
    assert wrist["abbreviation"] == "fracture L wrist after fall"
    assert styles("wt 70kg", "body weight")["abbreviation"] == "body weight 70kg"
    assert "misspelt" not in styles("DTP", "diphtheria tetanus pertussis vaccine")
    cough = styles("cough", "cough")  # "coughs" is not a synonym worth asking
    assert "synonym" not in cough and cough["misspelt"] != "cough"
    for seed in range(20):  # the text differs from what was written, whatever the choice
        for written, term in (("Hep A vacc", "hepatitis A vaccine"), ("Polio (oral)", "polio vaccine"),
                              ("OA knees", "osteoarthritis of knee"), ("GTN spray", "glyceryl trinitrate")):
            for style, text in styled_texts(written, term, random.Random(seed), vocab):
                assert style == "exact" or text.casefold() != written.casefold()


def test_unreadable_duplicate_and_blank_pages_give_no_queries_but_count_as_answers(tmp_path):
    def page(number, kind="card", legible=True, duplicate_of=None, blank=False, written="HTN"):
        facts = [] if blank else [{"kind": "diagnosis", "term": "hypertension", "written": written}]
        return {"page": number, "kind": kind, "blank": blank, "legible": legible,
                "duplicate_of": duplicate_of, "entries": [{"facts": facts}] if facts else []}

    record = {"nhs_number": "9990000018", "documents": [{"source": "a.pdf", "pages": [
        page(1, kind="envelope"), page(2, legible=False), page(3), page(4, duplicate_of=3),
        page(5, blank=True), page(6, kind="letter", written="hypertension")]}]}
    (tmp_path / "9990000018.json").write_text(json.dumps(record))
    (tmp_path / "index.json").write_text("{}")
    queries = build_queries(tmp_path, seed=1)
    assert {(q.source, q.page) for q in queries} == {("a.pdf", 3), ("a.pdf", 6)}
    for q in queries:
        assert q.expected == {("a.pdf", 2), ("a.pdf", 3), ("a.pdf", 4), ("a.pdf", 6)}


def test_recall_at_k():
    def q(style, page):
        return Query(style, "text", "9990000018", "a.pdf", page, "term", (("a.pdf", page), ("b.pdf", 1)))

    results = {
        q("exact", 1): [("a.pdf", 1)],
        q("exact", 2): [("x.pdf", n) for n in range(5)] + [("a.pdf", 2)],  # sixth: missed at k=5
        q("synonym", 3): [("b.pdf", 1)],  # another page stating the same fact
        q("misspelt", 4): [],
    }
    assert recall_at_k(results) == {"exact": 0.5, "synonym": 1.0, "misspelt": 0.0}
    assert recall_at_k(results, k=6)["exact"] == 1.0
    assert recall_at_k({}) == {}
