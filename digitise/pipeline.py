"""The digitise job for one document, as a tuple of named stages over a frozen `ScanDoc`.

read_scan      decode each page, turn and level it, OCR it once; a page the ink test calls
               blank is blank only if one OCR of its sensitive copy finds no writing
mark_duplicates  pages that are a second scan of an earlier page (image hash and text both)
read_entries   what kind of page each is, its dated entries, and whether it is unreadable
build_pdfa     the searchable PDF/A-2b, text layer from the same OCR run (OCRmyPDF)
validate_pdfa  pikepdf's PDF/A validator on the file as written
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from rapidfuzz import fuzz

from digitise import analyse, entries, kinds, load, pdfa, reread, route
from digitise.errors import Code, UnreadableInput
from digitise.model import Page, PageKind, PageText, ScanDoc
from digitise.ocr import OcrEngine
from digitise.options import DigitiseOptions
from digitise.settle import WordList, settle

log = logging.getLogger(__name__)

# The upside-down check reads this fraction of the page height, where the words are, and
# the other way up must read this many confidence points better to turn the page.
CHECK_BAND = 0.3
CHECK_MARGIN = 8.0


@dataclass(frozen=True, slots=True)
class StageContext:
    """What every stage may use: a private work folder, the options and the OCR engine(s).

    `hand` is the hand-writing engine of `--engine auto`: pages `engine` reads as cards,
    envelopes or of no clear kind are read again by it (digitise.route).
    """

    work: Path
    options: DigitiseOptions
    engine: OcrEngine
    hand: OcrEngine | None = None
    on_page: Callable[[int], None] = lambda number: None
    # The word list that settles the hand-writing engine's non-words (digitise.settle); None: none are.
    words: WordList | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    image: Image.Image
    rotation: int
    skew: float
    text: PageText


def _read_turned(image: Image.Image, dpi: int, rotation: int, skew: float | None, paper: int, engine: OcrEngine) -> Reading:
    turned = analyse.turn(image, rotation)
    if skew is None:  # lines ran up-down before turning: measure the skew afresh
        skew = analyse.measure(turned, dpi).skew
    levelled = analyse.level(turned, skew, paper)
    return Reading(levelled, rotation, skew, engine.read(levelled))


def _best_band(text: PageText, height: int) -> tuple[int, int]:
    """The band of CHECK_BAND of the page height holding the most words (top, bottom)."""
    band = int(height * CHECK_BAND)
    centres = sorted((w.box[1] + w.box[3]) // 2 for w in text.words)
    best, top = -1, 0
    for start in range(0, max(1, height - band + 1), max(1, band // 4)):
        count = sum(start <= c < start + band for c in centres)
        if count > best:
            best, top = count, start
    return top, min(height, top + band)


def _confidence_within(text: PageText, top: int, bottom: int) -> float:
    inside = PageText(tuple(w for w in text.words if top <= (w.box[1] + w.box[3]) // 2 < bottom))
    return inside.mean_confidence


def read_upright(image: Image.Image, dpi: int, layout: analyse.Layout, engine: OcrEngine, options: DigitiseOptions) -> Reading:
    """OCR the page the right way up.

    The line direction from `layout` settles 0/180 against 90/270 for free, and its
    edge-alignment hint says which way up to try first. Most pages read confidently at
    the first try. A page that reads poorly may still be the wrong way up: a band of it is read the other way up, and only if that reads clearly
    better is the whole page read again, turned. Tesseract's own orientation detector
    (OSD) was tried first and judged hand-written cards poorly and at half an OCR's cost.
    """
    rotation = (0 if layout.lines_across else 90) + (180 if layout.upside_down else 0)
    first = _read_turned(image, dpi, rotation, layout.skew if layout.lines_across else None, layout.paper, engine)
    if first.text.mean_confidence >= options.recheck_orientation_below:
        return first
    top, bottom = _best_band(first.text, first.image.height)
    here = _confidence_within(first.text, top, bottom)
    band = first.image.crop((0, top, first.image.width, bottom)).rotate(180)
    there = engine.read(band).mean_confidence
    log.debug("orientation check: %s deg reads %.0f, turned %.0f", rotation, here, there)
    if there < here + CHECK_MARGIN:
        return first
    turned = first.image.rotate(180)
    second = Reading(turned, (rotation + 180) % 360, first.skew, engine.read(turned))
    return second if second.text.mean_confidence > first.text.mean_confidence else first


def _save_image(image: Image.Image, bilevel: bool, dpi: int, path_stem: Path, quality: int) -> Path:
    if bilevel:
        path = path_stem.with_suffix(".png")
        image.convert("1").save(path, dpi=(dpi, dpi), optimize=False)
    else:
        path = path_stem.with_suffix(".jpg")
        image.save(path, quality=quality, dpi=(dpi, dpi), optimize=True)
    return path


def _keep_original(original: tuple[str, bytes], path_stem: Path) -> Path:
    """The scan's own image, unchanged: no decode, no generation loss, no cost."""
    suffix, data = original
    path = path_stem.with_suffix(suffix)
    path.write_bytes(data)
    return path


