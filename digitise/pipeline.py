"""The digitise job for one document, as a tuple of named stages over a frozen `ScanDoc`.

read_scan      decode each page, find blank pages, turn and level the rest, OCR them once
mark_duplicates  pages that are a second scan of an earlier page (perceptual hash)
read_entries   what kind of page each is, its dated entries, and whether it is unreadable
build_pdfa     the searchable PDF/A-2b, text layer from the same OCR run (OCRmyPDF)
validate_pdfa  pikepdf's PDF/A validator on the file as written
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from digitise import analyse, entries, kinds, load, pdfa
from digitise.errors import Code, UnreadableInput
from digitise.model import Page, PageKind, PageText, ScanDoc
from digitise.ocr import OcrEngine
from digitise.options import DigitiseOptions

log = logging.getLogger(__name__)

# Tesseract's orientation detector reads a reduced copy: at 150 dpi it still judges
# hand-written cards correctly (at 100 dpi it does not) for half the cost of 300 dpi.
OSD_DPI = 150


@dataclass(frozen=True, slots=True)
class StageContext:
    """What every stage may use: a private work folder, the options and the OCR engine."""

    work: Path
    options: DigitiseOptions
    engine: OcrEngine
    on_page: Callable[[int], None] = lambda number: None


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


def read_upright(image: Image.Image, dpi: int, layout: analyse.Layout, engine: OcrEngine, options: DigitiseOptions) -> Reading:
    """OCR the page the right way up.

    The line direction from `layout` settles 0/180 against 90/270 for free. Most pages
    are upright and read confidently at the first try; only a page that reads poorly is
    shown to Tesseract's orientation detector, and only if that suggests another way up
    is the page read a second time, keeping whichever reading is more confident.
    """
    if layout.lines_across:
        first = _read_turned(image, dpi, 0, layout.skew, layout.paper, engine)
    else:
        guess = engine.orientation(analyse.reduced(image, dpi, OSD_DPI))
        rotation = guess.rotation if guess and guess.rotation in (90, 270) else 90
        first = _read_turned(image, dpi, rotation, None, layout.paper, engine)
    if first.text.mean_confidence >= options.recheck_orientation_below:
        return first
    guess = engine.orientation(analyse.reduced(first.image, dpi, OSD_DPI))
    if guess is None or guess.rotation == 0:
        return first
    rotation = (first.rotation + guess.rotation) % 360
    skew = first.skew if rotation % 180 == first.rotation % 180 else None
    second = _read_turned(image, dpi, rotation, skew, layout.paper, engine)
    better = second.text.mean_confidence > first.text.mean_confidence
    log.debug("orientation recheck: %s° %.0f vs %s° %.0f", first.rotation, first.text.mean_confidence, rotation, second.text.mean_confidence)
    return second if better else first


def _save_image(image: Image.Image, bilevel: bool, dpi: int, path_stem: Path, quality: int) -> Path:
    if bilevel:
        path = path_stem.with_suffix(".png")
        image.convert("1").save(path, dpi=(dpi, dpi), optimize=False)
    else:
        path = path_stem.with_suffix(".jpg")
        image.save(path, quality=quality, dpi=(dpi, dpi), optimize=True)
    return path


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
            layout = analyse.measure(source.image, source.dpi)
            if layout.blank:
                reading = Reading(source.image, 0, 0.0, PageText(()))
                text = None
            else:
                reading = read_upright(source.image, source.dpi, layout, ctx.engine, opts)
                text = reading.text
            stem = ctx.work / f"page-{number:04d}"
            images.append(_save_image(reading.image, source.bilevel, source.dpi, stem, opts.jpeg_quality))
            pages.append(
                Page(
                    number=number,
                    width=reading.image.width,
                    height=reading.image.height,
                    dpi=source.dpi,
                    rotation=reading.rotation,
                    skew=round(reading.skew, 2),
                    blank=layout.blank,
                    phash="" if layout.blank else analyse.phash(reading.image, source.dpi),
                    text=text,
                )
            )
            ctx.on_page(number)
    if not pages:
        raise UnreadableInput(f"{doc.source} holds no pages", Code.not_a_scan)
    return dataclasses.replace(doc, pages=tuple(pages), images=tuple(images))


def mark_duplicates(doc: ScanDoc, ctx: StageContext) -> ScanDoc:
    """Point each rescan at the first scan of the same page; blank pages are never duplicates."""
    seen: list[Page] = []
    marked = []
    for page in doc.pages:
        original = None
        if not page.blank:
            original = next(
                (p.number for p in seen if analyse.phash_distance(p.phash, page.phash) <= ctx.options.duplicate_distance),
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
        if page.blank or page.text is None:
            out.append(dataclasses.replace(page, kind=PageKind.blank))
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
        pdfa.save_words(words, index, (page.width, page.height), page.dpi, page.text)
    image_pdf = ctx.work / "images.pdf"
    pdfa.images_to_pdf(list(doc.images), image_pdf)
    out = ctx.work / "document.pdf"
    pdfa.make_pdfa(image_pdf, words, out, title=doc.source, languages=ctx.options.languages)
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
