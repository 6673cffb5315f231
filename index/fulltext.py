"""The Whoosh full-text index of page texts: one index document per page, behind a small interface.

All Whoosh code in lgd lives here. The catalogue is the record of truth; this index can be
rebuilt from it (Catalogue.mark_unindexed, then add the pages again), which is why adding
is idempotent and keyed by (document id, page).
"""

from __future__ import annotations

import datetime as dt
import pickle
import struct
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from whoosh import highlight, index
from whoosh.analysis import StemmingAnalyzer
from whoosh.fields import ID, KEYWORD, NUMERIC, TEXT, Schema
from whoosh.index import LockError
from whoosh.qparser import FieldsPlugin, QueryParser
from whoosh.query import And, NullQuery, Term
from whoosh.writing import IndexWriter

from .errors import ArchiveError, ArchiveErrorCode, from_oserror

FULLTEXT_DIR = "fulltext"
SNIPPET_CHARS = 160


def _schema() -> Schema:
    return Schema(
        key=ID(unique=True),  # f"{document_id}:{page}", what update_document replaces by
        nhs_number=ID(stored=True),
        document_id=NUMERIC(int, bits=64, stored=True),
        source=ID(stored=True),
        page=NUMERIC(int, stored=True),
        kind=ID(stored=True),
        dates=KEYWORD(stored=True, scorable=False),  # ISO dates, space-separated
        # Stored for snippets; chars/positions so phrases and highlights work.
        text=TEXT(analyzer=StemmingAnalyzer(), stored=True, phrase=True, chars=True),
    )


