"""Marks added to the pack's pages once its layout is known: record-page stamps, section footers and blank versos.

A record page's own content stream (image and OCR text layer) is kept byte for byte: the page is
made taller by `BAND` points at its displayed foot, the old content is wrapped in q/Q, and one
Form XObject holding the stamp is drawn in the new strip. Nothing is rasterised, so the text layer
survives and the stamp never covers the record. Generated pages get their footer ('Cover sheet,
page 1 of 2') the same way but inside their own bottom margin, since only the finished layout
knows each section's length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pikepdf
from fpdf import FPDF

from .render import FAMILY, MARGIN, day_text, fit, nhs_spaced

BAND = 22.0  # points (7.8 mm) added below a record page: two lines of 6-7 pt text and a rule
FOOTER = 30.0  # points of a generated page's bottom margin that its footer is drawn in
PAD = 4.0
BLANK_TEXT = "This page is intentionally blank."
Matrix = tuple[float, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class RecordStamp:
    """A record page's strip: patient and 'page i of n' on the first line, where it was scanned from below."""

    width: float
    patient: str
    counter: str
    provenance: str


@dataclass(frozen=True, slots=True)
class Footer:
    """A generated page's footer line: the patient and the section's own 'page i of n'."""

    width: float
    text: str


@dataclass(frozen=True, slots=True)
class Blank:
    """A blank verso of the given size; it says it is blank on purpose, and whose record it belongs to.

    A reader who finds an empty page cannot tell a deliberate blank from a lost page.
    """

    width: float
    height: float
    patient: str


Mark = RecordStamp | Footer | Blank


def patient_text(name: str | None, nhs_number: str, born: dt.date | None) -> str:
    return f"{name or 'Name not recorded'} · NHS {nhs_spaced(nhs_number)} · born {day_text(born)}"


def record_stamp(width: float, patient: str, number: int, total: int, source: str, page: int, pages: int) -> RecordStamp:
    return RecordStamp(width, patient, f"page {number} of {total}", f"source: {source}, page {page} of {pages}")


def render_marks(doc: FPDF, marks: Sequence[Mark]) -> range:
    """Append one page per mark to `doc` (BAND-high strips, FOOTER-high footers, full-size blanks).

    Drawn into the pack's one generated document (see render.Sheet) so the fonts are loaded
    and embedded once. Returns the 0-based indexes of the pages added, in the order of `marks`.
    """
    first = doc.page
    doc.set_auto_page_break(False)
    for mark in marks:
        doc.set_text_color(0)
        if isinstance(mark, RecordStamp):
            _record(doc, mark)
        elif isinstance(mark, Footer):
            doc.add_page(format=(mark.width, FOOTER))
            line = fit(doc, mark.text, mark.width - 2 * MARGIN, 7)
            doc.set_text_color(60)
            doc.set_xy(MARGIN, 6)  # 15-24 pt above the page's foot, inside the Sheet's bottom margin
            doc.cell(mark.width - 2 * MARGIN, 9, line.text, align="C")
        else:
            doc.add_page(format=(mark.width, mark.height))
            doc.set_font(FAMILY, "", 8)
            doc.set_xy(0, mark.height / 2 - 6)
            doc.cell(mark.width, 12, BLANK_TEXT, align="C")
            line = fit(doc, mark.patient, mark.width - 2 * PAD, 6)
            doc.set_xy(0, mark.height - 24)
            doc.cell(mark.width, 8, line.text, align="C")
    return range(first, doc.page)


def _record(doc: FPDF, mark: RecordStamp) -> None:
    width = mark.width
    doc.add_page(format=(width, BAND))
    doc.set_draw_color(150)
    doc.set_line_width(0.4)
    doc.line(PAD, BAND - 1.5, width - PAD, BAND - 1.5)
    doc.set_font(FAMILY, "B", 7)
    counter_width = doc.get_string_width(mark.counter) + 2
    doc.set_xy(width - PAD - counter_width, 3)
    doc.cell(counter_width, 8, mark.counter, align="R")
    room = width - 2 * PAD - counter_width - 6
    line = fit(doc, mark.patient, room, 7)
    doc.set_xy(PAD, 3)
    doc.cell(room, 8, line.text)
    line = fit(doc, mark.provenance, width - 2 * PAD, 6.5)
    doc.set_xy(PAD, 11.5)
    doc.cell(width - 2 * PAD, 8, line.text)


