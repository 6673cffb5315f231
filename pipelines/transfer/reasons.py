"""Why a page was left out of a pack, from the decision's stable code and counts (never from its sentence).

A page is omitted for one of four reasons: it is blank, it is a rescan of a page that is sent,
every entry on it is in the coded record, or a clinician decided so. The cover sheet names the
reason of each omitted page, so a receiving clinician never reads "everything on it is coded"
of a page that was simply blank or that a person chose to leave out (DESIGN §2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.reconcile.decide import PageReason, render_reason

from .plan import PlannedPage
from .render import day_text

# How the index's opening line counts each kind, in this order.
KINDS = {
    "blank": "blank",
    "rescan": "rescan of a page that is sent",
    "covered": "with every entry in the coded record",
    "entries_covered": "with every entry in the coded record, some as a clinician named it (confirmed by a second)",
    "clinician": "by a clinician's decision",
    "recorded": "for the reason an older reconciliation run recorded",
    "other": "for another reason given by reconciliation",
}


@dataclass(frozen=True, slots=True)
class Omission:
    """Why one page is not in the pack: `kind` (a key of KINDS) and the sentence the cover prints."""

    kind: str
    text: str


def omission(page: PlannedPage) -> Omission:
    """The reason `page` (an omitted page of the plan) is left out: the person's decision first, then the machine's code."""
    o = page.override
    if o is not None and o.decision == "omit" and page.machine != "omit" and _covered_by_people(page):
        return Omission("entries_covered", entries_covered(page))
    if o is not None and o.decision == "omit" and page.machine != "omit":
        was = ("it had no reconciliation decision" if page.machine is None else
               f"reconciliation had included it: {_machine_text(page)}")
        confirmed = f", confirmed by {o.confirmed_by}" if o.confirmed_by else ""
        return Omission("clinician", f"left out by {o.actor}'s decision on {day_text(o.at.date())}{confirmed}: "
                                     f"{o.reason} ({was})")
    kind, text = _machine(page)
    if o is not None and o.decision == "omit":
        text += f"; confirmed by {o.actor}'s decision on {day_text(o.at.date())}: {o.reason}"
    return Omission(kind, text)


def _covered_by_people(page: PlannedPage) -> bool:
    """The omission in force was proposed by a clinician's entry cover, and every entry is covered (by lgd or a person)."""
    o = page.override
    people = {c.entry for c in page.entry_covers}
    return (o is not None and o.id in {c.override_id for c in page.entry_covers} and bool(page.entries)
            and all(e.get("status") == "covered" or n in people for n, e in enumerate(page.entries)))


def entries_covered(page: PlannedPage) -> str:
    """'every entry covered: entry 2 by dr.a as Asthma (2019-03-04); entry 1 by lgd, confirmed by dr.b'."""
    people = {c.entry: c for c in page.entry_covers}
    named = [f"entry {n + 1} by {c.actor} as {c.event.display or c.event.code} ({c.event.date or 'undated'})"
             for n, c in sorted(people.items()) if c.event is not None]
    by_lgd = [str(n + 1) for n, e in enumerate(page.entries) if n not in people and e.get("status") == "covered"]
    if by_lgd:
        named.append(f"entr{'y' if len(by_lgd) == 1 else 'ies'} {', '.join(by_lgd)} by lgd (as reconciliation found, below)")
    o = page.override
    confirmed = f", confirmed by {o.confirmed_by}" if o is not None and o.confirmed_by else ", not yet confirmed"
    return "every entry covered: " + "; ".join(named) + confirmed


def _machine(page: PlannedPage) -> tuple[str, str]:
    code, detail = page.reason_code, page.reason_detail
    if not code:  # a run stored before reasons had codes: its own sentence, as it was written then
        return "recorded", page.reason or "no reason was recorded"
    if code == PageReason.blank:
        return "blank", "blank page: nothing was read on it at full sensitivity"
    if code == PageReason.rescan:
        where = f"of {detail['source']}" if detail.get("source") else "of this document"
        return "rescan", f"a rescan of page {detail.get('of', '?')} {where}, which is sent"
    if code == PageReason.all_covered:
        return "covered", (f"every entry on it ({detail.get('entries', '?')}) is in the coded record; the coded "
                           "entries that cover each are listed below")
    return "other", _machine_text(page)


def _machine_text(page: PlannedPage) -> str:
    try:
        return render_reason(page.reason_code, page.reason_detail)
    except (ValueError, KeyError, TypeError):  # a code this lgd does not know: the sentence stored with it
        return page.reason or "no reason was recorded"


def summary(pages: Iterable[PlannedPage]) -> str:
    """'1 blank, 2 with every entry in the coded record, ...': the omitted pages counted by reason."""
    counts = Counter(omission(p).kind for p in pages)
    return ", ".join(f"{counts[k]} {label}" for k, label in KINDS.items() if counts[k])
