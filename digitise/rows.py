"""Groups a page's words into visual rows, the unit every page reader (cards, letters, result slips) works on."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from digitise.dates import DateMatch
from digitise.model import Box, DatePrecision, Entry, Word, union

# Words join a row when their vertical centre is within this fraction of the page's
# median word height of the row's centre. Handwriting wobbles a few pixels and tall
# misread boxes stick out, but card and letter lines are at least ~1.5 heights apart.
ROW_TOLERANCE = 0.6
# A ruled line (the date column divider, row rules) or a speck of dust read as a "word";
# a lone "-" is kept, as GPs use it ("erythromycin - D&V").
RULE_ONLY = re.compile(r"^(?:[|_—–=~¦'`.,:;]+|[|_\-—–=~¦]{2,})$")


@dataclass(frozen=True, slots=True)
class Row:
    """Words that sit on one visual line, left to right."""

    words: tuple[Word, ...]

    @property
    def centre(self) -> float:
        return statistics.mean((w.box[1] + w.box[3]) / 2 for w in self.words)

    @property
    def box(self) -> Box:
        return union([w.box for w in self.words])

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def centre_y(w: Word) -> float:
    return (w.box[1] + w.box[3]) / 2


def rows(words: tuple[Word, ...] | list[Word]) -> tuple[Row, ...]:
    """Group words into visual rows by vertical centre, ignoring the engine's line/block split.

    On cards Tesseract often reads the date column as one block and the notes as another,
    so its line numbers put a date and its notes far apart; geometry does not.
    """
    if not words:
        return ()
    tolerance = ROW_TOLERANCE * statistics.median(w.box[3] - w.box[1] for w in words)
    groups: list[list[Word]] = []
    centres: list[float] = []
    for w in sorted(words, key=centre_y):
        cy = centre_y(w)
        if groups and abs(cy - centres[-1]) <= tolerance:
            groups[-1].append(w)
            centres[-1] = statistics.mean(centre_y(x) for x in groups[-1])
        else:
            groups.append([w])
            centres.append(cy)
    return tuple(Row(tuple(sorted(g, key=lambda w: w.box[0]))) for g in groups)


def line_pitch(page_rows: tuple[Row, ...]) -> float:
    """The page's usual step from one row to the next: the lower quartile of the steps.

    Paragraph breaks and a signature's space are the larger steps; most steps of typed
    text are single line feeds. 0 for a page of fewer than two rows.
    """
    steps = sorted(b.centre - a.centre for a, b in zip(page_rows, page_rows[1:]))
    return steps[len(steps) // 4] if steps else 0.0


def substantive(words: tuple[Word, ...] | list[Word]) -> bool:
    """Whether the words hold at least two letters or digits between them: more than a speck."""
    return sum(c.isalnum() for w in words for c in w.text) >= 2


def entry_of(part: tuple[Row, ...] | list[Row], date: DateMatch | None) -> Entry | None:
    """Rows read as one entry: their words' text in reading order (ruled-line artefacts aside),
    the box of all their words, the words' mean confidence; None when no word holds a letter or digit.
    """
    words = [w for r in part for w in r.words]
    kept = [w for w in words if not RULE_ONLY.match(w.text)]
    if not any(c.isalnum() for w in kept for c in w.text):
        return None
    return Entry(
        date=date.date if date else None,
        date_text=date.text if date else "",
        text=" ".join(w.text for w in kept),
        box=union([w.box for w in words]),
        confidence=round(statistics.mean(w.confidence for w in kept), 1),
        precision=date.precision if date else DatePrecision.day,
    )
