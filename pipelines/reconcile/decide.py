"""Page decisions: include unless there is positive evidence that everything on the page is coded.

The rules, in the order they are tried (the first that applies decides):

1. a blank page is omitted;
2. a rescan (duplicate) of a page that is sent is omitted, since its original travels, if it
   reads the same (same entry dates, no fact the original lacks);
3. an envelope front, a page flagged unreadable, a page read with low confidence, a page with
   no recognised entries, or a card with writing outside every entry is included;
4. a page with any entry that is paper-only or uncertain is included;
5. otherwise every entry is covered, and the page is omitted with the evidence for each.

There is deliberately no rule that omits a page for any other reason: DESIGN.md section 2.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from pipelines.records.model import date_text

from .facts import FactReader
from .match import CodedIndex, EntryFinding, PaperEntry, assess
from .settings import Settings

Decision = Literal["include", "omit"]
_STRAY_MIN_LETTERS = 3  # shorter leftovers are specks and stray marks, not writing


@dataclass(frozen=True, slots=True)
class PaperPage:
    """One page of the patient's record with what digitising learned about it."""

    document_id: int
    source: str
    number: int
    kind: str  # card|letter|result|envelope|blank
    blank: bool
    duplicate_of: int | None
    unreadable: bool
    confidence: float
    text: str
    entries: tuple[PaperEntry, ...]


@dataclass(frozen=True, slots=True)
class PageDecision:
    page: PaperPage
    decision: Decision
    reason: str
    findings: tuple[EntryFinding, ...] = ()

    def entries_json(self) -> list[dict[str, object]]:
        return [
            {
                "date": date_text(f.entry.date, f.entry.precision) if f.entry.date else None,
                "text": f.entry.text,
                "status": f.status,
                "why": f.why,
                "confidence": round(f.entry.confidence, 1),
                "evidence": [e.to_json() for e in f.evidence],
            }
            for f in self.findings
        ]


def _stray_words(page: PaperPage, reader: FactReader) -> list[str]:
    """Words of a card's text that belong to no entry (undated writing the entry finder missed)."""
    in_entries = Counter(w.casefold() for e in page.entries for w in e.text.split())
    stray = []
    for word in page.text.split():
        key = word.casefold()
        if in_entries[key] > 0:
            in_entries[key] -= 1
            continue
        bare = key.strip(".,;:()[]'\"")
        if sum(c.isalpha() for c in bare) >= _STRAY_MIN_LETTERS and not any(c.isdigit() for c in bare) \
                and bare not in reader.rules.words and bare not in _CARD_PRINT:
            stray.append(word)
    return stray


# Printed on the continuation card itself.
_CARD_PRINT = frozenset({"date", "clinical", "notes", "surname", "forenames", "nhs", "no"})


def decide_page(page: PaperPage, index: CodedIndex, reader: FactReader, settings: Settings,
                names: tuple[str, ...] = ()) -> PageDecision:
    """The decision for a page that is not a rescan of another (see `decide_record`)."""
    if page.blank:
        return PageDecision(page, "omit", "blank page")
    if page.kind == "envelope":
        return PageDecision(page, "include", "envelope front: demographics and notes on the envelope are sent")
    if page.unreadable:
        return PageDecision(page, "include", "page could not be read reliably")
    if page.confidence < settings.page_min_confidence:
        return PageDecision(page, "include", f"page OCR confidence {page.confidence:.0f} is below "
                            f"{settings.page_min_confidence:.0f}")
    if not page.entries:
        return PageDecision(page, "include", "no dated entries were recognised on the page")
    findings = tuple(assess(e, index, reader, settings, names) for e in page.entries)
    counts = Counter(f.status for f in findings)
    if counts["paper-only"] or counts["uncertain"]:
        parts = [f"{counts[s]} {s}" for s in ("paper-only", "uncertain") if counts[s]]
        return PageDecision(page, "include", " and ".join(parts) + f" of {len(findings)} entries", findings)
    if page.kind == "card":
        stray = _stray_words(page, reader)
        if stray:
            return PageDecision(page, "include", "writing outside any dated entry: " + " ".join(stray[:6]), findings)
    return PageDecision(page, "omit", f"all {len(findings)} entries are in the coded record", findings)


def _same_content(rescan: PaperPage, original: PaperPage, reader: FactReader) -> bool:
    """Whether a page flagged as a rescan reads as the same page: same entry dates, no new fact.

    The duplicate flag comes from image similarity, and two letters on one hospital's template
    can look alike; a page only goes as "the same as one that is sent" if its content agrees.
    """
    if rescan.blank or original.blank:
        return rescan.blank and original.blank
    dates = {e.date for e in rescan.entries if e.date is not None}
    if dates != {e.date for e in original.entries if e.date is not None}:
        return False
    facts = {f.concept for e in rescan.entries for f in reader.read(e.text).facts}
    return facts <= {f.concept for e in original.entries for f in reader.read(e.text).facts}


def decide_record(pages: list[PaperPage], index: CodedIndex, reader: FactReader, settings: Settings,
                  names: tuple[str, ...] = ()) -> list[PageDecision]:
    """Decisions for every page of a patient, in order; rescans follow their original's fate."""
    decided: dict[tuple[int, int], PageDecision] = {}
    for page in pages:
        if page.duplicate_of is None:
            decided[(page.document_id, page.number)] = decide_page(page, index, reader, settings, names)
    for page in pages:
        if page.duplicate_of is None:
            continue
        original = decided.get((page.document_id, page.duplicate_of))
        if original is not None and original.decision == "include" and _same_content(page, original.page, reader):
            decided[(page.document_id, page.number)] = PageDecision(
                page, "omit", f"rescan of page {page.duplicate_of}, which is sent")
        else:  # its original is omitted or unknown: the rescan must earn omission itself
            decided[(page.document_id, page.number)] = decide_page(page, index, reader, settings, names)
    return [decided[(p.document_id, p.number)] for p in pages]
