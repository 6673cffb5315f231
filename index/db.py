"""Opening, migrating and transacting on the catalogue's SQLite file, with its errors mapped to ArchiveError."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from .errors import ArchiveError, ArchiveErrorCode, from_oserror, from_sqlite
from .schema import MIGRATIONS, SCHEMA_VERSION

CATALOGUE_NAME = "catalogue.sqlite"
# "LGD1": marks the file as ours, so some other SQLite file is refused rather than migrated.
APPLICATION_ID = 0x4C474431

P = ParamSpec("P")
R = TypeVar("R")


def mapped(method: Callable[P, R]) -> Callable[P, R]:
    """Turn SQLite errors about the archive (read-only, full, locked, corrupt) into ArchiveError.

    For methods of objects with an `archive` attribute (the folder named in messages).
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            error = from_sqlite(exc, args[0].archive)  # type: ignore[attr-defined]
            if error is None:
                raise
            raise error from exc

    return wrapper


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: all of it or none of it.

    IMMEDIATE takes the write lock up front, so a second writer waits (busy_timeout) at the
    start instead of failing half-way through with SQLITE_BUSY.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # COMMIT itself can fail (disk full); SQLite may already have rolled back.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def connect(archive: Path, *, create: bool, readonly: bool, busy_timeout: float) -> sqlite3.Connection:
    """A connection to `archive`'s catalogue, created and migrated to SCHEMA_VERSION unless `readonly`.

    Raises:
        ArchiveError: see Catalogue.open.
    """
    if archive.exists() and not archive.is_dir():
        raise ArchiveError(
            ArchiveErrorCode.archive_not_folder,
            f"The archive {archive} is a file, not a folder. Give --archive a folder "
            "(it is created if missing).",
        )
    db = archive / CATALOGUE_NAME
    refuse_damaged(archive)
    if db.exists() and db.stat().st_size == 0 and readonly:
        # An empty file is no catalogue; opened read-only SQLite would call it "outdated".
        raise ArchiveError(
            ArchiveErrorCode.archive_missing,
            f"The catalogue {db} is empty. Check --archive (or LGD_ARCHIVE); digitising into a new "
            "archive folder creates one.",
        )
    if not db.exists():
        if not create or readonly:
            raise ArchiveError(
                ArchiveErrorCode.archive_missing,
                f"There is no catalogue at {db}. Check --archive (or LGD_ARCHIVE); "
                "digitising into a new archive folder creates one.",
            )
        try:
            archive.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise (from_oserror(exc, archive) or exc) from exc
    mode = "ro" if readonly else "rwc"
    try:
        conn = sqlite3.connect(
            f"{db.resolve().as_uri()}?mode={mode}",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,  # transactions are explicit, see transaction()
        )
    except sqlite3.Error as exc:
        raise (from_sqlite(exc, archive) or exc) from exc
    try:
        _prepare(conn, archive, busy_timeout, readonly)
    except sqlite3.Error as exc:
        conn.close()
        raise (from_sqlite(exc, archive) or exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def archive_data(archive: Path) -> str | None:
    """The first of the archive's data folders (pdf/, keys/, fulltext/) that holds data, or None."""
    for name, pattern in (("pdf", "*"), ("keys", "*"), ("fulltext", "*.seg")):
        folder = archive / name
        try:
            if folder.is_dir() and any(p.is_file() for p in folder.rglob(pattern)):
                return f"{name}/"
        except OSError:
            return f"{name}/"  # unreadable: assume it holds something rather than start afresh
    return None


def refuse_damaged(archive: Path) -> None:
    """Refuse an archive whose catalogue is missing or empty (0 bytes) while its PDFs, keys or index hold data.

    Such an archive lost its catalogue (a failed copy, a restore from the wrong backup);
    creating a new, empty catalogue over it would make every record unreachable, and a
    repair of the index would then delete every page. Never writes.

    Raises:
        ArchiveError: `archive_corrupt`, saying how to restore.
    """
    db = archive / CATALOGUE_NAME
    try:
        state = "empty (0 bytes)" if db.stat().st_size == 0 else None
    except FileNotFoundError:
        state = "missing"
    except OSError:
        return  # let the open itself report what is wrong
    if state is None:
        return
    held = archive_data(archive)
    if held is None:
        return
    raise ArchiveError(
        ArchiveErrorCode.archive_corrupt,
        f"The archive {archive} is damaged: its catalogue {db} is {state} but {archive / held} holds data. "
        f"Restore {CATALOGUE_NAME} (and any {CATALOGUE_NAME}-wal beside it) from your latest backup; "
        "lgd will not start an empty catalogue over existing records.",
    )


def _prepare(conn: sqlite3.Connection, archive: Path, busy_timeout: float, readonly: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    _check_ours(conn, archive)
    if readonly:
        version = _version(conn)
        _check_not_newer(version, archive)
        if version < SCHEMA_VERSION:
            raise ArchiveError(
                ArchiveErrorCode.archive_outdated,
                f"The catalogue {archive / CATALOGUE_NAME} has schema version {version}; this lgd "
                f"needs {SCHEMA_VERSION}. Run a command that writes to the archive (for example "
                "lgd digitise) once to upgrade it.",
            )
        return
    # WAL lets searches read while an ingest writes. FULL sync because a commit lost in a
    # power cut would leave a stored PDF that the catalogue does not know about.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    # Read the version inside the write transaction: two processes opening a new archive
    # at once must not both apply the same migration.
    with transaction(conn):
        version = _version(conn)
        _check_not_newer(version, archive)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_ours(conn: sqlite3.Connection, archive: Path) -> None:
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
        raise ArchiveError(
            ArchiveErrorCode.archive_corrupt,
            f"{archive / CATALOGUE_NAME} is an SQLite database but not an lgd catalogue. "
            "Point --archive at an lgd archive folder, or at a new empty folder.",
        )


def _check_not_newer(version: int, archive: Path) -> None:
    if version > SCHEMA_VERSION:
        raise ArchiveError(
            ArchiveErrorCode.archive_too_new,
            f"The catalogue {archive / CATALOGUE_NAME} has schema version {version}, newer than "
            f"this lgd understands ({SCHEMA_VERSION}). Upgrade lgd; do not write to this archive "
            "with the older version.",
        )


def schema_version(conn: sqlite3.Connection) -> int:
    return _version(conn)
