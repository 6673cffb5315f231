"""Entry granularity: which included pages may be cut down to their uncovered entries, and which go whole.

`lgd pack --granularity entry` sends a continuation card's paper-only and uncertain entries
as image excerpts instead of the whole card, when reconciliation says exactly which entries
are not coded and nothing else on the card could be lost. The rule is an allow-list, as the
page decision is (DESIGN §2): a page is a candidate only when every test below passes, and
any other included page goes in whole, with the reason recorded.

A page is a candidate when:

1. it is a continuation card (letters, results, envelopes carry layout and context an excerpt loses);
2. the run holds a machine decision for it, `include`, and no clinician override is in force;
3. the decision's reason is exactly "N paper-only [and M uncertain] of K entries", and its
   per-entry evidence has K entries whose statuses give those counts (not an envelope, an
   unreadable or low-confidence page, a page without entries);
4. every entry is dated, and the catalogue's entries for the page are the ones the run judged
   (same number, order, date and text), each with a box inside the page;
5. every word of each uncovered entry was read inside that entry's box;
6. no OCR word lies outside every entry's box, except the card's printed headings and the
   patient's own name (writing the entry finder did not take as an entry must travel; the page
   decision looks for such writing only once every entry is covered, so it is looked for here).

`crops.py` then checks the page image itself (ink that OCR did not read, page geometry) and may
still send a candidate whole. Every entry whose status is not `covered` becomes an excerpt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from index.catalogue import Catalogue
from index.rows import Box, EntryRow, PageRow
from pipelines.records.model import date_text, parse_date_text

from .plan import PackPlan, PlannedPage
from .render import day_text

GRANULARITIES = ("page", "entry")
EXCERPTS_TITLE = "Paper-only entries (excerpts)"
NOT_SHORTER = "cutting the cards down would not make this pack shorter, so every page is sent whole"
SENT = ("paper-only", "uncertain")  # every status but covered is sent
STATUSES = ("covered", *SENT)
# Printed on the continuation card itself (decide.py has the same list for the page decision).
CARD_PRINT = ("date", "clinical", "notes", "surname", "forenames", "nhs", "no")
_SPECK = 2  # a word with fewer letters and digits than this is a speck or a stroke of a rule


@dataclass(frozen=True, slots=True)
class EntryExcerpt:
    """One entry of a candidate page that is sent as an excerpt."""

    number: int  # 1-based position of the entry on its page, in reading order
    date: str  # as reconciliation reports it: ISO text cut to its precision
    written: str  # the date as written on the paper
    status: str  # paper-only | uncertain
    why: str
    text: str  # the words read in the entry (for the cover; the excerpt itself is the image)
    box: Box  # upright page pixels at the page's dpi


@dataclass(frozen=True, slots=True)
class ExcerptPage:
    """An included card that may be sent as excerpts of its uncovered entries."""

    document_id: int
    source: str
    page: int
    pages: int  # pages in the source document
    pdfa_path: str
    width: int  # the upright page image, pixels
    height: int
    dpi: int
    entries: int  # entries on the page
    excerpts: tuple[EntryExcerpt, ...]
    left_out: tuple[dict[str, Any], ...]  # the covered entries, with their evidence, as the run gave them
    words: tuple[Box, ...]  # the OCR words accounted for (in an entry, or card print): ink that was read

    @property
    def key(self) -> tuple[int, int]:
        return (self.document_id, self.page)


@dataclass(frozen=True, slots=True)
class WholePage:
    """An included page sent whole under entry granularity, and why."""

    source: str
    page: int
    reason: str


@dataclass(frozen=True, slots=True)
class EntrySelection:
    """The outcome of the allow-list for one plan: the candidates and every other included page with its reason."""

    candidates: tuple[ExcerptPage, ...]
    whole: tuple[WholePage, ...]


def entry_date(iso: str) -> str:
    """An entry date as reconciliation gives it (ISO text cut to its precision) in the NHS display form."""
    try:
        day, precision = parse_date_text(iso)
    except ValueError:  # not a date as reconciliation writes them: show it as it is
        return iso
    if precision == "day":
        return day_text(day)
    return day_text(day)[3:] if precision == "month" else iso  # 'Mar-2009'; a year stays '2009'


def _reason_counts(page: PlannedPage) -> tuple[int, int, int] | None:
    """(paper-only, uncertain, entries) when the page is sent for its entries alone, from the run's reason data."""
    if page.reason_code != "entries_not_covered":
        return None  # sent for another reason, or a run stored before reasons were data: the card goes whole
    d = page.reason_detail
    return int(d.get("paper-only", 0)), int(d.get("uncertain", 0)), int(d.get("entries", 0))


