"""Pick the reader for a coded-record file from its content: every reader scores the head, the highest wins."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import fhir_r4, fhir_stu3, gp2gp, plain_csv
from .errors import RecordError, RecordErrorCode, UnknownRecordFormat
from .model import CodedRecord

HEAD_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Reader:
    """One coded-record format: its name, a scorer of the file's first bytes and the reader proper."""

    name: str
    sniff: Callable[[bytes], int | None]
    read: Callable[[Path], CodedRecord]
    describe: str


READERS: tuple[Reader, ...] = (
    Reader(gp2gp.NAME, gp2gp.sniff, gp2gp.read, "GP2GP EHR Extract XML (RCMR_IN030000UK06 or EhrExtract)"),
    Reader(fhir_stu3.NAME, fhir_stu3.sniff, fhir_stu3.read, "GP Connect / CareConnect FHIR STU3 JSON"),
    Reader(fhir_r4.NAME, fhir_r4.sniff, fhir_r4.read, "FHIR R4 JSON"),
    Reader(plain_csv.NAME, plain_csv.sniff, plain_csv.read, "CSV with header date,system,code,display,type"),
)

# Files people will plausibly give by mistake, with what to give instead.
_HINTS = (
    (re.compile(rb"<(\w+:)?Envelope[\s>].*?(eb:Manifest|ebxml|urn:nhs:names:services:gp2gp)", re.S | re.I),
     "it is the ebXML envelope/manifest of a GP2GP message (it lists attachments, it holds no record); give the "
     "HL7 payload part instead (the file whose root is RCMR_IN030000UK06)"),
    (re.compile(rb"The file could not be included with the Electronic Record"),
     "it is the body of a GP2GP absent-attachment placeholder, not a coded record"),
    (re.compile(rb"^\s*\{"), "it is JSON but not a FHIR resource (no \"resourceType\")"),
    (re.compile(rb"^\s*<"), "it is XML but its root element is not RCMR_IN030000UK06 or EhrExtract"),
)


def detect(file: Path, readers: tuple[Reader, ...] = READERS) -> Reader:
    """The reader whose `sniff` scores the file's first 8 KB highest.

    Raises:
        RecordError: empty for an empty file; ambiguous_format when the best score is shared
            (for example FHIR JSON with no STU3 or R4 marker).
        UnknownRecordFormat: no reader recognised the file; the message lists the formats tried.
    """
    file = Path(file)
    with open(file, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head.strip().lstrip(b"\xef\xbb\xbf").strip():
        raise RecordError(RecordErrorCode.empty, f"{file.name} is empty; give the coded record file")
    scored = [(r.sniff(head), r) for r in readers]
    scored = sorted(((s, r) for s, r in scored if s is not None), key=lambda sr: -sr[0])
    tried = tuple(r.name for r in readers)
    if not scored:
        hint = next((why for pattern, why in _HINTS if pattern.search(head)), "")
        listing = "; ".join(f"{r.name} ({r.describe})" for r in readers)
        raise UnknownRecordFormat(
            f"{file.name} is not a coded record lgd can read{': ' + hint if hint else ''}. Formats tried: {listing}.",
            tried,
        )
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        tied = [r.name for s, r in scored if s == scored[0][0]]
        raise RecordError(
            RecordErrorCode.ambiguous_format,
            f"{file.name} could be read as {' or '.join(tied)} and nothing in its first {HEAD_BYTES} bytes decides "
            "which (for FHIR: no meta.profile, fhirVersion or version-specific element). Ask the sender which "
            "version it is.",
        )
    return scored[0][1]


def read_record(file: Path, readers: tuple[Reader, ...] = READERS) -> CodedRecord:
    """Detect the format of `file` and read it. Raises RecordError (see `detect` and each reader's `read`)."""
    file = Path(file)
    try:
        return detect(file, readers).read(file)
    except OSError as exc:
        raise RecordError(RecordErrorCode.unreadable, f"{file}: cannot be read ({exc.strerror or exc})") from exc
