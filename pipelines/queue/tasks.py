"""The Celery side of the queue: the app both ends share, the one task a worker runs, and `lgd worker`.

A task message carries a batch id and a store key, nothing else: the worker reads the input
from the shared store, digitises it exactly as a local run does (ingest.worker.digitise, with
the OCR engines loaded once per worker process), and writes the page facts as JSON and the
PDF/A back to the store. Workers never open the catalogue or the index.

Late acknowledgement with reject-on-worker-lost means a worker killed mid-document leaves its
message in the queue for another; the attempt count in Redis turns a document that keeps
killing its worker into a quarantined failure instead of an endless loop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import shutil
import socket
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_init

from digitise.model import ScanDoc
from digitise.options import DigitiseOptions
from pipelines.children import die_with_parent
from pipelines.ingest import worker
from pipelines.queue import wire
from pipelines.queue.events import EventLog, Metrics
from pipelines.queue.store import FolderStore
from pipelines.queue.tracker import QUEUE, TASK, Tracker

MAX_DEATHS = 2  # a document that has stopped its worker this often is quarantined, not tried again
WORKER_LOST = "worker_lost"
RETRY_AFTER = 30  # seconds before a delivery that met a fault of the worker's surroundings is tried again
log = logging.getLogger("lgd.worker")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    url: str
    options: DigitiseOptions
    store: Path | None  # None: the folder each batch's writer named
    log_json: bool = False
    metrics: bool = False
    work: Path | None = None  # this worker's folder for documents being read (set by run_worker)


def make_app(url: str, visibility_timeout: int = 3600) -> Celery:
    app = Celery("lgd", broker=url, set_as_current=False)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None,
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        # The broker is restored from: a lost worker's unacknowledged message returns to the
        # queue once it is older than this. Longer than any one document takes to read.
        broker_transport_options={"visibility_timeout": visibility_timeout},
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        worker_send_task_events=False, task_send_sent_event=False,
    )
    app.task(name=TASK, bind=True)(_run)
    return app


_settings: WorkerSettings | None = None  # set by run_worker before the pool forks
_tracker: Tracker | None = None
_metrics: Metrics | None = None


@worker_process_init.connect
def _init_process(**_: object) -> None:
    """Each pool process loads its OCR engines once, and dies with its worker."""
    global _tracker, _metrics
    if _settings is None:
        return
    die_with_parent()
    worker.init(_settings.options)
    _tracker = Tracker(_settings.url)
    _metrics = Metrics("worker") if _settings.metrics else None


def _run(task, batch: str, key: str) -> None:
    """One delivery of one document. A fault of the worker's surroundings (the store not mounted,
    Redis gone for a moment, a full local disk) is tried again later, not counted as the
    document's fault and never dropped: the writer waits for every document it sent."""
    assert _settings is not None and _tracker is not None, "not started by lgd worker"
    counted: list[str] = []
    try:
        _read(task, batch, key, counted)
    except Exception as e:
        log.warning("document %s: %s: %s; trying again in %d s", key, type(e).__name__, e, RETRY_AFTER)
        if counted:
            with suppress(*_tracker.errors):
                _tracker.uncount(key)
        raise task.retry(exc=e, countdown=RETRY_AFTER, max_retries=None) from e


def _read(task, batch: str, key: str, counted: list[str]) -> None:
    assert _settings is not None and _tracker is not None
    started = time.monotonic()
    who = f"{task.request.hostname}/{os.getpid()}"
    root = _settings.store or Path(_tracker.batch_store(batch) or "")
    if not root.is_dir():
        raise FileNotFoundError(f"batch {batch}: the shared store {root} is not reachable from this worker; "
                                "start lgd worker with --store naming where it is mounted")
    store = FolderStore(root)
    try:
        spec, files = store.job(key)
    except FileNotFoundError:  # a late second delivery of a document the writer has already stored
        return
    attempt = _tracker.attempt(key)
    counted.append(key)
    _tracker.running(key, who)
    if attempt > MAX_DEATHS:
        reason = (f"{spec.source} stopped the worker reading it {attempt - 1} times (a crash, or killed for "
                  "using too much memory); it is quarantined instead of tried again")
        store.put_result(key, wire.dump_done(worker.Done(0, code=WORKER_LOST, reason=reason), "", None), None)
        _finished(key, who, spec.source, started, WORKER_LOST, 0, attempt, reason)
        return
    work = Path(tempfile.mkdtemp(prefix="job-", dir=_settings.work))
    try:
        born = dt.date.fromisoformat(spec.born) if spec.born else None
        done = worker.digitise(worker.Job(0, ScanDoc(source=spec.source, inputs=files, born=born), work))
        pdfa = done.doc.pdfa if done.doc is not None else None
        store.put_result(key, wire.dump_done(done, _settings.options.engine, f"{key}.pdf" if pdfa else None), pdfa)
    except FileNotFoundError:  # stored and forgotten by the writer while this delivery was reading it
        if (store.jobs / key).is_dir():
            raise
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome = "ok" if done.doc is not None else done.code or "failed"
    _finished(key, who, spec.source, started, outcome, len(done.doc.pages) if done.doc else 0, attempt, done.reason)


def _finished(key: str, who: str, source: str, started: float, outcome: str, pages: int, attempt: int,
              reason: str = "") -> None:
    assert _settings is not None and _tracker is not None
    seconds = time.monotonic() - started
    # Redis is a network service that lgd status reads: it holds checksums, never a file name (which
    # names the patient), so a reason names "the document" instead; the archive's quarantine has the rest.
    event = {"key": key, "worker": who, "outcome": outcome, "pages": pages, "seconds": round(seconds, 3),
             "attempt": attempt, "at": time.time(), "reason": reason.replace(source, "the document")}
    try:
        _tracker.finished(key, event)
    except _tracker.errors:  # the result is in the store: the writer still stores it
        pass
    # A log collector gets the document's checksum, never its file name (which names the patient).
    EventLog(_settings.log_json, "worker").document(who=who, what=key, seconds=seconds, outcome=outcome,
                                                    pages=pages, attempt=attempt)
    if _metrics is not None:
        _metrics.document(outcome, pages, seconds)


def run_worker(settings: WorkerSettings, concurrency: int, visibility_timeout: int, loglevel: str = "WARNING") -> None:
    """Start a Celery worker (prefork) on the digitise queue; returns when it is stopped."""
    global _settings
    work = _work_folder()
    _settings = dataclasses.replace(settings, work=work)
    if settings.store is not None:
        FolderStore(settings.store).results.mkdir(parents=True, exist_ok=True)
    app = make_app(settings.url, visibility_timeout)
    name = f"lgd-{os.getpid()}@{socket.gethostname()}"
    try:
        app.worker_main(["worker", f"--concurrency={concurrency}", "--pool=prefork", f"--queues={QUEUE}",
                         f"--hostname={name}", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle",
                         "--without-heartbeat"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _work_folder() -> Path:
    """This worker's private folder in the system's temporary folder, after removing those of dead workers.

    Page images of documents being read are patient data: a worker that was SIGKILLed (or lost
    its machine's power) leaves its folder behind, and the next worker to start on the machine
    removes it. Folders of workers still running are left alone.
    """
    root = Path(tempfile.gettempdir())
    for folder in root.glob("lgd-worker-*"):
        pid = folder.name.removeprefix("lgd-worker-")
        if pid.isdigit() and not _alive(int(pid)) and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
    work = root / f"lgd-worker-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)  # a dead process's, whose pid this one now has
    work.mkdir(mode=0o700)
    return work


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True
