"""The `print` format: duplex-friendly layout (every section starts on a recto) and the sheets it saves.

A printed pack is the pack PDF built with `build_pack_pdf(..., duplex=True)`: blank pages are
inserted so that the cover, the omitted-pages index, each source document and the coded
record each start on an odd (front) page, and a bundle can be split by section without
tearing a sheet. `print_summary` then states how many sheets it takes against printing the
whole digitised record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .plan import PackPlan

if TYPE_CHECKING:  # document.py imports this module; only its type is needed here
    from .document import PackDocument


def sheets(pages: int, duplex: bool = True) -> int:
    """Sheets of paper to print `pages` pages: two pages a sheet when `duplex`, else one."""
    return math.ceil(pages / 2) if duplex else pages


def recto_padding(lengths: Sequence[int]) -> tuple[int, ...]:
    """Blank pages to put before each section so it starts on an odd page (1-based), given section lengths.

    Empty sections get no padding: they add no pages, so nothing of theirs needs a recto.
    """
    padding: list[int] = []
    count = 0
    for length in lengths:
        pad = 1 if length and count % 2 == 1 else 0
        padding.append(pad)
        count += pad + length
    return tuple(padding)


@dataclass(frozen=True, slots=True)
class PrintSummary:
    """Sheets for the pack against sheets for the whole record; `duplex` says which both figures assume."""

    duplex: bool
    pack_pages: int  # every page of the pack PDF, blanks, cover, index and coded record included
    blank_pages: int
    full_record_pages: int  # every digitised page of the patient
    electronic_pages: int = 0
    gp_print_pages: int = 0  # the estimate of printing the coded record from the GP system instead

    @property
    def pack_sheets(self) -> int:
        return sheets(self.pack_pages, self.duplex)

    @property
    def full_record_sheets(self) -> int:
        return sheets(self.full_record_pages, self.duplex)

    @property
    def saved_sheets(self) -> int:
        """Sheets saved against printing the full paper record (negative when the pack takes more)."""
        return self.full_record_sheets - self.pack_sheets

    @property
    def line(self) -> str:
        sided = "double-sided" if self.duplex else "single-sided"
        text = (
            f"Printing this pack takes {self.pack_sheets} sheet(s) {sided} ({self.pack_pages} pages, "
            f"{self.blank_pages} of them blank); printing the full digitised record would take "
            f"{self.full_record_sheets} sheet(s) {sided} ({self.full_record_pages} pages): "
            f"{abs(self.saved_sheets)} sheet(s) {'saved' if self.saved_sheets >= 0 else 'more'}."
        )
        if self.electronic_pages:
            both = self.full_record_sheets + sheets(self.gp_print_pages, self.duplex)
            text += (
                f" The pack includes the coded record ({self.electronic_pages} pages); the full record plus a GP "
                f"system printout of the coded record (about {self.gp_print_pages} pages, an estimate) would take "
                f"about {both} sheet(s)."
            )
        return text


def print_summary(plan: PackPlan, pack: PackDocument) -> PrintSummary:
    """The sheets figures for a built pack; they assume duplex printing when the pack was laid out for it."""
    electronic = pack.electronic
    return PrintSummary(
        duplex=pack.duplex,
        pack_pages=pack.pages,
        blank_pages=pack.blank_pages,
        full_record_pages=plan.full_record_pages,
        electronic_pages=electronic.pages if electronic else 0,
        gp_print_pages=electronic.estimated_gp_print_pages if electronic else 0,
    )
