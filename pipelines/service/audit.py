"""Reading the audit log: who looked at which patient, when, from where, and what they did.

The log is the catalogue's append-only audit table. Web and shell actions store the actor's
role and client address in the row's detail; older rows (before accounts) have neither.
Reading the log is itself audited.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from index import AuditRow, Catalogue
from pipelines.errors import ExitCode, LgdError
from pipelines.display import safe_cell

from .access import Permission, Who

MAX_EVENTS = 10_000  # one screen or file of the log; narrow the filters for more
COLUMNS = ("time", "user", "role", "action", "nhs_number", "client", "detail")


def events(catalogue: Catalogue, who: Who, *, nhs_number: str | None = None, user: str | None = None,
           date_from: dt.date | None = None, date_to: dt.date | None = None,
           limit: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """Audit events oldest first (the most recent `limit` that match), as the API and `lgd audit --json` give them."""
    who.require(Permission.read_audit)
    if date_from and date_to and date_from > date_to:
        raise LgdError("the from date is after the to date", ExitCode.usage, "bad_dates")
    if not 1 <= limit <= MAX_EVENTS:
        raise LgdError(f"limit must be between 1 and {MAX_EVENTS}", ExitCode.usage, "bad_limit")
    since = _midnight(date_from) if date_from else None
    until = _midnight(date_to + dt.timedelta(days=1)) if date_to else None
    rows = catalogue.audit_log(nhs_number=nhs_number, actor=user, since=since, until=until, limit=limit)
    catalogue.audit(who.name, "read_audit", None, **who.audit_detail(), patient=nhs_number, user=user,
                    date_from=date_from, date_to=date_to, events=len(rows))
    return [event_json(r) for r in rows]


def event_json(row: AuditRow) -> dict[str, Any]:
    detail = dict(row.detail)
    role, client = detail.pop("role", None), detail.pop("client", None)
    return {"time": row.at.isoformat(), "user": row.actor, "role": role, "action": row.action,
            "nhs_number": row.nhs_number, "detail": detail, "client": client}


def as_csv(found: list[dict[str, Any]]) -> str:
    """The events as CSV for a spreadsheet: every cell that could run as a formula is quoted first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for e in found:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(e["detail"].items()) if v is not None)
        writer.writerow([safe_cell(str(v)) if v is not None else "" for v in
                         (e["time"], e["user"], e["role"], e["action"], e["nhs_number"], e["client"], detail)])
    return out.getvalue()


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
