"""`lgd watch DIR`: a hot folder that digitises each input once it is complete and moves it to done/ or failed/.

The ingest is `lgd digitise`'s own (`Ingest.run`, or the queue's `QueuedIngest` with --queue):
the same identity rules, duplicate check by checksum, quarantine and audit. This module only
decides when an input is complete, keeps a journal so a restart neither loses nor repeats
work, and moves inputs out with their reason beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.engines import add_engine_options, default_workers, engine
from pipelines.cli_common import add_as_option
from pipelines.display import printable
from pipelines.errors import ExitCode, LgdError
from pipelines.queue import watch_folder as folder
from pipelines.queue.watch_folder import ALREADY_STORED, FAILED, MARKER, STATE, Result, Seen, judge

log = logging.getLogger(__name__)

EPILOG = f"""what counts as complete:
  a file      its size and times have not changed for --quiet-period seconds and no process on
              this machine still has it open for writing; or at once when it was renamed into
              DIR (write "scan.pdf.part", then rename it to "scan.pdf"; with --poll a rename is
              not told apart from a new file, so the quiet period applies)
  a patient   a folder named "{{NHS number}} {{Name}} {{DD-MM-YYYY}}" (as for lgd digitise) is one
  folder      input, taken whole: when it holds a file named {MARKER}, when it was renamed in, or
              (unless --require-done) when nothing in it changed for --quiet-period seconds
  a batch     a folder holding a metadata.csv (FILEPATH, NHS-NO, as for lgd digitise --manifest) is
  folder      one input, taken whole by the same rules as a patient folder
  never       hidden files, *.part, *.partial, *.crdownload, *.tmp, ~$* (until renamed), and a
              patient or batch folder that still holds such a file
  other folders (a day, a scanner) are looked into; each file in them is an input of its own.

where things go:
  DIR/done/REL            digitised and stored (REL: the input's path inside DIR, kept); a
                          REL.reason.json beside it when it was {ALREADY_STORED} (same checksum) or
                          stored with a warning
  DIR/failed/REL          could not be digitised; DIR/failed/REL.reason.json says why, and
                          the archive's quarantine/ holds a copy as for lgd digitise
  DIR/{STATE}/         the watcher's lock and journal: what it was doing, so a restart (even
                          after a power cut) re-checks that input against the archive by checksum
                          and neither loses nor repeats it
one line per input on stderr (--log-json: JSON with input, patient, pages, seconds, outcome).
Ctrl-C or SIGTERM: the inputs being digitised (one with --jobs 1, up to 4 per worker otherwise)
are finished and moved, then lgd exits 0.

run it as a service (systemd), e.g. /etc/systemd/system/lgd-watch.service:
  [Unit]
  Description=lgd hot folder
  After=network-online.target
  [Service]
  User=lgd
  Environment=LGD_ARCHIVE=/srv/lgd/archive
  # once the archive has accounts: one that may digitise (clerk or practice admin)
  Environment=LGD_USER=scanning-bureau
  ExecStart=/opt/lgd/.venv/bin/lgd watch /srv/lgd/inbox --log-json
  # SIGTERM to lgd alone, so the document being read is finished, not killed
  KillMode=mixed
  TimeoutStopSec=600
  Restart=on-failure
  RestartSec=30
  [Install]
  WantedBy=multi-user.target
then: systemctl enable --now lgd-watch; journalctl -u lgd-watch -f

examples:
  lgd watch /srv/lgd/inbox --archive /srv/lgd/archive
  lgd watch /mnt/scanner-share --poll 30 --quiet-period 60      (network share: inotify sees nothing)
  lgd watch inbox/ --once                                       (from cron: take what is complete, exit)
