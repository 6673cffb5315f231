"""The archive node's side of the queue: send a batch to the workers, then store their results one by one.

`QueuedIngest` is the local `Ingest` (same discovery, preflight, duplicate check, store, index,
audit and report) with only the digitising step replaced: instead of a process pool, each
document's input goes to the shared store and its key to the broker, and results are
stored as they appear in the store. The writer is the only process that writes the
catalogue and the index. A result is stored once: the catalogue is checked by input
checksum before storing, and a late second result of the same document is discarded.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from pathlib import Path

from pipelines.errors import ExitCode, LgdError
from pipelines.ingest.records import Outcome
from pipelines.ingest.run import Ingest, Preflighted, Report
from pipelines.ingest.worker import Done
from pipelines.queue import wire
from pipelines.queue.events import EventLog, Metrics
from pipelines.queue.store import FolderStore
from pipelines.queue.tracker import QUEUE, TASK, Tracker, safe_url

log = logging.getLogger(__name__)
POLL = 0.2  # seconds between looks at the store for new results
CHECK = 2.0  # seconds between looks at the broker
UNSETTLED_POLLS = 50  # looks at a result whose PDF/A keeps changing before it counts as bad
QUIET = 120.0  # seconds without a result before the writer asks whether any worker is running


class BrokerUnreachable(LgdError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.missing_dependency, "broker_unreachable", 503)


class Broker:
    """The writer's link to Redis: sends tasks, and waits (up to `timeout` s) while Redis is away."""

    def __init__(self, url: str, timeout: float, say=print) -> None:
        from pipelines.queue.tasks import make_app  # Celery: imported only for --queue

        self.url = url
        self.timeout = timeout
        self.tracker = Tracker(url, timeout=min(5.0, max(0.5, timeout)))
        self.app = make_app(url)
        self.say = say
        self.down_since: float | None = None

    def wait_until_up(self) -> bool:
        """True once Redis answers; False if it came back after being away (so sent tasks may be lost).

        Raises BrokerUnreachable when it stays away longer than the timeout.
        """
        was_down = False
        while not self.tracker.reachable():
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = now
                self.say(f"lgd: the queue's broker at {safe_url(self.url)} is unreachable; waiting up to "
                         f"{self.timeout:g} s for it to come back (documents already stored are kept)")
            if now - self.down_since > self.timeout:
                raise BrokerUnreachable(
                    f"the queue's broker at {safe_url(self.url)} did not answer for {self.timeout:g} s; is "
                    "redis-server running and reachable from here (host, port, firewall, password)? Documents "
                    "already stored are kept; run the same command again to resume")
            was_down = True
            time.sleep(min(1.0, max(0.1, self.timeout / 10)))
        if was_down:
            self.say(f"lgd: the queue's broker at {safe_url(self.url)} is back; carrying on")
        self.down_since = None
        return not was_down

    def send(self, batch: str, key: str) -> None:
        from kombu.exceptions import OperationalError

        while True:
            self.wait_until_up()
            try:
                self.app.send_task(TASK, args=[batch, key], queue=QUEUE)
                return
            except (OperationalError, *self.tracker.errors):
                time.sleep(0.2)

    def close(self) -> None:
        self.app.close()


