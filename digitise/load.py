"""Open a scanned input by its content (PDF, TIFF, PNG, JPEG) and yield its pages one at a time.

Formats are recognised from the bytes, never from the file name, and everything that can
go wrong with an input (empty, truncated, encrypted, a decompression bomb, not a scan at
all) becomes an `UnreadableInput` with a code and a sentence that says what to do.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pikepdf
import pypdfium2
from PIL import Image, ImageSequence, UnidentifiedImageError

from digitise.errors import Code, UnreadableInput

SIGNATURES = (
    (b"%PDF-", "pdf"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
)
SCAN_FORMATS = frozenset(kind for _, kind in SIGNATURES)
DEFAULT_DPI = 300
MIN_DPI, MAX_DPI = 100, 600
# Below this a page is too coarse for OCR to read hand-writing: refuse rather than pretend.
MIN_USEFUL_DPI = 150
log = logging.getLogger(__name__)
# Pages are first looked at in a cheap preview of about this resolution: enough to tell a
# blank page, the skew and which way up, without decoding the full scan.
PREVIEW_DPI = 100


@dataclass(frozen=True, slots=True)
class SourcePage:
    """One scanned page, decoded lazily: a blank page never needs its full-resolution image."""

    preview: Image.Image  # greyscale ("L") at about PREVIEW_DPI
    preview_dpi: int
    size: tuple[int, int]  # full-resolution width and height in pixels
    dpi: int
    bilevel: bool  # the scan was black and white: keep it that way in the PDF/A
    load: Callable[[], Image.Image]  # the full-resolution greyscale page
    # The page's image as scanned (suffix, bytes), when the PDF/A can embed it unchanged.
    original: tuple[str, bytes] | None = None


def _eager(image: Image.Image, dpi: int, bilevel: bool, original: tuple[str, bytes] | None = None) -> SourcePage:
    factor = max(1, round(dpi / PREVIEW_DPI))
    preview = image.reduce(factor) if factor > 1 else image
    return SourcePage(preview, round(dpi / factor), image.size, dpi, bilevel, lambda: image, original)


def sniff(path: Path) -> str:
    """The scan format of `path` from its first bytes: 'pdf', 'tiff', 'png' or 'jpeg'."""
    try:
        with path.open("rb") as f:
            head = f.read(2048)
    except OSError as e:
        raise UnreadableInput(f"{path.name}: cannot be read ({e.strerror})", Code.truncated) from e
    if not head:
        raise UnreadableInput(f"{path.name} is empty (0 bytes); rescan the document", Code.empty_file)
    # Some PDF writers put a few bytes of junk before the header; readers allow 1 KiB.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    if head.startswith(b"PK\x03\x04"):
        raise UnreadableInput(
            f"{path.name} is a ZIP or office document, not a scan; export it as PDF first",
            Code.not_a_scan,
        )
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / len(head)
    if printable > 0.95:
        raise UnreadableInput(f"{path.name} is a text file, not a scanned image or PDF", Code.not_a_scan)
    raise UnreadableInput(
        f"{path.name} is not a format lgd reads (PDF, TIFF, PNG or JPEG scans)", Code.unknown_format
    )


def _as_scan(image: Image.Image) -> tuple[Image.Image, bool]:
    if image.mode == "1":
        # Measured, turned and levelled as grey; saved as black and white again.
        return image.convert("L"), True
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("L"), False


def _image_dpi(image: Image.Image) -> int:
    dpi = image.info.get("dpi") or (DEFAULT_DPI, DEFAULT_DPI)
    try:
        value = int(round(float(dpi[0])))
    except (TypeError, ValueError, IndexError):
        value = DEFAULT_DPI
    return value if MIN_DPI <= value <= MAX_DPI else DEFAULT_DPI


def _check_pixels(path: Path, image: Image.Image, max_pixels: int) -> None:
    if image.width * image.height > max_pixels:
        raise UnreadableInput(
            f"{path.name} declares a {image.width} x {image.height} pixel image, more than "
            f"the {max_pixels:,} pixel limit (a decompression bomb or a mis-set scanner); "
            "rescan at 300 dpi",
            Code.decompression_bomb,
        )


def _open_image(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableInput(f"{path.name}: {e}; rescan at 300 dpi", Code.decompression_bomb) from e
    except UnidentifiedImageError as e:
        raise UnreadableInput(f"{path.name} is not a readable image; rescan it", Code.corrupt_image) from e
    _check_pixels(path, image, max_pixels)
    return image


def _decode(path: Path, frame: Image.Image, number: int) -> tuple[Image.Image, bool]:
    try:
        frame.load()
        return _as_scan(frame)
    except OSError as e:
        code = Code.truncated if "truncated" in str(e) else Code.corrupt_image
        raise UnreadableInput(
            f"{path.name}: page {number} cannot be decoded ({e}); rescan the document", code
        ) from e


def _embeddable(path: Path, image: Image.Image) -> tuple[str, bytes] | None:
    """A single-image JPEG or PNG with its resolution recorded can go into the PDF/A as it is."""
    if image.format not in ("JPEG", "PNG") or getattr(image, "n_frames", 1) != 1 or "dpi" not in image.info:
        return None
    if image.format == "PNG" and (image.info.get("interlace") or image.mode not in ("L", "1", "RGB")):
        return None  # img2pdf would have to re-encode these anyway
    return (".jpg" if image.format == "JPEG" else ".png"), path.read_bytes()


def _jpeg_page(path: Path, image: Image.Image, dpi: int, original: tuple[str, bytes] | None) -> SourcePage:
    """A JPEG previewed through the decoder's own downscaling, decoded in full only on demand."""
    size = image.size
    reopen = (lambda: Image.open(io.BytesIO(original[1]))) if original else (lambda: Image.open(path))
    image.draft("L", (size[0] * PREVIEW_DPI // dpi, size[1] * PREVIEW_DPI // dpi))
    preview, _ = _decode(path, image, 1)
    preview_dpi = max(1, round(dpi * preview.width / size[0]))

    def load() -> Image.Image:
        with reopen() as full:
            return _decode(path, full, 1)[0]

    return SourcePage(preview, preview_dpi, size, dpi, False, load, original)


def _image_pages(path: Path, max_pixels: int, max_pages: int) -> Iterator[SourcePage]:
    image = _open_image(path, max_pixels)
    with image:
        if image.format == "JPEG":
            yield _jpeg_page(path, image, _image_dpi(image), _embeddable(path, image))
            return
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            if number > max_pages:
                raise UnreadableInput(f"{path.name} has more than {max_pages} pages", Code.too_many_pages)
            _check_pixels(path, frame, max_pixels)
            dpi = _image_dpi(frame)
            original = _embeddable(path, image) if number == 1 else None
            scan, bilevel = _decode(path, frame, number)
            yield _eager(scan, dpi, bilevel, original)


@dataclass(frozen=True, slots=True)
class _PdfPageFacts:
    dpi: int
    size: tuple[int, int]
    original: tuple[str, bytes] | None


def _pdf_page_facts(page: pikepdf.Page) -> _PdfPageFacts:
    """The resolution a PDF page was scanned at, its pixel size, and its JPEG if it is just one.

    A scan PDF page is usually one image filling the page; then the image's own pixels and
    bytes are the page, and a blank one can be kept without decoding or re-encoding it.
    """
    width_in = float(page.mediabox[2] - page.mediabox[0]) / 72
    height_in = float(page.mediabox[3] - page.mediabox[1]) / 72
    images = list(page.images.values())
    widest = max((int(i.get("/Width", 0)) for i in images), default=0)
    dpi = min(max(round(widest / width_in), MIN_DPI), MAX_DPI) if widest and width_in > 0 else DEFAULT_DPI
    size = (max(1, round(width_in * dpi)), max(1, round(height_in * dpi)))
    original = None
    if len(images) == 1 and int(page.obj.get("/Rotate", 0)) % 360 == 0:
        image = images[0]
        if image.get("/Filter") == pikepdf.Name.DCTDecode and (int(image.Width), int(image.Height)) == size:
            raw = image.read_raw_bytes()
            with contextlib.suppress(OSError, UnidentifiedImageError):
                with Image.open(io.BytesIO(raw)) as probe:
                    if _image_dpi(probe) == dpi and probe.mode in ("L", "RGB"):
                        original = (".jpg", raw)
    return _PdfPageFacts(dpi, size, original)


def _fitted(path: Path, number: int, fact: _PdfPageFacts, max_pixels: int) -> _PdfPageFacts:
    """A page too large at its own resolution, rendered at the highest one that fits the pixel budget.

    A PDF page is rendered, not decoded, so its size costs only what we ask for (OCRmyPDF does
    the same); only a page that would have to go below MIN_USEFUL_DPI to fit is refused.
    """
    dpi = math.floor(fact.dpi * math.sqrt(max_pixels / (fact.size[0] * fact.size[1])))
    if dpi < MIN_USEFUL_DPI:
        raise UnreadableInput(
            f"{path.name}: page {number} is {fact.size[0] / fact.dpi:.0f} x {fact.size[1] / fact.dpi:.0f} inches; "
            f"it would have to be read at {dpi} dpi to stay within the {max_pixels:,} pixel limit, too coarse "
            "to read; rescan it at its real size", Code.decompression_bomb)
    size = (max(1, fact.size[0] * dpi // fact.dpi), max(1, fact.size[1] * dpi // fact.dpi))
    log.warning("%s: page %d is read at %d dpi instead of %d to stay within %s pixels", path.name, number, dpi,
                fact.dpi, f"{max_pixels:,}")
    return _PdfPageFacts(dpi, size, None)


def _pdf_pages(path: Path, max_pixels: int, max_pages: int) -> Iterator[SourcePage]:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 2048))
        if b"%%EOF" not in f.read():
            raise UnreadableInput(
                f"{path.name} is truncated (no end-of-file marker); copy or rescan it again",
                Code.truncated,
            )
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as e:
        raise UnreadableInput(
            f"{path.name} is password-protected; remove the password (qpdf --decrypt "
            "--password=... in.pdf out.pdf) and submit it again",
            Code.encrypted_pdf,
        ) from e
    except pikepdf.PdfError as e:
        raise UnreadableInput(f"{path.name} is a damaged PDF ({e}); rescan it", Code.truncated) from e
    with pdf:
        if len(pdf.pages) > max_pages:
            raise UnreadableInput(f"{path.name} has {len(pdf.pages)} pages, over {max_pages}", Code.too_many_pages)
        if not pdf.pages:
            raise UnreadableInput(f"{path.name} has no pages", Code.not_a_scan)
        facts = [_pdf_page_facts(p) for p in pdf.pages]
    document = pypdfium2.PdfDocument(path)
    try:
        for number, fact in enumerate(facts, start=1):
            if fact.size[0] * fact.size[1] > max_pixels:
                fact = _fitted(path, number, fact, max_pixels)
            if fact.original:
                # The page is one JPEG: decode it directly, the preview through the JPEG
                # decoder's own downscaling, rather than rendering the page.
                image = Image.open(io.BytesIO(fact.original[1]))
                yield _jpeg_page(path, image, fact.dpi, fact.original)
                continue
            page = document[number - 1]

            def render(dpi: int, page=page) -> Image.Image:
                return page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")

            preview_dpi = min(PREVIEW_DPI, fact.dpi)
            yield SourcePage(
                render(preview_dpi), preview_dpi, fact.size, fact.dpi, False,
                lambda render=render, dpi=fact.dpi: render(dpi), None,
            )
            page.close()
    except pypdfium2.PdfiumError as e:
        raise UnreadableInput(f"{path.name} cannot be rendered ({e}); rescan it", Code.corrupt_image) from e
    finally:
        document.close()


def read_pages(path: Path, *, max_pixels: int, max_pages: int) -> Iterator[SourcePage]:
    """Every page of one scan file, in order, decoded one at a time."""
    kind = sniff(path)
    if kind == "pdf":
        yield from _pdf_pages(path, max_pixels, max_pages)
    else:
        yield from _image_pages(path, max_pixels, max_pages)
