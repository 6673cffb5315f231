"""The thresholds reconciliation decides by, as one typed object stored with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Bump when a rule changes what may be omitted, so stored decisions say which rules made them.
# A run's fingerprint (run.py) also covers the lexicon, vocabulary, dictionaries and lgd version.
# 3: a coded term outside the vocabulary may account for a whole sentence (H48); reactions read apart.
# 4: a result row needs the coded unit too, and one reading only; an analyte named on a slip's
#    request line is passed over when its row is covered (H43); coded values no longer take the
#    digits of their unit ("10*9/L") as values.
# 5: inflections of loaded words are loaded ("shoulders", "drooping"); more everyday clinical
#    words are loaded, and "cannot", "unable", "refuses", "boyfriend" are cues (H83).
# 6: a card is read word by word: only the reviewed narrative list and function words are
#    narrative there, not every English word the dictionary has (H84).
RULES_VERSION = 6


@dataclass(frozen=True, slots=True)
class Settings:
    """Below either confidence the OCR reading is not trusted and the page is sent."""

    entry_min_confidence: float = 60.0  # mean Tesseract word confidence of an entry, 0-100
    page_min_confidence: float = 60.0  # mean confidence of the page's words
    # A rescan is left out only if its text and its original's agree this closely (0-100).
    rescan_min_similarity: float = 90.0
    rescan_max_hash_distance: int = 6  # bits of perceptual hash between a page and its rescan
    rules_version: int = RULES_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
