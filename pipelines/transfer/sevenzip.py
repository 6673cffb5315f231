"""The real 7-Zip (`7zz`): AES-256 .7z archives with encrypted headers; create, split, list, test and extract.

How the passphrase reaches 7-Zip: never in argv (`-pSECRET` would be visible to every
user in `ps` and /proc/PID/cmdline). When creating, lgd passes a bare `-p`, which makes
7zz read the password from its standard input; when reading, lgd passes no `-p` at all
and 7zz asks for the password on standard input as soon as it meets encrypted headers.
Either way the passphrase travels through a pipe from this process only (checked with
7-Zip 26.02; a pipe is read once, with no "verify password" second prompt).

The archive method is Copy + 7zAES (`-mx=0`): a pack is PDF/A whose images are already
compressed, and LZMA2 would cost ~20x the time for well under 1% of size. 7-Zip
derives the AES-256 key from the passphrase with its own salted, iterated SHA-256.

7-Zip's volumes (`7zz a -v<size>`) are a plain byte split of one archive into
name.7z.001, name.7z.002, ...; `split()` cuts the finished archive the same way so that a
pack is encrypted once, whatever media it goes on. 7zz reads such a set from the .001.

Every function here is timing-friendly for benchmarks: `create()` returns the seconds 7zz ran.
"""

from __future__ import annotations

import binascii
import contextlib
import errno
import functools
import logging
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from digitise.errors import MissingDependency
from pipelines.children import die_with_parent
from pipelines.errors import ExitCode

from .problems import PackCode, PackError

log = logging.getLogger("lgd.exec.7zz")
PROGRAM = "7zz"
SIGNATURE = b"7z\xbc\xaf\x27\x1c"
_START_HEADER = 32
_AES_CODER = b"\x24\x06\xf1\x07\x01"  # a coder record: 4-byte id with properties, 7zAES
_VERSION = re.compile(r"7-Zip \(z\) (\d+)\.(\d+)")
MIN_VERSION = (22, 0)  # the first 7zz release for Linux from Igor Pavlov
TIMEOUT = 3600  # seconds; a DVD-sized pack on a slow disc still finishes well within this


@dataclass(frozen=True, slots=True)
class Entry:
    """One item in an archive's (decrypted) listing."""

    name: str
    size: int
    is_file: bool  # False for folders, symbolic links and anything else that is not a plain file
    encrypted: bool


