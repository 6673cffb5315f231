"""The coded electronic record as readable PDF pages for `--with-electronic`, and how much printing that replaces.

Sections follow the order a GP system prints a summary: problems, allergies, medications,
immunisations, then every other entry (consultations, observations, referrals, ...) in date
order. Every event shows its date, its display text (and the clinician's own text when it
differs), its code with the code system, every translation, and its flags, so nothing the
reconciliation relied on is hidden from the receiving clinician.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.records.model import CodedEvent, CodedRecord

from .render import FAMILY, MARGIN, Sheet, day_text, system_name

# An estimate, not a measurement: a GP system's printout of the record (one event per line or
# two, with headers and codes) holds about this many events per printed page. It only sizes the
# "printing from the GP system would take about N pages" figure; change it if a practice knows
# its own system prints more or fewer.
EVENTS_PER_PRINTED_PAGE = 25

SECTION_TITLE = "Coded electronic record"
GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("Problems", frozenset({"problem"})),
    ("Allergies and adverse reactions", frozenset({"allergy"})),
    ("Medications", frozenset({"medication"})),
    ("Immunisations", frozenset({"immunisation"})),
)
OTHER = "Consultations and other entries"
FLAG_WORDS = {
    "degraded": "transfer-degraded code: meaning only in the text",
    "absent_attachment": "attachment not sent",
    "attachment": "attachment",
    "inactive": "inactive / resolved",
    "translation_only": "SNOMED code from a translation",
    "uncoded": "no code",
    "uncertain": "uncertain",
    "group": "heading of a group",
    "authorisation": "course (authorisation)",
    "issue": "issue",
    "discontinued": "discontinued",
    "not_given": "not given",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DATE_WIDTH = 64.0  # points: "15-Mar-2009" at 8 pt with room to spare


@dataclass(frozen=True, slots=True)
class ElectronicSummary:
    """The coded-record section: its events and pages, and the GP-system print it replaces (an estimate)."""

    events: int
    pages: int
    events_per_printed_page: int = EVENTS_PER_PRINTED_PAGE

    @property
    def estimated_gp_print_pages(self) -> int:
        """Pages a GP system's printout of the same events would take, at `events_per_printed_page` (estimate)."""
        return math.ceil(self.events / self.events_per_printed_page) if self.events else 0


def event_date(e: CodedEvent) -> str:
    """The date as precise as the record says: '15-Mar-2009', 'Mar 2009' or '2009'."""
    if e.date is None or e.precision is None:
        return "no date"
    if e.precision == "year":
        return str(e.date.year)
    if e.precision == "month":
        return f"{_MONTHS[e.date.month - 1]} {e.date.year}"
    return day_text(e.date)


def _chronological(events: list[CodedEvent]) -> list[CodedEvent]:
    # Undated events last; ties keep the record's own order (sorted() is stable).
    return sorted(events, key=lambda e: (e.date is None, e.date or 0))


def grouped(record: CodedRecord) -> tuple[tuple[str, tuple[CodedEvent, ...]], ...]:
    """The record's events by section, each in date order; active problems before inactive ones."""
    out: list[tuple[str, tuple[CodedEvent, ...]]] = []
    used: set[str] = set()
    for title, types in GROUPS:
        events = _chronological([e for e in record.events if e.type in types])
        if title == "Problems":
            events = [e for e in events if "inactive" not in e.flags] + [e for e in events if "inactive" in e.flags]
        out.append((title, tuple(events)))
        used |= types
    out.append((OTHER, tuple(_chronological([e for e in record.events if e.type not in used]))))
    return tuple(out)


def _lines(e: CodedEvent, with_type: bool) -> tuple[str, str, str, str]:
    """(entry, clinician's text, codes, notes) for one event; the text only when it differs from the display."""
    entry = e.display or e.text or "(no text)"
    text = e.text.strip() if e.display and e.text and e.text.strip() != e.display.strip() else ""
    codes = "  ·  ".join(
        f"{system_name(c.system)} {c.code}" + (f" ({c.display})" if c.display and c.display != e.display else "")
        for c in e.codings
    )
    notes = [FLAG_WORDS.get(f, f) for f in e.flags]
    if with_type:
        notes.insert(0, e.type)
    return entry, text, codes or "no code", "; ".join(notes)


def _event(sheet: Sheet, e: CodedEvent, with_type: bool) -> None:
    # A block per event rather than a table row: a long narrative must be able to run onto the
    # next page, which a table row cannot, and no clinical text is ever cut short.
    entry, text, codes, notes = _lines(e, with_type)
    if sheet.will_page_break(30):
        sheet.add_page()
    y = sheet.get_y()
    sheet.set_font(FAMILY, "", 8)
    sheet.set_xy(MARGIN, y)
    sheet.cell(DATE_WIDTH, 10.5, event_date(e))
    sheet.set_xy(MARGIN + DATE_WIDTH, y)
    width = sheet.epw - DATE_WIDTH
    sheet.set_font(FAMILY, "B", 8.5)
    sheet.multi_cell(width, 10.5, entry, new_x="LEFT", new_y="NEXT", align="L")
    if text:
        sheet.set_font(FAMILY, "", 8.5)
        sheet.multi_cell(width, 10.5, f"“{text}”", new_x="LEFT", new_y="NEXT", align="L")
    sheet.set_font(FAMILY, "", 7.5)
    sheet.set_text_color(50)
    sheet.multi_cell(width, 9.5, codes + (f"   [{notes}]" if notes else ""), new_x="LEFT", new_y="NEXT", align="L")
    sheet.set_text_color(0)
    sheet.set_x(MARGIN)
    sheet.ln(3)


def render_electronic(sheet: Sheet, record: CodedRecord, *, checked: str) -> tuple[range, ElectronicSummary]:
    """Draw the coded record on new A4 pages of `sheet`; `checked` names the record (format, hash) in the heading.

    Returns the 0-based indexes of its pages in `sheet` and the section's summary.
    """
    first = sheet.begin()
    sheet.heading(SECTION_TITLE)
    sheet.para(
        f"{checked}. This is lgd's rendering of the record as imported, for reading alongside the paper "
        f"pages; it is not a print from the GP clinical system. {len(record.events)} entries."
    )
    if record.warnings:
        sheet.para("Warnings from reading the record:", style="B")
        for warning in record.warnings:
            sheet.para(f"• {warning}", size=8.5)
    for title, events in grouped(record):
        if sheet.will_page_break(60):
            sheet.add_page()
        sheet.heading(f"{title} ({len(events)})", size=11.5)
        if not events:
            sheet.para("None recorded.", size=9)
            continue
        for e in events:
            _event(sheet, e, with_type=title == OTHER)
        sheet.ln(8)
    pages = sheet.pages_from(first)
    return pages, ElectronicSummary(events=len(record.events), pages=len(pages))
