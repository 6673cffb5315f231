"""The pack's excerpts section (entry granularity): the uncovered entries' images, densely on A4, each with its provenance.

Crops are placed one under another at the paper's own size (shrunk only when wider than the
page's text width or taller than a page), each under a caption giving the entry's date and
status, why it is sent, and the source file, page and entry it was cut from, with the
reminder that the full page is available on request. After the crops, the covered entries
of the same cards, which are not sent, are listed with the coded entries that cover them,
as the omitted-pages index lists whole pages (DESIGN §2: every omission carries its evidence).

A card is only cut down when that saves paper: `worthwhile` sends whole a card whose excerpts
and left-out lines would fill most of a page anyway (a whole card also keeps its context).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from .crops import Crop, CutExcerpts
from .excerpts import EXCERPTS_TITLE, ExcerptPage, WholePage, entry_date
from .render import A4, FAMILY, FOOTER_ROOM, MARGIN, Sheet, fit, system_name

LEFT_OUT_TITLE = "Entries of these cards not sent: in the coded record"
GAP = 8.0  # points between one excerpt and the next caption
CAPTION = (10.5, 9.0)  # line heights of the caption's two lines
LINE = 8.5  # line height of a left-out entry
HEADING = 10.0  # line height of a card's heading in the left-out list
WIDTH = A4[0] - 2 * MARGIN
BOTTOM = A4[1] - MARGIN - FOOTER_ROOM
ROOM = BOTTOM - MARGIN  # the height a page offers
MOST_OF_A_PAGE = 2 / 3  # a card whose excerpts take more of a page than this is sent whole


def caption_lines(crop: Crop) -> tuple[str, str, str]:
    """The caption of an excerpt: date and status (bold), why it is sent, then where it was cut from."""
    e, p = crop.excerpt, crop.page
    first = f"Entry dated {entry_date(e.date)} (written {e.written or 'as shown'}): {e.status}"
    why = e.why or ("not found in the coded record" if e.status == "paper-only" else "could not be matched with certainty")
    where = (f"Source: {p.source}, page {p.page} of {p.pages}, entry {e.number} of {p.entries} on the page. "
             f"Full page available on request (source p.{p.page}).")
    return first, why, where


def _fitted(crop: Crop) -> tuple[float, float]:
    """The crop's size on the page: its paper size, shrunk to the text width and to a page if need be."""
    w, h = crop.size_pt
    scale = min(1.0, WIDTH / w, (ROOM - sum(CAPTION)) / h)
    return w * scale, h * scale


def left_out_line(entry: dict) -> str:
    """A covered entry of a cut-down card and the best coded entry covering it (with how many others do)."""
    text = " ".join(str(entry.get("text") or "(no text read)").split())
    if len(text) > 70:
        text = text[:69] + "…"
    evidence = sorted(entry.get("evidence") or (), key=lambda item: -float(item.get("score") or 0))
    if not evidence:
        return f"• {entry_date(str(entry.get('date') or 'undated'))}: {text}; no coded entry given as evidence"
    best = evidence[0]
    score = best.get("score")
    cover = (f"{best.get('display') or '(no display)'} ({system_name(best.get('system', ''))} {best.get('code', '')}, "
             f"{best.get('date') or 'undated'}" + (f", score {score:.2f}" if isinstance(score, (int, float)) else "") + ")")
    more = f" and {len(evidence) - 1} more" if len(evidence) > 1 else ""
    return f"• {entry_date(str(entry.get('date') or 'undated'))}: {text}; covered by {cover}{more}"


def _left_out_height(sheet: Sheet, page: ExcerptPage) -> float:
    sheet.set_font(FAMILY, "", 7)
    # An estimate (wrapping at words loses a little of each line); the sheet may have no page yet to measure on.
    lines = sum(math.ceil(sheet.get_string_width(left_out_line(e)) * 1.1 / (WIDTH - 8)) for e in page.left_out)
    return HEADING + lines * LINE + 3 if page.left_out else 0.0


def page_share(sheet: Sheet, page: ExcerptPage, crops: Sequence[Crop]) -> float:
    """How much of a page a card's excerpts, captions and left-out lines take."""
    height = sum(_fitted(c)[1] + sum(CAPTION) + GAP for c in crops) + _left_out_height(sheet, page)
    return height / ROOM


