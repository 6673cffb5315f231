"""Writing a file whole or not at all: a private temporary file beside it, synced, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(target: Path, data: bytes, mode: int) -> None:
    """`target` holds `data` with `mode`, or is as it was: each call has its own temporary file, so
    threads and processes writing the same target at once each leave it whole."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".lgd-", suffix=".part")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
