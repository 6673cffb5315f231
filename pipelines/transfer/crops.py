"""Cut entry excerpts out of the archive's page images, after checking the image holds nothing outside the entries.

Each candidate page (see excerpts.py) is rendered from the archive's PDF/A with pdfium at
RENDER_DPI. The entry boxes are in upright page pixels at the page's own dpi; digitising
stores the page already turned upright (the PDF page carries the upright image and no
/Rotate), so a box maps to the rendering by scale alone. A page whose PDF does not look like
that (a /Rotate, a size that disagrees with the catalogue's) is sent whole rather than guessed at.

Before cutting, the rendering is searched for ink that was not read: OCR never reads a
sketch, a note written sideways in the margin, a tick or a scrawl, and those would be lost with
the rest of the card, whether they lie between the entries or inside a covered entry's box.
What is set aside: the card's printed rules (long straight lines), the box of every OCR word
inside an entry or of the card's own print, with WORD_PAD_MM around it (those words were read
and judged), and the padded boxes of the entries that are sent. Any other mark bigger than a speck sends the page whole.

Each excerpt is the entry's box padded by PAD_MM on every side (so strokes at its edge are kept),
encoded as JPEG (grey when the page is grey, colour otherwise: red ink matters), with no OCR.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from index.rows import Box

from .excerpts import EntryExcerpt, EntrySelection, ExcerptPage, WholePage

RENDER_DPI = 200  # excerpts print sharply at this resolution and stay small
CHECK_DPI = 100  # the ink check looks at a half-size copy: strokes survive, specks blur away
PAD_MM = 2.0
JPEG_QUALITY = 85
INK = 0.6  # a pixel darker than this fraction of the paper's brightness is ink
FAINT = 0.85  # ... and darker than this, faint print such as a card's ruled lines
RULE_MM = 10.0  # straight runs of ink at least this long are the card's printed rules
MARK_MM = 1.5  # a mark outside the entries at least this tall or wide is writing, not a speck
MARK_PIXELS = 6  # ... and of at least this many pixels at CHECK_DPI
WORD_PAD_MM = 2.0  # hand-written strokes reach this far beyond the box OCR gives their word
_GREY_SPREAD = 12  # channels this close everywhere: a grey scan, stored as grey
_SIZE_SLACK = 0.01  # PDF page size and catalogue image size may differ by rounding only


@dataclass(frozen=True, slots=True)
class Crop:
    """One excerpt: the entry, the page it was cut from, and its image."""

    page: ExcerptPage
    excerpt: EntryExcerpt
    jpeg: bytes
    width: int  # pixels
    height: int
    dpi: int

    @property
    def size_pt(self) -> tuple[float, float]:
        """The crop at the paper's own size, in points."""
        return self.width * 72 / self.dpi, self.height * 72 / self.dpi


@dataclass(frozen=True, slots=True)
class CutExcerpts:
    """Pages reduced to excerpts, their crops in pack order, and every included page sent whole with why."""

    reduced: tuple[ExcerptPage, ...]
    crops: tuple[Crop, ...]
    whole: tuple[WholePage, ...]

    @property
    def keys(self) -> frozenset[tuple[int, int]]:
        """(document id, page) of every reduced page."""
        return frozenset(p.key for p in self.reduced)

    def unapplied(self, reason: str) -> CutExcerpts:
        """The same pages with none cut down: every reduced card joins `whole` with `reason`."""
        return CutExcerpts((), (), (*self.whole, *(WholePage(p.source, p.page, reason) for p in self.reduced)))


def _mm(mm: float, dpi: float) -> int:
    return max(1, round(mm / 25.4 * dpi))


def _scaled(box: Box, sx: float, sy: float, pad: int, size: tuple[int, int]) -> Box:
    x0, y0, x1, y1 = box
    return (max(0, int(x0 * sx) - pad), max(0, int(y0 * sy) - pad),
            min(size[0], int(np.ceil(x1 * sx)) + pad), min(size[1], int(np.ceil(y1 * sy)) + pad))