def display_matrix(mediabox: Sequence[float], rotate: int) -> tuple[Matrix, float]:
    """The matrix from display space (origin at the foot-left of the page as shown) to user space, and the shown width.

    /Rotate turns the page clockwise when shown, so the foot of the shown page is a different
    edge of the user-space box for each rotation.
    """
    x0, y0, x1, y1 = (float(v) for v in mediabox)
    w, h = x1 - x0, y1 - y0
    rotate %= 360
    if rotate == 0:
        return (1, 0, 0, 1, x0, y0), w
    if rotate == 90:
        return (0, 1, -1, 0, x1, y0), h
    if rotate == 180:
        return (-1, 0, 0, -1, x1, y1), w
    if rotate == 270:
        return (0, -1, 1, 0, x0, y1), h
    raise ValueError(f"/Rotate must be a multiple of 90, got {rotate}")


def shown_width(page: pikepdf.Page) -> float:
    """The width of the page as a viewer shows it (after /Rotate)."""
    return display_matrix(page.mediabox, int(page.obj.get("/Rotate", 0)))[1]


def shown_size(page: pikepdf.Page) -> tuple[float, float]:
    """(width, height) of the page as a viewer shows it (after /Rotate)."""
    x0, y0, x1, y1 = (float(v) for v in page.mediabox)
    w, h = x1 - x0, y1 - y0
    return (h, w) if int(page.obj.get("/Rotate", 0)) % 180 == 90 else (w, h)


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def _grown(box: Sequence[float], corners: list[tuple[float, float]]) -> pikepdf.Array:
    x0, y0, x1, y1 = (float(v) for v in box)
    xs = [x0, x1, *(x for x, _ in corners)]
    ys = [y0, y1, *(y for _, y in corners)]
    return pikepdf.Array([min(xs), min(ys), max(xs), max(ys)])


def apply_mark(pdf: pikepdf.Pdf, page: pikepdf.Page, mark: pikepdf.Page, *, grow: bool) -> None:
    """Draw `mark` (a page of `render_marks`) along the shown foot of `page`.

    With `grow`, the page is first made taller by the mark's height so the mark sits below the
    old content (record pages); without, it is drawn inside the page's bottom margin (footers).
    The page's resources are copied before the mark is added: pages copied from one archive
    file may share one /Resources dictionary, and each mark must belong to its own page only.
    """
    matrix, width = display_matrix(page.mediabox, int(page.obj.get("/Rotate", 0)))
    height = float(mark.mediabox[3]) - float(mark.mediabox[1])
    base = -height if grow else 0.0
    if grow:
        band = [_apply(matrix, x, y) for x, y in ((0, base), (width, base), (0, 0), (width, 0))]
        page.obj.MediaBox = _grown(page.mediabox, band)
        if "/CropBox" in page.obj:
            page.obj.CropBox = _grown(page.obj.CropBox, band)
    form = pdf.copy_foreign(mark.as_form_xobject())
    resources = pikepdf.Dictionary(dict(page.obj.get("/Resources", pikepdf.Dictionary()).items()))
    xobjects = pikepdf.Dictionary(dict(resources.get("/XObject", pikepdf.Dictionary()).items()))
    name = "/LgdMark"
    while name in xobjects:
        name += "x"
    xobjects[name] = form
    resources.XObject = xobjects
    page.obj.Resources = resources
    a, b, c, d, _, _ = matrix
    e, f = _apply(matrix, 0, base)  # the form's origin goes to the shown foot-left of the band
    draw = f"Q\nq {a:g} {b:g} {c:g} {d:g} {e:.4f} {f:.4f} cm {name} Do Q\n".encode()
    page.contents_add(pikepdf.Stream(pdf, b"q\n"), prepend=True)
    page.contents_add(pikepdf.Stream(pdf, draw))
