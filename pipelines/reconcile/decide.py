"""Page decisions: include unless there is positive evidence that everything on the page is coded.

The rules, in the order they are tried (the first that applies decides):

1. a blank page is omitted, if reading it at full sensitivity found nothing at all;
2. a rescan of a page that is sent is omitted, if both read with good confidence and their
   texts agree closely (the original may be in another part of the record);
3. an envelope front, a page flagged unreadable, a page read with low confidence, or a page
   with no recognised entries is included;
4. a page with any entry that is paper-only or uncertain, or with writing outside its
   entries that is not accounted for, is included;
5. otherwise every entry is covered, and the page is omitted with the evidence for each.

There is deliberately no rule that omits a page for any other reason: DESIGN.md section 2.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from rapidfuzz import fuzz

from digitise.analyse import phash_distance
from digitise.model import Word
from digitise.results import parted
from pipelines.clinical.coded import date_text
from pipelines.clinical.evidence import CodedIndex, EntryFinding, EntryStatus, PaperEntry, assess
from pipelines.clinical.reading import UNACCOUNTED, Reader, Role
from pipelines.clinical.text import EDGE, fold

from .settings import Settings

Decision = Literal["include", "omit"]
_SPECK = 2  # fewer letters or digits than this outside the entries is a speck or a stroke
# Typed prose, whose ordinary English is the telling rather than the facts; every other kind of page
# (cards, their backs, pages of no clear kind) is read word by word (Reader.read, H84).
PROSE_KINDS = frozenset({"letter", "result"})


class PageReason(StrEnum):
    """Why a page is decided as it is; `render_reason` turns it into a sentence at the edge."""

    blank = "blank"
    rescan = "rescan"
    envelope = "envelope"
    unreadable = "unreadable"
    low_confidence = "low_confidence"
    no_entries = "no_entries"
    entries_not_covered = "entries_not_covered"
    writing_outside_entries = "writing_outside_entries"
    all_covered = "all_covered"


@dataclass(frozen=True, slots=True)
class PaperPage:
    """One page of the patient's record with what digitising learned about it."""

    document_id: int
    source: str
    number: int
    kind: str  # card|letter|result|envelope|blank|unknown
    blank: bool
    duplicate_of: int | None
    unreadable: bool
    confidence: float
    text: str
    entries: tuple[PaperEntry, ...]
    phash: str = ""