class QueuedIngest(Ingest):
    """One `lgd digitise --queue URL` run: local preflight and storing, digitising by `lgd worker` processes."""

    def __init__(self, archive: Path, options, *, url: str, store: Path, broker_timeout: float,
                 events: EventLog, metrics: Metrics | None = None, **kwargs) -> None:
        super().__init__(archive, options, jobs=1, **kwargs)
        self.url = url
        self.shared = FolderStore(store)
        self.broker_timeout = broker_timeout
        self.events = events
        self.metrics = metrics
        self._unsettled: dict[str, int] = {}

    def _say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def _digitise_all(self, todo: list[Preflighted], report: Report) -> None:
        if not todo:
            return
        self.shared.ensure()
        broker = Broker(self.url, self.broker_timeout, self._say)
        try:
            self._follow(broker, {item.sha256: item for item in todo}, report)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            broker.close()

    def _follow(self, broker: Broker, items: dict[str, Preflighted], report: Report) -> None:
        batch = uuid.uuid4().hex
        broker.wait_until_up()
        broker.tracker.open_batch(batch, str(self.shared.root.resolve()), len(items))
        ready = self.shared.finished()
        for key in ready - items.keys():  # a late second result of a document stored by an earlier run
            if self.catalogue.find_done(key) is not None:
                self.shared.forget(key)
        # A document delivered again by this run starts counting its worker deaths afresh.
        broker.tracker.reset_attempts([k for k in items if k not in ready])
        pending: set[str] = set()
        for key, item in items.items():
            if key in ready and self._usable(key):  # read by the workers for an interrupted run: not again
                pending.add(key)
                continue
            self.shared.forget(key)
            if not self._put(key, item, report):
                continue
            broker.send(batch, key)
            pending.add(key)
            self._store_ready(pending, items, report)
        checked = progressed = time.monotonic()
        hinted = False
        while pending:
            if self._store_ready(pending, items, report):
                progressed = time.monotonic()
            else:
                self.index_group.commit_if_due()  # the workers are slow: search need not wait for a full group
                time.sleep(POLL)
            if not hinted and time.monotonic() - progressed > QUIET:
                hinted = True
                self._say(f"lgd: no document has come back for {QUIET:g} s; is an `lgd worker --queue "
                          f"{safe_url(self.url)}` running, and can it reach {self.shared.root}? "
                          "(`lgd status --queue URL` shows the queue)")
            if time.monotonic() - checked > CHECK:
                checked = time.monotonic()
                if not broker.tracker.reachable() or not broker.tracker.batch_known(batch):
                    self._resend(broker, batch, pending)

    def _put(self, key: str, item: Preflighted, report: Report) -> bool:
        """Copy the input into the shared store; an input that cannot be read now fails on its own."""
        doc = item.input
        try:
            self.shared.put_input(key, doc.source, doc.patient.born.isoformat() if doc.patient.born else None, doc.files)
            return True
        except OSError as e:
            if e.filename and Path(str(e.filename)).resolve().is_relative_to(self.shared.root.resolve()):
                raise LgdError(f"the shared store {self.shared.root} cannot be written ({e.strerror or e}); "
                               "documents already stored are kept", ExitCode.archive_error, "store_unwritable") from e
            self._finish(item, Done(0, code="unreadable", reason=f"{doc.source} cannot be read ({e.strerror or e})"), report)
            return False

    def _usable(self, key: str) -> bool:
        """A result left by an earlier run is kept only if it is a reading (a failure is tried again)."""
        try:
            text, folder = self.shared.result(key)
            return wire.load_done(text, 0, (), folder).doc is not None
        except (OSError, ValueError):
            return False

    def _resend(self, broker: Broker, batch: str, pending: set[str]) -> None:
        """The broker went away: wait for it, and if it lost the queue, send what is still pending again."""
        broker.wait_until_up()
        if broker.tracker.batch_known(batch):
            return
        missing = sorted(pending - self.shared.finished())
        self._say(f"lgd: the broker lost this batch's queue (restarted without persistence?); sending "
                  f"{len(missing)} document(s) again")
        broker.tracker.open_batch(batch, str(self.shared.root.resolve()), len(pending))
        for key in missing:
            broker.send(batch, key)

    def _store_ready(self, pending: set[str], items: dict[str, Preflighted], report: Report) -> bool:
        """Store every result that has come back; True if any was."""
        stored = False
        for key in sorted(self.shared.finished() & pending):
            item = items[key]
            started = time.monotonic()
            try:
                text, folder = self.shared.result(key)
                done = wire.load_done(text, 0, tuple(item.input.files), folder)
            except wire.NotWhole as e:  # a second delivery is replacing it right now: look again shortly
                self._unsettled[key] = self._unsettled.get(key, 0) + 1
                if self._unsettled[key] < UNSETTLED_POLLS:
                    continue
                done = Done(0, code="bad_result", reason=f"{item.input.source}: the worker's result stayed unreadable ({e})")
            except (OSError, ValueError) as e:
                done = Done(0, code="bad_result", reason=f"{item.input.source}: the worker's result could not be read ({e})")
            if self.catalogue.find_done(key) is not None and item.replaces is None:
                outcome = Outcome(item.input.source, item.input.patient.nhs_number, "skipped",
                                  "already stored (a second delivery of the same document)", "duplicate")
                report.outcomes.append(outcome)
                self.progress.advance(outcome.source)
            else:
                outcome = self._finish(item, done, report)
            pending.discard(key)
            self.shared.forget(key)
            self._record(key, outcome, time.monotonic() - started)
            stored = True
        return stored

    def _record(self, key: str, outcome: Outcome, seconds: float) -> None:
        # A log collector gets the document's checksum, never its file name (which names the patient).
        self.events.document(who=self.actor, what=key, seconds=seconds, outcome=outcome.status,
                             code=outcome.code, pages=outcome.pages)
        if self.metrics is not None:
            self.metrics.document(outcome.status, outcome.pages, seconds)
