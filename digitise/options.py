"""The settings of one digitise run, validated once and then frozen."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from digitise.ocr import ENGINES

# `auto` is not an engine but a routing: Tesseract reads every page, PP-OCR re-reads
# hand-written ones (see digitise.route).
AUTO = "auto"
ENGINE_CHOICES = (*ENGINES, AUTO)
# What `lgd digitise` reads with unless told otherwise: hand-writing is most of a Lloyd George
# record, and Tesseract alone reads about three quarters of its words (README, "Two OCR engines").
DEFAULT_ENGINE = AUTO


@dataclass(frozen=True, slots=True)
class DigitiseOptions:
    engine: str = DEFAULT_ENGINE
    # Re-read the date cells of cards whose dates did not read (digitise.reread).
    reread_dates: bool = True
    # With --engine auto, settle PP-OCR's non-words on hand-written pages from Tesseract's reading
    # or the letters OCR confuses, against the caller's word list (digitise.settle).
    settle_words: bool = True
    languages: str = "eng"
    # Below this mean word confidence a page is re-checked for being upside down: on the
    # fixture set upright legible pages read at 66-96, upside-down ones at 24-35.
    recheck_orientation_below: float = 60.0
    # A page is a rescan of an earlier one only on all three counts below. Two scans of the
    # same page differ by at most this many bits of perceptual hash ...
    duplicate_distance: int = 6
    # ... and read alike: two letters on one hospital's template can be as close in hash
    # (seen: 77% text similarity) while rescans of one page read 89-97% alike.
    duplicate_min_text_similarity: float = 85.0
    # Both pages must read at this mean word confidence or better for their texts to be
    # compared at all; a page read worse (scrawl, faint pencil) is never taken for a rescan.
    duplicate_text_min_confidence: float = 60.0
    jpeg_quality: int = 70
    max_pixels: int = 60_000_000  # an A3 page at 600 dpi is ~70 Mpx in colour; refuse bigger
    max_pages: int = 2000
    today: dt.date = field(default_factory=dt.date.today)

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_CHOICES:
            raise ValueError(f"unknown OCR engine {self.engine!r}; choose one of {', '.join(ENGINE_CHOICES)}")
        if not 20 <= self.jpeg_quality <= 95:
            raise ValueError("jpeg_quality must be between 20 and 95")
        if self.duplicate_distance < 0:
            raise ValueError("duplicate_distance must not be negative")
