"""Errors of the coded-record readers, each with a stable short code and a sentence that says what to do."""

from __future__ import annotations

from enum import StrEnum


class RecordErrorCode(StrEnum):
    """Stable short codes for `--json` and the audit trail; never rename a released value."""

    unknown_format = "unknown_format"
    ambiguous_format = "ambiguous_format"
    malformed_xml = "malformed_xml"
    malformed_json = "malformed_json"
    malformed_csv = "malformed_csv"
    hostile_xml = "hostile_xml"
    not_a_record = "not_a_record"
    too_large = "too_large"
    unreadable = "unreadable"
    empty = "empty"
    no_patient = "no_patient"
    nhs_mismatch = "nhs_mismatch"


class RecordError(Exception):
    """A coded record that cannot be read (or used) as given; `code` is for machines, `message` for people."""

    def __init__(self, code: RecordErrorCode | str, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.code = RecordErrorCode(code)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"


class UnknownRecordFormat(RecordError):
    """No reader recognised the file; `tried` names every format that was considered."""

    def __init__(self, message: str, tried: tuple[str, ...]) -> None:
        super().__init__(RecordErrorCode.unknown_format, message)
        self.tried = tried
