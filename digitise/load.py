"""Open a scanned input by its content (PDF, TIFF, PNG, JPEG) and yield its pages one at a time.

Formats are recognised from the bytes, never from the file name, and everything that can
go wrong with an input (empty, truncated, encrypted, a decompression bomb, not a scan at
all) becomes an `UnreadableInput` with a code and a sentence that says what to do.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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


@dataclass(frozen=True, slots=True)
class SourcePage:
    image: Image.Image  # 8-bit greyscale ("L")
    dpi: int
    bilevel: bool  # the scan was black and white: keep it that way in the PDF/A


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


def _decode(path: Path, frame: Image.Image, number: int) -> SourcePage:
    try:
        frame.load()
        image, bilevel = _as_scan(frame)
    except OSError as e:
        code = Code.truncated if "truncated" in str(e) else Code.corrupt_image
        raise UnreadableInput(
            f"{path.name}: page {number} cannot be decoded ({e}); rescan the document", code
        ) from e
    return SourcePage(image, _image_dpi(frame), bilevel)


def _image_pages(path: Path, max_pixels: int, max_pages: int) -> Iterator[SourcePage]:
    image = _open_image(path, max_pixels)
    with image:
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            if number > max_pages:
                raise UnreadableInput(f"{path.name} has more than {max_pages} pages", Code.too_many_pages)
            _check_pixels(path, frame, max_pixels)
            yield _decode(path, frame, number)


def _pdf_scan_dpi(page: pikepdf.Page) -> int:
    """The resolution the page was scanned at: that of its largest image, else 300."""
    width_in = float(page.mediabox[2] - page.mediabox[0]) / 72
    best = 0
    for image in page.images.values():
        try:
            best = max(best, int(image.get("/Width", 0)))
        except (TypeError, ValueError):
            continue
    if not best or width_in <= 0:
        return DEFAULT_DPI
    dpi = round(best / width_in)
    return min(max(dpi, MIN_DPI), MAX_DPI)


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
        dpis = [_pdf_scan_dpi(p) for p in pdf.pages]
    document = pypdfium2.PdfDocument(path)
    try:
        for number, dpi in enumerate(dpis, start=1):
            page = document[number - 1]
            width, height = page.get_size()
            if width * height * (dpi / 72) ** 2 > max_pixels:
                raise UnreadableInput(
                    f"{path.name}: page {number} is {width / 72:.0f} x {height / 72:.0f} in; "
                    "at its resolution that exceeds the pixel limit",
                    Code.decompression_bomb,
                )
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            image = bitmap.to_pil().convert("L")
            yield SourcePage(image, dpi, False)
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
