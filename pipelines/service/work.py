"""The digitising work as `lgd serve` shows it: the queue's numbers, the quarantine, and the recent digitise runs.

The queue's figures are `lgd status`'s own (pipelines.queue.status.summarise over the tracker's
snapshot), and the quarantine's actions are `lgd quarantine`'s (pipelines.ingest.quarantine), so
the page and the shell never disagree. All of it needs the digitise permission.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from index import ArchiveStore, AuditRow, Catalogue
from pipelines.ingest import quarantine

from .access import Permission, Who

RUN_GAP = dt.timedelta(minutes=10)  # digitise records further apart than this belong to different runs
RECENT_RECORDS = 2000  # digitise audit records read for the recent runs
RECENT_RUNS = 20
RECENT_ACTIONS = 20  # quarantine retries and discards shown


def queue_status(url: str, now: float | None = None) -> dict[str, Any]:
    """`lgd status --json`'s document for the queue at `url`, or {"unreachable": sentence} when Redis does not answer."""
    from pipelines.queue.status import summarise
    from pipelines.queue.tracker import Tracker, safe_url

    tracker = Tracker(url, timeout=2)
    try:
        snapshot = tracker.snapshot()
    except tracker.errors as e:
        return {"broker": safe_url(url), "unreachable": f"the queue's broker at {safe_url(url)} does not answer "
                f"({type(e).__name__}); is redis-server running?"}
    finally:
        tracker.redis.close()
    return {"broker": safe_url(url)} | summarise(snapshot, time.time() if now is None else now)


def digitise_runs(records: Sequence[AuditRow], limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """Digitise audit records (oldest first) as runs, newest first: one person's documents with no long gap between."""
    runs: list[dict[str, Any]] = []
    for r in records:
        last = runs[-1] if runs else None
        if last is not None and last["by"] == r.actor and r.at - last["_end"] <= RUN_GAP:
            last["_end"] = r.at
            last["documents"] += 1
            last["patients"].add(r.nhs_number)
            continue
        runs.append({"by": r.actor, "_start": r.at, "_end": r.at, "documents": 1, "patients": {r.nhs_number},
                     "engine": r.detail.get("engine")})
    return [{"by": run["by"], "started": run["_start"].isoformat(timespec="seconds"),
             "ended": run["_end"].isoformat(timespec="seconds"), "documents": run["documents"],
             "patients": len(run["patients"] - {None}), "engine": run["engine"]}
            for run in reversed(runs[-limit:])]


def work(catalogue: Catalogue, archive: Path, who: Who, queue_url: str | None) -> dict[str, Any]:
    """What the work page and GET /api/v1/work show: the queue (when there is one), the quarantine, recent runs."""
    who.require(Permission.digitise)
    entries = quarantine.entries(ArchiveStore(archive))
    handled = [*catalogue.audit_log(action="quarantine_retry", limit=RECENT_ACTIONS),
               *catalogue.audit_log(action="quarantine_discard", limit=RECENT_ACTIONS)]
    handled.sort(key=lambda r: r.id, reverse=True)
    return {
        "queue": queue_status(queue_url) if queue_url else None,
        "quarantine": [e.as_json() for e in reversed(entries)],  # newest first
        "quarantine_handled": [{"at": r.at.isoformat(timespec="seconds"), "by": r.actor,
                                "action": r.action.removeprefix("quarantine_"), "source": r.detail.get("source"),
                                "reason": r.detail.get("reason"), "outcome": r.detail.get("outcome")}
                               for r in handled[:RECENT_ACTIONS]],
        "runs": digitise_runs(catalogue.audit_log(action="digitise", limit=RECENT_RECORDS)),
    }
