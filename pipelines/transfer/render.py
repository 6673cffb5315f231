"""Shared page drawing for the pack's generated pages (cover, index, coded record, stamps) with fpdf2 and DejaVu.

Why fpdf2: OCRmyPDF 17 already depends on it (its own text renderer), so it adds nothing to
install; it is actively maintained, embeds TrueType subsets with a ToUnicode map (PDF/A needs
embedded fonts, and the cover's text must be extractable), breaks tables across pages, and its
output is deterministic once the creation date is fixed. reportlab would do the same job as an
extra dependency.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import pikepdf
from fpdf import FPDF

from pipelines.display import without_bidi
from pipelines.errors import ExitCode

from .plan import PackBuildError

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# Two styles only: fpdf2 parses each font file in full (about 0.15 s each), once per pack.
FONTS = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
FAMILY = "DejaVu"
A4 = (595.28, 841.89)  # points
MARGIN = 42.0  # 15 mm: inside every printer's unprintable edge
FOOTER_ROOM = 14.0  # points kept free above the bottom margin for the footer overlay
# fpdf2 stamps its creation time into the file; the pack's pages must not vary between builds.
FIXED_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
# Shown in place of a character the font cannot draw (DejaVu Sans has it): a visible gap, where
# fpdf2 on its own would drop the character and print a different name without a trace.
REPLACEMENT = "\ufffd"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def require_fonts(font_dir: Path = FONT_DIR) -> dict[str, Path]:
    """The DejaVu font files, or PackBuildError(missing_dependency) naming the package that provides them."""
    paths = {style: font_dir / name for style, name in FONTS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise PackBuildError(
            "missing_dependency",
            f"the DejaVu fonts a pack embeds are missing ({', '.join(missing)}); "
            "install fonts-dejavu-core (run scripts/setup.sh)",
            ExitCode.missing_dependency,
        )
    return paths


def nhs_spaced(nhs_number: str) -> str:
    """NHS numbers are shown 3-3-4: '999 212 8828'."""
    digits = "".join(ch for ch in nhs_number if ch.isdigit())
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 else nhs_number


def day_text(day: dt.date | None) -> str:
    """'03-Jul-1928': the NHS display form, which no reader can take for a US date."""
    return "not recorded" if day is None else f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def patient_line(name: str | None, nhs_number: str, born: dt.date | None) -> str:
    return f"{name or 'Name not recorded'}  ·  NHS {nhs_spaced(nhs_number)}  ·  born {day_text(born)}"


class Sheet(FPDF):
    """One A4 fpdf2 document (in points) holding every generated section of a pack, one after another.

    One document, so DejaVu is parsed once and embedded once for the whole pack. Footers are
    not drawn here: a section's 'page i of n' is only known once it is finished, so the pack
    adds footers afterwards as overlays (see stamp.py).
    """

    def __init__(self, fonts: dict[str, Path] | None = None) -> None:
        super().__init__(unit="pt", format="A4")
        self.set_creation_date(FIXED_TIME)
        for style, path in (fonts or require_fonts()).items():
            self.add_font(FAMILY, style, str(path))
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, MARGIN + FOOTER_ROOM)

    def normalize_text(self, text: str) -> str:
        """Every string fpdf2 draws or measures passes here: bidi controls go, undrawable characters show a mark.

        Names, sources and reasons come from outside lgd. A right-to-left override would make a
        name read in another order than it is stored; a character DejaVu Sans lacks (CJK, say)
        would vanish. Newlines stay: multi_cell breaks lines on them.
        """
        cmap = getattr(self.current_font, "cmap", None)
        text = without_bidi(super().normalize_text(text)).replace("\t", " ").replace("\r", "")
        if not cmap:
            return text
        return "".join(c if c == "\n" or (ord(c) in cmap and c.isprintable()) else REPLACEMENT for c in text)

    def begin(self) -> int:
        """Start a section on a new page; returns its first page's 0-based index."""
        self.add_page()
        self.set_text_color(0)
        return self.page - 1

    def pages_from(self, first: int) -> range:
        """The 0-based page indexes of the section that began at `first`."""
        return range(first, self.page)

    def heading(self, text: str, size: float = 14) -> None:
        self.set_font(FAMILY, "B", size)
        self.multi_cell(0, size * 1.3, text, align="L")
        self.ln(size * 0.4)

    def para(self, text: str, size: float = 9.5, style: str = "") -> None:
        self.set_font(FAMILY, style, size)
        self.multi_cell(0, size * 1.35, text, align="L")
        self.ln(size * 0.3)

    def pairs(self, rows: list[tuple[str, str]], label_width: float = 170, size: float = 9.5) -> None:
        """Label / value lines, the value wrapping under itself."""
        for label, value in rows:
            self.set_font(FAMILY, "B", size)
            y = self.get_y()
            self.multi_cell(label_width, size * 1.35, label, align="L")
            label_end = self.get_y()
            self.set_xy(MARGIN + label_width, y)
            self.set_font(FAMILY, "", size)
            self.multi_cell(0, size * 1.35, value, align="L")
            self.set_xy(MARGIN, max(self.get_y(), label_end) + 1)


def to_pikepdf(document: FPDF) -> pikepdf.Pdf:
    """fpdf2's bytes opened with pikepdf, for copying pages into the pack."""
    return pikepdf.open(io.BytesIO(bytes(document.output())))


@dataclass(frozen=True, slots=True)
class FittedText:
    text: str
    size: float


def fit(document: FPDF, text: str, width: float, size: float, smallest: float = 4.5) -> FittedText:
    """Shrink `text` to fit `width` (down to `smallest` points), then cut its middle with an ellipsis.

    The middle goes first because both ends of a source name matter (part prefix, NHS number, date).
    """
    while size > smallest:
        document.set_font(FAMILY, "", size)
        if document.get_string_width(text) <= width:
            return FittedText(text, size)
        size -= 0.25
    document.set_font(FAMILY, "", smallest)
    for keep in range(len(text) - 1, 7, -1):
        head = (keep + 1) // 2
        cut = text[:head] + "…" + text[len(text) - (keep - head):]
        if document.get_string_width(cut) <= width:
            return FittedText(cut, smallest)
    return FittedText(text[:8] + "…", smallest)


SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://read.info/readv2": "Read v2",
    "http://read.info/ctv3": "CTV3",
    "urn:oid:2.16.840.1.113883.2.1.6.9": "EMIS drug",
    "urn:oid:2.16.840.1.113883.2.1.6.3": "Egton",
}


def system_name(system: str) -> str:
    """A short name for a code system URI; unknown systems are shown as given."""
    return SYSTEM_NAMES.get(system, system or "no system")
