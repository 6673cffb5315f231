"""The lgd archive: the SQLite catalogue, the archive folder's files and the Whoosh full-text index."""

from .catalogue import Catalogue
from .errors import ArchiveError, ArchiveErrorCode, DuplicateDocument
from .fulltext import FullText, Hit, PageDoc, SearchResult
from .rows import AuditRow, Counts, DocumentRow, EntryRow, PageRow, PatientRow
from .store import ArchiveStore, sha256_file

__all__ = [
    "ArchiveError",
    "ArchiveErrorCode",
    "ArchiveStore",
    "AuditRow",
    "Catalogue",
    "Counts",
    "DocumentRow",
    "DuplicateDocument",
    "EntryRow",
    "FullText",
    "Hit",
    "PageDoc",
    "PageRow",
    "PatientRow",
    "SearchResult",
    "sha256_file",
]
