"""The full-text index written in groups: one Whoosh commit per N documents or T seconds, not one per document.

A Whoosh commit writes a segment and its table of contents and merges small segments; per
document it was about 80% of the writer's time. Each document is still catalogued in its own
SQLite transaction and marked indexed only after the commit that holds its pages, so a crash
in between leaves catalogued documents marked not indexed: the next `lgd digitise` indexes
them first (`Ingest.reindex_leftovers`), and `lgd index check --repair` finds them too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from index import Catalogue, FullText, PageDoc

DOCUMENTS = 50  # documents per commit: about 500 pages of Lloyd George cards, as `lgd index rebuild` commits
SECONDS = 10.0  # and at least this often, so that `lgd serve` finds a document soon after it is stored


@dataclass(frozen=True, slots=True)
class Grouping:
    """When to commit the index: after `documents` documents or `seconds` since the first uncommitted one."""

    documents: int = DOCUMENTS
    seconds: float = SECONDS

    def __post_init__(self) -> None:
        if self.documents < 1 or self.seconds <= 0:
            raise ValueError("an index group holds at least one document for a positive time")


class IndexGroup:
    """Pages of stored documents waiting for the next index commit."""

    def __init__(self, fulltext: FullText, catalogue: Catalogue, grouping: Grouping = Grouping(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fulltext = fulltext
        self.catalogue = catalogue
        self.grouping = grouping
        self.clock = clock
        self._pages: dict[int, list[PageDoc]] = {}
        self._since: float | None = None

    def __len__(self) -> int:
        return len(self._pages)

    def add(self, document_id: int, pages: Iterable[PageDoc]) -> None:
        """Queue a catalogued document's pages (replacing any queued earlier for it), then commit if due."""
        if self._since is None:
            self._since = self.clock()
        self._pages[document_id] = list(pages)
        self.commit_if_due()

    def due(self) -> bool:
        return bool(self._pages) and (len(self._pages) >= self.grouping.documents
                                      or self.clock() - (self._since or 0.0) >= self.grouping.seconds)

    def commit_if_due(self) -> int:
        return self.commit() if self.due() else 0

    def commit(self) -> int:
        """Index every queued document in one commit, then mark them indexed; returns how many documents."""
        if not self._pages:
            return 0
        pages = [p for group in self._pages.values() for p in group]
        self.fulltext.add_pages(pages)  # replaces what the index held for these documents
        ids = list(self._pages)
        self.catalogue.mark_indexed(*ids)  # only now: a crash before this leaves them to be indexed again
        self._pages.clear()
        self._since = None
        return len(ids)
