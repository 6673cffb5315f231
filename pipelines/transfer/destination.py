"""Where a pack is written (`--out`): checked before anything is built, and disk errors while writing turned into one line.

    check_destination(out, need_bytes, archive)   raises LgdError (exit 4, out_unusable)
    writing(out)                                  context manager: OSError (full, read-only, too large) -> LgdError exit 4

A write-protected stick, a full disc, a symbolic link, a file where a folder should be, or a
folder inside the archive are refused with one sentence and exit 4 before a byte is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import ExitCode, LgdError

from .problems import PackCode

MARGIN = 1 << 20  # file-system overhead and README/SUMS beside the estimate
_DISK = {errno.ENOSPC: "is full", errno.EDQUOT: "is over its quota", errno.EROFS: "is read-only",
         errno.EACCES: "cannot be written by you", errno.EPERM: "cannot be written by you",
         errno.EFBIG: "does not take a file this large", errno.EIO: "gave an input/output error"}


def unusable(out: Path, why: str) -> LgdError:
    return LgdError(f"--out {out} {why}; nothing was left there. Give a writable folder with room for the pack",
                    ExitCode.archive_error, PackCode.out_unusable.value)


def check_destination(out: Path, need_bytes: int, archive: Path | None = None) -> None:
    """Refuse `out` unless it (or the folder it would be made in) is a real, writable folder with `need_bytes` free."""
    out = Path(out).absolute()
    if out.is_symlink():
        raise unusable(out, "is a symbolic link (lgd writes only into a real folder, so a pack cannot land elsewhere)")
    if out.exists() and not out.is_dir():
        raise unusable(out, "is a file, not a folder")
    if archive is not None:
        a = Path(archive).resolve()
        o = out.resolve()
        if o == a or a in o.parents:
            raise unusable(out, f"is inside the archive {a}; packs leave the archive, so write them elsewhere")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise unusable(out, f"is under {existing}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise unusable(out, f"cannot be written ({existing} is read-only or not yours)")
    try:
        stat = os.statvfs(existing)
    except OSError as e:
        raise unusable(out, f"cannot be checked ({e.strerror})") from e
    if stat.f_flag & os.ST_RDONLY:
        raise unusable(out, "is on a read-only medium (a write-protected stick or a closed disc)")
    free = shutil.disk_usage(existing).free
    if free < need_bytes + MARGIN:
        raise unusable(out, f"has {free:,} bytes free and the pack needs about {need_bytes + MARGIN:,}")


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """Turn a disk error while writing under `out` into one line and exit 4 (callers remove their partial files)."""
    try:
        yield
    except OSError as e:
        why = _DISK.get(e.errno or 0)
        if why is None:
            raise
        raise unusable(Path(out), f"{why} ({e.strerror})") from e
