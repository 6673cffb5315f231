"""Errors raised by the archive, each with a stable short code and a sentence that says what to do."""

from __future__ import annotations

import errno
import sqlite3
from enum import StrEnum
from pathlib import Path


class ArchiveErrorCode(StrEnum):
    """Stable short codes for `--json` output; never rename a released value."""

    archive_readonly = "archive_readonly"
    archive_full = "archive_full"
    archive_locked = "archive_locked"
    archive_corrupt = "archive_corrupt"
    archive_missing = "archive_missing"
    archive_not_folder = "archive_not_folder"
    archive_too_new = "archive_too_new"
    archive_outdated = "archive_outdated"
    archive_io = "archive_io"
    archive_insecure = "archive_insecure"


class ArchiveError(Exception):
    """The archive cannot be used as asked; `code` is for machines, `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = ArchiveErrorCode(code)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ArchiveError({self.code.value!r}, {self.message!r})"


class DuplicateDocument(Exception):
    """A document with this content hash is already in the catalogue (as `document_id`)."""

    def __init__(self, sha256: str, document_id: int) -> None:
        super().__init__(f"a document with SHA-256 {sha256} is already catalogued as document {document_id}")
        self.sha256 = sha256
        self.document_id = document_id


# errno values that mean "this archive cannot be written"; EPERM covers immutable files.
_READONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# EFBIG: a file-size limit (ulimit -f) or a filesystem's maximum file size was hit.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def readonly_error(archive: Path, detail: str) -> ArchiveError:
    return ArchiveError(
        ArchiveErrorCode.archive_readonly,
        f"The archive {archive} cannot be written ({detail}). "
        "Check that the folder is on a writable disk and that this user may write to it, "
        "or choose another archive with --archive.",
    )


def full_error(archive: Path, detail: str) -> ArchiveError:
    return ArchiveError(
        ArchiveErrorCode.archive_full,
        f"The disk holding the archive {archive} is full ({detail}). "
        "Free some space (or raise the quota) and run the command again; "
        "inputs that were not stored will be processed again.",
    )


def from_oserror(exc: OSError, archive: Path) -> ArchiveError | None:
    """The ArchiveError for an OSError met while writing the archive, or None if it has none."""
    detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if exc.errno in _FULL_ERRNOS:
        return full_error(archive, detail)
    if exc.errno in _READONLY_ERRNOS:
        return readonly_error(archive, detail)
    return None


def from_sqlite(exc: sqlite3.Error, archive: Path) -> ArchiveError | None:
    """The ArchiveError for an SQLite error, or None when it is not about the archive itself.

    IntegrityError and programming errors are never mapped: they are bugs or bad rows, and
    hiding them behind an archive message would send the user looking in the wrong place.
    """
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return None
    text = str(exc).lower()
    catalogue = archive / "catalogue.sqlite"
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return readonly_error(archive, f"SQLite: {exc}")
    if "disk is full" in text or "database or disk is full" in text:
        return full_error(archive, f"SQLite: {exc}")
    if "locked" in text or "busy" in text:
        return ArchiveError(
            ArchiveErrorCode.archive_locked,
            f"The catalogue {catalogue} is busy: another lgd process kept it locked too long "
            f"({exc}). Wait for the other process to finish and run the command again.",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return ArchiveError(
            ArchiveErrorCode.archive_corrupt,
            f"The catalogue {catalogue} is damaged or is not an lgd catalogue ({exc}). "
            "Do not write to it: restore it from a backup, or point --archive at the right folder.",
        )
    if "disk i/o error" in text:
        return ArchiveError(
            ArchiveErrorCode.archive_io,
            f"The disk holding the archive {archive} reported an I/O error ({exc}). "
            "Check the disk (and its free space) before running the command again.",
        )
    return None