def _along(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """`mask` with `axis` first, and the running count of its True values with a leading zero."""
    a = np.moveaxis(mask, axis, 0)
    zero = np.zeros((1, *a.shape[1:]), np.int32)
    return a, np.concatenate([zero, np.cumsum(a, axis=0, dtype=np.int32)])


def straight_runs(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels of `mask` on a straight run of at least `length` along `axis` (an opening with a line)."""
    a, count = _along(mask, axis)
    n = a.shape[0]
    if n < length:
        return np.zeros_like(mask)
    full = (count[length:] - count[:-length]) == length  # the run of `length` starting here is all ink
    _, starts = _along(full, 0)
    i = np.arange(n)
    covered = (starts[np.minimum(i, n - length) + 1] - starts[np.maximum(0, i - length + 1)]) > 0
    return np.moveaxis(covered, 0, axis)


def grow(mask: np.ndarray, reach: int, axis: int) -> np.ndarray:
    """`mask` spread by `reach` pixels both ways along `axis` (a dilation with a line)."""
    a, count = _along(mask, axis)
    i = np.arange(a.shape[0])
    out = (count[np.minimum(i + reach, a.shape[0] - 1) + 1] - count[np.maximum(0, i - reach)]) > 0
    return np.moveaxis(out, 0, axis)


def _first_mark(ink: np.ndarray, least: int) -> tuple[int, int] | None:
    """(x, y) of the first 8-connected blob of `ink` at least `least` pixels tall or wide and of
    MARK_PIXELS pixels, or None. Stops at the first: the page goes whole either way."""
    todo = set(zip(*np.nonzero(ink)))
    while todo:
        start = todo.pop()
        blob, stack = [start], [start]
        while stack:
            y, x = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    nxt = (y + dy, x + dx)
                    if nxt in todo:
                        todo.discard(nxt)
                        blob.append(nxt)
                        stack.append(nxt)
        ys, xs = [p[0] for p in blob], [p[1] for p in blob]
        if len(blob) >= MARK_PIXELS and max(max(ys) - min(ys), max(xs) - min(xs)) + 1 >= least:
            return int(min(xs)), int(min(ys))
    return None


def stray_mark(image: Image.Image, page: ExcerptPage, dpi: float) -> tuple[float, float] | None:
    """Where (mm from the page's top left) a mark bigger than a speck lies that was not read and is not
    sent: outside the rules, the padded boxes of the words accounted for and of the excerpted entries.
    None when there is none.

    `image` is the whole page rendered upright at `dpi`.
    """
    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    paper = float(np.percentile(grey, 75))
    ink = grey < paper * INK
    run, fringe = _mm(RULE_MM, dpi), _mm(0.5, dpi)
    # A rule is a straight run of ink or faint print RULE_MM long; it is set aside with its grey
    # fringe and its broken-off ends (a thin rule breaks up in noise and where it meets another).
    faint = grey < paper * FAINT
    down = grow(grow(straight_runs(faint, run, 0), run, 0), fringe, 1)
    across = grow(grow(straight_runs(faint, run, 1), run, 1), fringe, 0)
    ink &= ~(down | across)
    sx, sy = grey.shape[1] / page.width, grey.shape[0] / page.height
    size = (grey.shape[1], grey.shape[0])
    for box in (e.box for e in page.excerpts):
        x0, y0, x1, y1 = _scaled(box, sx, sy, _mm(PAD_MM, dpi), size)
        ink[y0:y1, x0:x1] = False
    for box in page.words:
        x0, y0, x1, y1 = _scaled(box, sx, sy, _mm(WORD_PAD_MM, dpi), size)
        ink[y0:y1, x0:x1] = False
    found = _first_mark(ink, _mm(MARK_MM, dpi))
    return None if found is None else (round(found[0] * 25.4 / dpi), round(found[1] * 25.4 / dpi))


def _encode(image: Image.Image) -> bytes:
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max()) if rgb.size else 0
    out = io.BytesIO()
    (image.convert("L") if spread <= _GREY_SPREAD else image.convert("RGB")).save(
        out, "JPEG", quality=JPEG_QUALITY, dpi=(RENDER_DPI, RENDER_DPI), optimize=True)
    return out.getvalue()


def _cut_page(pdf: pdfium.PdfDocument, page: ExcerptPage) -> list[Crop] | str:
    """The crops of one candidate page, or the reason it is sent whole."""
    if not 1 <= page.page <= len(pdf):
        return "the archive file has no such page"
    shown = pdf[page.page - 1]
    try:
        if shown.get_rotation() % 360:
            return "the page is stored turned (/Rotate); its entry boxes are upright"
        w_pt, h_pt = shown.get_size()
        for pt, px in ((w_pt, page.width), (h_pt, page.height)):
            if abs(pt * page.dpi / 72 - px) > max(2.0, px * _SIZE_SLACK):
                return "the page's size in the archive file differs from its image in the catalogue"
        image = shown.render(scale=RENDER_DPI / 72).to_pil()
    finally:
        shown.close()
    half = image.resize((max(1, image.width * CHECK_DPI // RENDER_DPI), max(1, image.height * CHECK_DPI // RENDER_DPI)),
                        Image.Resampling.BOX)
    mark = stray_mark(half, page, CHECK_DPI)
    if mark is not None:
        return f"ink that OCR did not read and no excerpt holds (about {mark[0]} mm across, {mark[1]} mm down)"
    sx, sy = image.width / page.width, image.height / page.height
    crops = []
    for excerpt in page.excerpts:
        box = _scaled(excerpt.box, sx, sy, _mm(PAD_MM, RENDER_DPI), image.size)
        cut = image.crop(box)
        crops.append(Crop(page, excerpt, _encode(cut), cut.width, cut.height, RENDER_DPI))
    return crops


def cut_excerpts(selection: EntrySelection, paths: Mapping[int, Path]) -> CutExcerpts:
    """Render each candidate from the archive PDF/A at `paths[document_id]`, check it, and cut its excerpts.

    `paths` must be the archive files already checked against their content hash (document.py
    does so before anything is read). A candidate that fails the image checks joins `whole`.
    """
    reduced, crops, whole = [], [], list(selection.whole)
    by_document: dict[int, list[ExcerptPage]] = {}
    for page in selection.candidates:
        by_document.setdefault(page.document_id, []).append(page)
    cut: dict[tuple[int, int], list[Crop] | str] = {}
    for document_id, pages in by_document.items():
        try:
            pdf = pdfium.PdfDocument(str(paths[document_id]))
        except pdfium.PdfiumError as e:  # the file passed its hash check: send its cards whole, never guess
            cut.update({page.key: f"pdfium could not open the archive file ({e})" for page in pages})
            continue
        try:
            for page in pages:
                try:
                    cut[page.key] = _cut_page(pdf, page)
                except pdfium.PdfiumError as e:
                    cut[page.key] = f"pdfium could not render the page ({e})"
        finally:
            pdf.close()
    for page in selection.candidates:  # back in plan order
        found = cut[page.key]
        if isinstance(found, str):
            whole.append(WholePage(page.source, page.page, found))
        else:
            reduced.append(page)
            crops.extend(found)
    return CutExcerpts(tuple(reduced), tuple(crops), tuple(whole))
