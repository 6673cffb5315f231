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
from dataclasses import dataclass, replace
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


@dataclass(frozen=True, slots=True)
class WholeRecord:
    """Why a print run holds the whole record: the pack of paper-only pages would not be shorter.

    Handed to the cover, which says so; `omittable` is how many pages reconciliation would have left out.
    """

    pack_sheets: int
    omittable: int


@dataclass(frozen=True, slots=True)
class PrintChoice:
    """Which print run `lgd pack --format print` made, and the sheets of each candidate (double-sided)."""

    printed: str  # "minimal_pack" or "whole_record"
    minimal_pack_sheets: int
    paper_record_sheets: int  # every digitised page printed bare, no cover: the floor of any print run
    whole_record_sheets: int | None = None  # the whole record with its cover; None when not built

    def to_json(self) -> dict[str, int | str | None]:
        return {"printed": self.printed, "sheets_minimal_pack": self.minimal_pack_sheets,
                "sheets_whole_record": self.whole_record_sheets, "sheets_paper_record": self.paper_record_sheets}

    @property
    def line(self) -> str:
        if self.printed == "whole_record":
            return (f"printed the whole record ({self.whole_record_sheets} sheets with its cover): a pack of only the "
                    f"paper-only pages would take {self.minimal_pack_sheets} sheets, no fewer (the bare paper record: "
                    f"{self.paper_record_sheets}); give --keep-minimal to print that pack instead")
        if self.whole_record_sheets is None:
            return (f"printed the minimal pack: {self.minimal_pack_sheets} sheets against "
                    f"{self.paper_record_sheets} for the bare paper record")
        return (f"printed the minimal pack ({self.minimal_pack_sheets} sheets); the whole record with its cover would "
                f"take {self.whole_record_sheets}")


def whole_record_may_be_shorter(pack_sheets: int, paper_record_sheets: int) -> bool:
    """Pure: whether to build the whole-record print at all. It can only win when the pack is no shorter than
    the bare paper record (the whole record with its cover takes at least that many sheets)."""
    return pack_sheets >= paper_record_sheets


def choose_print(pack_sheets: int, paper_record_sheets: int, whole_sheets: int | None) -> PrintChoice:
    """Pure: the whole record when it takes no more sheets than the pack (same paper, nothing left out), else the pack."""
    printed = "whole_record" if whole_sheets is not None and whole_sheets <= pack_sheets else "minimal_pack"
    return PrintChoice(printed, pack_sheets, paper_record_sheets, whole_sheets)


def whole_plan(plan: PackPlan) -> PackPlan:
    """Pure: `plan` with every page included, for printing the whole record."""
    return replace(plan, pages=tuple(replace(p, decision="include") for p in plan.pages))
