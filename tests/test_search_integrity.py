"""Search tells the truth: hits checked against the catalogue, bounded queries, whole-period dates, true totals, audit.

Each test builds a small archive with the real catalogue (SQLite) and index (Whoosh), no OCR,
and runs the real `lgd` command line on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest

from index import Catalogue, DocumentRow, EntryRow, PageRow, PatientRow
from pipelines import reindex
from tests.conftest import run_lgd

JANE, JOHN = "9434765919", "4010232137"


def _words(text: str) -> tuple:
    out, x = [], 10
    for w in text.split():
        out.append((w, x, 20, x + 10 * len(w), 45, 90.0, 0, 0))
        x += 10 * len(w) + 10
    return tuple(out)


def source_of(nhs: str, part: int = 1) -> str:
    name = "Jane Smith" if nhs == JANE else "John Brown"
    return f"{part}of2_Lloyd_George_Record_[{name}]_[{nhs}]_[03-02-1950].pdf"


def add_document(archive: Path, nhs: str, pages: list[list[tuple[dt.date | None, str]]], *, part: int = 1, kind: str = "card") -> int:
    """Catalogue one document (pages of dated entries), store a stand-in PDF, index it; returns its id."""
    sha = hashlib.sha256(f"{nhs}{part}{pages}".encode()).hexdigest()
    rel = f"pdf/{nhs}/{sha}.pdf"
    (archive / "pdf" / nhs).mkdir(parents=True, exist_ok=True, mode=0o700)
    (archive / rel).write_bytes(b"%PDF-1.4 stand-in\n")
    rows, entries = [], []
    for n, page in enumerate(pages, 1):
        text = " ".join(f"{d.strftime('%d/%m/%y') if d else ''} {t}".strip() for d, t in page)
        rows.append(PageRow(n, 1748, 2480, 300, 0, 0.0, False, "0" * 16, None, 88.0, False, kind, text, _words(text)))
        entries += [EntryRow(n, d, d.strftime("%d/%m/%y") if d else "", t, (10, 20, 600, 90), 88.0, "day") for d, t in page if d]
    doc = DocumentRow(source_of(nhs, part), sha, nhs, len(rows), "ok", rel, True, part, 2, None, None, 100)
    with Catalogue.open(archive) as cat:
        doc_id = cat.record_document(PatientRow(nhs, "Jane Smith" if nhs == JANE else "John Brown", dt.date(1950, 2, 3)), doc, rows, entries)
        from index import FullText

        with FullText.open(archive) as ft:
            ft.add_pages(reindex.document_pages(cat, cat.document(doc_id)))
        cat.mark_indexed(doc_id)
    return doc_id


def make_archive(root: Path) -> Path:
    root.mkdir(mode=0o700, parents=True)
    for sub in ("pdf", "tmp", "quarantine"):
        (root / sub).mkdir(mode=0o700)
    Catalogue.open(root).close()  # as lgd digitise does, before any PDF is stored
    return root


D = dt.date


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    a = make_archive(tmp_path / "a")
    add_document(a, JANE, [[(D(1973, 4, 2), "Rx indomethacin for gout"), (D(1985, 6, 1), "BP check normal")],
                           [(D(1999, 1, 5), "warfarin started for AF")]])
    add_document(a, JOHN, [[(D(1988, 3, 3), "cough, Rx amoxicillin")], [(D(2001, 7, 14), "asthma review; salbutamol")]])
    return a


# -- 1. a hit that disagrees with the catalogue is never shown ------------------------------


def test_search_never_shows_another_patients_page_when_the_index_is_from_another_backup(tmp_path: Path) -> None:
    # Backup 1: document 1 is Jane's. Backup 2: document 1 is John's. Catalogue of 1, index of 2.
    one = make_archive(tmp_path / "one")
    add_document(one, JANE, [[(D(1990, 1, 1), "penicillin allergy rash")]])
    add_document(one, JOHN, [[(D(1992, 1, 1), "cough")]])
    two = make_archive(tmp_path / "two")
    add_document(two, JOHN, [[(D(1991, 1, 1), "penicillin allergy anaphylaxis")]])
    shutil.rmtree(one / "fulltext")
    shutil.copytree(two / "fulltext", one / "fulltext")

    proc = run_lgd("search", "penicillin", "--patient", JOHN, "--archive", one, "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.json["hits"] == [] and proc.json["total"] == 0  # Jane's page is not shown as John's
    assert "lgd index rebuild" in proc.stderr and JANE not in proc.stderr and "Jane" not in proc.stderr
    with Catalogue.open(one, create=False, readonly=True) as cat:
        searches = [a for a in cat.audit_log(action="search") if a.nhs_number == JOHN]
    assert searches and searches[-1].detail["query"] == "penicillin"


def test_a_hit_on_a_page_the_catalogue_lacks_is_dropped_and_reported(archive: Path, tmp_path: Path) -> None:
    with Catalogue.open(archive, create=False) as cat:
        doc_id = cat.documents(nhs_number=JANE)[0].id
        cat._conn.execute("DELETE FROM entries WHERE document_id = ? AND page = 2", (doc_id,))
        cat._conn.execute("DELETE FROM pages WHERE document_id = ? AND number = 2", (doc_id,))
    proc = run_lgd("search", "warfarin", "--patient", JANE, "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json["hits"] == [] and proc.json["total"] == 0
    assert "lgd index rebuild" in proc.stderr


# -- 4. query size, depth, and whole-period dates ---------------------------------------------


@pytest.mark.parametrize("query", [" ".join(["cough"] * 1000), "(" * 1000 + "cough" + ")" * 1000,
                                   " OR ".join(["asthma"] * 600)])
def test_huge_or_deeply_nested_queries_are_usage_errors(archive: Path, query: str) -> None:
    proc = run_lgd("search", query, "--archive", archive, "--json")
    assert proc.returncode == 2, proc.stderr
    assert proc.json["error"]["code"] == "bad_query" and "RecursionError" not in proc.stderr


def test_a_year_or_a_month_is_the_whole_period(archive: Path) -> None:
    def dates(*opts: str) -> list[str]:
        proc = run_lgd("search", "asthma OR cough OR warfarin OR indomethacin", "--archive", archive, "--json", *opts)
        assert proc.returncode == 0, proc.stderr
        return sorted(d for h in proc.json["hits"] for d in h["dates"])

    assert dates("--from", "2001", "--to", "2001") == ["2001-07-14"]
    assert dates("--from", "July 2001", "--to", "July 2001") == ["2001-07-14"]
    assert dates("--from", "2001-07", "--to", "2001-07") == ["2001-07-14"]
    assert dates("--to", "1988") == ["1973-04-02", "1985-06-01", "1988-03-03"]
    assert dates("--from", "March 1988", "--to", "1999") == ["1988-03-03", "1999-01-05"]
    assert dates("--from", "1999-01-05", "--to", "05/01/1999") == ["1999-01-05"]


@pytest.mark.parametrize("value", ["July", "tomorrow-ish", "13/13/2001"])
def test_dates_without_a_year_or_unreadable_are_refused(archive: Path, value: str) -> None:
    proc = run_lgd("search", "asthma", "--from", value, "--archive", archive)
    assert proc.returncode == 2 and "--from" in proc.stderr


# -- 5. totals count what is shown; source: matches a source; dates of the matched entries ----


def test_partial_matches_are_counted_in_the_total(archive: Path) -> None:
    proc = run_lgd("search", "indomethacin salbutamol", "--archive", archive, "--json")
    assert proc.returncode == 0
    hits = proc.json["hits"]
    assert len(hits) == 2 and all(h["partial"] for h in hits)
    assert proc.json["total"] == 2
    text = run_lgd("search", "indomethacin salbutamol", "--archive", archive)
    assert "2 of 2 matching pages shown" in text.stdout


def test_source_query_matches_the_exact_source_name(archive: Path) -> None:
    add_document(archive, JANE, [[(D(2003, 1, 1), "asthma seen in clinic")]], part=2)
    name = source_of(JANE, 2)
    proc = run_lgd("search", f'source:"{name}" asthma', "--archive", archive, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [h["source"] for h in proc.json["hits"]] == [name] and proc.json["total"] == 1
    other = run_lgd("search", f'source:"{source_of(JOHN, 1)}" asthma', "--archive", archive, "--json")
    assert [h["source"] for h in other.json["hits"]] == [source_of(JOHN, 1)] and other.json["total"] == 1
    nothing = run_lgd("search", 'source:"no_such_file.pdf" asthma', "--archive", archive, "--json")
    assert nothing.json == {"hits": [], "total": 0}
    prefix = run_lgd("search", f'source:"{name[:20]}" asthma', "--archive", archive, "--json")
    assert prefix.json == {"hits": [], "total": 0}  # exact names only


def test_date_filters_apply_to_the_matched_entries_not_the_page(archive: Path) -> None:
    # Jane's page 1 has a 1973 indomethacin entry and a 1985 BP entry.
    proc = run_lgd("search", "indomethacin", "--patient", JANE, "--from", "1980-01-01", "--to", "1990-12-31", "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json == {"hits": [], "total": 0}
    kept = run_lgd("search", "indomethacin", "--patient", JANE, "--from", "1973", "--to", "1973", "--archive", archive, "--json")
    assert [(h["page"], h["total"] if "total" in h else None) for h in kept.json["hits"]] == [(1, None)] and kept.json["total"] == 1
    bp = run_lgd("search", "BP", "--patient", JANE, "--from", "1980", "--to", "1990", "--archive", archive, "--json")
    assert [h["page"] for h in bp.json["hits"]] == [1]


# -- 6. archive-wide searches are audited ------------------------------------------------------


def test_archive_wide_searches_are_audited_without_patient_data(archive: Path) -> None:
    proc = run_lgd("search", "asthma OR warfarin", "--archive", archive, "--json")
    assert proc.returncode == 0 and proc.json["total"] == 2
    with Catalogue.open(archive, create=False, readonly=True) as cat:
        rows = [a for a in cat.audit_log(action="search") if a.nhs_number is None]
    assert len(rows) == 1
    row = rows[0]
    assert row.actor and row.detail["query"] == "asthma OR warfarin" and row.detail["hits"] == 2
    assert JANE not in str(row.detail) and JOHN not in str(row.detail) and "Lloyd_George" not in str(row.detail)
