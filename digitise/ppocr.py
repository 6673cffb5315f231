"""PP-OCRv6 "small" through rapidocr and onnxruntime: the engine for hand-writing.

Tesseract is built for print and reads about three quarters of the words on the
generated hand-written cards; PP-OCRv6 reads over nine in ten (issue 10). Its detection
and recognition models ship inside the rapidocr wheel, so nothing is downloaded at run
time. One model per worker process, loaded on the first page (like `TesseractEngine`'s
tesserocr API), with onnxruntime pinned to one thread so `--jobs N` means N cores.

rapidocr returns one box per detected line (a quadrilateral) and, with word boxes on,
a box per word. A word box is used only when the line's word boxes spell the line's
words one for one, lie inside the page, are not empty and run left to right; otherwise
the line's box is split between its words by character count.
"""

from __future__ import annotations

import logging
from importlib import metadata

from PIL import Image

from digitise.errors import MissingDependency
from digitise.lines import Look, crop_line, placed
from digitise.model import Box, PageText, Word
from digitise.script import guarded

log = logging.getLogger(__name__)

# Settings measured on generated hand-written cards at 300 dpi (issue 10): detection on the
# page shrunk to a longest side of 544 pixels, with lower thresholds and a tighter unclip,
# reads more words than rapidocr's defaults (which detect at full size) at a fraction of the
# CPU. On 26 cards (dkg / femkeklaver / humor-sans / typed) detection at 960 read
# 0.915/0.660/0.931/0.953 at 1.51 CPU-s/page, at 736 0.924/0.667/0.950/0.960 at 1.15, at 544
# 0.918/0.687/0.961/0.956 at 0.98; on 37 result slips at 200 dpi 736 read 0.989 and 544 0.995.
# On 390 pages with `--engine auto`, 544 read as 736 did (hand-written cards 0.915, slips
# 0.992, envelopes 0.927 against 0.915) for 15% less CPU. Print smaller than about 6.5 pt on a
# 200 dpi page is lost at 544; route.fill keeps Tesseract's confident reading of it.
# Recognition one line at a time (batch 1) costs about 16% less than rapidocr's batches of 6,
# which pad every line to the widest, and held onnxruntime's peak memory at 663 MB against
# 995 MB on the same 390 pages. lgd turns every page upright before OCR, so the 0/180 angle
# classifier would only cost time.
SETTINGS = {
    "Global.use_cls": False,
    "Global.return_word_box": True,
    "Global.log_level": "error",
    "Det.limit_side_len": 544,
    "Det.limit_type": "max",
    "Det.thresh": 0.2,
    "Det.box_thresh": 0.4,
    "Det.unclip_ratio": 1.4,
    "Rec.rec_batch_num": 1,
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
}
MODEL = "PP-OCRv6 small"
# A line read alone (`read_line`) gets this much white margin so detection sees its edges.
LINE_MARGIN = 16


class PpOcrEngine:
    """PP-OCRv6 small (detection and recognition) on the CPU, one loaded model per worker process."""

    name = "ppocr"

    def __init__(self, languages: str = "eng") -> None:
        # The recogniser's character set is fixed (Latin, digits and CJK); `languages` is
        # accepted so every engine is built alike, and otherwise not used.
        self._languages = languages
        self._ocr = None

    def _model(self):
        if self._ocr is None:
            try:
                from rapidocr import RapidOCR
            except ImportError as e:  # pragma: no cover - depends on the machine
                raise MissingDependency("rapidocr", "rapidocr and onnxruntime (pip install -e .)", str(e)) from e
            self._ocr = RapidOCR(params=dict(SETTINGS))
        return self._ocr

    def version(self) -> str:
        try:
            return f"{metadata.version('rapidocr')} {MODEL}"
        except metadata.PackageNotFoundError as e:  # pragma: no cover
            raise MissingDependency("rapidocr", "rapidocr and onnxruntime (pip install -e .)", str(e)) from e

    def read(self, image: Image.Image) -> PageText:
        return PageText(self._words(image), engine=f"ppocr {self.version()}")

    def read_line(self, image: Image.Image, box: Box, look: Look = Look()) -> PageText:
        """The line inside `box`, detected and read on its own (with a white margin), in page pixels."""
        crop, _ = crop_line(image, box, look)
        framed = Image.new("L", (crop.width + 2 * LINE_MARGIN, crop.height + 2 * LINE_MARGIN), 255)
        framed.paste(crop, (LINE_MARGIN, LINE_MARGIN))
        words = [Word(w.text, _clip((w.box[0] - LINE_MARGIN, w.box[1] - LINE_MARGIN,
                                     w.box[2] - LINE_MARGIN, w.box[3] - LINE_MARGIN), crop.width, crop.height),
                      w.confidence, w.line, w.block)
                 for w in self._words(framed)]
        return placed([w for w in words if w.box[2] > w.box[0] and w.box[3] > w.box[1]], box, look.scale)

    def _words(self, image: Image.Image) -> tuple[Word, ...]:
        import numpy as np

        rgb = image if image.mode == "RGB" else image.convert("RGB")
        result = self._model()(np.asarray(rgb))
        if getattr(result, "boxes", None) is None or result.txts is None:
            return ()
        width, height = image.size
        found = []
        word_results = result.word_results or ()
        for i, (quad, text, score) in enumerate(zip(result.boxes, result.txts, result.scores, strict=True)):
            line_box = _clip(_bounds(quad), width, height)
            if not text.strip() or line_box[2] <= line_box[0] or line_box[3] <= line_box[1]:
                continue
            found.append((line_box, text, float(score), word_results[i] if i < len(word_results) else ()))
        # Reading order: top to bottom, then left to right (rapidocr sorts nearly so already).
        found.sort(key=lambda f: (f[0][1], f[0][0]))
        words: list[Word] = []
        for line, (line_box, text, score, parts) in enumerate(found):
            words.extend(_line_words(line_box, text, score, parts, width, height, line))
        return tuple(words)