def _blank_page(source: load.SourcePage, number: int, full: Image.Image, stem: Path, quality: int) -> tuple[Page, Path]:
    """A blank page is kept as scanned but has no words."""
    if source.original:
        image_path = _keep_original(source.original, stem)
    else:
        image_path = _save_image(full, source.bilevel, source.dpi, stem, quality)
    width, height = source.size
    return Page(number=number, width=width, height=height, dpi=source.dpi, blank=True), image_path


def _read_page(source: load.SourcePage, number: int, born: dt.date | None, ctx: StageContext) -> tuple[Page, Path]:
    opts = ctx.options
    stem = ctx.work / f"page-{number:04d}"
    layout = analyse.measure(source.preview, source.preview_dpi)
    paper = layout.paper
    full = source.load()
    seen = full  # the pixels OCR reads: the scan itself, or its sensitive copy for faint writing
    if layout.blank:
        # The ink test misses pencil and writing in the margins: a page is blank only if a
        # read of its sensitive copy, margins and all, finds nothing like writing.
        seen = analyse.sensitive(full, source.dpi)
        if not kinds.shows_writing(ctx.engine.read(seen)):
            return _blank_page(source, number, full, stem, opts.jpeg_quality)
        log.debug("page %d: the ink test saw a blank page, OCR read writing on it", number)
        faint = analyse.measure(seen, source.dpi)
        # Writing only in the margins leaves no ink to measure: take the page as upright and level.
        layout = dataclasses.replace(faint, blank=False)
    reading = read_upright(seen, source.dpi, layout, ctx.engine, opts)
    text = reading.text
    kind = route.kind_of(text, reading.image, source.dpi) if ctx.hand is not None else None
    if ctx.hand is not None and route.wants_hand(text, reading.image, source.dpi, kind):
        hand = ctx.hand.read(reading.image)
        first, text = text, route.choose(text, hand)
        if text is hand:
            if ctx.words is not None and kind in route.HAND_KINDS:
                text, settled = settle(text, first, ctx.words)
                log.debug("page %d: %d words settled", number, settled)
            text, filled = route.fill(text, first)
            if filled:
                log.info("page %d: kept %d words of %s's where %s read none", number, filled,
                         ctx.engine.name, ctx.hand.name)
        # One line per second reading, with the kind it was routed as: the benchmark counts them to
        # price auto's routing at PP-OCR's own cost on pages of that kind.
        log.info("page %d (%s): read again by %s; kept the %s reading", number, kind, ctx.hand.name,
                 text.engine.split()[0])
    if opts.reread_dates:
        # Still Tesseract's looks, after PP-OCR too: with --engine auto on 99 generated pages
        # entry-date recall was 0.890 with them, 0.878 without and 0.878 with PP-OCR's looks,
        # precision 0.988 in all three, at no measurable CPU cost (issue 10). Measured again with
        # settling, on 288 pages: 0.895 / 0.988 with them, 0.879 / 0.986 without, 1% more CPU.
        text = reread.date_cells(text, reading.image, source.dpi, ctx.engine, born, opts.today)
    kept = reading.image
    if seen is not full:  # store the scan, turned and levelled the same way, not the stretched copy
        kept = full if reading.image is seen else analyse.level(analyse.turn(full, reading.rotation), reading.skew, paper)
    if kept is full and source.original:
        image_path = _keep_original(source.original, stem)
    else:
        image_path = _save_image(kept, source.bilevel, source.dpi, stem, opts.jpeg_quality)
    page = Page(
        number=number,
        width=reading.image.width,
        height=reading.image.height,
        dpi=source.dpi,
        rotation=reading.rotation,
        skew=round(reading.skew, 2),
        phash=analyse.phash(reading.image, source.dpi),
        text=text,
    )
    return page, image_path