@dataclass(frozen=True, slots=True)
class PageDecision:
    page: PaperPage
    decision: Decision
    reason_code: PageReason
    findings: tuple[EntryFinding, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return render_reason(self.reason_code, self.detail)

    def entries_json(self) -> list[dict[str, object]]:
        return [
            {
                "date": date_text(f.entry.date, f.entry.precision) if f.entry.date else None,
                "text": f.entry.text,
                "status": f.status.value,
                "reason": f.reason.value,
                "why": f.why,
                "confidence": round(f.entry.confidence, 1),
                "evidence": [e.to_json() for e in f.evidence],
                "unaccounted": [{"word": w, "role": r} for w, r in f.unaccounted],
            }
            for f in self.findings
        ]


def render_reason(code: PageReason | str, detail: dict[str, Any]) -> str:
    """The sentence for a page reason and its counts, as the CLI, the cover sheet and the JSON show it."""
    code = PageReason(code)
    if code is PageReason.blank:
        return "blank page: nothing was read on it at full sensitivity"
    if code is PageReason.rescan:
        where = f" of {detail['source']}" if detail.get("source") else ""
        return f"rescan of page {detail.get('of')}{where}, which is sent"
    if code is PageReason.envelope:
        return "envelope front: demographics and notes on the envelope are sent"
    if code is PageReason.unreadable:
        return "page could not be read reliably"
    if code is PageReason.low_confidence:
        return f"page OCR confidence {detail.get('confidence', 0):.0f} is below {detail.get('threshold', 0):.0f}"
    if code is PageReason.no_entries:
        return "no dated entries were recognised on the page"
    if code is PageReason.writing_outside_entries:
        return "writing outside any dated entry: " + " ".join(detail.get("words", [])[:6])
    if code is PageReason.entries_not_covered:
        parts = [f"{detail[k]} {k}" for k in ("paper-only", "uncertain") if detail.get(k)]
        return " and ".join(parts) + f" of {detail.get('entries', 0)} entries"
    return f"all {detail.get('entries', 0)} entries are in the coded record"


def outside_entries(page: PaperPage, reader: Reader, names: tuple[str, ...]) -> list[str]:
    """Words of the page that belong to no entry and that nothing accounts for (writing the entry finder missed).

    A date alone is not flagged: card entries keep their date cell apart from their text.
    """
    in_entries = Counter(w.casefold() for e in page.entries for w in e.text.split())
    written = page.text.split()
    if page.kind == "result":  # the slip's reader parted what the engine glued ("Sex:F", "D0B"): so do we
        written = [w.text for w in parted(tuple(Word(t, (0, 0, 1, 1), 0.0, 0) for t in written))]
    left = []
    for word in written:
        key = word.casefold()
        if in_entries[key] > 0:
            in_entries[key] -= 1
        elif sum(c.isalnum() for c in word) >= _SPECK:
            left.append(word)
    if not left:
        return []
    reading = reader.read(" ".join(left), names=names, prose=page.kind in PROSE_KINDS)
    form = reader.lexicon.lists.form_print
    return [reading.tokens[i].raw for i, role in enumerate(reading.roles)
            if (role in UNACCOUNTED or role in (Role.concept, Role.value))
            and reading.tokens[i].word.strip(EDGE) not in form]


def decide_page(page: PaperPage, index: CodedIndex, reader: Reader, settings: Settings,
                names: tuple[str, ...] = ()) -> PageDecision:
    """The decision for a page that is not a rescan of another (see `decide_record`)."""
    if page.blank and not page.text.strip():
        return PageDecision(page, "omit", PageReason.blank)
    if page.kind == "envelope":
        return PageDecision(page, "include", PageReason.envelope)
    if page.unreadable:
        return PageDecision(page, "include", PageReason.unreadable)
    if page.confidence < settings.page_min_confidence:
        return PageDecision(page, "include", PageReason.low_confidence,
                            detail={"confidence": page.confidence, "threshold": settings.page_min_confidence})
    if not page.entries:
        return PageDecision(page, "include", PageReason.no_entries)
    result = page.kind == "result"
    printed = reader.lexicon.lists.result_print if result else frozenset()
    def judge(requests_covered: bool = False, requested: frozenset[str] = frozenset(),
              header: int = 0) -> tuple[EntryFinding, ...]:
        return tuple(assess(e, reader, index, min_confidence=settings.entry_min_confidence, names=names,
                            letter=page.kind == "letter", factless_ok=page.kind != "card", result=result,
                            prose=page.kind in PROSE_KINDS,
                            printed=printed, requests_covered=requests_covered,
                            requested=requested if i < header else frozenset()) for i, e in enumerate(page.entries))

    findings = judge()
    # A slip names the panels and tests it answers ("Request: U&E, LFT", "Request: Ferritin and ESR");
    # their results are its rows, so once one row is covered by a coded result the panel names add
    # nothing of their own, nor does an analyte named above the table whose own row is covered (H43).
    if result and any(f.evidence for f in findings):
        header = next(i for i, f in enumerate(findings) if f.evidence)
        requested = frozenset(e.fact for f in findings if f.status is EntryStatus.covered for e in f.evidence)
        findings = judge(requests_covered=True, requested=requested, header=header)
    counts = Counter(f.status.value for f in findings)
    detail = {"entries": len(findings), "paper-only": counts["paper-only"], "uncertain": counts["uncertain"]}
    if counts["paper-only"] or counts["uncertain"]:
        return PageDecision(page, "include", PageReason.entries_not_covered, findings, detail)
    stray = outside_entries(page, reader, names)
    if stray:
        return PageDecision(page, "include", PageReason.writing_outside_entries, findings,
                            {**detail, "words": stray[:12]})
    return PageDecision(page, "omit", PageReason.all_covered, findings, detail)


def reads_alike(rescan: PaperPage, original: PaperPage, reader: Reader, settings: Settings) -> bool:
    """Whether a page is confirmed as a second scan of `original`, so it may go unsent while the original goes.

    Both must read with good confidence and their texts agree closely; and since one added
    word can be the whole difference ("... Ramipril 5mg od. Gout"), the rescan may name no fact
    and hold no unaccounted word that the original lacks.
    """
    if min(rescan.confidence, original.confidence) < settings.page_min_confidence or rescan.unreadable \
            or original.unreadable:
        return False
    text_a, text_b = " ".join(rescan.text.split()), " ".join(original.text.split())
    if not text_a or fuzz.ratio(text_a, text_b) < settings.rescan_min_similarity:
        return False
    a, b = reader.read(text_a), reader.read(text_b)
    if {m.concept for m in a.mentions} - {m.concept for m in b.mentions}:
        return False
    theirs = {fold(t.word) for t in b.tokens}
    return all(fold(a.tokens[i].word) in theirs for i, _ in a.unaccounted())


def _rescan_of(page: PaperPage, earlier: list[PaperPage], reader: Reader, settings: Settings) -> PaperPage | None:
    """The earlier page `page` is a second scan of: flagged by digitise, or alike in another part of the record."""
    if page.blank:
        return None
    if page.duplicate_of is not None:
        flagged = next((p for p in earlier if p.document_id == page.document_id and p.number == page.duplicate_of), None)
        return flagged if flagged is not None and reads_alike(page, flagged, reader, settings) else None
    for other in earlier:
        if other.document_id != page.document_id and other.phash and page.phash and not other.blank \
                and phash_distance(other.phash, page.phash) <= settings.rescan_max_hash_distance \
                and reads_alike(page, other, reader, settings):
            return other
    return None


def decide_record(pages: list[PaperPage], index: CodedIndex, reader: Reader, settings: Settings,
                  names: tuple[str, ...] = ()) -> list[PageDecision]:
    """Decisions for every page of a patient, in record order; rescans follow their original's fate."""
    decided: list[PageDecision] = []
    for n, page in enumerate(pages):
        original = _rescan_of(page, pages[:n], reader, settings)
        if original is not None:
            first = decided[pages.index(original)]
            if first.decision == "include":
                detail = {"of": original.number}
                if original.document_id != page.document_id:
                    detail["source"] = original.source
                decided.append(PageDecision(page, "omit", PageReason.rescan, detail=detail))
                continue
        decided.append(decide_page(page, index, reader, settings, names))
    return decided
