"""The hot folder's own bookkeeping: what in it is an input, when it is complete, where it goes, the journal and lock, and moving it.

Nothing here reads a scan or opens the archive: `watch.py` composes these with the ingest.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.atomic import write_atomic
from pipelines.errors import ExitCode, LgdError
from pipelines.identity import IdentityError, parse_patient_folder

DONE, FAILED, STATE = "done", "failed", ".lgd-watch"  # the hot folder's own sub-folders, never inputs
ALREADY_STORED = "already stored"
MARKER = ".done"  # a folder input (patient or batch folder) holding this file is complete
MANIFEST = "metadata.csv"  # a folder holding one is a batch whose files it names
# Names that copy tools, browsers and office programs give a file while it is still being written;
# they become inputs only when renamed. Dotfiles (rsync's, the marker's) are skipped too.
_TEMP_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".filepart", ".!sync")
_LITTER = frozenset({"thumbs.db", ".ds_store", "desktop.ini"})


def is_temporary(name: str) -> bool:
    """True for names that are not (yet) an input: hidden, temporary, a lock file of an office program, litter."""
    lower = name.lower()
    return name.startswith((".", "~$")) or lower.endswith(_TEMP_SUFFIXES) or lower in _LITTER


def is_patient_folder(name: str) -> bool:
    """A folder named like `{NHS number} {Name} {DD-MM-YYYY}`: one input, taken whole (a bad number fails it whole)."""
    try:
        return parse_patient_folder(name) is not None
    except IdentityError:
        return True


# --- what is in the folder --------------------------------------------------------------------


Signature = tuple  # what changes whenever a file or folder is written: sizes, mtimes, ctimes, names


@dataclass(frozen=True, slots=True)
class Seen:
    """One input as one scan of the hot folder found it."""

    rel: str  # path relative to the hot folder, '/'-separated
    kind: Literal["file", "folder"]
    signature: Signature
    marked: bool = False  # a folder input holding the `.done` marker
    busy: bool = False  # a folder input still holding temporary files
    manifest: Path | None = None  # a batch folder's metadata.csv, naming the patient of each file


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    # ctime too: no tool can set it back, so a copy that keeps the original mtime still shows as new.
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _folder(path: Path, rel: str, manifest: Path | None = None) -> Seen:
    parts, marked, busy = [], False, False
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            try:
                parts.append((os.path.relpath(full, path), *_stamp(os.lstat(full))))
            except FileNotFoundError:
                continue
            if root == str(path) and name == MARKER:
                marked = True
            elif name in files and is_temporary(name) and not name.startswith("."):
                busy = True  # a .part or ~$ file: still being copied (dotfiles change the signature instead)
    return Seen(rel, "folder", tuple(parts), marked, busy, manifest)


def scan(inbox: Path) -> dict[str, Seen]:
    """Every input now in `inbox`: files anywhere under it, and patient folders and folders holding
    a metadata.csv taken whole.

    Other folders (a scanner's date folder) are walked into; `done/`, `failed/` and the watcher's
    state are not.
    """
    found: dict[str, Seen] = {}

    def walk(folder: Path, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for entry in entries:
            if not prefix and entry.name in (DONE, FAILED, STATE):
                continue
            rel = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if is_temporary(entry.name):
                        continue
                    if is_patient_folder(entry.name):
                        found[rel] = _folder(Path(entry.path), rel)
                    elif (manifest := _manifest_in(Path(entry.path))) is not None:
                        found[rel] = _folder(Path(entry.path), rel, manifest)
                    else:
                        walk(Path(entry.path), rel + "/")
                elif entry.is_file(follow_symlinks=False) and not is_temporary(entry.name):
                    found[rel] = Seen(rel, "file", _stamp(entry.stat(follow_symlinks=False)))
            except FileNotFoundError:  # moved away between listing and looking
                continue

    walk(inbox, "")
    return found


def _manifest_in(folder: Path) -> Path | None:
    """A batch folder's metadata.csv (any case): the folder is then one input, like a patient folder."""
    try:
        return next((Path(e.path) for e in os.scandir(folder) if e.name.lower() == MANIFEST and e.is_file()), None)
    except OSError:
        return None


def open_for_writing(path: Path) -> bool | None:
    """Whether some process on this machine still has `path` open for writing (None: cannot tell).

    A read lease is refused while anyone holds the file open for writing; this is Linux's own
    answer, where the quiet period is only a guess. Network file systems and files owned by
    another user cannot be asked, and then the quiet period alone decides.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as e:
        return True if e.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def files_of(inbox: Path, seen: Seen) -> Iterator[Path]:
    path = inbox / seen.rel
    if seen.kind == "file":
        yield path
        return
    for root, _dirs, files in os.walk(path):
        for name in files:
            yield Path(root) / name


def names_in(path: Path) -> Iterator[str]:
    """The names of everything inside a folder input (an ingest outcome names its file or folder)."""
    for _root, dirs, files in os.walk(path):
        yield from dirs
        yield from files


# --- when an input is complete ----------------------------------------------------------------


@dataclass
class Tracker:
    """When each input last changed, by this process's clock (a network share's file times may be skewed).

    An input is complete when its signature has stayed the same for `quiet` seconds and nothing
    on this machine still writes it; or at once when it was renamed in (the writer's signal that
    it is whole); a patient folder holding `.done` counts as renamed in. With `require_marker`,
    patient folders wait for `.done` whatever the quiet period.
    """

    quiet: float
    require_marker: bool = False
    _since: dict[str, tuple[Signature, float]] = field(default_factory=dict)
    _renamed: set[str] = field(default_factory=set)

    def update(self, now: float, found: dict[str, Seen], touched: Iterable[str] = (), renamed: Iterable[str] = ()) -> None:
        """Record one scan; `touched`/`renamed` are paths (relative) that events said changed or arrived by rename."""
        for rel in [r for r in self._since if r not in found]:
            del self._since[rel]
        self._renamed &= set(found)
        for rel, seen in found.items():
            earlier = self._since.get(rel)
            if earlier is None or earlier[0] != seen.signature:
                self._since[rel] = (seen.signature, now)
        for path in touched:  # written after its rename too: complete only once quiet again
            rel = owner(path, found)
            if rel is not None:
                self._renamed.discard(rel)
                self._since[rel] = (found[rel].signature, now)
        for path in renamed:
            if path in found:
                self._renamed.add(path)

    def complete(self, now: float, seen: Seen) -> str | None:
        """Why `seen` is complete ("marker", "renamed", "quiet"), or None while it is not.

        The caller still asks `open_for_writing` (it costs an open per file).
        """
        if seen.busy:
            return None
        if seen.kind == "folder" and seen.marked:
            return "marker"
        if seen.rel in self._renamed:
            return "renamed"
        if seen.kind == "folder" and self.require_marker:
            return None
        since = self._since.get(seen.rel)
        return "quiet" if since is not None and now - since[1] >= self.quiet else None

    def forget(self, rel: str) -> None:
        self._since.pop(rel, None)
        self._renamed.discard(rel)


def owner(path: str, found: dict[str, Seen]) -> str | None:
    """The input that relative `path` is, or is inside (a file of a patient folder)."""
    while path:
        if path in found:
            return path
        path = path.rpartition("/")[0]
    return None


# --- where an input goes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """Where one input went, and why: what the log line and reason.json say."""

    outcome: str  # stored | already_stored | failed
    where: str  # DONE | FAILED
    reason: str
    patient: str | list[str] | None
    pages: int
    documents: list[dict]


def judge(outcomes: list, warnings=()) -> Result:
    """Decide from the ingest's outcomes for one input: any failure sends it to failed/ (a person looks)."""
    failed = [o for o in outcomes if o.status == "failed"]
    nhs = sorted({o.nhs_number for o in outcomes if o.nhs_number})
    patient = nhs[0] if len(nhs) == 1 else (nhs or None)
    pages = sum(o.pages for o in outcomes)
    documents = [{"source": o.source, "nhs_number": o.nhs_number, "status": o.status, "code": o.code,
                  "reason": o.reason, "pages": o.pages, "pdfa": o.pdfa} for o in outcomes]
    if not outcomes:
        why = "; ".join(warnings) or "no scans found in it (PDF, TIFF, PNG or JPEG pages)"
        return Result("failed", FAILED, why, None, 0, [])
    if failed:
        return Result("failed", FAILED, "; ".join(o.reason for o in failed), patient, pages, documents)
    if all(o.status == "skipped" for o in outcomes):
        why = "; ".join(o.reason for o in outcomes)
        return Result("already_stored", DONE, f"{ALREADY_STORED} ({why})", patient, pages, documents)
    warn = "; ".join(f"{o.source}: {o.reason}" for o in outcomes if o.status == "ok" and o.reason)
    return Result("stored", DONE, warn, patient, pages, documents)