def read_scan(doc: ScanDoc, ctx: StageContext) -> ScanDoc:
    """Decode, correct and OCR every page, one page in memory at a time."""
    pages: list[Page] = []
    images: list[Path] = []
    opts = ctx.options
    for path in doc.inputs:
        for source in load.read_pages(path, max_pixels=opts.max_pixels, max_pages=opts.max_pages):
            number = len(pages) + 1
            if number > opts.max_pages:
                raise UnreadableInput(f"{doc.source} has more than {opts.max_pages} pages", Code.too_many_pages)
            page, image_path = _read_page(source, number, doc.born, ctx)
            pages.append(page)
            images.append(image_path)
            ctx.on_page(number)
    if not pages:
        raise UnreadableInput(f"{doc.source} holds no pages", Code.not_a_scan)
    return dataclasses.replace(doc, pages=tuple(pages), images=tuple(images))


def _reads_alike(a: Page, b: Page, min_similarity: float, min_confidence: float) -> bool:
    """Whether both pages read well and their whitespace-normalised texts agree (0-100 similarity).

    A page read below `min_confidence` (scrawl, faint pencil, nothing read) is never a
    rescan: its text can neither confirm nor refute one, and two different scrawled cards
    can hash alike. Both then stay pages of their own, and later stages send them.
    """
    if a.text is None or b.text is None or min(a.confidence, b.confidence) < min_confidence:
        return False
    text_a = " ".join(a.text.text.split())
    text_b = " ".join(b.text.text.split())
    return bool(text_a) and fuzz.ratio(text_a, text_b) >= min_similarity


def mark_duplicates(doc: ScanDoc, ctx: StageContext) -> ScanDoc:
    """Point each rescan at the first scan of the same page: alike in image hash, and in text read well.

    Blank pages are never duplicates. A page only an image hash calls a rescan, or one too
    poorly read to compare, stays a page of its own, since taking a different card or letter
    for a copy would let it be left out of a pack.
    """
    options = ctx.options
    seen: list[Page] = []
    marked = []
    for page in doc.pages:
        original = None
        if not page.blank:
            original = next(
                (p.number for p in seen if analyse.phash_distance(p.phash, page.phash) <= options.duplicate_distance
                 and _reads_alike(p, page, options.duplicate_min_text_similarity,
                                  options.duplicate_text_min_confidence)),
                None,
            )
            if original is None:
                seen.append(page)
        marked.append(dataclasses.replace(page, duplicate_of=original))
    return dataclasses.replace(doc, pages=tuple(marked))


def read_entries(doc: ScanDoc, ctx: StageContext) -> ScanDoc:
    """Classify each page, split cards and letters into dated entries, flag unreadable pages."""
    today = ctx.options.today
    out = []
    for page in doc.pages:
        kind = kinds.classify(page.text, page.width, page.height, page.dpi, page.blank)
        if page.blank:
            out.append(dataclasses.replace(page, kind=PageKind.blank))
            continue
        if page.text is None:  # ink that was never read: it must travel
            out.append(dataclasses.replace(page, kind=kind, unreadable=True))
            continue
        found = entries.entries_for(kind, page.text, page.width, page.height, doc.born, today)
        out.append(
            dataclasses.replace(
                page, kind=kind, entries=found, unreadable=kinds.is_unreadable(page.text, kind)
            )
        )
    return dataclasses.replace(doc, pages=tuple(out))


def build_pdfa(doc: ScanDoc, ctx: StageContext) -> ScanDoc:
    words = ctx.work / "words"
    words.mkdir(exist_ok=True)
    for index, page in enumerate(doc.pages):
        if page.text is not None:
            pdfa.save_words(words, index, (page.width, page.height), page.dpi, page.text)
    image_pdf = ctx.work / "images.pdf"
    pdfa.images_to_pdf(list(doc.images), image_pdf)
    out = ctx.work / "document.pdf"
    read = [p.number for p in doc.pages if p.text is not None]
    pdfa.make_pdfa(image_pdf, words, out, title=doc.source, languages=ctx.options.languages, pages=read)
    return dataclasses.replace(doc, pdfa=out)


def validate_pdfa(doc: ScanDoc, ctx: StageContext) -> ScanDoc:
    assert doc.pdfa is not None
    result = pdfa.validate(doc.pdfa)
    return dataclasses.replace(doc, pdfa_valid=result.passed, pdfa_findings=result.findings)


STAGES = (read_scan, mark_duplicates, read_entries, build_pdfa, validate_pdfa)


def run(doc: ScanDoc, ctx: StageContext, stages=STAGES) -> ScanDoc:
    """Run the stages in order, logging how long each took."""
    for stage in stages:
        started = time.perf_counter()
        doc = stage(doc, ctx)
        log.debug("%s: %s took %.2fs", doc.source, stage.__name__, time.perf_counter() - started)
    return doc
