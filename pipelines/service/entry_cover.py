"""A clinician marks a paper entry lgd could not match as covered by a named coded event, for `lgd review` and the web.

- Only a clinician (the `decide` permission) covers or clears; the reason is required.
- The event must be in the patient's latest coded record, the one the latest reconciliation was
  checked against, and dated where it could record the entry (COVER_WINDOW_DAYS); an event of
  another patient's or an older record is refused, whatever the clinician chose.
- An entry lgd held paper-only (a negation, a red flag, a loaded word) may still be covered: it is
  the clinician's judgement, and it is checked by a second clinician like any other.
- When every entry of a page sent only because of its entries is covered (by lgd or a clinician)
  and no writing outside them is unaccounted for, the cover proposes the page's omission through
  `review.decide`, so the four-eyes rule, sign-off and the cover sheet apply unchanged: the page is
  sent until a second, different clinician confirms it. Clearing a cover withdraws that omission.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from index import Catalogue
from index.coded import CodedRecordRow, latest_coded_record
from index.decisions import latest_overrides, latest_reconciliation
from index.entry_covers import CoveredBy, covers_in_force, entry_covers, entry_sha256, record_entry_cover
from index.rows import PageDecisionRow
from pipelines.actor import free_text
from pipelines.errors import ExitCode, LgdError
from pipelines.records.model import parse_date_text

from . import review
from .access import Permission, Who

# A coded event records a paper entry when it is dated within about a year of it: entries are
# coded at the visit, when a letter arrives, or when the record is summarised later in the year.
# Further apart, it is another episode, and the clinician should include the page or omit it outright.
COVER_WINDOW_DAYS = 366
# Only a page sent because of its entries can become omittable by covering them; an envelope front,
# an unreadable or low-confidence page, one with no entries or writing outside them has other reasons.
_ENTRY_BOUND = "entries_not_covered"


@dataclass(frozen=True, slots=True)
class CoverOutcome:
    page: review.PageRef
    entry: int  # 1-based on the page
    event: CoveredBy | None  # None: the cover was cleared
    by: str
    reason: str
    omission: str  # "proposed" (pending a second clinician), "withdrawn", or "none"
    still_sent_because: str | None  # why the page is still sent (entries left, writing outside them)

    def to_json(self) -> dict[str, Any]:
        e = self.event
        return {"id": self.page.id, "number": self.page.number, "source": self.page.source, "page": self.page.page,
                "entry": self.entry, "by": self.by, "reason": self.reason, "omission": self.omission,
                "pending": self.omission == "proposed", "still_sent_because": self.still_sent_because,
                "event": None if e is None else {"system": e.system, "code": e.code, "display": e.display,
                                                 "date": e.date, "coded_sha256": e.coded_sha256}}


def _conflict(message: str, code: str, status: int = 409) -> LgdError:
    return LgdError(message, ExitCode.usage, code, status)


def split_page_entry(spec: str) -> tuple[str, int]:
    """'3:2' (page 3, entry 2), '12-3:2' or 'SOURCE:PAGE:2': the page as `lgd review` takes it, then the entry."""
    page, sep, entry = spec.strip().rpartition(":")
    if not sep or not page or not entry.isdigit() or int(entry) < 1:
        raise LgdError(f"{spec[:80]!r}: name the entry as PAGE:ENTRY, e.g. 3:2 for the second entry of page 3",
                       ExitCode.usage, "usage")
    return page, int(entry)


def coded_events(catalogue: Catalogue, who: Who, nhs_number: str) -> dict[str, Any]:
    """The patient's latest coded record's events, numbered from 1 as `--by N` names them."""
    who.require(Permission.view)
    coded = latest_coded_record(catalogue, nhs_number)
    if coded is None:
        raise LgdError(f"there is no coded record for NHS number {nhs_number}; import one (lgd coded import FILE)",
                       ExitCode.partial, "no_coded_record", 404)
    events = coded.record.get("events", [])
    return {"nhs_number": nhs_number, "coded_sha256": coded.sha256, "format": coded.format,
            "events": [{"n": i, "date": e.get("date"), "system": e.get("system"), "code": e.get("code"),
                        "display": e.get("display"), "type": e.get("type")} for i, e in enumerate(events, 1)]}


def _event(coded: CodedRecordRow, ref: str) -> CoveredBy:
    events = coded.record.get("events", [])
    text = ref.strip()
    if text.isdigit():
        chosen = [events[int(text) - 1]] if 1 <= int(text) <= len(events) else []
    else:
        chosen = [e for e in events if str(e.get("code", "")).casefold() == text.casefold()]
    if len(chosen) != 1:
        many = f"{len(chosen)} events have code {text!r}; name one by its number" if chosen else \
            f"{text[:40]!r} is not an event of this patient's latest coded record"
        raise _conflict(f"{many} (lgd review --patient {coded.nhs_number} --events lists them, 1-{len(events)})",
                        "no_event", 404 if not chosen else 409)
    e = chosen[0]
    return CoveredBy(coded.sha256, str(e.get("system") or ""), str(e.get("code") or ""), str(e.get("display") or ""),
                     e.get("date"))


def _span(text: str | None) -> tuple[dt.date, dt.date] | None:
    day, precision = parse_date_text(text)
    if day is None:
        return None
    if precision == "year":
        return day, dt.date(day.year, 12, 31)
    if precision == "month":
        following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return day, following - dt.timedelta(days=1)
    return day, day


def date_gap(entry_date: str | None, event_date: str | None) -> int | None:
    """Days between the entry's and the event's dates at their precision (0 when they overlap); None if either is undated."""
    a, b = _span(entry_date), _span(event_date)
    if a is None or b is None:
        return None
    return max(0, (b[0] - a[1]).days, (a[0] - b[1]).days)


def _stray_writing(catalogue: Catalogue, nhs_number: str, page: review.PageRef) -> list[str]:
    """Words outside the page's entries that nothing accounts for, as reconciliation finds them.

    Reconciliation stops at the first reason to send a page, so a page sent for its entries was
    never looked at for writing outside them; it must be before it may be left out.
    """
    from pipelines.clinical import default_reader
    from pipelines.reconcile.decide import outside_entries  # the one rule reconciliation applies
    from pipelines.reconcile.run import load_pages

    paper = next((p for p in load_pages(catalogue, nhs_number)
                  if (p.document_id, p.number) == (page.document_id, page.page)), None)
    if paper is None:
        return ["(the page is no longer in the record)"]
    patient = catalogue.patient(nhs_number)
    names = tuple(((patient.name if patient else None) or "").replace("-", " ").split())
    return outside_entries(paper, default_reader(), names)


def _decided(catalogue: Catalogue, nhs_number: str, page: review.PageRef):
    run = latest_reconciliation(catalogue, nhs_number)
    if run is None:
        raise _conflict(f"patient {nhs_number} has not been reconciled; reconcile first (lgd reconcile --patient "
                        f"{nhs_number})", "not_reconciled")
    row = next((p for p in run.pages if (p.document_id, p.page) == (page.document_id, page.page)), None)
    if row is None:
        raise _conflict(f"page {page.number} ({page.id}) is not in the latest reconciliation; reconcile again",
                        "not_reconciled")
    return run, row


def _entry(row: PageDecisionRow, page: review.PageRef, entry: int) -> dict[str, Any]:
    if not 1 <= entry <= len(row.entries):
        raise _conflict(f"page {page.number} ({page.id}) has {len(row.entries)} entries; there is no entry {entry}",
                        "no_entry", 404)
    return row.entries[entry - 1]


def cover_entry(catalogue: Catalogue, who: Who, nhs_number: str, page_ref: str, entry: int, coded_event_ref: str,
                reason: str, coded_sha256: str | None = None) -> CoverOutcome:
    """Mark entry `entry` (1-based) of the page as covered by the named coded event; propose the page's omission when that completes it.

    `coded_event_ref` is the event's number in `coded_events` or its code; `coded_sha256`, when
    given, is the record the person chose it from, which must still be the patient's latest.
    """
    who.require(Permission.decide)
    reason = free_text(reason, "the reason")
    page = review.resolve(catalogue, nhs_number, page_ref)
    run, row = _decided(catalogue, nhs_number, page)
    coded = latest_coded_record(catalogue, nhs_number)
    if coded is None or coded.sha256 != run.coded_sha256:
        raise _conflict("the coded record changed since the last reconciliation; reconcile again, then cover the "
                        "entry against the new record", "stale_coded_record")
    if coded_sha256 is not None and coded_sha256 != coded.sha256:
        raise _conflict(f"the event was chosen from coded record {coded_sha256[:12]}, which is not patient "
                        f"{nhs_number}'s latest ({coded.sha256[:12]}); choose it again from the latest record",
                        "stale_coded_record")
    if row.decision == "omit":
        raise _conflict(f"lgd already leaves page {page.number} ({page.id}) out; its entries need no cover",
                        "already_omitted")
    if row.reason_code != _ENTRY_BOUND:
        raise _conflict(f"page {page.number} ({page.id}) is sent because {row.reason}; covering an entry cannot make "
                        "it omittable (a clinician may still omit the page, with a second clinician to confirm)",
                        "sent_for_another_reason")
    paper = _entry(row, page, entry)
    if paper.get("status") == "covered":
        raise _conflict(f"entry {entry} of page {page.number} is already covered by the coded record", "entry_covered")
    event = _event(coded, coded_event_ref)
    gap = date_gap(paper.get("date"), event.date)
    if gap is not None and gap > COVER_WINDOW_DAYS:
        raise _conflict(f"{event.display or event.code} is dated {event.date}, {gap} days from entry {entry} "
                        f"({paper.get('date')}): more than {COVER_WINDOW_DAYS} days apart, it records another "
                        "episode; choose an event dated near the entry, or decide the page itself", "date_does_not_fit")
    held = covers_in_force(entry_covers(catalogue, nhs_number), run).get((page.document_id, page.page), {})
    left = [i + 1 for i, e in enumerate(row.entries)
            if e.get("status") != "covered" and i not in held and i != entry - 1]
    still_sent = f"entr{'y' if len(left) == 1 else 'ies'} {', '.join(map(str, left))} not covered" if left else None
    override_id = None
    if still_sent is None:
        stray = _stray_writing(catalogue, nhs_number, page)
        if stray:
            still_sent = "writing outside the entries: " + " ".join(stray[:6])
        else:
            covered = {**{i + 1: h.event for i, h in held.items()}, entry: event}
            named = "; ".join(f"entry {n} as {e.display or e.code} ({e.date or 'undated'})"
                              for n, e in sorted(covered.items()))
            done = review.decide(catalogue, who, nhs_number, page.id, "omit",
                                 f"every entry covered: {named}: {reason}"[:400])
            latest = latest_overrides(catalogue, nhs_number).get((page.document_id, page.page))
            override_id = latest.id if latest is not None and latest.actor == done.by else None
    record_entry_cover(catalogue, nhs_number, page.document_id, page.page, entry - 1,
                       entry_sha256=entry_sha256(paper), entry_status=paper.get("status"), event=event,
                       reason=reason, actor=who.name, override_id=override_id)
    return CoverOutcome(page, entry, event, who.name, reason, "proposed" if override_id else "none", still_sent)


def clear_entry_cover(catalogue: Catalogue, who: Who, nhs_number: str, page_ref: str, entry: int,
                      reason: str) -> CoverOutcome:
    """Clear a clinician's cover of an entry; the page's omission it proposed (pending or confirmed) is withdrawn."""
    who.require(Permission.decide)
    reason = free_text(reason, "the reason")
    page = review.resolve(catalogue, nhs_number, page_ref)
    run, row = _decided(catalogue, nhs_number, page)
    paper = _entry(row, page, entry)
    rows = [c for c in entry_covers(catalogue, nhs_number) if (c.document_id, c.page) == (page.document_id, page.page)]
    latest = next((c for c in reversed(rows) if c.entry == entry - 1), None)
    if latest is None or latest.event is None:
        raise _conflict(f"entry {entry} of page {page.number} ({page.id}) has no clinician's cover to clear",
                        "nothing_to_clear")
    proposed = {c.override_id for c in rows if c.override_id is not None}
    standing = latest_overrides(catalogue, nhs_number).get((page.document_id, page.page))
    withdrawn = standing is not None and standing.decision == "omit" and standing.id in proposed
    if withdrawn:  # first, so that a crash in between leaves the page sent, never omitted without its cover
        review.decide(catalogue, who, nhs_number, page.id, None, f"entry {entry} cover cleared: {reason}"[:400])
    record_entry_cover(catalogue, nhs_number, page.document_id, page.page, entry - 1,
                       entry_sha256=entry_sha256(paper), entry_status=paper.get("status"), event=None,
                       reason=reason, actor=who.name)
    return CoverOutcome(page, entry, None, who.name, reason, "withdrawn" if withdrawn else "none",
                        f"entry {entry} not covered")


def page_entries(catalogue: Catalogue, who: Who, nhs_number: str, page_ref: str) -> dict[str, Any]:
    """One page's entries, numbered as PAGE:ENTRY names them, with lgd's status and any clinician's cover in force."""
    who.require(Permission.view)
    page = review.resolve(catalogue, nhs_number, page_ref)
    run, row = _decided(catalogue, nhs_number, page)
    held = covers_in_force(entry_covers(catalogue, nhs_number), run).get((page.document_id, page.page), {})
    return {"id": page.id, "number": page.number, "source": page.source, "page": page.page, "machine_decision": row.decision,
            "reason": row.reason, "reason_code": row.reason_code,
            "entries": [{"entry": n, "date": e.get("date"), "status": e.get("status"), "why": e.get("why"),
                         "text": e.get("text"), "covered_by": held[n - 1].to_json() if n - 1 in held else None}
                        for n, e in enumerate(row.entries, 1)]}


def page_covers(catalogue: Catalogue, nhs_number: str) -> dict[tuple[int, int], dict[int, Any]]:
    """The covers in force against the latest run, per page and entry (0-based): what the review and the cover show."""
    return covers_in_force(entry_covers(catalogue, nhs_number), latest_reconciliation(catalogue, nhs_number))
