"""OCR engines behind one small contract: read a page image, return every word with its box and confidence.

`TesseractEngine` keeps one Tesseract instance loaded for the life of the worker (through
tesserocr), so a page costs only recognition, not a process start and a model load, and a
second look at one line of a page (`read_line`) costs only that line;
`TesseractCliEngine` runs the `tesseract` program once per page (pytesseract), the way
most tools do; `PpOcrEngine` runs PP-OCRv6 (rapidocr, onnxruntime), which reads hand-writing far
better than Tesseract; `NullEngine` reads nothing, for image-only runs and for testing later
stages without OCR. Pick one by name from `ENGINES`.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from PIL import Image

from digitise.errors import MissingDependency, OcrFailed
from digitise.lines import DEFAULT_DPI, Look, crop_line as _crop, placed as _placed  # noqa: F401 (re-exported)
from digitise.model import Box, PageText, Word
from digitise.ppocr import PpOcrEngine

# Tesseract's OpenMP threads fight the worker processes for the same cores; one thread
# per worker is both faster overall and fair to the machine.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


class OcrEngine(Protocol):
    name: str

    def version(self) -> str: ...

    def read(self, image: Image.Image) -> PageText: ...

    def read_line(self, image: Image.Image, box: Box, look: Look = Look()) -> PageText:
        """The one line of text inside `box` of `image`, read on its own; boxes in `image`'s pixels."""
        ...


# Where Debian, Ubuntu and Fedora put Tesseract's language data, newest first.
TESSDATA_FOLDERS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
                    "/usr/share/tessdata", "/usr/local/share/tessdata")


@functools.lru_cache(maxsize=1)
def tessdata() -> str:
    """The folder of Tesseract's language data: $TESSDATA_PREFIX, else where the `tesseract` program
    says, else a known system folder.

    A tesserocr wheel from PyPI bundles its own libtesseract, which looks for the data in "./";
    asking the installed program finds the data the system's Tesseract uses.
    """
    if os.environ.get("TESSDATA_PREFIX"):
        return os.environ["TESSDATA_PREFIX"]
    try:
        listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""  # no tesseract program: the known folders below
    m = re.search(r'"([^"]+)"', listed.splitlines()[0]) if listed else None
    if m and Path(m.group(1)).is_dir():
        return m.group(1)
    return next((f for f in TESSDATA_FOLDERS if Path(f).is_dir()), TESSDATA_FOLDERS[0])


def languages_installed() -> frozenset[str]:
    """The language codes whose data files are in `tessdata()`."""
    return frozenset(p.stem for p in Path(tessdata()).glob("*.traineddata"))


