"""Search the archive: ranked pages with snippets, entry dates and highlight boxes, every patient search audited."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from index import ArchiveError, Catalogue, FullText
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
    total: int
    hits: tuple[PageHit, ...]


def open_catalogue(archive: Path) -> Catalogue:
    if not (archive / "catalogue.sqlite").exists():
        raise LgdError(
            f"there is no archive at {archive}; digitise scans into it first (lgd digitise PATH --archive {archive})",
            ExitCode.archive_error,
            "archive_missing",
        )
    return Catalogue.open(archive, create=False)


def open_archive(archive: Path) -> tuple[Catalogue, FullText]:
    catalogue = open_catalogue(archive)
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
) -> Found:
    """Ranked pages for `query`; a search that names a patient is written to the audit log first."""
    if nhs_number is not None and catalogue.patient(nhs_number) is None:
        raise LgdError(f"no patient with NHS number {nhs_number} in this archive", ExitCode.partial, "no_patient")
    if nhs_number is not None:
        catalogue.audit(actor, "search", nhs_number, query=query, date_from=_iso(date_from), date_to=_iso(date_to), kind=kind)
    try:
        result = fulltext.search(query, nhs_number, limit, date_from=date_from, date_to=date_to, kind=kind)
    except QueryError as e:
        raise LgdError(f"cannot search for {query!r}: {e}", ExitCode.usage, "bad_query") from e
    hits = []
    for hit in result.hits:
        row = catalogue.document(hit.document_id)
        page = next((p for p in catalogue.pages(hit.document_id) if p.number == hit.page), None)
        if row is None or page is None:
            continue  # indexed but no longer catalogued: `lgd index check --repair` tidies this
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
    return Found(result.total, tuple(hits))


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None