def _bounds(quad) -> Box:
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return (int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys))))


def _clip(box: Box, width: int, height: int) -> Box:
    return (max(0, min(box[0], width)), max(0, min(box[1], height)),
            max(0, min(box[2], width)), max(0, min(box[3], height)))


def _line_words(line_box: Box, text: str, score: float, parts, width: int, height: int, line: int) -> list[Word]:
    """The line's words, on rapidocr's word boxes when they check out, else on shares of the line box."""
    tokens = text.split()
    checked = _checked_word_boxes(tokens, parts, width, height)
    if checked is None:
        checked = [(t, b, score) for t, b in zip(tokens, split_box(line_box, tokens), strict=True)]
    return [_word(t, b, c, line) for t, b, c in checked]


def _word(token: str, box: Box, score: float, line: int) -> Word:
    """One read word: rapidocr's 0-1 score as lgd's 0-100 confidence; a word read with characters
    no English record holds (the recogniser's CJK, kana, IPA) kept, marked and made uncertain
    (`digitise.script`)."""
    text, conf = guarded(token, round(100 * score, 1))
    return Word(text, box, conf, line)


def _checked_word_boxes(tokens: list[str], parts, width: int, height: int) -> list[tuple[str, Box, float]] | None:
    """rapidocr's word boxes for `tokens`, or None when any of them cannot be trusted.

    Widely spaced capitals ("M ED ICAL") come back as several parts for one word, and a
    box can stray outside the page: the words must match one for one, every box must lie
    (after rounding) inside the page with an area, and the boxes must run left to right.
    """
    if not parts or len(parts) != len(tokens):
        return None
    out: list[tuple[str, Box, float]] = []
    last_x = -1
    for token, part in zip(tokens, parts, strict=True):
        part_text, part_score, quad = part
        if quad is None or part_text.strip() != token:
            return None
        x0, y0, x1, y1 = _bounds(quad)
        if x0 < -1 or y0 < -1 or x1 > width + 1 or y1 > height + 1:
            return None
        box = _clip((x0, y0, x1, y1), width, height)
        if box[2] <= box[0] or box[3] <= box[1] or box[0] < last_x:
            return None
        last_x = box[0]
        out.append((token, box, float(part_score)))
    return out


def split_box(box: Box, tokens: list[str]) -> list[Box]:
    """`box` cut left to right into one box per token, each as wide as its share of the characters.

    The space between two words counts as one character, so the boxes leave gaps where the
    spaces are.
    """
    x0, y0, x1, y1 = box
    chars = sum(len(t) for t in tokens) + max(0, len(tokens) - 1)
    per = (x1 - x0) / max(1, chars)
    out: list[Box] = []
    at = 0
    for token in tokens:
        left = x0 + round(at * per)
        right = max(left + 1, x0 + round((at + len(token)) * per))
        out.append((left, y0, min(x1, right) if min(x1, right) > left else left + 1, y1))
        at += len(token) + 1
    return out
