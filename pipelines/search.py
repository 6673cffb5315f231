"""Search the archive: ranked pages with snippets, entry dates and highlight boxes, every patient search audited."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from index import ArchiveError, Catalogue, FullText
from index.db import refuse_damaged
from index.fulltext import QueryError, snippet
from pipelines.errors import ExitCode, LgdError

KINDS = ("card", "letter", "envelope", "result", "unknown")


@dataclass(frozen=True, slots=True)
class PageHit:
    nhs_number: str
    source: str
    page: int
    score: float
    snippet: str
    dates: tuple[dt.date, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    kind: str
    partial: bool = False  # holds only some of the query's words (listed after full matches)

    def as_json(self) -> dict:
        return {
            "nhs_number": self.nhs_number,
            "source": self.source,
            "page": self.page,
            "score": round(self.score, 3),
            "snippet": self.snippet,
            "dates": [d.isoformat() for d in self.dates],
            "boxes": [list(b) for b in self.boxes],
            "kind": self.kind,
            "partial": self.partial,
        }


@dataclass(frozen=True, slots=True)
class Found:
    total: int  # every page that would be listed: full matches, then partial ones
    hits: tuple[PageHit, ...]
    dropped: int = 0  # hits the index gave that the catalogue does not back (stale index)

    @property
    def warning(self) -> str | None:
        if not self.dropped:
            return None
        return (
            f"{self.dropped} result(s) left out: the full-text index does not agree with the catalogue "
            "(restored from different backups?); run `lgd index rebuild` to remake it from the catalogue"
        )


def open_catalogue(archive: Path, *, readonly: bool = False) -> Catalogue:
    """The archive's catalogue, never created here; `readonly` for commands that only look."""
    refuse_damaged(archive)
    if not (archive / "catalogue.sqlite").exists():
        raise LgdError(
            f"there is no archive at {archive}; digitise scans into it first (lgd digitise PATH --archive {archive})",
            ExitCode.archive_error,
            "archive_missing",
        )
    return Catalogue.open(archive, create=False, readonly=readonly)


def open_archive(archive: Path, *, readonly: bool = False) -> tuple[Catalogue, FullText]:
    catalogue = open_catalogue(archive, readonly=readonly)
    try:
        return catalogue, FullText.open(archive, create=False)
    except ArchiveError:
        catalogue.close()
        raise


def search(
    catalogue: Catalogue,
    fulltext: FullText,
    query: str,
    *,
    actor: str,
    nhs_number: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    kind: str | None = None,
    limit: int = 10,
    audit_detail: dict[str, str] | None = None,
) -> Found:
    """Ranked pages for `query`, each checked against the catalogue before it is shown.

    A search that names a patient is written to the audit log before it runs; an
    archive-wide one after, with the number of pages found (and no patient's data).
    `audit_detail` adds who asked (role, client address) to that record.
    """
    if nhs_number is not None and catalogue.patient(nhs_number) is None:
        raise LgdError(f"no patient with NHS number {nhs_number} in this archive", ExitCode.partial, "no_patient")
    filters = dict(query=query, date_from=_iso(date_from), date_to=_iso(date_to), kind=kind, **(audit_detail or {}))
    if nhs_number is not None:
        catalogue.audit(actor, "search", nhs_number, **filters)
    entries: dict[int, tuple] = {}

    def entries_of(document_id: int) -> tuple:
        if document_id not in entries:
            entries[document_id] = catalogue.entries(document_id=document_id)
        return entries[document_id]

    def dated_match(document_id: int, page: int, terms) -> bool:
        # Keep a page only if an entry holding a matched word is dated in the period; when no
        # dated entry holds one (the match is in a header, say), the page's dates decide.
        low, high = date_from or dt.date.min, date_to or dt.date.max
        matched = [
            e for e in entries_of(document_id)
            if e.page == page and e.date is not None and any(fulltext.word_matches(w, terms) for w in e.text.split())
        ]
        return not matched or any(low <= e.date <= high for e in matched)

    try:
        result = fulltext.search(
            query, nhs_number, limit, date_from=date_from, date_to=date_to, kind=kind,
            sources=catalogue.document_ids_named, dated_match=dated_match,
        )
    except QueryError as e:
        raise LgdError(f"cannot search for {query!r}: {e}", ExitCode.usage, "bad_query") from e
    hits = []
    dropped = 0
    for hit in result.hits:
        row = catalogue.document(hit.document_id)
        page = next((p for p in catalogue.pages(hit.document_id) if p.number == hit.page), None) if row else None
        if row is None or page is None or row.status != "ok" or (nhs_number is not None and row.nhs_number != nhs_number):
            # The index names a page the catalogue does not hold, or holds for another
            # patient (catalogue and index restored from different backups): never show it.
            dropped += 1
            continue
        marks = [fulltext.word_matches(w[0], hit.matched) for w in page.words]
        hits.append(
            PageHit(
                nhs_number=row.nhs_number or "",
                source=row.source,
                page=hit.page,
                score=hit.score,
                snippet=snippet([w[0] for w in page.words], marks),
                dates=hit.dates,
                boxes=tuple((w[1], w[2], w[3], w[4]) for w, m in zip(page.words, marks, strict=True) if m),
                kind=page.kind,
                partial=hit.partial,
            )
        )
    total = max(len(hits), result.total + result.partial - dropped)
    if nhs_number is None:
        catalogue.audit(actor, "search", None, **filters, hits=len(hits), total=total)
    return Found(total, tuple(hits), dropped)


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None
