"""Build the searchable PDF/A-2b of one document with OCRmyPDF and check it with pikepdf's validator."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import img2pdf
import ocrmypdf
from ocrmypdf.exceptions import ExitCode
from pikepdf.pdfa import validate_written

from digitise import ocrmypdf_plugin
from digitise.errors import PdfaFailed
from digitise.model import PageText, union

log = logging.getLogger(__name__)
PLUGIN = ocrmypdf_plugin.__name__


@dataclass(frozen=True, slots=True)
class Validation:
    passed: bool
    findings: tuple[str, ...]


def save_words(folder: Path, index: int, size: tuple[int, int], dpi: int, text: PageText | None) -> None:
    """Leave one page's words where the OCRmyPDF plugin will look for them."""
    lines: dict[int, list] = {}
    for w in text.words if text else ():
        lines.setdefault(w.line, []).append([w.text, list(w.box), w.confidence])
    payload = [[list(union([tuple(b) for _, b, _ in ws])), ws] for _, ws in sorted(lines.items())]
    ocrmypdf_plugin.write_page_words(folder, index, size, dpi, payload)


def images_to_pdf(images: list[Path], out: Path) -> None:
    """An image-only PDF, one page per image, sized by the resolution saved in each image."""
    out.write_bytes(img2pdf.convert([str(p) for p in images]))


def make_pdfa(image_pdf: Path, words: Path, out: Path, title: str, languages: str, pages: list[int]) -> None:
    """Graft lgd's text layer onto the `pages` (1-based) of `image_pdf` that were read; write PDF/A-2b to `out`.

    Pages not listed (blank pages) pass through OCRmyPDF untouched, at almost no cost.
    """
    quiet = io.StringIO()
    # OCRmyPDF reads an empty page selection as "all pages": give it one page with no words.
    selection = ",".join(map(str, pages)) if pages else "1"
    if not pages:
        ocrmypdf_plugin.write_page_words(words, 0, (1, 1), 300, [])
    try:
        with contextlib.redirect_stdout(quiet):
            code = ocrmypdf.ocr(
                image_pdf,
                out,
                plugins=[PLUGIN],
                ocr_engine=ocrmypdf_plugin.ENGINE_NAME,
                lgd_words=str(words),
                languages=languages.split("+"),
                output_type="pdfa-2",
                pdfa_backend="internal",
                optimize=0,
                jobs=1,
                progress_bar=False,
                title=title,
                pages=selection,
            )
    except ocrmypdf.exceptions.ExitCodeException as e:
        raise PdfaFailed(f"OCRmyPDF could not build the PDF/A ({type(e).__name__}: {e})") from e
    if code != ExitCode.ok:
        raise PdfaFailed(f"OCRmyPDF could not build the PDF/A (exit code {int(code)})")


def validate(path: Path) -> Validation:
    report = validate_written(path, "2b")
    findings = tuple(f"{f.rule}: {f.message}" for f in report.findings)
    return Validation(bool(report.passed), findings)
