"""`lgd status`: the queue's numbers from the tracker's snapshot, as a dict for --json and as text.

Documents are named by input checksum (SHA-256, as in each quarantine entry's reason.json):
the broker holds no file names, since those name the patient.
"""

from __future__ import annotations

from typing import Any

WINDOW = 3600.0  # pages per hour are measured over the last hour of finished documents
MAX_FAILURES = 50


def summarise(snapshot: dict[str, Any], now: float) -> dict[str, Any]:
    events = snapshot["events"]  # newest first
    recent = [e for e in events if now - e.get("at", 0) <= WINDOW]
    pages_recent = sum(e.get("pages", 0) for e in recent)
    if recent:
        span = max(60.0, now - min(e["at"] - e.get("seconds", 0) for e in recent))
        pages_per_hour = pages_recent * 3600.0 / min(span, WINDOW)
    else:
        pages_per_hour = 0.0
    done = [e for e in events if e.get("outcome") == "ok"]
    pages_per_doc = (sum(e.get("pages", 0) for e in done) / len(done)) if done else None
    running = [{"key": k, "worker": v.get("worker"),
                "seconds": round(now - v.get("started", now), 1)} for k, v in sorted(snapshot["running"].items())]
    left = snapshot["queued"] + len(running)
    eta = (left * pages_per_doc * 3600.0 / pages_per_hour) if (left and pages_per_doc and pages_per_hour) else None
    workers: dict[str, dict[str, Any]] = {}
    for e in events:
        w = workers.setdefault(e.get("worker", "?").rsplit("/", 1)[0], {"documents": 0, "pages": 0, "busy_seconds": 0.0})
        w["documents"] += 1
        w["pages"] += e.get("pages", 0)
        w["busy_seconds"] += e.get("seconds", 0.0)
    for w in workers.values():
        w["pages_per_hour"] = round(w["pages"] * 3600.0 / w["busy_seconds"], 1) if w["busy_seconds"] else None
        w["busy_seconds"] = round(w["busy_seconds"], 1)
    failures = [{"key": e.get("key"), "outcome": e.get("outcome"),
                 "reason": e.get("reason", ""), "worker": e.get("worker")}
                for e in events if e.get("outcome") != "ok"][:MAX_FAILURES]
    return {
        "queued": snapshot["queued"],
        "running": running,
        "finished": len(events),
        "finished_ok": len(done),
        "failed": sum(1 for e in events if e.get("outcome") != "ok"),
        "pages_finished": sum(e.get("pages", 0) for e in events),
        "pages_per_hour": round(pages_per_hour, 1),
        "eta_seconds": round(eta) if eta is not None else None,
        "workers": dict(sorted(workers.items())),
        "failures": failures,
    }


def render(s: dict[str, Any]) -> str:
    eta = "unknown" if s["eta_seconds"] is None else f"{s['eta_seconds'] // 3600} h {s['eta_seconds'] % 3600 // 60} min"
    lines = [f"queued {s['queued']}, running {len(s['running'])}, finished {s['finished']} "
             f"({s['finished_ok']} read, {s['failed']} failed), {s['pages_finished']} pages",
             f"{s['pages_per_hour']:g} pages per hour over the last hour; time left: {eta}"]
    if s["running"]:
        lines.append("\nrunning:")
        lines += [f"  {r['worker']}  {r['seconds']:>7.1f} s  document {r['key'][:16]}" for r in s["running"]]
    if s["workers"]:
        lines.append("\nworkers:")
        for name, w in s["workers"].items():
            rate = "-" if w["pages_per_hour"] is None else f"{w['pages_per_hour']:g}"
            lines.append(f"  {name}  {w['documents']} documents, {w['pages']} pages, {rate} pages per busy hour")
    if s["failures"]:
        lines.append("\nfailures (newest first; `lgd quarantine list` names their files):")
        lines += [f"  {f['outcome']}  document {f['key'][:16]}: {f['reason']}" for f in s["failures"]]
    return "\n".join(lines) + "\n"
