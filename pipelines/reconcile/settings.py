"""The thresholds reconciliation decides by, as one typed object stored with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Bump when a rule changes what may be omitted, so stored decisions say which rules made them.
RULES_VERSION = 1


@dataclass(frozen=True, slots=True)
class Settings:
    """Below either confidence the OCR reading is not trusted and the page is sent."""

    entry_min_confidence: float = 60.0  # mean Tesseract word confidence of an entry, 0-100
    page_min_confidence: float = 60.0  # mean confidence of the page's words
    rules_version: int = RULES_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