@dataclass(frozen=True, slots=True)
class PageDoc:
    """One page as the index sees it."""

    nhs_number: str
    document_id: int
    source: str
    page: int
    kind: str
    dates: tuple[dt.date, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    nhs_number: str
    source: str
    page: int
    document_id: int
    score: float
    snippet: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    """`total` counts every matching page; `hits` holds at most the `limit` best."""

    total: int
    hits: tuple[Hit, ...]


class _BracketFormatter(highlight.Formatter):
    """Marks matched terms as [term]: readable on a terminal and in JSON alike."""

    between = " … "

    def format_token(self, text: str, token: object, replace: bool = False) -> str:
        return f"[{highlight.get_text(text, token, replace)}]"


class FullText:
    """The archive's Whoosh index. Searching needs no lock; writing takes the index's write lock."""

    def __init__(self, ix: index.Index, folder: Path, lock_timeout: float) -> None:
        self._ix = ix
        self.folder = folder
        self._lock_timeout = lock_timeout

    @classmethod
    def open(cls, archive_dir: Path, *, create: bool = True, lock_timeout: float = 30.0) -> FullText:
        """Open the index in `archive_dir`/fulltext, creating it when `create` and absent.

        Only ever open the archive's own index: Whoosh keeps stored fields and its table of
        contents as pickles, and unpickling a file from elsewhere can run arbitrary code.

        Raises:
            ArchiveError: no index and not `create`; the folder holds something that is not an
                lgd index; the disk is read-only or full.
        """
        folder = Path(archive_dir) / FULLTEXT_DIR
        try:
            if index.exists_in(str(folder)):
                ix = index.open_dir(str(folder))
            elif folder.is_dir() and any(folder.iterdir()):
                raise _corrupt(folder, "it holds files but no Whoosh index")
            elif not create:
                raise ArchiveError(
                    ArchiveErrorCode.archive_missing,
                    f"There is no full-text index at {folder}. Check --archive; digitising into "
                    "the archive creates it.",
                )
            else:
                folder.mkdir(parents=True, exist_ok=True)
                ix = index.create_in(str(folder), _schema())
        except OSError as exc:
            raise (from_oserror(exc, Path(archive_dir)) or exc) from exc
        except (index.IndexError, EOFError, ValueError, TypeError, pickle.UnpicklingError, struct.error) as exc:
            # What a damaged or foreign table of contents raises while being read.
            raise _corrupt(folder, str(exc) or type(exc).__name__) from exc
        if set(ix.schema.names()) != set(_schema().names()):
            ix.close()
            raise _corrupt(folder, f"its fields are {sorted(ix.schema.names())}")
        return cls(ix, folder, lock_timeout)

    def close(self) -> None:
        self._ix.close()

    def __enter__(self) -> FullText:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _writer(self) -> IndexWriter:
        try:
            return self._ix.writer(limitmb=64, timeout=self._lock_timeout, delay=0.1)
        except LockError as exc:
            raise ArchiveError(
                ArchiveErrorCode.archive_locked,
                f"The full-text index {self.folder} is being written by another lgd process "
                f"(waited {self._lock_timeout:g} s). Wait for it to finish and run the command "
                "again; the lock is released when that process ends.",
            ) from exc
        except OSError as exc:
            raise (from_oserror(exc, self.folder.parent) or exc) from exc

    def _commit(self, writer: IndexWriter, work: Callable[[IndexWriter], int]) -> int:
        """Run `work(writer)` and commit once; on any error give the writer up, releasing the lock."""
        try:
            count = work(writer)
            # merge=True folds small segments together as they accumulate; never optimize
            # here: rewriting the whole index per batch would make ingest quadratic.
            writer.commit(merge=True)
        except OSError as exc:
            _abandon(writer)
            raise (from_oserror(exc, self.folder.parent) or exc) from exc
        except BaseException:
            _abandon(writer)
            raise
        return count

    def add_pages(self, docs: Iterable[PageDoc]) -> int:
        """Add (or replace) pages in one commit; returns how many. Re-adding a page is harmless.

        Raises:
            ArchiveError: another process holds the write lock past `lock_timeout`, or the
                disk is read-only or full (nothing of the batch is committed).
        """

        def work(writer: IndexWriter) -> int:
            n = 0
            for d in docs:
                writer.update_document(
                    key=f"{d.document_id}:{d.page}",
                    nhs_number=d.nhs_number,
                    document_id=int(d.document_id),
                    source=d.source,
                    page=int(d.page),
                    kind=str(d.kind),
                    dates=" ".join(x.isoformat() for x in d.dates),
                    text=d.text,
                )
                n += 1
            return n

        return self._commit(self._writer(), work)

    def delete_document(self, document_id: int) -> int:
        """Remove every page of a document; returns how many pages were removed."""
        return self._commit(self._writer(), lambda w: w.delete_by_term("document_id", int(document_id)))

    def doc_count(self) -> int:
        """Number of pages in the index."""
        return self._ix.doc_count()

    def search(self, query: str, nhs_number: str | None = None, limit: int = 10) -> SearchResult:
        """Pages whose text matches `query` (Whoosh syntax over page text), best first.

        With `nhs_number`, only that patient's pages are searched. The query cannot name
        other fields: a user's "BP: 140/90" must not turn into a search of a field "BP".
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        parser = QueryParser("text", self._ix.schema)
        parser.remove_plugin_class(FieldsPlugin)
        q = parser.parse(query)
        if q is None or q is NullQuery:
            return SearchResult(0, ())
        if nhs_number is not None:
            # A conjunction, not search(filter=...): Whoosh 2.7.5's filtered count is wrong
            # (an empty filter counts every match, and with terms=True the count ignores
            # the filter).
            # Every hit shares the patient term, so it shifts all scores alike.
            q = And([q, Term("nhs_number", nhs_number)])
        with self._ix.searcher() as searcher:
            results = searcher.search(q, limit=limit)
            results.fragmenter = highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=40)
            results.formatter = _BracketFormatter()
            hits = tuple(
                Hit(
                    nhs_number=h["nhs_number"],
                    source=h["source"],
                    page=h["page"],
                    document_id=h["document_id"],
                    score=float(h.score or 0.0),
                    snippet=h.highlights("text", top=2) or " ".join(h["text"].split())[:SNIPPET_CHARS],
                )
                for h in results
            )
            # len(results) counts every match (Whoosh runs the full count), not just the
            # `limit` scored ones.
            return SearchResult(total=len(results), hits=hits)


def _abandon(writer: IndexWriter) -> None:
    # Best effort by design: we are already handling the error that matters, and the one
    # thing that must happen is releasing the lock, or every later writer would time out.
    if writer.is_closed:
        return
    with suppress(OSError):
        writer.cancel()
    if not writer.is_closed:
        with suppress(OSError):
            writer.writelock.release()


def _corrupt(folder: Path, why: str) -> ArchiveError:
    return ArchiveError(
        ArchiveErrorCode.archive_corrupt,
        f"{folder} is not a usable lgd full-text index ({why}). Move it aside and rebuild "
        "the index from the catalogue (it holds everything the index is made from).",
    )