def _word_key(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _printed(key: str, names: Sequence[str]) -> bool:
    """A card heading or the patient's name, allowing one OCR slip in words of four letters or more."""
    for word in (*CARD_PRINT, *names):
        if key == word or (len(word) >= 4 and Levenshtein.distance(key, word, score_cutoff=1) <= 1):
            return True
    return False


def _inside(word_box: Box, box: Box) -> bool:
    x0, y0, x1, y1 = word_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _words_within(entry: EntryRow, row: PageRow) -> bool:
    """Whether every word of the entry's text was read inside the entry's box (so the excerpt shows it)."""
    need = Counter(k for k in map(_word_key, entry.text.split()) if k)
    have = Counter(_word_key(w[0]) for w in row.words if _inside(tuple(w[1:5]), entry.box))
    return not need - have


def _check(page: PlannedPage, row: PageRow | None, entries: Sequence[EntryRow], names: Sequence[str],
           pages: int) -> ExcerptPage | str:
    """The candidate for `page`, or the reason it goes whole."""
    if page.kind != "card":
        return f"not a continuation card ({page.kind or 'kind not recorded'})"
    if page.machine is None:
        return "not in the reconciliation run"
    if page.override is not None and page.override.decision is not None:
        return "a clinician override is in force"
    if page.machine != "include":
        return "the machine decision is not include"
    counts = _reason_counts(page)
    if counts is None:
        return f"sent for another reason: {page.reason}"
    statuses = [e.get("status") for e in page.entries]
    if len(statuses) != counts[2] or any(s not in STATUSES for s in statuses) \
            or (statuses.count("paper-only"), statuses.count("uncertain")) != counts[:2]:
        return "the run's evidence does not match its reason"
    if any(not e.get("date") for e in page.entries):
        return "an entry has no date"
    if row is None or row.blank or row.unreadable or row.width <= 0 or row.height <= 0 or row.dpi <= 0:
        return "the page's image facts are missing"
    if len(entries) != len(page.entries):
        return "the catalogue's entries are not the ones the run judged"
    for judged, found in zip(page.entries, entries):
        if date_text(found.date, found.precision) != judged.get("date") or found.text != judged.get("text"):
            return "the catalogue's entries are not the ones the run judged"
        x0, y0, x1, y1 = found.box
        if not (0 <= x0 < x1 <= row.width and 0 <= y0 < y1 <= row.height):
            return "an entry has no box on the page"
    boxes = tuple(e.box for e in entries)
    read, stray = [], []  # read: words accounted for, inside an entry or the card's own print
    for text, x0, y0, x1, y1, *_ in row.words:
        key = _word_key(text)
        if any(_inside((x0, y0, x1, y1), b) for b in boxes) or (key and _printed(key, names)):
            read.append((x0, y0, x1, y1))
        elif len(key) >= _SPECK:
            stray.append(text)
        # a shorter "word" outside the entries (a stroke, a tick, one letter) is left to the ink check
    if stray:
        return "writing outside its dated entries: " + " ".join(stray[:6])
    for judged, found in zip(page.entries, entries):
        if judged["status"] != "covered" and not _words_within(found, row):
            return "the words of an uncovered entry are not all inside its box"
    excerpts = tuple(
        EntryExcerpt(i, judged["date"], found.date_text, judged["status"], str(judged.get("why") or ""),
                     found.text, found.box)
        for i, (judged, found) in enumerate(zip(page.entries, entries), start=1) if judged["status"] != "covered"
    )
    return ExcerptPage(
        page.document_id, page.source, page.page, pages, page.pdfa_path, row.width, row.height, row.dpi,
        len(entries), excerpts, tuple(j for j in page.entries if j["status"] == "covered"), tuple(read),
    )


def choose_excerpts(plan: PackPlan, rows: Mapping[tuple[int, int], PageRow],
                    entries: Mapping[tuple[int, int], Sequence[EntryRow]]) -> EntrySelection:
    """Pure: apply the allow-list (module docstring) to every included page of `plan`.

    Args:
        plan: the pack plan; only its included pages are considered.
        rows: the page rows by (document id, page number).
        entries: the catalogue's entries by (document id, page number), in reading order.
    """
    names = tuple(_word_key(w) for w in (plan.name or "").replace("-", " ").split() if len(_word_key(w)) >= 2)
    page_counts = {d.document_id: d.page_count for d in plan.documents}
    candidates, whole = [], []
    for page in plan.included:
        key = (page.document_id, page.page)
        found = _check(page, rows.get(key), entries.get(key, ()), names, page_counts.get(page.document_id, 0))
        if isinstance(found, str):
            whole.append(WholePage(page.source, page.page, found))
        else:
            candidates.append(found)
    return EntrySelection(tuple(candidates), tuple(whole))


def select_excerpts(catalogue: Catalogue, plan: PackPlan) -> EntrySelection:
    """Read the page rows and entries of the plan's documents from the catalogue and apply `choose_excerpts`."""
    rows: dict[tuple[int, int], PageRow] = {}
    entries: dict[tuple[int, int], list[EntryRow]] = {}
    for doc in plan.documents:
        for row in catalogue.pages(doc.document_id):
            rows[(doc.document_id, row.number)] = row
        for entry in catalogue.entries(document_id=doc.document_id):
            entries.setdefault((doc.document_id, entry.page), []).append(entry)
    return choose_excerpts(plan, rows, entries)


@dataclass(frozen=True, slots=True)
class Excerpted:
    """What entry granularity did to a built pack: `PackDocument.excerpts`, and "excerpts" in `lgd pack --json`."""

    reduced: tuple[ExcerptPage, ...]  # the cards sent as excerpts, in pack order
    whole: tuple[WholePage, ...]  # every other included page, sent whole, with why
    crops: int
    pages: int  # pages of the excerpts section (blanks not counted)

    def to_json(self) -> dict[str, Any]:
        return {
            "pages_reduced": len(self.reduced),
            "excerpt_pages": self.pages,
            "crops": self.crops,
            "reduced": [
                {"source": p.source, "page": p.page, "entries": p.entries, "left_out": len(p.left_out),
                 "excerpts": [{"entry": e.number, "date": e.date, "status": e.status} for e in p.excerpts]}
                for p in self.reduced
            ],
            "whole": [{"source": w.source, "page": w.page, "reason": w.reason} for w in self.whole],
        }
