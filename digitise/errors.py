"""Why a scanned document could not be digitised: a stable short code for machines and a sentence for people."""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    empty_file = "empty_file"
    truncated = "truncated"
    corrupt_image = "corrupt_image"
    encrypted_pdf = "encrypted_pdf"
    decompression_bomb = "decompression_bomb"
    not_a_scan = "not_a_scan"
    unknown_format = "unknown_format"
    too_many_pages = "too_many_pages"
    ocr_failed = "ocr_failed"
    pdfa_failed = "pdfa_failed"
    missing_dependency = "missing_dependency"


class DigitiseError(Exception):
    """A document that cannot be digitised; `code` is stable, the message says what to do."""

    code: Code = Code.corrupt_image

    def __init__(self, message: str, code: Code | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnreadableInput(DigitiseError):
    """The input file is not a usable scan (empty, truncated, corrupt, encrypted, unknown)."""


class OcrFailed(DigitiseError):
    code = Code.ocr_failed


class PdfaFailed(DigitiseError):
    code = Code.pdfa_failed


class MissingDependency(DigitiseError):
    code = Code.missing_dependency

    def __init__(self, what: str, package: str, detail: str = "") -> None:
        super().__init__(
            f"{what} is not available ({detail.strip() or 'not found'}); install the Debian "
            f"package {package}, or run scripts/setup.sh which installs everything lgd needs"
        )
