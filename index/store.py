"""The archive folder's files: its layout, PDF/A files by content hash, and quarantined copies of failed inputs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ArchiveError, ArchiveErrorCode, from_oserror

CHUNK = 1 << 20  # 1 MiB: large enough to stream quickly, small enough to never matter for memory
# A quarantine copy is for a person to look at; a multi-GB scan is left where it is and
# its path recorded instead of filling the archive disk with a second copy.
MAX_QUARANTINE_COPY = 2 << 30
_NHS = re.compile(r"\d{10}")
_SHA = re.compile(r"[0-9a-f]{64}")
# Base names only, and nothing a shell or another OS would trip over.
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()\[\]-]+")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks. Raises OSError if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    # Makes a rename durable: without it a power cut can lose the directory entry.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safe_name(name: str, limit: int = 120) -> str:
    cleaned = _UNSAFE.sub("_", Path(name).name).strip(" .") or "input"
    return cleaned[:limit]


PRIVATE_DIR = 0o700  # the archive's folders: owner only


def private_dir(folder: Path) -> None:
    """Create `folder` (and missing parents) readable by its owner only; leave an existing one as it is."""
    if folder.is_dir():
        return
    if not folder.parent.exists():
        private_dir(folder.parent)
    folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    folder.chmod(PRIVATE_DIR)  # mkdir's mode is cut by the umask; chmod's is not


class ArchiveStore:
    """The archive folder on disk. Never deletes or moves a user's input; writes are atomic.

    Args:
        root: the archive folder (default of the CLI: ./lgd-archive).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def pdf_dir(self) -> Path:
        return self.root / "pdf"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def fulltext_dir(self) -> Path:
        return self.root / "fulltext"

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Map OSErrors met while writing the archive to ArchiveError (full / read-only)."""
        try:
            yield
        except OSError as exc:
            error = from_oserror(exc, self.root)
            if error is None:
                raise
            raise error from exc

    def ensure(self) -> None:
        """Create the archive layout (idempotent).

        Raises:
            ArchiveError: the root is a file, or the disk is read-only or full.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ArchiveError(
                ArchiveErrorCode.archive_not_folder,
                f"The archive {self.root} is a file, not a folder. Give --archive a folder.",
            )
        with self._writing():
            for folder in (self.root, self.pdf_dir, self.quarantine_dir, self.tmp_dir, self.fulltext_dir):
                private_dir(folder)
        self.check_private()

    def check_private(self) -> None:
        """Refuse an archive folder that others could write to.

        The archive holds identifiable health records, and its index stores Python pickles:
        whoever can write into it could rewrite records or run code as every user of lgd.

        Raises:
            ArchiveError: `archive_insecure`, naming the folder and the chmod that fixes it.
        """
        for folder in (self.root, self.pdf_dir, self.quarantine_dir, self.tmp_dir, self.fulltext_dir):
            try:
                st = folder.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode) and folder != self.root:
                raise ArchiveError(ArchiveErrorCode.archive_insecure,
                                   f"{folder} is a symbolic link; the archive's folders must be its own. "
                                   "Move the linked folder into the archive.")
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise ArchiveError(ArchiveErrorCode.archive_insecure,
                                   f"{folder} can be written by other users; it holds patient records and code lgd "
                                   f"loads. Make it private (chmod -R go-rwx {self.root}) and run the command again.")

    def path(self, relative: str) -> Path:
        """The absolute path of an archive-relative path (as in DocumentRow.pdfa_path)."""
        full = (self.root / relative).resolve()
        if not full.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative!r} is not inside the archive {self.root}")
        return full

    def put_pdf(self, nhs_number: str, src: Path) -> str:
        """Store `src` as pdf/{nhs_number}/{sha256}.pdf and return that path relative to the archive.

        The copy is written to tmp/, fsynced and renamed into place, so the target is either
        absent or complete. If the target already holds the same bytes nothing is written.

        Raises:
            ValueError: `nhs_number` is not ten digits, or `src` changed while being copied.
            OSError: `src` cannot be read (a problem with the input, not the archive).
            ArchiveError: the archive is read-only or full; no partial file is left behind.
        """
        if not _NHS.fullmatch(nhs_number):
            raise ValueError(f"NHS number {nhs_number!r} must be ten digits to name an archive folder")
        src = Path(src)
        sha = sha256_file(src)
        relative = f"pdf/{nhs_number}/{sha}.pdf"
        target = self.root / relative
        if target.is_file() and sha256_file(target) == sha:
            return relative
        # Open the input outside _writing(): an unreadable input is the input's problem
        # (quarantine it), not a read-only archive.
        with open(src, "rb") as fsrc, self._writing():
            private_dir(self.tmp_dir)
            private_dir(target.parent)
            tmp, copied = self._copy_to_tmp(fsrc)
            try:
                if copied != sha:
                    raise ValueError(f"{src} changed while it was being stored; try again once it is complete")
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(target.parent)
        return relative

    def _copy_to_tmp(self, fsrc: BinaryIO, folder: Path | None = None) -> tuple[Path, str]:
        """Stream `fsrc` into a new fsynced temp file; returns (path, sha256). Cleans up on error."""
        fd, name = tempfile.mkstemp(dir=folder or self.tmp_dir, prefix=".lgd-", suffix=".part")
        tmp = Path(name)
        digest = hashlib.sha256()
        try:
            os.fchmod(fd, 0o600)  # patient records: owner only
            with os.fdopen(fd, "wb") as fdst:
                while chunk := fsrc.read(CHUNK):
                    digest.update(chunk)
                    fdst.write(chunk)
                fdst.flush()
                os.fsync(fdst.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest()

    def quarantine(
        self,
        files: Sequence[Path],
        source: str,
        code: str,
        reason: str,
        now: dt.datetime,
        *,
        max_copy_bytes: int = MAX_QUARANTINE_COPY,
        detail: dict | None = None,
        copy: bool = True,
    ) -> Path:
        """Copy a failed input's file(s) into a new quarantine folder with a reason.json; return the folder.

        Copies, never moves: the user's input stays where it was. A file that cannot be read,
        or is larger than `max_copy_bytes`, or does not fit on the disk, is not copied; its
        path and the cause are recorded in reason.json ({source, code, reason, at, files}),
        where each file has path, name (of the copy, or null), bytes, sha256, copied, error; `detail`
        adds keys of the caller's (the two identities of an identity conflict). With `copy` False
        (the input is not a scan at all) only the paths are recorded: quarantine is for scans.

        Raises:
            ArchiveError: the quarantine folder or reason.json cannot be written.
        """
        with self._writing():
            folder = self._new_quarantine_folder(now, source)
            try:
                records = [
                    self._quarantine_copy(Path(f), folder, i, len(files), max_copy_bytes) if copy else
                    {"path": os.path.abspath(f), "name": None, "copied": False, "error": "not a scan: not copied"}
                    for i, f in enumerate(files)
                ]
                info = {"source": source, "code": code, "reason": reason, "at": now.isoformat(), **(detail or {}),
                        "files": records}
                data = json.dumps(info, indent=2, ensure_ascii=False).encode("utf-8")
                fd, name = tempfile.mkstemp(dir=folder, prefix=".reason-", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(name, folder / "reason.json")
                except BaseException:
                    Path(name).unlink(missing_ok=True)
                    raise
            except BaseException:
                # A quarantine folder without its reason would puzzle whoever finds it; remove
                # our own copies (never the inputs) and report the archive problem instead.
                with suppress(OSError):  # best effort: the error being raised matters more
                    for child in folder.iterdir():
                        child.unlink(missing_ok=True)
                    folder.rmdir()
                raise
            fsync_dir(folder)
        return folder

    def _new_quarantine_folder(self, now: dt.datetime, source: str) -> Path:
        private_dir(self.quarantine_dir)
        base = f"{now:%Y%m%dT%H%M%S}-{_safe_name(source)}"
        for n in range(1, 10_000):
            folder = self.quarantine_dir / (base if n == 1 else f"{base}-{n}")
            try:
                folder.mkdir(mode=PRIVATE_DIR)
                folder.chmod(PRIVATE_DIR)
                return folder
            except FileExistsError:
                continue
        raise ArchiveError(
            ArchiveErrorCode.archive_full,
            f"Too many quarantine folders named {base} in {self.quarantine_dir}; clear out old ones.",
        )

    def _quarantine_copy(self, src: Path, folder: Path, index: int, count: int, max_bytes: int) -> dict[str, Any]:
        # A folder document's page files can share a base name only if they came from
        # different folders; number them so no copy overwrites another.
        name = _safe_name(src.name) if count == 1 else f"{index + 1:04d}-{_safe_name(src.name)}"
        record: dict[str, Any] = {
            "path": os.path.abspath(src), "name": None, "bytes": None, "sha256": None, "copied": False, "error": None,
        }
        try:
            info = src.stat()
        except OSError as exc:
            record["error"] = f"cannot read: {exc.strerror or exc}"
            return record
        if not stat.S_ISREG(info.st_mode):
            # Checked before open(): opening a FIFO or device could block or never end.
            record["error"] = "not a regular file"
            return record
        record["bytes"] = info.st_size
        if info.st_size > max_bytes:
            record["error"] = f"not copied: larger than {max_bytes} bytes; the original is at the path given"
            return record
        try:
            fsrc = open(src, "rb")
        except OSError as exc:
            record["error"] = f"cannot read: {exc.strerror or exc}"
            return record
        try:
            with fsrc:
                tmp, sha = self._copy_to_tmp(fsrc, folder)
            os.replace(tmp, folder / name)
        except OSError as exc:
            error = from_oserror(exc, self.root)
            if error is not None and error.code is ArchiveErrorCode.archive_readonly:
                raise  # the quarantine folder cannot be written: no point in trying the others
            # A read error part-way, or this one file not fitting on the disk: note it, go on.
            record["error"] = f"not copied: {exc.strerror or exc}"
            return record
        record.update(name=name, sha256=sha, copied=True)
        return record
