"""Search: ranking, filters, clinical synonyms, OCR-tolerant matching, highlight boxes, audit, rebuild/check, search during ingest."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index import Catalogue, FullText, PageDoc
from index.fulltext import QueryError
from tests.conftest import LGD, REPO, run_lgd

JANE, JOHN = "9434765919", "9990000018"


def doc(nhs: str, document_id: int, number: int, text: str, dates=(), kind: str = "card") -> PageDoc:
    return PageDoc(nhs, document_id, f"doc{document_id}.pdf", number, kind, tuple(dates), text)


@pytest.fixture()
def ft(tmp_path: Path):
    with FullText.open(tmp_path) as f:
        f.add_pages(
            [
                doc(JANE, 1, 1, "3/5/76 C/O cough 3/52. O/E chest clr. Rx amoxicillin 250mg tds", [dt.date(1976, 5, 3)]),
                doc(JANE, 1, 2, "12.6.82 BP 150/95. Dx HTN. Start bendroflumethiazide 2.5mg od", [dt.date(1982, 6, 12)]),
                doc(JANE, 1, 3, "4/7/95 # L wrist after fall. Ref A&E", [dt.date(1995, 7, 4)]),
                doc(JANE, 1, 4, "11/11/01 Asthma r/v. PEFR 380. Ventolin prn", [dt.date(2001, 11, 11)]),
                doc(JANE, 2, 1, "Dear Dr Shah, this man had a myocardial infarction in 1998. Yours sincerely", [dt.date(1998, 2, 1)], "letter"),
                doc(JANE, 1, 5, "8/9/03 Rx amoxi cillin 500mg tds for URTI", [dt.date(2003, 9, 8)]),
                doc(JOHN, 3, 1, "6/6/99 T2DM dx. HbA1c 58. Metformin 500mg bd. Warfarin started", [dt.date(1999, 6, 6)]),
                doc(JOHN, 3, 2, "2/2/05 INR 2.5 on warfar1n. Penici1lin allergy - rash", [dt.date(2005, 2, 2)]),
            ]
        )
        yield f


def pages(result) -> list[tuple[int, int]]:
    return [(h.document_id, h.page) for h in result.hits]


def test_abbreviations_and_synonyms_match_both_ways(ft: FullText) -> None:
    assert (1, 2) in pages(ft.search("hypertension", JANE))
    assert (1, 2) in pages(ft.search("high blood pressure", JANE))
    assert (2, 1) in pages(ft.search("heart attack", JANE))
    assert (2, 1) in pages(ft.search("MI", JANE))
    assert (1, 3) in pages(ft.search("fracture", JANE))
    assert (1, 4) in pages(ft.search("salbutamol", JANE))
    assert (3, 1) in pages(ft.search("type 2 diabetes", JOHN))
    assert (1, 5) in pages(ft.search("upper respiratory tract infection", JANE))


def test_ocr_confusions_split_words_and_misspellings(ft: FullText) -> None:
    assert pages(ft.search("warfarin", JOHN))[:2] == [(3, 1), (3, 2)]  # exact first, then "warfar1n"
    assert (3, 2) in pages(ft.search("penicillin", JOHN))  # 1/l
    assert (1, 5) in pages(ft.search("amoxicillin", JANE))  # "amoxi cillin"
    assert (1, 1) in pages(ft.search("amoxicilin", JANE))  # one letter missing
    assert ft.search("zzzzqqq").total == 0


def test_pages_holding_some_words_follow_full_matches(ft: FullText) -> None:
    # OCR read "rash" as "cash" on a real card; the page must still come up, after full matches.
    ft.add_pages([doc(JOHN, 4, 1, "C/O itchy cash 5/7. Calamine lotion", [dt.date(2006, 1, 1)])])
    result = ft.search("itchy rash", JOHN)
    assert result.total == 0 and result.partial == 2  # the itchy page, and the allergy rash page
    assert all(h.partial for h in result.hits) and (4, 1) in pages(result)
    full = ft.search("warfarin rash", JOHN)
    assert [(h.page, h.partial) for h in full.hits][:1] == [(2, False)]  # "Penici1lin allergy - rash ... warfar1n"


def test_exact_matches_rank_above_fuzzy_ones(ft: FullText) -> None:
    result = ft.search("amoxicillin", JANE)
    assert pages(result)[0] == (1, 1)  # written exactly
    assert result.hits[0].score > result.hits[-1].score
    scores = {(h.document_id, h.page): h.score for h in ft.search("warfarin").hits}
    assert scores[(3, 1)] > 2 * scores[(3, 2)]


def test_boolean_phrase_and_field_filters(ft: FullText) -> None:
    assert pages(ft.search('"chest clr"', JANE)) == [(1, 1)]
    assert (1, 1) not in pages(ft.search("amoxicillin AND NOT cough", JANE))
    assert set(pages(ft.search("asthma OR wrist", JANE))) == {(1, 3), (1, 4)}
    assert pages(ft.search("kind:letter infarction")) == [(2, 1)]
    assert pages(ft.search("infarction", kind="card")) == []


def test_patient_and_entry_date_filters(ft: FullText) -> None:
    assert ft.search("amoxicillin", JOHN).total == 0
    assert pages(ft.search("amoxicillin", JANE, date_from=dt.date(2000, 1, 1))) == [(1, 5)]
    assert pages(ft.search("amoxicillin", JANE, date_to=dt.date(1980, 12, 31))) == [(1, 1)]
    hit = ft.search("warfarin", JOHN, date_from=dt.date(2005, 1, 1), date_to=dt.date(2005, 12, 31)).hits[0]
    assert (hit.page, hit.dates) == (2, (dt.date(2005, 2, 2),))


def test_totals_count_every_match_not_just_the_limit(ft: FullText) -> None:
    result = ft.search("tds OR od OR bd OR prn", limit=1)
    assert len(result.hits) == 1 and result.total >= 4


@pytest.mark.parametrize("query, message", [('"open phrase', "unmatched"), ("(asthma", "brackets"), ("  ", "nothing to search")])
def test_malformed_queries_say_how_to_fix_them(ft: FullText, query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        ft.search(query)


# -- through the command line, on the archive the real digitise run produced -----------------


@pytest.fixture(scope="module")
def archive(digitised, tmp_path_factory) -> Path:
    """A private copy of the session archive, so these tests may write audit rows and rebuild."""
    copy = tmp_path_factory.mktemp("search") / "archive"
    shutil.copytree(digitised.archive, copy)
    return copy


def _some_entry(archive: Path):
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        for e in catalogue.entries():
            words = [w.strip(".,") for w in e.text.split() if len(w.strip(".,")) >= 7 and w.strip(".,").isalpha()]
            if words:
                d = catalogue.document(e.document_id)
                return d.nhs_number, d.source, e.page, words[0]
    raise AssertionError("no entry with a long word")


def test_search_json_has_hits_with_dates_snippets_and_boxes(archive: Path) -> None:
    nhs, source, page, word = _some_entry(archive)
    proc = run_lgd("search", word, "--patient", nhs, "--archive", archive, "--json")
    assert proc.returncode == 0, proc.stderr
    result = proc.json
    assert result["total"] >= 1 and set(result) == {"hits", "total"}
    hit = next(h for h in result["hits"] if (h["source"], h["page"]) == (source, page))
    assert set(hit) >= {"nhs_number", "source", "page", "score", "snippet", "dates", "boxes"}
    assert f"[{word}" in hit["snippet"] or "[" in hit["snippet"]
    assert hit["boxes"] and all(x1 > x0 and y1 > y0 for x0, y0, x1, y1 in hit["boxes"])
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        row = next(d for d in catalogue.documents(nhs_number=nhs) if d.source == source)
        words = next(p for p in catalogue.pages(row.id) if p.number == page).words
    stored = {(w[1], w[2], w[3], w[4]) for w in words}
    assert all(tuple(b) in stored for b in hit["boxes"])  # boxes are real OCR word boxes


def test_patient_searches_and_page_opens_are_audited(archive: Path) -> None:
    nhs, source, page, word = _some_entry(archive)

    def logged() -> tuple[list, list]:
        with Catalogue.open(archive, create=False, readonly=True) as catalogue:
            log = catalogue.audit_log(nhs_number=nhs)
        return (
            [a for a in log if a.action == "search" and a.detail.get("query") == word],
            [a for a in log if a.action == "open_page" and a.detail.get("page") == page],
        )

    searches_before, opens_before = logged()
    assert run_lgd("search", word, "--patient", nhs, "--archive", archive).returncode == 0
    assert run_lgd("search", word, "--archive", archive).returncode == 0  # names no patient: not audited
    opened = run_lgd("page", source, str(page), "--patient", nhs, "--archive", archive, "--json")
    assert opened.returncode == 0 and opened.json["page"] == page
    searches, opens = logged()
    assert len(searches) == len(searches_before) + 1 and searches[-1].actor
    assert len(opens) == len(opens_before) + 1


def test_unknown_patient_empty_archive_and_bad_query_are_clear(archive: Path, tmp_path: Path) -> None:
    missing = run_lgd("search", "asthma", "--patient", JOHN, "--archive", archive, "--json")
    assert missing.returncode == 1 and missing.json["error"]["code"] == "no_patient"
    empty = run_lgd("search", "asthma", "--archive", tmp_path / "nothing")
    assert empty.returncode == 4 and "no archive" in empty.stderr
    bad = run_lgd("search", '"unclosed', "--archive", archive)
    assert bad.returncode == 2 and "quote" in bad.stderr
    invalid = run_lgd("search", "asthma", "--patient", "1234567890", "--archive", archive)
    assert invalid.returncode == 2 and "Modulus 11" in invalid.stderr


def test_rebuild_and_check_repair_the_index_without_ocr(archive: Path) -> None:
    ok = run_lgd("index", "check", "--archive", archive, "--json")
    assert ok.returncode == 0 and ok.json["ok"] and ok.json["missing"] == []
    # Damage the index: drop one document's pages behind the catalogue's back.
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        victim = catalogue.documents(status="ok")[0].id
    with FullText.open(archive, create=False) as ft:
        before = ft.doc_count()
        assert ft.delete_document(victim) > 0
    broken = run_lgd("index", "check", "--archive", archive, "--json")
    assert broken.returncode == 1 and broken.json["missing"]
    repaired = run_lgd("index", "check", "--repair", "--archive", archive, "--json")
    assert repaired.returncode == 0 and repaired.json["repaired"] == len(broken.json["missing"])
    rebuilt = run_lgd("index", "rebuild", "--archive", archive, "--json")
    assert rebuilt.returncode == 0 and rebuilt.json["pages"] == before
    optimised = run_lgd("index", "optimize", "--archive", archive, "--json")
    assert optimised.returncode == 0 and optimised.json["pages"] == before
    assert run_lgd("index", "check", "--archive", archive, "--json").json["ok"]


def test_searching_while_a_batch_is_ingesting(archive: Path, tmp_path: Path) -> None:
    from fixtures.generate import generate_pages

    batch = generate_pages(tmp_path / "more", 12, seed=21)
    nhs, _, _, word = _some_entry(archive)
    ingest = subprocess.Popen(
        [*LGD, "digitise", str(batch.scans), "--archive", str(archive), "--jobs", "1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    searches = 0
    try:
        while ingest.poll() is None:
            with FullText.open(archive, create=False) as ft:
                assert ft.search(word, nhs).total >= 1
            searches += 1
            time.sleep(0.2)
    finally:
        ingest.wait(timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    assert searches >= 3
    check = run_lgd("index", "check", "--archive", archive, "--json")
    assert check.json["ok"], json.dumps(check.json)[:500]