def worthwhile(sheet: Sheet, cut: CutExcerpts) -> CutExcerpts:
    """`cut` without the cards whose excerpts would take more than MOST_OF_A_PAGE: those are sent whole."""
    keep, whole = [], list(cut.whole)
    for page in cut.reduced:
        share = page_share(sheet, page, [c for c in cut.crops if c.page.key == page.key])
        if share > MOST_OF_A_PAGE:
            whole.append(WholePage(page.source, page.page, f"its excerpts would fill {share:.0%} of a page, "
                                   "so the card is sent whole"))
        else:
            keep.append(page)
    kept = {p.key for p in keep}
    return CutExcerpts(tuple(keep), tuple(c for c in cut.crops if c.page.key in kept), tuple(whole))


def render_excerpts(sheet: Sheet, cut: CutExcerpts) -> range:
    """Draw the excerpts section; returns its pages' 0-based indexes in `sheet`."""
    first = sheet.begin()
    sheet.heading(EXCERPTS_TITLE)
    sheet.para(
        f"This pack uses entry granularity: {len(cut.reduced)} continuation card(s) whose other entries are all in "
        "the coded record are sent as image excerpts of the entries that are not (paper-only) or could not be "
        "matched with certainty (uncertain). Each excerpt is the scanned image itself, cut with a margin, and has "
        "no searchable text layer. The full page of each is kept in the sending practice's digitised archive and "
        "is available on request, quoting the source file and page.",
        size=8.5,
    )
    for crop in cut.crops:
        w, h = _fitted(crop)
        if sheet.get_y() + sum(CAPTION) + h > BOTTOM:
            sheet.add_page()
        _caption(sheet, crop)
        y = sheet.get_y()
        e = crop.excerpt
        sheet.image(io.BytesIO(crop.jpeg), x=MARGIN, y=y, w=w, h=h,
                    alt_text=f"Excerpt of {crop.page.source} page {crop.page.page}: entry dated {e.date}")
        sheet.set_draw_color(120)
        sheet.set_line_width(0.5)
        sheet.rect(MARGIN, y, w, h)
        sheet.set_xy(MARGIN, y + h + GAP)
    _left_out(sheet, cut)
    return sheet.pages_from(first)


def _caption(sheet: Sheet, crop: Crop) -> None:
    first, why, where = caption_lines(crop)
    x, y = MARGIN, sheet.get_y()
    sheet.set_font(FAMILY, "B", 8.5)  # short: a date, a status
    sheet.set_xy(x, y)
    lead = sheet.get_string_width(first) + 4
    sheet.cell(lead, CAPTION[0], first)
    line = fit(sheet, f"· {why}", max(WIDTH - lead, 40), 7.5)
    sheet.cell(max(WIDTH - lead, 40), CAPTION[0], line.text)
    line = fit(sheet, where, WIDTH, 7)
    sheet.set_xy(x, y + CAPTION[0])
    sheet.cell(WIDTH, CAPTION[1], line.text)
    sheet.set_xy(x, y + sum(CAPTION))


def _left_out(sheet: Sheet, cut: CutExcerpts) -> None:
    pages = [p for p in cut.reduced if p.left_out]
    if not pages:
        return
    if sheet.get_y() + 60 > BOTTOM:
        sheet.add_page()
    sheet.ln(2)
    sheet.heading(LEFT_OUT_TITLE, 10.5)
    sheet.para("The other entries of the cards above are in the coded record sent electronically and are not "
               "sent. Each is listed with the coded entry that best covers it (code, date, match score).", size=8)
    for page in pages:
        if sheet.get_y() + HEADING + LINE > BOTTOM:
            sheet.add_page()
        line = fit(sheet, f"{page.source}, page {page.page}: {len(page.left_out)} of {page.entries} entries not sent",
                   WIDTH * 0.9, 8)  # measured in the regular face; the bold one is up to a tenth wider
        sheet.set_font(FAMILY, "B", line.size)
        sheet.set_x(MARGIN)
        sheet.cell(WIDTH, HEADING, line.text, new_x="LMARGIN", new_y="NEXT")
        for entry in page.left_out:
            sheet.set_x(MARGIN + 8)
            sheet.set_font(FAMILY, "", 7)
            sheet.multi_cell(WIDTH - 8, LINE, left_out_line(entry), align="L", new_x="LMARGIN", new_y="NEXT")
        sheet.ln(3)
