"""Keep the full-text index honest: rebuild it from the catalogue, or check that the two agree."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from index import ArchiveError, Catalogue, DocumentRow, FullText, PageDoc
from index.errors import ArchiveErrorCode
from index.fulltext import FULLTEXT_DIR

BATCH = 500  # pages per commit: bounded memory in the writer, few segments


def document_pages(catalogue: Catalogue, row: DocumentRow) -> list[PageDoc]:
    """The non-blank pages of one digitised document, as the index should hold them."""
    dates: dict[int, set] = {}
    for e in catalogue.entries(document_id=row.id):
        if e.date:
            dates.setdefault(e.page, set()).add(e.date)
    return [
        PageDoc(row.nhs_number or "", row.id, row.source, p.number, p.kind, tuple(sorted(dates.get(p.number, ()))), p.text)
        for p in catalogue.pages(row.id)
        if not p.blank
    ]


def catalogue_pages(catalogue: Catalogue) -> Iterator[PageDoc]:
    """Every non-blank page of every digitised document."""
    for row in catalogue.documents(status="ok"):
        yield from document_pages(catalogue, row)


def rebuild(archive: Path, catalogue: Catalogue, progress=None) -> int:
    """Build a new index beside the old one from the catalogue, then swap it in.

    The old index stays usable for searches until the swap, and a crash part-way leaves it
    untouched (the half-built one is removed on the next rebuild).
    """
    live = archive / FULLTEXT_DIR
    _refuse_to_empty(archive, catalogue)
    fresh = archive / "tmp" / "fulltext.rebuild"
    shutil.rmtree(fresh, ignore_errors=True)
    FullText.create(fresh)
    count = 0
    with FullText.open(archive, folder=fresh) as ft:
        batch: list[PageDoc] = []
        for page in catalogue_pages(catalogue):
            batch.append(page)
            if len(batch) >= BATCH:
                count += ft.add_pages(batch, merge=False)
                batch.clear()
                if progress:
                    progress(count)
        count += ft.add_pages(batch, merge=False)
        ft.optimize()
    old = archive / "tmp" / "fulltext.old"
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        os.replace(live, old)
    os.replace(fresh, live)
    shutil.rmtree(old, ignore_errors=True)
    for row in catalogue.unindexed_documents():
        catalogue.mark_indexed(row.id)
    return count


def _refuse_to_empty(archive: Path, catalogue: Catalogue, index_pages: int | None = None) -> None:
    """Refuse to replace a readable, non-empty index with the pages of a catalogue that has none.

    A catalogue with no documents beside an index of many pages was most likely restored
    from the wrong backup; remaking the index from it would delete every page.
    """
    if catalogue.counts().pages:
        return
    if index_pages is None:
        try:
            with FullText.open(archive, create=False) as ft:
                index_pages = ft.doc_count()
        except ArchiveError:
            return  # no index, or one past reading: nothing worth keeping
    if index_pages:
        raise ArchiveError(
            ArchiveErrorCode.archive_corrupt,
            f"The catalogue {archive / 'catalogue.sqlite'} holds no pages but the full-text index holds "
            f"{index_pages}: the catalogue was probably restored from the wrong backup. Restore the right "
            "catalogue from your latest backup; to empty the index anyway, delete "
            f"{archive / FULLTEXT_DIR} and run `lgd index rebuild`.",
        )


@dataclass
class CheckReport:
    catalogue_pages: int = 0
    index_pages: int = 0
    missing: list[str] = field(default_factory=list)  # in the catalogue, not in the index
    extra: list[str] = field(default_factory=list)  # in the index, not in the catalogue
    mismatched: list[str] = field(default_factory=list)  # stored fields disagree
    wrong_patient: list[str] = field(default_factory=list)  # indexed under another NHS number
    missing_pdfs: list[str] = field(default_factory=list)  # catalogued PDF/A files not in pdf/
    sampled: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.wrong_patient or self.missing_pdfs)

    @property
    def index_ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.wrong_patient)

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "catalogue_pages": self.catalogue_pages,
            "index_pages": self.index_pages,
            "missing": self.missing[:50],
            "extra": self.extra[:50],
            "mismatched": self.mismatched[:50],
            "wrong_patient": self.wrong_patient[:50],
            "missing_pdfs": self.missing_pdfs[:50],
            "sampled": self.sampled,
        }


def check(catalogue: Catalogue, fulltext: FullText, sample: int = 200, seed: int = 0) -> CheckReport:
    """Compare the catalogue's pages with the index (counts, keys, every page's NHS number, a
    sample of stored dates) and check that every catalogued PDF/A is in the archive."""
    expected = {f"{p.document_id}:{p.page}": p for p in catalogue_pages(catalogue)}
    indexed = fulltext.pages()
    patients = fulltext.page_patients()
    report = CheckReport(len(expected), fulltext.doc_count())
    report.missing = sorted(set(expected) - set(indexed))
    report.extra = sorted(set(indexed) - set(expected))
    keys = sorted(set(expected) & set(indexed))
    for key in random.Random(seed).sample(keys, min(sample, len(keys))):
        want = sorted(d.year * 10000 + d.month * 100 + d.day for d in expected[key].dates)
        if sorted(indexed[key]) != want:
            report.mismatched.append(key)
    report.sampled = min(sample, len(keys))
    report.wrong_patient = sorted(k for k in keys if patients.get(k) != expected[k].nhs_number)
    archive = catalogue.archive.resolve()
    for row in catalogue.documents(status="ok"):
        path = (archive / row.pdfa_path).resolve() if row.pdfa_path else None
        if path is None or not path.is_relative_to(archive) or not path.is_file():
            report.missing_pdfs.append(row.pdfa_path or row.source)
    return report


def repair(archive: Path, catalogue: Catalogue, report: CheckReport) -> int:
    """Fix what `check` found in the index by re-adding the affected documents from the catalogue (no OCR).

    Missing PDF files cannot be repaired from the catalogue: they are restored from a backup.
    """
    _refuse_to_empty(archive, catalogue, report.index_pages)
    wrong = (*report.missing, *report.mismatched, *report.extra, *report.wrong_patient)
    if len(wrong) > report.catalogue_pages // 2:
        rebuild(archive, catalogue)
        return len(wrong)
    affected = {int(k.split(":")[0]) for k in wrong}
    with FullText.open(archive) as ft:
        for document_id in sorted(affected):
            row = catalogue.document(document_id)
            pages = document_pages(catalogue, row) if row is not None and row.status == "ok" else []
            if pages:
                ft.add_pages(pages)  # replaces whatever the index held for the document
            else:
                ft.delete_document(document_id)
    return len(wrong)
