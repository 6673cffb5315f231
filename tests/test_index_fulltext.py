"""The Whoosh full-text index, for real in tmp_path: add, search, patient filter, idempotence, locking."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from whoosh import index as whoosh_index

from index import ArchiveError, FullText, PageDoc
from index.fulltext import QueryError, snippet

JANE = "9434765919"
JOHN = "4010232137"
REPO = Path(__file__).resolve().parents[1]


def page(nhs: str, document_id: int, number: int, text: str, dates: tuple[dt.date, ...] = ()) -> PageDoc:
    return PageDoc(nhs, document_id, f"doc{document_id}.pdf", number, "card", dates, text)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "lgd-archive"


@pytest.fixture
def ft(archive: Path) -> Iterator[FullText]:
    with FullText.open(archive, lock_timeout=2.0) as f:
        yield f


def test_add_and_search_pages(ft: FullText) -> None:
    added = ft.add_pages([
        page(JANE, 1, 1, "12.3.87 Wheezing at night. Salbutamol inhaler prn.", (dt.date(1987, 3, 12),)),
        page(JANE, 1, 2, "4.6.88 Sprained ankle playing netball."),
        page(JOHN, 2, 1, "Hypertension review, BP 150/95. Start ramipril."),
    ])
    assert added == 3 and ft.doc_count() == 3

    result = ft.search("wheeze")  # stemming: "wheeze" finds "Wheezing"
    assert result.total == 1
    (hit,) = result.hits
    assert (hit.document_id, hit.page) == (1, 1)
    words = "12.3.87 Wheezing at night. Salbutamol inhaler prn.".split()
    shown = snippet(words, [ft.word_matches(w, hit.matched) for w in words])
    assert hit.score > 0 and "[Wheezing]" in shown and hit.dates == (dt.date(1987, 3, 12),)
    assert ft.search('"salbutamol inhaler"').total == 1
    assert ft.search("ramipril OR netball").total == 2
    assert ft.search("chickenpox").total == 0


def test_patient_filter_and_total_counts_every_match(ft: FullText) -> None:
    ft.add_pages([page(JANE, 1, n, f"asthma review number {n}") for n in range(1, 13)])
    ft.add_pages([page(JOHN, 2, n, f"asthma clinic letter {n}") for n in range(1, 4)])

    everyone = ft.search("asthma", limit=5)
    assert everyone.total == 15 and len(everyone.hits) == 5

    john = ft.search("asthma", nhs_number=JOHN, limit=2)
    assert john.total == 3 and len(john.hits) == 2
    assert {h.document_id for h in john.hits} == {2}

    jane = ft.search("asthma", nhs_number=JANE, limit=50)
    assert jane.total == 12 and {h.document_id for h in jane.hits} == {1}
    assert ft.search("asthma", nhs_number="9999999999").total == 0


def test_the_query_cannot_reach_other_fields_or_patients(ft: FullText) -> None:
    ft.add_pages([page(JANE, 1, 1, "BP: 140/90 repeat in 3 months"), page(JOHN, 2, 1, "asthma")])
    assert ft.search("BP: 140/90").total == 1  # "BP:" is text, not a field name
    assert ft.search(f"nhs_number:{JOHN}", nhs_number=JANE).total == 0
    for empty in ("", "   ", "()"):
        with pytest.raises(QueryError, match="nothing to search for"):
            ft.search(empty)
    with pytest.raises(ValueError):
        ft.search("asthma", limit=0)


def test_adding_a_document_again_replaces_its_pages(ft: FullText) -> None:
    pages = [page(JANE, 1, n, f"first reading {n}") for n in (1, 2)]
    ft.add_pages(pages)
    ft.add_pages(pages)
    assert ft.doc_count() == 2 and ft.search("first").total == 2

    ft.add_pages([page(JANE, 1, 1, "first reading"), page(JANE, 1, 2, "corrected reading")])
    assert ft.doc_count() == 2
    assert ft.search("first").total == 1 and ft.search("corrected").hits[0].page == 2


def test_delete_document_removes_only_its_pages(ft: FullText) -> None:
    ft.add_pages([page(JANE, 1, 1, "alpha"), page(JANE, 1, 2, "alpha"), page(JANE, 10, 1, "alpha")])
    assert ft.delete_document(1) == 2
    assert ft.doc_count() == 1
    assert [h.document_id for h in ft.search("alpha").hits] == [10]


def test_the_index_persists_and_reopens(archive: Path) -> None:
    with FullText.open(archive) as ft:
        ft.add_pages([page(JANE, 1, 1, "pneumonia 1992")])
    with FullText.open(archive, create=False) as again:
        assert again.doc_count() == 1 and again.search("pneumonia").total == 1


def test_what_is_not_an_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as caught:
        FullText.open(tmp_path / "none", create=False)
    assert caught.value.code == "archive_missing"

    stranger = tmp_path / "stranger"
    (stranger / "fulltext").mkdir(parents=True)
    (stranger / "fulltext" / "notes.txt").write_text("my notes")
    with pytest.raises(ArchiveError) as caught:
        FullText.open(stranger)
    assert caught.value.code == "archive_corrupt" and "rebuild" in caught.value.message
    assert (stranger / "fulltext" / "notes.txt").read_text() == "my notes"


def test_a_held_write_lock_is_an_archive_error_after_the_timeout(archive: Path) -> None:
    with FullText.open(archive, lock_timeout=0.3) as ft:
        ft.add_pages([page(JANE, 1, 1, "before")])
        # Another writer (as another lgd process would) holds the index's write lock.
        holder = whoosh_index.open_dir(str(archive / "fulltext")).writer()
        try:
            started = time.monotonic()
            with pytest.raises(ArchiveError) as caught:
                ft.add_pages([page(JANE, 1, 2, "blocked")])
            waited = time.monotonic() - started
            assert caught.value.code == "archive_locked" and "another lgd process" in caught.value.message
            assert 0.25 <= waited < 5
            with pytest.raises(ArchiveError):
                ft.delete_document(1)
            assert ft.search("before").total == 1  # searching needs no lock
        finally:
            holder.cancel()
        ft.add_pages([page(JANE, 2, 1, "after")])
        assert ft.doc_count() == 2 and ft.search("blocked").total == 0


def test_a_full_disk_while_writing_is_an_archive_error_and_frees_the_lock(archive: Path) -> None:
    # A file-size limit (as `ulimit -f` sets) makes the kernel refuse Whoosh's writes
    # part-way, the closest thing to a full disk that needs no mount. In a child process,
    # so the limit cannot touch pytest's own files.
    script = textwrap.dedent(
        f"""
        import os, resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from index import ArchiveError, FullText, PageDoc
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        with FullText.open(Path({str(archive)!r}), lock_timeout=0.5) as ft:
            ft.add_pages([PageDoc("{JANE}", 1, "a.pdf", 1, "card", (), "kept")])
            big = [PageDoc("{JANE}", 2, "b.pdf", n, "card", (), os.urandom(100_000).hex()) for n in range(1, 6)]
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
            try:
                ft.add_pages(big)
            except ArchiveError as e:
                print(e.code.value)
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            ft.add_pages([PageDoc("{JANE}", 3, "c.pdf", 1, "card", (), "afterwards")])
            print(ft.doc_count(), ft.search("kept").total, ft.search("afterwards").total)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["archive_full", "2 1 1"], done.stderr


def test_totals_do_not_depend_on_the_limit(ft: FullText) -> None:
    """Whoosh's top-N collection prunes query parts that cannot reach the top; totals must not shrink."""
    ft.add_pages([page(JANE, 1, n, "cough and cold" if n % 3 else "wheeze at night") for n in range(1, 61)])
    ft.add_pages([page(JOHN, 2, n, "cough review" if n % 2 else "wheeze") for n in range(1, 41)])
    everything = ft.search("cough OR wheeze", limit=200)
    assert everything.total == 100
    for limit in (1, 3, 10):
        assert ft.search("cough OR wheeze", limit=limit).total == 100
    assert ft.search("cough OR wheeze", JANE, limit=2).total == 60


def test_a_long_open_index_sees_what_another_writer_commits(archive: Path) -> None:
    with FullText.open(archive) as reader_side:
        assert reader_side.search("asthma").total == 0
        with FullText.open(archive) as writer_side:
            writer_side.add_pages([page(JANE, 1, 1, "asthma review")])
        assert reader_side.search("asthma").total == 1
        with FullText.open(archive) as writer_side:
            writer_side.delete_document(1)
        assert reader_side.search("asthma").total == 0
