"""`lgd worker`, `lgd status`, and the --queue options of `lgd digitise`: argument parsing only.

Celery, Redis and prometheus_client are imported by the commands that use them, never to
build the parser: plain `lgd` starts without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from digitise.options import DigitiseOptions
from pipelines.engines import add_engine_options, default_workers, engine
from pipelines.errors import ExitCode, LgdError

STORE_IN_ARCHIVE = "queue-store"  # the default shared store: a folder in the archive, mounted by the workers


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a number of seconds, not {value!r}") from None
    if not 0 < seconds <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError("must be between 0 and a week of seconds")
    return seconds


def documents_per_commit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100_000:
        raise argparse.ArgumentTypeError(f"wants a whole number of documents (1-100000), not {value!r}")
    return int(value)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"wants a TCP port (1-65535), not {value!r}")
    return int(value)


def add_digitise_options(d: argparse.ArgumentParser) -> None:
    q = d.add_argument_group("queue (digitise on `lgd worker` processes, here or on other machines)")
    q.add_argument("--queue", metavar="URL", help="Redis broker, e.g. redis://HOST:6379/0: send the batch to the "
                   "workers on it and store their results here (default: digitise in local processes, no broker)")
    q.add_argument("--store", type=Path, metavar="DIR", help="shared folder the workers read inputs from and write "
                   f"results to; it must be reachable by every worker (default: ARCHIVE/{STORE_IN_ARCHIVE})")
    q.add_argument("--broker-timeout", type=_seconds, default=300.0, metavar="S",
                   help="how long to wait for an unreachable broker before giving up (default: 300)")
    add_observe_options(q)


def add_observe_options(p) -> None:
    p.add_argument("--log-json", action="store_true", help="one JSON line per document on stderr (who, what, "
                   "how long, outcome) for a log collector")
    p.add_argument("--metrics-port", type=_port, metavar="PORT", help="serve Prometheus metrics on this port")


def queued_ingest(args: argparse.Namespace, archive: Path, options: DigitiseOptions, progress):
    """The Ingest of `lgd digitise --queue`."""
    from pipelines.queue.events import EventLog, Metrics, serve_metrics
    from pipelines.queue.tracker import check_url
    from pipelines.queue.writer import QueuedIngest

    url = check_url(args.queue)
    metrics = None
    if args.metrics_port:
        serve_metrics(args.metrics_port, multiprocess=False)
        metrics = Metrics("writer")
    store = (args.store or archive / STORE_IN_ARCHIVE).resolve()
    return QueuedIngest(archive, options, url=url, store=store, broker_timeout=args.broker_timeout,
                        events=EventLog(args.log_json, "writer"), metrics=metrics, progress=progress, force=args.force,
                        grouping=index_grouping(args))


def index_grouping(args: argparse.Namespace):
    """`--index-every N` as a Grouping (the default where a command has no such option)."""
    from pipelines.ingest.index_group import Grouping

    every = getattr(args, "index_every", None)
    return Grouping() if every is None else Grouping(documents=every)


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    w = sub.add_parser(
        "worker", help="digitise documents from a Redis queue (for `lgd digitise --queue`)",
        description="Start a digitising worker: it takes documents from the queue, reads them exactly as "
        "`lgd digitise` does, and writes the page facts and PDF/A back to the shared store. It needs no "
        "access to the archive's catalogue or index; the `lgd digitise --queue` run stores the results.",
        epilog="example:\n  lgd worker --queue redis://archive-node:6379/0 --concurrency 4 --store /mnt/lgd-store",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--queue", required=True, metavar="URL", help="Redis broker, e.g. redis://HOST:6379/0")
    w.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="documents read at once, one process each (default: the CPU count, or fewer if the memory "
                        "available would not hold that many workers of the engine)")
    w.add_argument("--store", type=Path, metavar="DIR", help="where the shared store is mounted on this machine "
                   "(default: the path each batch's writer gives, when it is the same here)")
    add_engine_options(w, "Tesseract language(s) (default: eng)")
    w.add_argument("--visibility-timeout", type=int, default=3600, metavar="S",
                   help="a document whose worker vanished without a word is handed out again after this many "
                        "seconds; longer than any one document takes (default: 3600)")
    add_observe_options(w)
    w.set_defaults(run=cmd_worker)

    s = sub.add_parser("status", help="what the digitising queue is doing: queued, running, finished, ETA",
                       description="Show the queue: documents queued, running (on which worker, for how long) and "
                       "finished, pages per hour, an estimate of the time left, each worker's throughput, and "
                       "the failures with their reasons.")
    s.add_argument("--queue", required=True, metavar="URL", help="Redis broker, e.g. redis://HOST:6379/0")
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    s.set_defaults(run=cmd_status)


def cmd_worker(args: argparse.Namespace, stdout) -> ExitCode:
    from pipelines.queue.tracker import Tracker, check_url, safe_url

    url = check_url(args.queue)
    name = engine(args)
    concurrency = args.concurrency or default_workers(name)
    if not 1 <= concurrency <= 64:
        raise LgdError("--concurrency must be between 1 and 64")
    if args.store is not None and not args.store.is_dir():
        raise LgdError(f"--store {args.store}: no such folder (mount the shared store there first)")
    if not Tracker(url, timeout=3).reachable():
        print(f"lgd: the queue's broker at {safe_url(url)} does not answer yet; the worker keeps trying", file=sys.stderr)
    if args.metrics_port:
        from pipelines.queue.events import serve_metrics

        serve_metrics(args.metrics_port, multiprocess=True)
    from pipelines.queue.tasks import WorkerSettings, run_worker

    settings = WorkerSettings(url, DigitiseOptions(engine=name, languages=args.language),
                              args.store.resolve() if args.store else None, args.log_json, bool(args.metrics_port))
    run_worker(settings, concurrency, args.visibility_timeout, "INFO" if args.verbose else "WARNING")
    return ExitCode.ok


def cmd_status(args: argparse.Namespace, stdout) -> ExitCode:
    import time

    from pipelines.queue.status import render, summarise
    from pipelines.queue.tracker import Tracker, check_url, safe_url

    tracker = Tracker(check_url(args.queue), timeout=3)
    try:
        snapshot = tracker.snapshot()
    except tracker.errors as e:
        raise LgdError(f"the queue's broker at {safe_url(args.queue)} is unreachable ({e}); is redis-server running?",
                       ExitCode.missing_dependency, "broker_unreachable", 503) from None
    status = summarise(snapshot, time.time())
    if args.json:
        json.dump(status, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(render(status))
    return ExitCode.ok
