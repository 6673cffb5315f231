"""An OCRmyPDF plugin whose OCR engine hands back what lgd already read, so Tesseract runs once per page.

lgd OCRs each corrected page itself (keeping every word, box and confidence) and saves
the result as JSON in the work folder. OCRmyPDF then only builds the invisible text layer
and the PDF/A from those results. Because this engine never looks at pixels, the plugin
also answers OCRmyPDF's rasterize hook with a token image instead of rendering each page.
"""

from __future__ import annotations

import json
from pathlib import Path

from ocrmypdf import hookimpl
from ocrmypdf.models.ocr_element import BoundingBox, OcrClass, OcrElement
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence
from PIL import Image

ENGINE_NAME = "lgd-precomputed"


def page_json(folder: Path, page_index: int) -> Path:
    """Where lgd leaves the words of the page with this 0-based index."""
    return folder / f"ocr-{page_index + 1:04d}.json"


def write_page_words(folder: Path, page_index: int, size: tuple[int, int], dpi: int, lines: list) -> None:
    """Save one page's words as [[line box, [[text, box, confidence], ...]], ...]."""
    page_json(folder, page_index).write_text(
        json.dumps({"size": list(size), "dpi": dpi, "lines": lines}), encoding="utf-8"
    )


def _tree(data: dict) -> tuple[OcrElement, str]:
    width, height = data["size"]
    lines = []
    text_lines = []
    for line_box, words in data["lines"]:
        children = [
            OcrElement(ocr_class=OcrClass.WORD, text=t, bbox=BoundingBox(*box), confidence=c / 100)
            for t, box, c in words
        ]
        lines.append(OcrElement(ocr_class=OcrClass.LINE, bbox=BoundingBox(*line_box), children=children))
        text_lines.append(" ".join(t for t, _, _ in words))
    page = OcrElement(
        ocr_class=OcrClass.PAGE, bbox=BoundingBox(0, 0, width, height), children=lines, dpi=data["dpi"]
    )
    return page, "\n".join(text_lines)


def _words_folder(options) -> Path:
    return Path(options.extra_attrs.get("lgd_words") or getattr(options, "lgd_words"))


class PrecomputedOcr(OcrEngine):
    @staticmethod
    def version() -> str:
        return "1"

    @staticmethod
    def creator_tag(options) -> str:
        return "lgd (Tesseract, one run per page)"

    def __str__(self) -> str:
        return "lgd precomputed OCR"

    @staticmethod
    def languages(options) -> set[str]:
        return set(options.languages)

    @staticmethod
    def get_orientation(input_file, options) -> OrientationConfidence:
        return OrientationConfidence(angle=0, confidence=0.0)  # lgd has already uprighted the page

    @staticmethod
    def generate_hocr(input_file, output_hocr, output_text, options) -> None:
        raise RuntimeError("the lgd engine only supports generate_ocr")

    @staticmethod
    def generate_pdf(input_file, output_pdf, output_text, options) -> None:
        raise RuntimeError("the lgd engine only supports generate_ocr")

    @staticmethod
    def supports_generate_ocr() -> bool:
        return True

    @staticmethod
    def generate_ocr(input_file, options, page_number: int = 0):
        path = page_json(_words_folder(options), page_number)
        return _tree(json.loads(path.read_text(encoding="utf-8")))


@hookimpl
def add_options(parser) -> None:
    parser.add_argument("--lgd-words", help="folder holding lgd's per-page OCR results")


@hookimpl
def get_ocr_engine(options):
    if options is not None and getattr(options, "ocr_engine", None) != ENGINE_NAME:
        return None
    return PrecomputedOcr()


@hookimpl
def rasterize_pdf_page(
    input_file, output_file, raster_device, raster_dpi, pageno, page_dpi, rotation,
    filter_vector, stop_on_soft_error, options, use_cropbox,
):
    if options is None or getattr(options, "ocr_engine", None) != ENGINE_NAME:
        return None
    dpi = (float(raster_dpi[0]), float(raster_dpi[1])) if raster_dpi else None
    Image.new("L", (8, 8), 255).save(output_file, dpi=dpi)
    return output_file
