"""The pack's cover sheet and its index of omitted pages, drawn from the plan (never from anything else).

The cover says who the record is for, what it was checked against, and how many pages were
kept and left out; the index lists every omitted page with the reason and the coded entries
that cover it, so the receiving clinician can audit each omission (DESIGN §2).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .electronic import EVENTS_PER_PRINTED_PAGE, ElectronicSummary
from .excerpts import NOT_SHORTER, entry_date
from .plan import PackPlan, PlannedPage
from .printing import WholeRecord
from .reasons import omission, summary
from .render import MARGIN, Sheet, day_text, nhs_spaced, system_name

if TYPE_CHECKING:  # only its type: the image work behind it is needed by entry granularity only
    from .crops import CutExcerpts

COVER_TITLE = "Cover sheet"
INDEX_TITLE = "Pages omitted from this pack"


@dataclass(frozen=True, slots=True)
class DocumentRange:
    """Where a source document's included pages fall in the pack's record numbering (1-based, inclusive)."""

    source: str
    pages: int
    included: int
    first: int | None  # record page number of its first included page, None when none is included
    last: int | None
    excerpted: int = 0  # included pages sent as excerpts (entry granularity), not numbered


def record_ranges(plan: PackPlan, reduced: frozenset[tuple[int, int]] = frozenset()) -> tuple[DocumentRange, ...]:
    """Each source document's share of the record pages, numbered as the stamps number them.

    `reduced` holds the (document id, page) of pages sent as excerpts: included, but not record pages.
    """
    out: list[DocumentRange] = []
    number = 0
    for doc in plan.documents:
        pages = plan.document_pages(doc.document_id, included=True)
        excerpted = sum((p.document_id, p.page) in reduced for p in pages)
        whole = len(pages) - excerpted
        first = number + 1 if whole else None
        number += whole
        total = len(plan.document_pages(doc.document_id))
        out.append(DocumentRange(doc.source, total, len(pages), first, number if whole else None, excerpted))
    return tuple(out)


def render_cover(
    sheet: Sheet,
    plan: PackPlan,
    *,
    practice: str | None,
    when: dt.date,
    electronic: ElectronicSummary | None,
    excerpts: CutExcerpts | None = None,
    whole: WholeRecord | None = None,
) -> range:
    """Draw the cover sheet (patient, sender, date, the coded record checked against, counts, warnings).

    With `excerpts` (entry granularity) it also says so, and lists each card sent as excerpts
    with the entries excerpted. Returns the 0-based indexes of its pages in `sheet`.
    """
    reduced = excerpts.keys if excerpts is not None else frozenset()
    whole_pages = len(plan.included) - len(reduced)
    first = sheet.begin()
    sheet.heading("Lloyd George record: transfer pack" if whole is None else "Lloyd George record: printed in full", 17)
    if whole is not None:
        sheet.para(_whole_text(whole), size=9.5)
    else:
        sheet.para(
            "The paper-only part of this patient's digitised Lloyd George record. Each page was compared with "
            "the coded electronic record; a page is left out only when it is blank, when it is a rescan of a page "
            "that is sent, when every entry on it was found in the coded record, or when a named clinician "
            "decided so. Every omitted page is listed in the index that follows, with its reason and the coded "
            "entries that cover it.",
            size=9.5,
        )
    sheet.ln(4)
    sheet.pairs([
        ("Patient", plan.name or "not recorded"),
        ("NHS number", nhs_spaced(plan.nhs_number)),
        ("Date of birth", day_text(plan.born)),
        ("Sending practice", practice or "not given"),
        ("Pack date", day_text(when)),
    ], size=11)
    sheet.ln(6)
    sheet.heading("Checked against", 11.5)
    sheet.pairs([
        ("Coded record format", plan.coded_format),
        ("Coded record SHA-256", plan.coded_sha256),
        ("Coded entries", str(plan.coded_events)),
        ("Reconciliation", f"run {plan.run_id} of {day_text(plan.run_created.date())}"),
        *_thresholds(plan.run_settings),
    ], label_width=120, size=8.5)  # narrow labels: the 64-digit hash must fit on one line
    sheet.ln(6)
    sheet.heading("Pages", 11.5)
    counts = [
        ("Pages in the full digitised record", f"{plan.full_record_pages} (in {len(plan.documents)} document(s))"),
        ("Pages included in this pack", str(len(plan.included)) if not reduced else
         f"{len(plan.included)} ({whole_pages} whole, {len(reduced)} as excerpts of their uncovered entries)"),
        ("Pages omitted", f"{len(plan.omitted)}: {summary(plan.omitted)} (listed in the index that follows)"
         if plan.omitted else "0"),
        ("Clinician overrides applied", str(len(plan.overridden))),
    ]
    if plan.undecided:
        counts.append(("Pages with no decision", f"{len(plan.undecided)} (included)"))
    if excerpts is not None:
        counts.append(("Granularity", _granularity_row(excerpts)))
    sheet.pairs(counts, label_width=200, size=10)
    _warnings(sheet, plan)
    sheet.ln(6)
    sheet.heading("Contents", 11.5)
    sheet.para(
        "Record pages keep their original order. A strip added at the foot of each one gives the patient, "
        f"'page i of {whole_pages}' (record pages only: this cover{'' if whole else ', the index'}"
        f"{', the excerpts' if reduced else ''} "
        "and the coded record are numbered separately in their own footers), and the source file and page it "
        "was scanned as.",
        size=8.5,
    )
    for r in record_ranges(plan, reduced):
        where = ("no pages included" if r.included == 0 else "no whole pages" if r.first is None else
                 f"record page {r.first}" if r.first == r.last else f"record pages {r.first}–{r.last}")
        shown = f" ({r.excerpted} as excerpts)" if r.excerpted else ""
        sheet.para(f"• {r.source}: {r.included} of {r.pages} page(s) included{shown}; {where}", size=8.5)
    if reduced:
        sheet.para("• Paper-only entries (excerpts), after the record pages: the excerpts of the cards listed below, "
                   "then the entries of those cards left out, with the coded entries that cover them.", size=8.5)
    if electronic is not None:
        sheet.para(
            f"• Coded electronic record, after the record pages: {electronic.pages} page(s) for {electronic.events} "
            f"entries; printing the same from a GP system would take about {electronic.estimated_gp_print_pages} "
            f"page(s) (an estimate at {EVENTS_PER_PRINTED_PAGE} entries per printed page).",
            size=8.5,
        )
    if excerpts is not None and reduced:
        _granularity(sheet, excerpts)
    return sheet.pages_from(first)


def _whole_text(whole: WholeRecord) -> str:
    return (
        "Every page of this patient's digitised Lloyd George record, in original order: nothing is left out. "
        f"Comparing the record with the coded electronic record found {whole.omittable} page(s) that could have been "
        f"left out, but a pack of only the other pages (with its cover, index of omitted pages and blank backs) "
        f"would take {whole.pack_sheets} sheet(s) of paper double-sided, and printing every page takes no more. "
        "The record pages start on the back of this sheet."
    )


def _granularity_row(excerpts: CutExcerpts) -> str:
    if excerpts.reduced:
        return "entry: see 'Entry granularity' below"
    if any(w.reason == NOT_SHORTER for w in excerpts.whole):
        return "entry, not applied: cutting cards down to excerpts would not shorten this pack"
    return "entry, not applied: no card met the conditions for excerpts"


def _granularity(sheet: Sheet, excerpts: CutExcerpts) -> None:
    sheet.ln(6)
    sheet.heading("Entry granularity", 11.5)
    sheet.para(
        "This pack uses entry granularity. A continuation card is sent as image excerpts of its entries that are "
        "not in the coded record (paper-only) or could not be matched with certainty (uncertain) only when "
        "reconciliation judged every entry on it, every entry is dated, and nothing was found on the card outside "
        "its entries; every other included page is sent whole. The full page of each card below is kept in the "
        "sending practice's digitised archive and is available on request.",
        size=8.5,
    )
    for page in excerpts.reduced:
        listed = "; ".join(f"entry {e.number}, {entry_date(e.date)} ({e.status})" for e in page.excerpts)
        sheet.para(f"• {page.source}, page {page.page}: excerpted {listed}. {len(page.left_out)} of "
                   f"{page.entries} entries left out as in the coded record.", size=8.5)


def _thresholds(settings: dict) -> list[tuple[str, str]]:
    """The thresholds and rules the run decided under, as the cover prints them."""
    if not settings:
        return []
    rows = [("Thresholds", f"OCR confidence at least {settings.get('entry_min_confidence', '?')} per entry and "
                           f"{settings.get('page_min_confidence', '?')} per page; rescans at least "
                           f"{settings.get('rescan_min_similarity', '?')}% alike")]
    if settings.get("fingerprint"):
        rows.append(("Rules fingerprint", f"version {settings.get('rules_version', '?')}, {settings['fingerprint']}"))
    return rows


def _warnings(sheet: Sheet, plan: PackPlan) -> None:
    lines: list[str] = []
    if plan.failed_sources:
        lines.append(
            f"{len(plan.failed_sources)} scanned input(s) of this patient could not be digitised and are NOT in this "
            f"pack: {', '.join(plan.failed_sources)}. Send the paper originals, or digitise them again and rebuild."
        )
    if plan.missing_parts:
        lines.append(
            f"This record is INCOMPLETE: {'; '.join(plan.missing_parts)} were never digitised and are NOT in this "
            "pack. Send those parts on paper, or digitise them and rebuild the pack."
        )
    if plan.undecided:
        pages = ", ".join(f"{p.source} p.{p.page}" for p in plan.undecided[:12])
        more = "" if len(plan.undecided) <= 12 else f" and {len(plan.undecided) - 12} more"
        lines.append(
            f"{len(plan.undecided)} page(s) were digitised after the reconciliation run and were not checked; "
            f"they are included: {pages}{more}."
        )
    if not lines:
        return
    sheet.ln(4)
    sheet.set_text_color(150, 0, 0)
    sheet.heading("Attention", 11.5)
    for line in lines:
        sheet.para(line, size=9.5, style="B")
    sheet.set_text_color(0)


def render_omitted_index(sheet: Sheet, plan: PackPlan) -> range:
    """Draw the index of omitted pages (with evidence), then the clinician overrides in force; returns its pages."""
    first = sheet.begin()
    sheet.heading(INDEX_TITLE)
    if not plan.omitted:
        sheet.para("No page was omitted: this pack holds every page of the digitised record.")
    else:
        sheet.para(
            f"{len(plan.omitted)} page(s) were left out: {summary(plan.omitted)}. Each is listed below with its "
            "reason. They remain in the sending practice's digitised archive and can be requested.",
            size=9,
        )
    for page in plan.omitted:
        _omitted_page(sheet, page)
    if plan.overridden:
        if sheet.will_page_break(80):
            sheet.add_page()
        sheet.ln(6)
        sheet.heading("Clinician overrides in force", 11.5)
        for p in plan.overridden:
            o = p.override
            sheet.para(
                f"• {p.source}, page {p.page}: {o.decision} (machine decision: {p.machine or 'none'}), "
                f"by {o.actor} on {day_text(o.at.date())}"
                + (f", confirmed by {o.confirmed_by}" if o.confirmed_by else "") + f": {o.reason}",
                size=8.5,
            )
    return sheet.pages_from(first)


def _omitted_page(sheet: Sheet, page: PlannedPage) -> None:
    if sheet.will_page_break(60):
        sheet.add_page()
    sheet.ln(4)
    sheet.heading(f"{page.source}, page {page.page}", 10.5)
    why = omission(page)
    sheet.para(f"Reason: {why.text}", size=8.5, style="B" if why.kind in ("clinician", "entries_covered") else "")
    if not page.entries:
        sheet.para("No dated entries were read on this page.", size=8.5)
    people = {c.entry: c for c in page.entry_covers if c.event is not None}
    for n, entry in enumerate(page.entries):
        _entry(sheet, entry)
        if n in people:
            c = people[n]
            sheet.set_x(MARGIN + 22)
            sheet.para(f"covered by {c.actor}'s choice: {c.event.display or '(no display)'} — "
                       f"{system_name(c.event.system)} {c.event.code} — dated {c.event.date or 'undated'}: {c.reason}",
                       size=8)


def _entry(sheet: Sheet, entry: dict[str, Any]) -> None:
    when = entry.get("date") or "undated"
    status = f" [{entry['status']}]" if entry.get("status") else ""
    sheet.set_x(MARGIN + 10)
    sheet.para(f"Paper entry {when}{status}: {entry.get('text') or '(no text read)'}", size=8.5)
    if entry.get("why"):
        sheet.set_x(MARGIN + 22)
        sheet.para(str(entry["why"]), size=8)
    evidence = entry.get("evidence") or ()
    if not evidence:
        sheet.set_x(MARGIN + 22)
        sheet.para("no coded entry given as evidence", size=8)
    for item in evidence:
        sheet.set_x(MARGIN + 22)
        sheet.para("covered by: " + evidence_line(item), size=8)


def evidence_line(item: dict[str, Any]) -> str:
    """One coded entry that covers a paper entry: what, which code, when, how it matched and how well."""
    parts = [item.get("display") or "(no display)", f"{system_name(item.get('system', ''))} {item.get('code', '')}".strip()]
    if item.get("written"):
        fact = f" = {item['fact']}" if item.get("fact") and item["fact"] != item["written"] else ""
        parts.append(f"paper '{item['written']}'{fact}")
    if item.get("date"):
        precision = f" ({item['date_precision']})" if item.get("date_precision") else ""
        match = f", date match: {item['date_match']}" if item.get("date_match") else ""
        parts.append(f"dated {item['date']}{precision}{match}")
    if item.get("how"):
        parts.append(f"matched by {item['how']}")
    if item.get("score") is not None:
        score = item["score"]
        parts.append(f"score {score:.2f}" if isinstance(score, (int, float)) else f"score {score}")
    return " — ".join(parts)