class TesseractEngine:
    """Tesseract through its C++ API (tesserocr): one loaded model per worker process."""

    name = "tesseract"

    def __init__(self, languages: str = "eng", psm: int = 3) -> None:
        try:
            import tesserocr
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise MissingDependency(
                "tesserocr", "libtesseract-dev (then reinstall lgd)", str(e)
            ) from e
        self._tesserocr = tesserocr
        self._languages = languages
        self._psm = psm
        self._api = None

    def _ocr_api(self):
        if self._api is None:
            try:
                self._api = self._tesserocr.PyTessBaseAPI(path=tessdata(), lang=self._languages, psm=self._psm)
            except RuntimeError as e:
                raise MissingDependency(
                    f"tesseract language data '{self._languages}' (looked in {tessdata()})", "tesseract-ocr-eng", str(e)
                ) from e
        return self._api

    def version(self) -> str:
        return self._tesserocr.tesseract_version().split()[1]

    def read(self, image: Image.Image) -> PageText:
        api = self._ocr_api()
        api.SetPageSegMode(self._psm)
        api.SetImage(image)
        if not api.Recognize():
            raise OcrFailed("Tesseract could not recognise the page image")
        words = self._words(api)
        api.Clear()
        return PageText(tuple(words), engine=f"tesseract {self.version()}")

    def read_line(self, image: Image.Image, box: Box, look: Look = Look()) -> PageText:
        """One line, as Tesseract's single-line mode reads it, through the same loaded model.

        The crop goes in as raw pixels with its resolution: no encoding, and no process.
        """
        crop, dpi = _crop(image, box, look)
        api = self._ocr_api()
        api.SetPageSegMode(self._tesserocr.PSM.SINGLE_LINE)
        api.SetImageBytes(crop.tobytes(), crop.width, crop.height, 1, crop.width)
        api.SetSourceResolution(dpi)
        if not api.Recognize():
            raise OcrFailed(f"Tesseract could not recognise the line at {box}")
        words = self._words(api)
        api.Clear()
        return _placed(words, box, look.scale)

    def _words(self, api) -> list[Word]:
        tr = self._tesserocr
        words: list[Word] = []
        line = block = -1
        iterator = api.GetIterator()
        for r in tr.iterate_level(iterator, tr.RIL.WORD):
            if r.IsAtBeginningOf(tr.RIL.BLOCK):
                block += 1
            if r.IsAtBeginningOf(tr.RIL.TEXTLINE):
                line += 1
            try:
                text = r.GetUTF8Text(tr.RIL.WORD)
            except RuntimeError:  # tesserocr's way of saying this element holds no text
                continue
            box = r.BoundingBox(tr.RIL.WORD)
            if not text or not text.strip() or box is None:
                continue
            words.append(Word(text.strip(), tuple(box), float(r.Confidence(tr.RIL.WORD)), line, block))
        return words

class TesseractCliEngine:
    """The `tesseract` program, one process per page (pytesseract): the reference route."""

    name = "tesseract-cli"

    def __init__(self, languages: str = "eng", psm: int = 3) -> None:
        import pytesseract

        self._pt = pytesseract
        self._config = f"--psm {psm}"
        self._languages = languages

    def version(self) -> str:
        try:
            return str(self._pt.get_tesseract_version())
        except self._pt.TesseractNotFoundError as e:
            raise MissingDependency("tesseract", "tesseract-ocr", str(e)) from e

    def read(self, image: Image.Image) -> PageText:
        return PageText(self._read(image, self._config), engine=f"tesseract-cli {self.version()}")

    def read_line(self, image: Image.Image, box: Box, look: Look = Look()) -> PageText:
        crop, dpi = _crop(image, box, look)
        return _placed(list(self._read(crop, f"--psm 7 --dpi {dpi}")), box, look.scale)

    def _read(self, image: Image.Image, config: str) -> tuple[Word, ...]:
        pt = self._pt
        try:
            data = pt.image_to_data(image, lang=self._languages, config=config, output_type=pt.Output.DICT)
        except pt.TesseractError as e:
            raise OcrFailed(f"tesseract failed: {e}") from e
        words: list[Word] = []
        lines: dict[tuple[int, int, int], int] = {}
        blocks: dict[int, int] = {}
        for i, text in enumerate(data["text"]):
            conf = float(data["conf"][i])
            if conf < 0 or not text.strip():
                continue
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            line = lines.setdefault(key, len(lines))
            block = blocks.setdefault(data["block_num"][i], len(blocks))
            x, y, w, h = data["left"][i], data["top"][i], data["width"][i], data["height"][i]
            words.append(Word(text.strip(), (x, y, x + w, y + h), conf, line, block))
        return tuple(words)

class NullEngine:
    """Reads no words. Pages come out image-only; every page is then flagged unreadable."""

    name = "none"

    def version(self) -> str:
        return "0"

    def read(self, image: Image.Image) -> PageText:
        return PageText((), engine="none")

    def read_line(self, image: Image.Image, box: Box, look: Look = Look()) -> PageText:
        return PageText((), engine="none")


ENGINES: Mapping[str, type] = MappingProxyType(
    {e.name: e for e in (TesseractEngine, TesseractCliEngine, PpOcrEngine, NullEngine)}
)
