"""Batch ingest: find the documents, skip those already done, digitise the rest in worker processes, store each atomically.

The steps for each document follow the paperless consumer: preflight (identity, format,
checksum) happens in the main process before any OCR; digitising happens in a worker;
storing (PDF/A by content hash, one catalogue transaction) happens back in the main process,
one document at a time, so a crash or Ctrl-C loses at most the documents in flight and a re-run
resumes where it stopped. The full-text index is committed for a group of stored documents at a
time (index_group); a run indexes what an interrupted one catalogued but did not index.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from digitise.errors import DigitiseError
from digitise.load import sniff
from digitise.model import PageKind, ScanDoc
from digitise.options import DigitiseOptions
from index import ArchiveStore, Catalogue, DocumentRow, FullText, sha256_file
from index.errors import ArchiveError, ArchiveErrorCode, from_oserror, full_error, readonly_error
from index.rereads import replace_reading
from pipelines.actor import current_actor
from pipelines.display import printable
from pipelines.identity import IdentityCode, Manifest, PatientId
from pipelines.identity_match import printed_identity_disagrees, same_person
from pipelines.ingest import records, worker
from pipelines.ingest.index_group import Grouping, IndexGroup
from pipelines.ingest.records import Outcome
from pipelines.reindex import document_pages
from pipelines.ingest.discover import NOT_FOUND, UNREADABLE, InputDoc, discover
from pipelines.progress import NullProgress, ProgressSink

NOT_SCANS = frozenset({"not_a_scan", UNREADABLE, NOT_FOUND})  # failure codes whose input is not copied to quarantine
JOB_PREFIX = "job-"  # digitise's working folders in ARCHIVE/tmp, the only ones it may clear
log = logging.getLogger(__name__)


@contextmanager
def _hold_ctrl_c() -> Iterator[None]:
    """Defer Ctrl-C to the end of the block, so that a document is stored, indexed, audited
    and reported as a whole: never left catalogued but unreported, unindexed and unaudited."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        # Hand the deferred Ctrl-C to whoever was listening: Python's default raises
        # KeyboardInterrupt, `lgd watch`'s handler asks the watcher to stop after this input.
        if callable(previous):
            previous(caught[0], None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed" or (o.status == "ok" and not o.pdfa_valid)]


@dataclass(frozen=True, slots=True)
class Preflighted:
    input: InputDoc
    sha256: str
    size: int
    replaces: DocumentRow | None = None  # with --force: the stored document this reading replaces


def input_checksum(files: Sequence[Path]) -> tuple[str, int]:
    """SHA-256 of one input file, or of a folder's page files in order (names included)."""
    if len(files) == 1:
        digest, size = hashlib.sha256(), 0
        with files[0].open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size
    outer, total = hashlib.sha256(), 0
    for path in files:
        inner, size = input_checksum([path])
        outer.update(f"{path.name}\0{inner}\n".encode())
        total += size
    return outer.hexdigest(), total


class Ingest:
    """One `lgd digitise` run against one archive."""

    def __init__(self, archive: Path, options: DigitiseOptions, jobs: int, progress: ProgressSink | None = None, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc), force: bool = False, grouping: Grouping = Grouping(), actor: str | None = None) -> None:
        self.archive = archive
        self.options = options
        self.force = force  # read documents already in the archive again, replacing their reading
        self.jobs = max(1, jobs)
        self.progress = progress or NullProgress()
        self.now = now
        self.store = ArchiveStore(archive)
        self.store.ensure()
        self._lock = self._lock_archive()
        try:
            self.catalogue = Catalogue.open(archive)
            self.fulltext = FullText.open(archive)
            self.index_group = IndexGroup(self.fulltext, self.catalogue, grouping)
        except BaseException:
            os.close(self._lock)
            raise
        self.actor = actor or current_actor()  # the web service names its signed-in user
        self.review: list[str] = []  # documents whose envelope reads another identity (a person checks)

    def close(self) -> None:
        self.catalogue.close()
        os.close(self._lock)  # releases the archive lock

    def _lock_archive(self) -> int:
        """Take the archive's digitise lock for this run, then clear what dead runs left in tmp/.

        One `lgd digitise` writes an archive at a time: two would OCR the same inputs and race
        to store them. The lock is a POSIX record lock, which the kernel drops when the process
        dies (Ctrl-C, SIGKILL, power cut) and which worker processes do not inherit, so once
        it is ours anything in tmp/ was left by an interrupted run and can go.
        """
        path = self.archive / ".lgd-digitise.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise (from_oserror(e, self.archive) or e) from e
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise ArchiveError(
                ArchiveErrorCode.archive_locked,
                f"Another `lgd digitise` is writing to the archive {self.archive}; wait for it to "
                "finish (or choose another --archive) and run the command again.",
            ) from e
        # Only digitise's own leftovers: other commands (a `lgd pack` running now) work in tmp/ too.
        for leftover in self.store.tmp_dir.glob(f"{JOB_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.store.tmp_dir.glob(".lgd-*.part"):
            with suppress(OSError):
                leftover.unlink()
        return fd

    # -- preflight ---------------------------------------------------------------------
    def _fail(self, doc: InputDoc | None, source: str, files: Sequence[Path], code: str, reason: str, sha256: str | None = None, size: int = 0, detail: dict | None = None) -> Outcome:
        """Quarantine a copy of the input, record the failure, and say why."""
        log.warning("%s: %s", source, reason)
        # What is not a scan (a text file, a device, a link to a system file) is named, never copied.
        self.store.quarantine(list(files), source, code, reason, self.now(), detail=detail,
                              copy=code not in NOT_SCANS)
        patient, row = records.failure(doc, source, code, reason, sha256, size)
        if code == IdentityCode.identity_conflict:
            # Nothing of the stored patient may change, not even by a failure row filed under it:
            # which patient the scan belongs to is the open question (reason.json names both).
            patient, row = None, dataclasses.replace(row, nhs_number=None)
        self.catalogue.record_failure(patient, row)
        return Outcome(source, doc.patient.nhs_number if doc else None, "failed", reason, code)

    def _conflict(self, doc: InputDoc, batch: dict[str, PatientId]) -> tuple[str, dict] | None:
        """Why `doc` cannot join the patient already stored (or met earlier in this batch) under its NHS number."""
        nhs = doc.patient.nhs_number
        row = self.catalogue.patient(nhs)
        known = PatientId(nhs, row.name, row.born) if row is not None else batch.get(nhs)
        why = same_person(known, doc.patient)
        if why is None:
            return None
        assert known is not None
        born = f", born {known.born:%d-%m-%Y}" if known.born else ""
        return (f"{doc.source}: NHS number {nhs} is already {known.name or 'a patient with no name'}{born}",
                {"stored": _identity(known), "given": _identity(doc.patient), "differs": why})

    def preflight(self, docs: Sequence[InputDoc]) -> Iterator[Preflighted | Outcome]:
        seen: dict[str, str] = {}
        batch: dict[str, PatientId] = {}
        for doc in docs:
            conflict = self._conflict(doc, batch)
            if conflict is not None:
                head, detail = conflict
                reason = (f"{head}; this file says {detail['differs']}. Nothing was stored for either. Check which "
                          "patient the scan belongs to and correct its file name, folder or manifest row "
                          "(or move a wrongly filed document with `lgd patient reassign`).")
                yield self._fail(doc, doc.source, doc.files, IdentityCode.identity_conflict, reason, detail=detail)
                continue
            batch.setdefault(doc.patient.nhs_number, doc.patient)
            try:
                for path in doc.files:
                    sniff(path)
                sha256, size = input_checksum(doc.files)
            except DigitiseError as e:
                yield self._fail(doc, doc.source, doc.files, str(e.code), str(e))
                continue
            except OSError as e:
                yield self._fail(doc, doc.source, doc.files, "unreadable", f"{doc.source} cannot be read ({e.strerror})")
                continue
            done = self.catalogue.find_done(sha256)
            if done is not None and done.nhs_number != doc.patient.nhs_number:
                # The same bytes under two NHS numbers: one of them is wrong, and which is not ours to guess.
                reason = (f"{doc.source} is byte for byte a scan already stored for another NHS number, not "
                          f"{doc.patient.nhs_number}; nothing was stored. Check which patient it belongs to.")
                # The failure row carries no hash (the content is catalogued once, under the other
                # patient), and neither message nor reason.json names that patient or their file.
                yield self._fail(doc, doc.source, doc.files, IdentityCode.identity_conflict, reason, None, size,
                                 detail={"given": _identity(doc.patient), "same_content_as_document": done.id})
            elif done is not None and not self.force:
                yield records.skipped(doc, done, f"already digitised as {done.source}", self.catalogue)
            elif sha256 in seen:
                yield Outcome(doc.source, doc.patient.nhs_number, "skipped", f"the same scan as {seen[sha256]} in this batch", "duplicate")
            else:
                seen[sha256] = doc.source
                yield Preflighted(doc, sha256, size, replaces=done)

    # -- store -------------------------------------------------------------------------
    def store_result(self, item: Preflighted, done: worker.Done) -> Outcome:
        doc = item.input
        if done.code == worker.ARCHIVE_FULL:  # the disk is full, not the input bad: stop the batch
            raise full_error(self.archive, done.reason)
        if done.code == worker.ARCHIVE_READONLY:
            raise readonly_error(self.archive, done.reason)
        if done.doc is None:
            return self._fail(doc, doc.source, doc.files, done.code, done.reason, item.sha256, item.size)
        scan = done.doc
        assert scan.pdfa is not None
        new_pdf = not (self.store.root / f"pdf/{doc.patient.nhs_number}/{sha256_file(scan.pdfa)}.pdf").is_file()
        relpath = self.store.put_pdf(doc.patient.nhs_number, scan.pdfa)
        reason = "" if scan.pdfa_valid else "PDF/A validation failed: " + "; ".join(scan.pdfa_findings[:3])
        patient, row, pages, entries = records.digitised(doc, scan, item.sha256, item.size, relpath, reason)
        read_by = {"engine": done.engine or self.options.engine, "pages_read_by": records.pages_read_by(scan)}
        old = item.replaces
        try:
            if old is None:
                document_id = self.catalogue.record_document(patient, row, pages, entries)
            else:  # --force: the same document of the same patient, read again
                assert old.id is not None
                replace_reading(self.catalogue, old.id, row, pages, entries, actor=self.actor, **read_by)
                document_id = old.id
        except BaseException:  # e.g. the disk filled up: leave no PDF that no catalogue row names
            if new_pdf:
                (self.store.root / relpath).unlink(missing_ok=True)
            raise
        if old is not None and old.pdfa_path and old.pdfa_path != relpath and not any(
                d.pdfa_path == old.pdfa_path for d in self.catalogue.documents(status="ok")):
            self.store.path(old.pdfa_path).unlink(missing_ok=True)  # the earlier reading's PDF/A, no longer named
        self.index_group.add(document_id, records.page_docs(document_id, doc, scan))  # replaces its pages when committed
        if old is None:
            self.catalogue.audit(self.actor, "digitise", doc.patient.nhs_number, source=doc.source,
                                 document_id=document_id, **read_by)
        review = [w for page in scan.pages if page.kind == PageKind.envelope and page.text is not None
                  for w in printed_identity_disagrees(page.text.text, doc.patient)]
        if review:  # identity stays the input's; a person decides whether the scan is filed right
            self.catalogue.audit(self.actor, "identity_review", doc.patient.nhs_number, source=doc.source,
                                 document_id=document_id, read=review)
            self.review.append(f"{printable(doc.source)}: {'; '.join(review)}, not the identity of its file name, "
                               "folder or manifest; check the scan is filed under the right patient "
                               "(lgd patient reassign moves it)")
        return records.outcome(doc, scan, str(self.archive / relpath), reason)

    def reindex_leftovers(self) -> None:
        """Index documents that an interrupted run catalogued but did not index (no re-OCR)."""
        for row in self.catalogue.unindexed_documents():
            self.index_group.add(row.id, document_pages(self.catalogue, row))
        self.index_group.commit()

    def commit_index(self, failing: bool = False) -> None:
        """Commit the documents stored since the last index commit (at the end of a run, or when stopped).

        With `failing` (another error is on its way out) a commit that fails too is logged, not
        raised: the documents stay marked not indexed and the next run indexes them.
        """
        with _hold_ctrl_c():
            try:
                self.index_group.commit()
            except (ArchiveError, OSError) as e:
                if not failing:
                    raise
                log.warning("the full-text index was not committed (%s); the next `lgd digitise` on %s indexes "
                            "the documents stored since its last commit", e, self.archive)

    # -- run ---------------------------------------------------------------------------
    def run(self, paths: Sequence[Path], manifest: Manifest | None) -> Report:
        report = Report()
        stored: dict[str, set[tuple[int, int]]] = {}
        for row in self.catalogue.documents(status="ok"):
            if row.nhs_number and row.part and row.parts:
                stored.setdefault(row.nhs_number, set()).add((row.part, row.parts))
        found = discover(paths, manifest, stored_parts=stored)
        report.warnings.extend(found.warnings)
        self.progress.start(len(found.rejected) + len(found.documents), "digitise")
        for rejected in found.rejected:
            outcome = self._fail(None, rejected.path.name, [rejected.path] if rejected.path.is_file() else [], rejected.code, rejected.reason)
            report.outcomes.append(outcome)
            self.progress.advance(outcome.source)
        self.reindex_leftovers()
        todo: list[Preflighted] = []
        for item in self.preflight(found.documents):
            if isinstance(item, Outcome):
                report.outcomes.append(item)
                self.progress.advance(item.source)
            else:
                todo.append(item)
        try:
            self._digitise_all(todo, report)
        except BaseException:
            self.commit_index(failing=True)
            raise
        finally:
            self.progress.stop()
            report.warnings.extend(self.review)
        self.commit_index()
        return report

    def _job(self, key: int, item: Preflighted) -> worker.Job:
        doc = item.input
        scan = ScanDoc(source=doc.source, inputs=tuple(doc.files), born=doc.patient.born)
        return worker.Job(key, scan, self.store.tmp_dir / f"{JOB_PREFIX}{uuid.uuid4().hex}")

    def _digitise_all(self, todo: list[Preflighted], report: Report) -> None:
        jobs = {k: self._job(k, item) for k, item in enumerate(todo)}
        try:
            if self.jobs == 1 or len(todo) == 1:
                worker.init(self.options)
                for key, item in enumerate(todo):
                    self._finish(item, worker.digitise(jobs[key]), report, jobs[key].work)
                return
            # Submit a few documents ahead of the workers only: memory stays bounded
            # however long the batch is, and Ctrl-C has little queued work to cancel.
            with ProcessPoolExecutor(self.jobs, initializer=worker.init_process, initargs=(self.options,)) as pool:
                pending: dict[Future, int] = {}
                queue = iter(jobs.items())
                try:
                    while True:
                        while len(pending) < self.jobs * 2:
                            nxt = next(queue, None)
                            if nxt is None:
                                break
                            pending[pool.submit(worker.digitise, nxt[1])] = nxt[0]
                        if not pending:
                            break
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            key = pending.pop(future)
                            self._finish(todo[key], future.result(), report, jobs[key].work)
                except BaseException:  # Ctrl-C, or an archive error: drop the queued work
                    for future in pending:
                        future.cancel()
                    # Wait for the documents in flight (the interpreter would wait for them at
                    # exit anyway) so that their work folders are removed after, not during, use.
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            for job in jobs.values():
                shutil.rmtree(job.work, ignore_errors=True)

    def _finish(self, item: Preflighted, done: worker.Done, report: Report, work: Path | None = None) -> Outcome:
        """Store one digitised document whole (Ctrl-C waits for it), then remove its work folder."""
        with _hold_ctrl_c():
            try:
                outcome = self.store_result(item, done)
            finally:
                if work is not None:
                    shutil.rmtree(work, ignore_errors=True)
            report.outcomes.append(outcome)
            self.progress.advance(outcome.source)
        return outcome


def _identity(p: PatientId) -> dict[str, str | None]:
    return {"nhs_number": p.nhs_number, "name": p.name, "born": p.born.isoformat() if p.born else None}
