"""How any OCR engine looks at one line of a page again: the `Look`, the crop it sees, and the way back to page pixels."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageFilter

from digitise.model import Box, PageText, Word

# A page without a resolution of its own is taken to be a scan at this many dots per inch.
DEFAULT_DPI = 300


@dataclass(frozen=True, slots=True)
class Look:
    """One way of looking at a line again: resampled by `scale`, smoothed by a Gaussian of `blur` pixels.

    Tesseract's misreadings of a hand change with the pixels it is given, while what was
    written does not: two looks that agree are better evidence than either alone.
    """

    scale: float = 1.0
    blur: float = 0.0

    def apply(self, image: Image.Image) -> Image.Image:
        if self.scale != 1.0:
            size = (max(1, round(image.width * self.scale)), max(1, round(image.height * self.scale)))
            image = image.resize(size, Image.Resampling.BICUBIC)
        if self.blur:
            image = image.filter(ImageFilter.GaussianBlur(self.blur))
        return image


def crop_line(image: Image.Image, box: Box, look: Look) -> tuple[Image.Image, int]:
    """The box's pixels as `look` sees them (greyscale), and their resolution."""
    dpi = image.info.get("dpi", (DEFAULT_DPI,))[0] or DEFAULT_DPI
    crop = look.apply(image.crop(box))
    return (crop if crop.mode == "L" else crop.convert("L")), max(1, round(float(dpi) * look.scale))


def placed(words: list[Word] | tuple[Word, ...], box: Box, scale: float) -> PageText:
    """Words read from a crop of `box` at `scale`, moved back into the page's pixels."""
    x, y = box[0], box[1]
    return PageText(tuple(
        Word(w.text, (x + round(w.box[0] / scale), y + round(w.box[1] / scale),
                      x + round(w.box[2] / scale), y + round(w.box[3] / scale)), w.confidence, w.line, w.block)
        for w in words
    ))