"""


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a number of seconds, not {value!r}") from None
    if not 0.1 <= seconds <= 24 * 3600:
        raise argparse.ArgumentTypeError("must be between 0.1 and 86400 seconds")
    return seconds


def _jobs(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError("--jobs wants a whole number between 1 and 64")
    return int(value)


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    w = sub.add_parser(
        "watch", help="a hot folder: digitise each input dropped into DIR once it is complete",
        description="Watch DIR and digitise every input put into it once the input is complete, exactly as "
        "`lgd digitise` would (same identity rules, duplicate check, quarantine, audit); then move it to "
        "DIR/done/ or DIR/failed/ with its reason beside it. One watcher per folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("folder", type=Path, metavar="DIR", help="the hot folder")
    w.add_argument("--archive", metavar="DIR", help="archive folder (default: $LGD_ARCHIVE or ./lgd-archive)")
    add_as_option(w)
    w.add_argument("--queue", metavar="URL", help="digitise on `lgd worker` processes through this Redis broker "
                   "(redis://HOST:6379/0) instead of local processes; results are stored here")
    w.add_argument("--store", type=Path, metavar="DIR", help="with --queue: the shared folder the workers read "
                   "inputs from and write results to, as for lgd digitise --queue (default: ARCHIVE/queue-store)")
    w.add_argument("--broker-timeout", type=_seconds, default=300.0, metavar="S", help="with --queue: how long to "
                   "wait for an unreachable broker before stopping (default: 300; the journal resumes at restart)")
    w.add_argument("--poll", type=_seconds, metavar="SECONDS", help="look at DIR every SECONDS instead of "
                   "being told of changes (inotify); for network shares (NFS, SMB), where changes made by "
                   "other machines are never told")
    w.add_argument("--quiet-period", type=_seconds, default=10.0, metavar="SECONDS",
                   help="how long an input must stay unchanged to count as complete (default: 10)")
    w.add_argument("--require-done", action="store_true",
                   help=f"take patient and batch folders only once they hold {MARKER} (or were renamed in), never by quiet period")
    w.add_argument("--once", action="store_true", help="take what is complete within one quiet period, "
                   "digitise it, and exit (0, or 1 if an input failed)")
    w.add_argument("--log-json", action="store_true", help="every line on stderr is one JSON object")
    w.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                   help="inputs digitised at once, one worker process each (default: the CPU count, or fewer if "
                   "the memory available would not hold that many workers of the engine). With N > 1 "
                   "each run takes up to 4N complete inputs, and Ctrl-C or SIGTERM waits for them; --jobs 1 "
                   "takes one input at a time")
    add_engine_options(w, "Tesseract language(s), as for lgd digitise (default: eng)")
    w.set_defaults(run=lambda args, stdout: cmd_watch(args, archive_of))


def cmd_watch(args: argparse.Namespace, archive_of: Callable[[str | None], Path]) -> ExitCode:
    from digitise.options import DigitiseOptions

    inbox = args.folder.resolve()
    if not inbox.is_dir():
        raise LgdError(f"{args.folder}: no such folder; create it (mkdir -p) or name the hot folder to watch")
    archive = archive_of(args.archive)
    if archive.is_relative_to(inbox) or inbox.is_relative_to(archive):
        raise LgdError(f"the archive {archive} and the hot folder {inbox} must not be inside one another")
    if args.log_json:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(_JsonLines())
    options = DigitiseOptions(engine=engine(args), languages=args.language)
    args.jobs = args.jobs or default_workers(options.engine)
    ingest = _local_ingest(archive, options, args.jobs) if args.queue is None else _queued_ingest(args, archive, options)
    lock = folder.lock(inbox)
    try:
        watch = Watch(inbox, archive, ingest, folder.Tracker(args.quiet_period, args.require_done),
                      poll=args.poll, once=args.once, json_lines=args.log_json,
                      batch=_batch(args))
        return watch.run()
    finally:
        os.close(lock)


def _batch(args: argparse.Namespace) -> int:
    """Inputs per ingest run. One worker reads in this process, so one input at a time costs nothing;
    a process pool is started per run, so several workers get four inputs each to spread its start
    (measured: 20 image-only inputs, --jobs 2, took twice lgd digitise's time with a pool per 2 inputs).
    Ctrl-C and SIGTERM wait for the run in hand; the queue's workers start once, so it takes more."""
    if args.queue is not None:
        return 64
    return 1 if args.jobs == 1 else 4 * args.jobs


def _local_ingest(archive: Path, options, jobs: int) -> Callable:
    def make():
        from pipelines.ingest.run import Ingest  # OCR: imported when there is something to read

        return Ingest(archive, options, jobs=jobs)
    return make


def _queued_ingest(args: argparse.Namespace, archive: Path, options) -> Callable:
    """Each batch goes to `lgd worker` processes through the broker; this process stores the results."""
    from pipelines.queue.command import STORE_IN_ARCHIVE
    from pipelines.queue.events import EventLog
    from pipelines.queue.tracker import check_url

    url = check_url(args.queue)
    store = (args.store or archive / STORE_IN_ARCHIVE).resolve()

    def make():
        from pipelines.queue.writer import QueuedIngest  # Celery: imported only for --queue

        return QueuedIngest(archive, options, url=url, store=store, broker_timeout=args.broker_timeout,
                            events=EventLog(args.log_json, "writer"))
    return make


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"at": folder.now_iso(), "event": "log", "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()}, ensure_ascii=False)


class Watch:
    """The hot folder's loop: look, wait for complete inputs, digitise them in small batches, move them out."""

    def __init__(self, inbox: Path, archive: Path, make_ingest: Callable, tracker: folder.Tracker, *,
                 poll: float | None, once: bool, json_lines: bool, batch: int) -> None:
        self.inbox, self.archive, self.make_ingest, self.tracker = inbox, archive, make_ingest, tracker
        self.poll, self.once, self.json_lines, self.batch = poll, once, json_lines, max(1, batch)
        self.journal = folder.Journal.open(inbox)
        self.wake = threading.Event()
        self.stopping: str | None = None  # the signal that asked to stop
        self.resumed: set[str] = set()
        self.failures = 0
        self.waiting = False  # for the archive, locked by another lgd digitise
        self._events = folder.Events(inbox, self.wake)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> ExitCode:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        observer = self._observer()
        self._say("start", folder=str(self.inbox), archive=str(self.archive),
                  mode=f"poll every {self.poll:g} s" if self.poll else "inotify")
        try:
            self._resume()
            started = time.monotonic()
            # Events wake the loop at once; the tick only has to notice quiet periods ending.
            tick = self.poll or min(5.0, max(0.1, self.tracker.quiet / 4))
            while not self.stopping:
                self.wake.clear()
                now = time.monotonic()
                found = folder.scan(self.inbox)
                touched, renamed = self._events.drain()
                self.tracker.update(now, found, touched, renamed)
                ready = {}
                for rel, seen in sorted(found.items(), key=lambda kv: (kv[0] not in self.resumed, kv[0])):
                    why = "resumed" if rel in self.resumed else self.tracker.complete(now, seen)
                    if why is not None and (why == "resumed" or not self._being_written(seen)):
                        ready[seen] = why
                    if len(ready) >= 2 * self.batch:  # enough for this batch; the rest wait for the next look
                        break
                if ready:
                    self._digitise(ready)
                    continue  # look again at once: more may have become complete meanwhile
                if self.once and now - started >= self.tracker.quiet:
                    break
                self.wake.wait(tick)
                time.sleep(0.05)  # a burst of events (a copy in progress) wakes the loop once, not per write
        finally:
            # watchdog logs an error when its inotify thread is stopped mid-read; that is this stop, not a fault.
            logging.getLogger("watchdog").setLevel(logging.CRITICAL)
            observer.stop()
            observer.join(timeout=5)
            for s, handler in previous.items():
                signal.signal(s, handler)
        self._say("stop", why=self.stopping or "once")
        return ExitCode.partial if self.once and self.failures else ExitCode.ok

    def _stop(self, signum, frame) -> None:
        # Only flags: printing here could re-enter a print the loop is in the middle of.
        self.stopping = signal.Signals(signum).name
        self.wake.set()

    def _observer(self):
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        observer = PollingObserver(timeout=self.poll) if self.poll else Observer()
        self._events.trust_moves = not self.poll
        try:
            observer.schedule(self._events, str(self.inbox), recursive=True)
            observer.start()
        except OSError as e:  # e.g. the inotify watch limit (fs.inotify.max_user_watches) reached
            if self.poll:
                raise
            self.poll = max(1.0, self.tracker.quiet / 4)
            self._say("warning", note=f"inotify cannot watch {self.inbox} ({e.strerror or e}); looking every "
                      f"{self.poll:g} s instead (raise fs.inotify.max_user_watches, or pass --poll)")
            return self._observer()
        return observer

    def _being_written(self, seen: Seen) -> bool:
        return any(folder.open_for_writing(path) for path in folder.files_of(self.inbox, seen))

    # -- a batch of complete inputs ------------------------------------------------------------
    def _digitise(self, ready: dict[Seen, str]) -> None:
        batch, owners = [], {}
        for seen in ready:
            if seen.kind == "file" and Path(seen.rel).name.lower() == folder.MANIFEST:
                why = (f"a {folder.MANIFEST} directly in the hot folder is not a batch of its own; put it in a folder "
                       "with the scans it names, and that folder is taken as one input")
                self._finish(seen.rel, Result("failed", FAILED, why, None, 0, []), 0.0, 1, ready[seen])
                continue
            names = {Path(seen.rel).name} | set(folder.names_in(self.inbox / seen.rel))
            if seen.manifest is not None or (batch and batch[0].manifest is not None):
                if not batch:  # a manifest applies to a whole ingest run: its folder goes alone
                    batch.append(seen)
                    owners.update(dict.fromkeys(names, seen.rel))
                continue
            if len(batch) < self.batch and not names & owners.keys():  # outcomes are told apart by source name
                batch.append(seen)
                owners.update(dict.fromkeys(names, seen.rel))
        from index.errors import ArchiveError, ArchiveErrorCode

        if not batch:
            return
        started = time.monotonic()
        manifest = None
        if batch[0].manifest is not None:
            from pipelines.identity import IdentityError, read_manifest

            try:
                manifest = read_manifest(batch[0].manifest)
            except IdentityError as e:
                self._finish(batch[0].rel, Result("failed", FAILED, str(e), None, 0, []), 0.0, 1, ready[batch[0]])
                return
        try:
            ingest = self.make_ingest()
        except ArchiveError as e:
            if e.code != ArchiveErrorCode.archive_locked:
                raise
            pause = max(1.0, self.tracker.quiet)
            if not self.waiting:  # say so once, not at every try
                self._say("waiting", note=f"another lgd digitise is writing to the archive {self.archive}; "
                          f"trying again every {pause:g} s")
            self.waiting = True
            self.wake.wait(pause)
            return
        self.waiting = False
        try:
            for seen in batch:
                self.journal.set(seen.rel, {"step": "digitise", "since": folder.now_iso(), "pid": os.getpid()})
            report = ingest.run([self.inbox / seen.rel for seen in batch], manifest)
        finally:
            ingest.close()
        seconds = time.monotonic() - started
        if self.stopping:
            self._say("stopping", signal=self.stopping, note="moving the inputs just digitised, then stopping")
        for warning in report.warnings:
            self._say("warning", note=warning)
        grouped: dict[str, list] = {seen.rel: [] for seen in batch}
        for outcome in report.outcomes:
            rel = owners.get(outcome.source, batch[0].rel if len(batch) == 1 else None)
            if rel is None:  # cannot happen while sources are names found in the inputs; say so if it does
                self._say("warning", note=f"{outcome.source}: {outcome.status} matched no input of the batch")
                continue
            grouped[rel].append(outcome)
        for seen in batch:
            result = judge(grouped[seen.rel], report.warnings if len(batch) == 1 else ())
            if report.interrupted or (self.stopping and result.outcome == "failed"):
                # A stop signal also reaches the OCR programs of a terminal's process group: a failure
                # now may be ours, not the input's. The journal keeps it for a re-check at the next start.
                self._say("input", input=seen.rel, outcome="left", note="stopped while digitising; re-checked at the next start")
                continue
            self._finish(seen.rel, result, seconds, len(batch), ready[seen])

    def _finish(self, rel: str, result: Result, seconds: float, batch: int, complete: str) -> None:
        if not (self.inbox / rel).exists():  # taken away by someone while it was read: nothing to move
            self.journal.clear(rel)
            self._say("input", input=rel, outcome=result.outcome, note="removed from the folder while it was digitised")
            return
        target = folder.destination(self.inbox, result.where, rel)
        record = None
        if result.reason or result.where == FAILED:
            record = {"input": rel, "outcome": result.outcome, "reason": result.reason, "patient": result.patient,
                      "documents": result.documents, "archive": str(self.archive), "at": folder.now_iso()}
        self.journal.set(rel, {"step": "move", "to": target, "record": record, "outcome": result.outcome,
                               "patient": result.patient, "pages": result.pages})
        folder.move(self.inbox, rel, target, record)
        self.journal.clear(rel)
        self.tracker.forget(rel)
        self.resumed.discard(rel)
        self.failures += result.outcome == "failed"
        self._say("input", input=rel, patient=result.patient, pages=result.pages, seconds=round(seconds, 2),
                  outcome=result.outcome, moved_to=target, reason=result.reason or None, complete=complete,
                  **({"batch": batch} if batch > 1 else {}))

    def _resume(self) -> None:
        """Finish what a stopped watcher left: moves are completed, inputs being digitised are read again
        (the ingest finds those already stored by checksum, so they go to done/ as already stored)."""
        for rel, entry in list(self.journal.entries.items()):
            there = (self.inbox / rel).exists()
            if entry.get("step") == "move" and there and not (self.inbox / entry["to"]).exists():
                folder.move(self.inbox, rel, entry["to"], entry.get("record"))
                self.journal.clear(rel)
                self.failures += entry.get("outcome") == "failed"
                self._say("input", input=rel, patient=entry.get("patient"), pages=entry.get("pages", 0), seconds=0.0,
                          outcome=entry.get("outcome"), moved_to=entry["to"], resumed=True)
            elif entry.get("step") == "digitise" and there:
                self.resumed.add(rel)
                self._say("resume", input=rel, note="was being digitised when the watcher stopped; re-checked against the archive")
            else:  # nothing left to do, but say so: the move had happened, or the input was taken away
                moved = entry.get("step") == "move" and (self.inbox / entry["to"]).exists()
                self._say("resume", input=rel, moved_to=entry.get("to") if moved else None,
                          note="had been moved when the watcher stopped" if moved else "no longer in the folder")
                self.journal.clear(rel)

    # -- telling --------------------------------------------------------------------------------
    def _say(self, event: str, **fields) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        if self.json_lines:
            line = json.dumps({"at": folder.now_iso(), "event": event, **fields}, ensure_ascii=False)
        elif event == "input":
            extra = [f"patient {fields['patient']}"] if fields.get("patient") else []
            extra += [_pages(fields.get('pages', 0)), f"{fields.get('seconds', 0):g} s"]
            where = f" -> {fields['moved_to']}" if "moved_to" in fields else ""
            why = f": {fields['reason']}" if fields.get("reason") else (f": {fields['note']}" if "note" in fields else "")
            line = f"lgd watch: {fields['outcome']} {fields['input']}{where} ({', '.join(extra)}){why}"
        else:
            line = f"lgd watch: {event} " + ", ".join(f"{k} {v}" for k, v in fields.items())
        # File names are anyone's to choose: never let one write escape sequences to an operator's terminal.
        print(line if self.json_lines else printable(line), file=sys.stderr, flush=True)


def _pages(n: int) -> str:
    return "1 page" if n == 1 else f"{n} pages"
