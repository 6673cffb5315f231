"""What the queue tells a log collector and Prometheus: one JSON line per document, and counters per process.

prometheus_client is imported only when metrics are asked for; a Celery worker's documents
are read in its child processes, so the worker serves their counters through
prometheus_client's multiprocess mode (one file per process in a private folder).
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from typing import Any


class EventLog:
    """One JSON object per line on stderr (--log-json), else nothing."""

    def __init__(self, enabled: bool, role: str) -> None:
        self.enabled = enabled
        self.role = role

    def document(self, *, who: str, what: str, seconds: float, outcome: str, **extra: Any) -> None:
        if not self.enabled:
            return
        event = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": "document",
                 "role": self.role, "who": who, "what": what, "seconds": round(seconds, 3), "outcome": outcome, **extra}
        stream = sys.__stderr__ or sys.stderr
        stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        stream.flush()


class Metrics:
    """Documents, pages and seconds per document for one role (worker or writer)."""

    def __init__(self, role: str) -> None:
        from prometheus_client import Counter, Histogram

        self.documents = Counter(f"lgd_{role}_documents", f"documents the {role} finished, by outcome", ["outcome"])
        self.pages = Counter(f"lgd_{role}_pages", f"pages the {role} finished")
        self.seconds = Histogram(f"lgd_{role}_document_seconds", f"seconds the {role} spent on one document",
                                 buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))

    def document(self, outcome: str, pages: int, seconds: float) -> None:
        self.documents.labels(outcome).inc()
        self.pages.inc(pages)
        self.seconds.observe(seconds)


def serve_metrics(port: int, *, multiprocess: bool) -> None:
    """Serve /metrics on `port`; with `multiprocess`, summing the files of this process's children.

    Must run before prometheus_client is first imported in this process, so that child
    processes forked later count into files rather than into their own memory.
    """
    if multiprocess:
        folder = tempfile.mkdtemp(prefix="lgd-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess as mp

    registry = None
    if multiprocess:
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    start_http_server(port, registry=registry) if registry else start_http_server(port)