# --- journal and lock -------------------------------------------------------------------------


class WatchLocked(LgdError):
    def __init__(self, inbox: Path, pid: str) -> None:
        super().__init__(f"another `lgd watch` (pid {pid or 'unknown'}) is already watching {inbox}; stop it "
                         "first (one watcher per folder), or watch another folder", ExitCode.archive_error, "watch_locked")


def lock(inbox: Path) -> int:
    """Take the folder's watcher lock (released by the kernel when this process ends, however it ends)."""
    state = inbox / STATE
    state.mkdir(exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        if e.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise WatchLocked(inbox, pid) from e
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@dataclass
class Journal:
    """What the watcher is doing, written atomically before each step, so a restart knows where it stopped.

    entries: input (relative path) -> {"step": "digitise"} while it is read and stored, then
    {"step": "move", "to": relative destination, "record": the reason document} until it is moved.
    """

    path: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, inbox: Path) -> Journal:
        path = inbox / STATE / "journal.json"
        try:
            entries = json.loads(path.read_text())["in_progress"]
        except FileNotFoundError:
            entries = {}
        except (ValueError, KeyError, TypeError) as e:
            raise LgdError(f"{path} is damaged ({e}); move it aside and start again (inputs already stored are "
                           "then recognised by checksum and moved to done/)", ExitCode.archive_error, "watch_journal") from e
        return cls(path, dict(entries))

    def set(self, rel: str, entry: dict) -> None:
        self.entries[rel] = entry
        self._save()

    def clear(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self._save()

    def _save(self) -> None:
        write_atomic(self.path, json.dumps({"in_progress": self.entries}, indent=1).encode(), 0o600)


# --- moving inputs out ------------------------------------------------------------------------


def destination(inbox: Path, where: str, rel: str) -> str:
    """`where/rel`, or `where/rel (2)`... when a same-named input went there before."""
    target = f"{where}/{rel}"
    stem, dot, ext = rel.rpartition(".") if "." in rel.rpartition("/")[2] else (rel, "", "")
    n = 1
    while (inbox / target).exists() or (inbox / f"{target}.reason.json").exists():
        n += 1
        target = f"{where}/{stem} ({n}){dot}{ext}"
    return target


def move(inbox: Path, rel: str, target: str, record: dict | None) -> None:
    """Write the reason beside the destination, then rename the input there: one atomic step, never half a move."""
    src, dst = inbox / rel, inbox / target
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if record is not None:
            write_atomic(dst.parent / f"{dst.name}.reason.json", (json.dumps(record, indent=2) + "\n").encode(), 0o600)
        os.rename(src, dst)  # same file system (inside the hot folder): a file or a whole folder at once
    except OSError as e:  # the journal keeps the move, so the next start finishes it
        raise LgdError(f"cannot move {rel} to {target} ({e.strerror or e}); the watcher needs to write in {inbox} "
                       f"and every folder in it, on one file system. What was stored stays stored, and the "
                       "next start finishes the move", ExitCode.archive_error, "watch_move") from e


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Events:
    """watchdog's events, reduced to what the loop needs: which inputs changed, which arrived by rename."""

    IGNORED = frozenset({"opened", "closed_no_write"})  # our own looks (and readers') change nothing

    def __init__(self, inbox: Path, wake: threading.Event) -> None:
        self.inbox, self.wake = str(inbox), wake
        # Only inotify pairs the two halves of a rename. The polling observer guesses moves from inode
        # numbers, and a new file given the inode of one just replaced (our own journal) looked renamed in.
        self.trust_moves = True
        self._lock = threading.Lock()
        self._touched: set[str] = set()
        self._renamed: set[str] = set()

    def _rel(self, path) -> str | None:
        rel = os.path.relpath(os.fsdecode(path), self.inbox).replace(os.sep, "/")
        return None if rel == "." or rel.startswith("..") or rel.split("/")[0] in (DONE, FAILED, STATE) else rel

    def dispatch(self, event) -> None:  # watchdog's handler interface
        if event.event_type in self.IGNORED:
            return
        with self._lock:
            if event.event_type == "moved" and (dest := self._rel(event.dest_path)) is not None:
                self._touched.add(dest)
                if self.trust_moves:
                    self._renamed.add(dest)
            elif (src := self._rel(event.src_path)) is not None:
                self._touched.add(src)
            else:
                return
        self.wake.set()

    def drain(self) -> tuple[set[str], set[str]]:
        with self._lock:
            touched, renamed = self._touched, self._renamed
            self._touched, self._renamed = set(), set()
        return touched, renamed
