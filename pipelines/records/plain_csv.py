"""Reader and writer for the plain CSV coded record: `date,system,code,display,type` (plus optional columns)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from .errors import RecordError, RecordErrorCode
from .events import make_event, patient_number
from .model import EVENT_TYPES, FLAGS, CodedEvent, CodedRecord, Coding, date_text, parse_date_text
from .systems import CTV3, READ_V2, SNOMED, from_fhir

NAME = "csv"
COLUMNS = ("date", "system", "code", "display", "type")
# Optional, in any order after the five: what `write` adds so a record survives a round trip.
EXTRA_COLUMNS = ("flags", "text", "source_ref", "nhs_number")
MAX_BYTES = 256 * 1024 * 1024

_ALIASES = {
    "snomed": SNOMED, "snomed ct": SNOMED, "snomedct": SNOMED, "sct": SNOMED,
    "read": READ_V2, "readv2": READ_V2, "read2": READ_V2, "read v2": READ_V2, "ctv3": CTV3, "read v3": CTV3,
}
_TYPE_ALIASES = {"immunization": "immunisation", "allergy-intolerance": "allergy", "condition": "problem"}
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _header(line: str) -> list[str]:
    return [c.strip().strip('"').strip().lower() for c in line.split(",")]


def sniff(head: bytes) -> int | None:
    """100 for exactly the five columns, 95 when optional columns follow them."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    columns = _header(first)
    if tuple(columns[:5]) != COLUMNS:
        return None
    return 100 if len(columns) == 5 else 95


def read(file: Path) -> CodedRecord:
    """Read the CSV into a CodedRecord.

    Dates are ISO text cut to their precision (2009, 2009-03, 2009-03-15) or empty; systems are URIs,
    OIDs or a short name (SNOMED, Read, CTV3); types are the CodedEvent types.

    Raises:
        RecordError: malformed_csv naming the line and column of the first bad value; too_large.
    """
    file = Path(file)
    if file.stat().st_size > MAX_BYTES:
        raise RecordError(RecordErrorCode.too_large, f"{file.name} is over {MAX_BYTES >> 20} MB")
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(RecordErrorCode.malformed_csv, f"{file.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from exc
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(rows, [])]
    if tuple(header[:5]) != COLUMNS:
        raise RecordError(RecordErrorCode.malformed_csv, f"{file.name} line 1: the header must start with {','.join(COLUMNS)}")
    events: list[CodedEvent] = []
    numbers: set[str] = set()
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise RecordError(RecordErrorCode.malformed_csv, f"{file.name} line {line}: {len(row)} values for {len(header)} columns", line=line)
        cells = dict(zip(header, [c.strip() for c in row] + [""] * (len(header) - len(row))))
        events.append(_event(cells, file.name, line))
        if cells.get("nhs_number"):
            numbers.add(cells["nhs_number"])
    if len(numbers) > 1:
        raise RecordError(
            RecordErrorCode.nhs_mismatch,
            f"{file.name} names more than one NHS number ({', '.join(sorted(numbers))}); one file must hold one patient",
        )
    if numbers:
        nhs, warnings = patient_number(numbers.pop(), file.name)
    else:
        nhs, warnings = None, [f"{file.name}: the CSV has no nhs_number column; give the patient with --patient"]
    if not events:
        warnings.append(f"{file.name}: no coded events")
    return CodedRecord(NAME, nhs, tuple(events), tuple(warnings), hashlib.sha256(data).hexdigest())


def _event(cells: dict[str, str], name: str, line: int) -> CodedEvent:
    def bad(column: str, why: str) -> RecordError:
        return RecordError(RecordErrorCode.malformed_csv, f"{name} line {line}, column {column}: {why}", line=line)

    raw_date = cells["date"]
    if raw_date and not _DATE.fullmatch(raw_date):
        raise bad("date", f"{raw_date!r} is not YYYY, YYYY-MM or YYYY-MM-DD (or empty)")
    try:
        when = parse_date_text(raw_date or None)
    except ValueError:
        raise bad("date", f"{raw_date!r} is not a real date") from None
    type_ = _TYPE_ALIASES.get(cells["type"].lower(), cells["type"].lower())
    if type_ not in EVENT_TYPES:
        raise bad("type", f"{cells['type']!r} is not one of {', '.join(sorted(EVENT_TYPES))}")
    system = _ALIASES.get(cells["system"].lower(), from_fhir(cells["system"])) if cells["system"] else ""
    if bool(system) != bool(cells["code"]):
        raise bad("system" if not system else "code", "give both system and code, or neither for an uncoded entry")
    flags = [f for f in cells.get("flags", "").split(";") if f]
    unknown = set(flags) - FLAGS
    if unknown:
        raise bad("flags", f"unknown flags {sorted(unknown)}")
    codings = [Coding(system, cells["code"], cells["display"])] if system else []
    # Derived flags are recomputed, so a round trip neither loses nor doubles them.
    kept = [f for f in flags if f not in ("translation_only", "degraded", "uncoded")]
    return make_event(
        codings, type_, when, source_ref=cells.get("source_ref") or f"line {line}", text=[cells.get("text", "")],
        flags=kept, display=cells["display"],
    )


def write(record: CodedRecord, file: Path) -> None:
    """Write `record` as CSV with the five columns and the optional ones, one row per event.

    Translations are not written: the plain CSV has one coding per row.
    """
    with open(file, "w", encoding="utf-8", newline="") as out:
        w = csv.writer(out)
        w.writerow(COLUMNS + EXTRA_COLUMNS)
        for e in record.events:
            w.writerow([
                date_text(e.date, e.precision) or "", e.system, e.code, e.display, e.type,
                ";".join(f for f in e.flags if f != "translation_only"), e.text, e.source_ref, record.nhs_number or "",
            ])