def version() -> tuple[int, int]:
    """7zz's (major, minor) version, from the banner of `7zz i` (7zz has no --version).

    Raises:
        MissingDependency: 7zz is not installed, or is older than 22.00.
    """
    path = shutil.which(PROGRAM)
    if path is None:
        raise MissingDependency("7-Zip (the 7zz program)", "7zip", "7zz not found on PATH")
    done = subprocess.run([path, "i"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    for line in done.stdout.splitlines():
        if m := _VERSION.search(line):
            found = (int(m[1]), int(m[2]))
            if found < MIN_VERSION:
                raise MissingDependency("7-Zip", "7zip", f"7zz {found[0]}.{found[1]:02d} is older than {MIN_VERSION[0]}.00")
            return found
    raise MissingDependency("7-Zip (the 7zz program)", "7zip", "`7zz i` printed no version banner")


def _run(args: list[str], passphrase: str | None, cwd: Path | None = None, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    path = shutil.which(PROGRAM)
    if path is None:
        raise MissingDependency("7-Zip (the 7zz program)", "7zip", "7zz not found on PATH")
    # -bsp0: no progress meter; -bse1: errors on stdout, in order with the messages they explain.
    argv = [path, *args[:1], "-bso1", "-bsp0", "-bse1", *args[1:]]
    log.debug("run %s", argv)  # argv never holds the passphrase, so it is safe to log
    done = subprocess.run(
        argv,
        input=None if passphrase is None else passphrase + "\n",
        # With no passphrase, stdin is /dev/null: an unexpected password prompt ends at
        # once instead of waiting on the user's terminal.
        stdin=subprocess.DEVNULL if passphrase is None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=TIMEOUT,
        preexec_fn=functools.partial(_child_setup, max_file_bytes, os.getpid()),
    )
    for line in done.stdout.splitlines():
        if line.strip() and "password" not in line.lower():
            log.debug("%s", line)
    return done


def _child_setup(max_file_bytes: int | None, parent: int | None = None) -> None:
    """In the 7zz child before exec: die with lgd, and a byte budget per written file.

    PR_SET_PDEATHSIG (Linux; as pipelines/ingest/worker.py does for its workers) has the kernel
    SIGKILL 7zz when lgd dies, however it dies: a killed `lgd verify` must not leave 7zz deriving
    keys at 100% CPU under PID 1. RLIMIT_FSIZE stops any write past `max_file_bytes` with SIGXFSZ,
    so a hostile archive cannot fill the disk.
    """
    die_with_parent(parent)
    if max_file_bytes is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))


def create(out: Path, files: Sequence[tuple[str, Path]], passphrase: str, *, stage_in: Path | None = None) -> float:
    """Write an AES-256 .7z with encrypted headers holding `files` as (name inside, source path).

    The files are linked or copied under their names inside into a private folder in
    `stage_in` (default: the system's temporary folder). That staging copy is plaintext,
    so it belongs on the local disk (the archive's tmp/), never on the target medium. 7zz
    writes the archive into a private folder beside `out`, and it is renamed onto `out`,
    which is therefore either absent or complete. Returns the seconds 7zz ran.

    Raises:
        PackError (out_not_empty): `out` already exists.
        MissingDependency: no 7zz.
        RuntimeError: 7zz failed (its message is included).
    """
    out = Path(out).absolute()
    if out.exists():
        raise PackError(PackCode.out_not_empty, f"{out} already exists; lgd does not overwrite packs, choose another folder")
    with _private_dir(stage_in) as stage, _private_dir(out.parent) as work:
        for name, src in files:
            _place(Path(src), stage / name)
        target = work / "pack.7z"
        started = time.perf_counter()
        done = _run(["a", "-t7z", "-mx=0", "-mhe=on", "-p", "-y", str(target), "--", *[n for n, _ in files]], passphrase, cwd=stage)
        seconds = time.perf_counter() - started
        if done.returncode == -signal.SIGXFSZ or re.search(r"No space left|Disk quota", done.stdout + done.stderr):
            raise OSError(errno.ENOSPC, "no space left on the device", str(out.parent))
        if re.search(r"Read-only file system", done.stdout + done.stderr):
            raise OSError(errno.EROFS, "read-only file system", str(out.parent))
        if done.returncode != 0 or not target.is_file():
            raise RuntimeError(f"7zz could not create the archive (exit {done.returncode}): {_tail(done)}")
        _fsync(target)
        os.replace(target, out)
    return seconds


def split(archive: Path, part_size: int) -> tuple[Path, ...]:
    """Cut `archive` into 7-Zip volumes archive.001, .002, ... of `part_size` bytes (the last shorter).

    The volumes are written beside the archive, which is removed once they all exist.
    """
    archive = Path(archive)
    if part_size < 1:
        raise ValueError("part_size must be positive")
    total = archive.stat().st_size
    count = max(1, -(-total // part_size))
    if count > 999:
        raise PackError(PackCode.media_too_small, f"{archive.name} would need {count} volumes; choose a larger --media size")
    parts = tuple(archive.with_name(f"{archive.name}.{i:03d}") for i in range(1, count + 1))
    written: list[Path] = []
    try:
        with open(archive, "rb") as src:
            for part in parts:
                tmp = part.with_name(f".{part.name}.part")
                with open(tmp, "wb") as dst:
                    _copy(src, dst, part_size)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.replace(tmp, part)
                written.append(part)
    except BaseException:
        for p in [*written, *(q.with_name(f".{q.name}.part") for q in parts)]:
            p.unlink(missing_ok=True)
        raise
    archive.unlink()
    return parts


def list_entries(archive: Path, passphrase: str) -> tuple[Entry, ...]:
    """The decrypted listing of `archive` (a .7z or the .001 of a set). Raises PackError as `test` does."""
    done = _run(["l", "-slt", "-ba", str(archive)], passphrase)
    _raise_for(done, archive)
    entries = []
    for block in re.split(r"\n\s*\n", done.stdout):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        if "Path" not in fields:
            continue
        flags, _, mode = fields.get("Attributes", "").partition(" ")
        # "A -rw-r--r--": DOS flags, then the unix mode when the archive was made on unix,
        # where a plain file's mode starts with '-' (a link's with 'l').
        is_file = "D" not in flags and fields.get("Folder", "-") != "+" and (not mode or mode.startswith("-"))
        entries.append(Entry(fields["Path"], int(fields.get("Size") or 0), is_file, fields.get("Encrypted") == "+"))
    return tuple(entries)


def test(archive: Path, passphrase: str) -> None:
    """Check every CRC in `archive` with 7zz. Raises PackError: wrong_passphrase, archive_corrupt or archive_truncated."""
    _raise_for(_run(["t", str(archive)], passphrase), archive)


def extract(archive: Path, passphrase: str, dest: Path, names: Sequence[str] = (), max_file_bytes: int | None = None) -> None:
    """Extract `archive` (only `names`, when given) into the existing folder `dest`.

    With `max_file_bytes`, 7zz may write no file larger than that: one that would be is
    stopped by the kernel and reported as archive_too_large. Raises PackError as `test` does.
    """
    done = _run(["x", f"-o{dest}", "-y", str(archive), *(["--", *names] if names else [])], passphrase,
                max_file_bytes=max_file_bytes)
    if max_file_bytes is not None and done.returncode == -signal.SIGXFSZ:
        raise PackError(PackCode.archive_too_large, f"{Path(archive).name} expands to a file over {max_file_bytes:,} bytes, "
                        "more than its listing says: it is built to fill the disk. It was stopped; do not use it")
    _raise_for(done, archive)


def check_structure(parts: Sequence[Path]) -> None:
    """Check the 7z start header and its CRCs on the archive's bytes, without the passphrase.

    This tells truncation and damage to the (unencrypted) header apart from a wrong
    passphrase, which 7-Zip alone cannot do: with encrypted headers its only answer to
    both is "Cannot open encrypted archive. Wrong password?".

    Raises:
        PackError: not_a_pack (usage: not a 7z archive at all), archive_truncated, archive_corrupt.
    """
    name = Path(parts[0]).name
    total = sum(Path(p).stat().st_size for p in parts)
    head = _read_range(parts, 0, _START_HEADER)
    if len(head) < len(SIGNATURE) or head[: len(SIGNATURE)] != SIGNATURE:
        if re.search(r"\.7z(\.\d{3})?$", name):  # named as a pack but not starting like one: damaged
            raise _corrupt(name, "it does not start with the 7z signature")
        raise PackError(PackCode.not_a_pack, f"{name} is not a 7z archive; give the .7z (or .7z.001) file of the pack", ExitCode.usage)
    if len(head) < _START_HEADER:
        raise _truncated(name, total, _START_HEADER)
    start_crc, offset, size, next_crc = struct.unpack("<IQQI", head[8:32])
    if binascii.crc32(head[12:32]) != start_crc:
        raise _corrupt(name, "its start header fails its CRC check")
    expected = _START_HEADER + offset + size
    if total < expected:
        raise _truncated(name, total, expected)
    if total > expected:
        raise _corrupt(name, f"it has {total - expected} bytes after the end of the archive")
    header = _read_range(parts, _START_HEADER + offset, size)
    if binascii.crc32(header) != next_crc:
        raise _corrupt(name, "its header fails its CRC check")
    # lgd writes -mhe=on: the header is an encoded header (0x17) whose coder is AES-256
    # (flag byte 0x24, id 06 F1 07 01). A plain header (0x01), or one only compressed, lists
    # the file names for anyone to read: the archive was made or re-packed by something else.
    if header[:1] != b"\x17" or _AES_CODER not in header:
        raise PackError(
            PackCode.not_encrypted,
            f"{name} does not have encrypted headers, which lgd packs always have: it was made or re-packed by something "
            "else, and its file names may have been read in transit. Do not use it; tell the sending practice",
        )


def _raise_for(done: subprocess.CompletedProcess, archive: Path) -> None:
    """Turn 7zz's exit code and messages into PackError; return quietly on success."""
    if done.returncode == 0:
        return
    text = done.stdout + "\n" + done.stderr
    name = Path(archive).name
    if "Unexpected end of archive" in text or "Missing volume" in text:
        raise _truncated(name, None, None)
    if "Cannot open encrypted archive" in text:
        # The headers did not decrypt: with check_structure passed, the passphrase is wrong
        # (or the encrypted part of the header is damaged, which 7z cannot tell apart).
        raise PackError(
            PackCode.wrong_passphrase,
            f"7-Zip could not open {name} with this passphrase. Check it word for word against the one sent "
            "separately (spaces between words, no extra characters); if it is right, the archive is damaged: "
            "ask the sender for a new copy",
        )
    if m := re.search(r"CRC Failed|Data Error|Headers Error|Unsupported Method|is not archive|Cannot open the file as", text):
        line = next(ln for ln in text.splitlines() if m[0] in ln)
        # "Wrong password?" follows every failure on encrypted data; the headers decrypted, so it is not.
        detail = re.sub(r"\s*(in encrypted file)?\.?\s*Wrong password\?", "", line).strip(" :")
        raise _corrupt(name, f"7-Zip reports {detail!r}")
    if done.returncode == 8:
        raise RuntimeError(f"7zz ran out of memory reading {name}")
    raise RuntimeError(f"7zz failed on {name} (exit {done.returncode}): {_tail(done)}")


def _truncated(name: str, have: int | None, need: int | None) -> PackError:
    size = f" ({have} of {need} bytes)" if have is not None else ""
    return PackError(
        PackCode.archive_truncated,
        f"{name} is incomplete{size}: the copy stopped early or a volume is missing. Copy it again from the "
        "disc or stick, with every .7z.NNN volume in one folder",
    )


def _corrupt(name: str, why: str) -> PackError:
    return PackError(
        PackCode.archive_corrupt,
        f"{name} is damaged: {why}. Copy it again from the disc or stick; if that fails, ask the sender for a new copy",
    )


def _tail(done: subprocess.CompletedProcess, lines: int = 3) -> str:
    text = [ln.strip() for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip() and "password" not in ln.lower()]
    return " / ".join(text[-lines:]) or "no message"


def _read_range(parts: Sequence[Path], start: int, length: int) -> bytes:
    """`length` bytes at `start` of the concatenation of `parts` (a volume set is one archive cut up)."""
    out = bytearray()
    position = 0
    for part in parts:
        size = Path(part).stat().st_size
        if position + size > start and len(out) < length:
            with open(part, "rb") as f:
                f.seek(max(0, start - position))
                out += f.read(length - len(out))
        position += size
    return bytes(out)


def _copy(src, dst, length: int) -> None:
    while length > 0:
        chunk = src.read(min(length, 1 << 20))
        if not chunk:
            return
        dst.write(chunk)
        length -= len(chunk)


def _place(src: Path, target: Path) -> None:
    # A hard link costs nothing; a copy is needed across file systems.
    try:
        os.link(src, target)
    except OSError:
        shutil.copyfile(src, target)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def _private_dir(parent: Path | None) -> Iterator[Path]:
    """A new folder only this user can read (mkdtemp: mode 0700) inside `parent` (None: the system's), removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=".lgd-", dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
