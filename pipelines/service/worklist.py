"""Adding leavers to the worklist, one by one or from a CSV, all or nothing.

CSV columns (a header row; names as PCSE and practice staff write them are accepted):
    nhs_number       the patient's NHS number (Modulus 11 checked; must be in the archive)
    ods_code         the destination practice's ODS code (A81001)
    movement_ref     optional: PCSE Online's movement reference
    coded            optional: the patient's coded-record file, relative to the CSV's folder
Every row is checked (and every coded record read) before anything is written; a bad row is
reported by its line number, and then nothing is added.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from index import Catalogue
from index import leavers as store
from pipelines.errors import ExitCode, LgdError
from pipelines.identity import nhs_number_valid, normalise_nhs_number

from .access import Permission, Who
from .leavers import Leaver, State, check_movement_ref, check_ods, get

MAX_ROWS = 5000  # a practice's leavers for a long while; more is a mistake (a whole list of patients)
_COLUMNS = {
    "nhs_number": ("nhs_number", "nhs_no", "nhs", "nhs_no."),
    "ods_code": ("ods_code", "ods", "destination", "destination_ods", "practice_code", "gp_practice_code"),
    "movement_ref": ("movement_ref", "movement_reference", "pcse_ref", "reference"),
    "coded": ("coded", "coded_file", "coded_record", "coded_record_file"),
}


@dataclass(frozen=True, slots=True)
class NewRow:
    line: int  # in the CSV (0: added one by one)
    nhs_number: str
    ods_code: str
    movement_ref: str | None = None
    coded_file: Path | None = None


def add_rows(catalogue: Catalogue, who: Who, rows: list[NewRow]) -> list[Leaver]:
    """Check every row, then add them all in one transaction and store their coded records; or raise, adding none."""
    from pipelines.records.command import check_coded_file, import_coded_file

    who.require(Permission.include)  # whoever may send paper may list a leaver (clerk, clinician, admin)
    if not rows:
        raise LgdError("no leavers to add", ExitCode.usage, "no_leavers")
    if len(rows) > MAX_ROWS:
        raise LgdError(f"{len(rows)} leavers at once is more than {MAX_ROWS}; split the list", ExitCode.usage,
                       "too_many_leavers")
    problems, new, records, seen = [], [], [], {}
    for row in rows:
        where = f"line {row.line}: " if row.line else ""
        try:
            nhs = normalise_nhs_number(row.nhs_number or "")
            if not nhs_number_valid(nhs):
                raise LgdError(f"{(row.nhs_number or '')[:20]!r} is not a valid NHS number (10 digits, Modulus 11 check)")
            if catalogue.patient(nhs) is None or not catalogue.documents(nhs, status="ok"):
                raise LgdError(f"NHS number {nhs} has no digitised record in this archive")
            if nhs in seen:
                raise LgdError(f"NHS number {nhs} is listed twice (line {seen[nhs]} too)")
            seen[nhs] = row.line
            new.append(store.NewLeaver(nhs, check_ods(row.ods_code), check_movement_ref(row.movement_ref)))
            if row.coded_file is not None:
                records.append(check_coded_file(row.coded_file, nhs))
        except LgdError as e:
            problems.append(f"{where}{e}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise LgdError(f"nothing was added: {shown}", ExitCode.usage, "bad_leavers")
    try:
        ids = store.add_leavers(catalogue, new, actor=who.name, state=State.awaiting_coded_record.value,
                                audit_detail=who.audit_detail())
    except ValueError as e:
        raise LgdError(f"nothing was added: {e}", ExitCode.partial, "already_listed", 409) from None
    # The leavers are listed first: a coded record that then cannot be stored (a full disk) leaves
    # its leaver truthfully "awaiting coded record", never a record stored for nobody's transfer.
    for checked in records:
        import_coded_file(catalogue, checked, actor=who.name)
    return [get(catalogue, who, i) for i in ids]


def read_csv(text: str, base: Path | None) -> list[NewRow]:
    """The rows of a leavers CSV; `base` is the folder coded-record paths are relative to (None: an upload, no paths)."""
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        header = reader.fieldnames or []
    except csv.Error as e:
        raise LgdError(f"not a readable CSV ({e})", ExitCode.usage, "bad_csv") from None
    keys = {h.strip().lower().replace(" ", "_").replace("-", "_"): h for h in header if h}
    column = {name: next((keys[a] for a in aliases if a in keys), None) for name, aliases in _COLUMNS.items()}
    if column["nhs_number"] is None or column["ods_code"] is None:
        raise LgdError("the CSV needs a header with nhs_number and ods_code columns (and optionally movement_ref, "
                       "coded)", ExitCode.usage, "bad_csv")
    rows = []
    try:
        for record in reader:
            line = reader.line_num
            if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
                continue  # a blank line at the end of a spreadsheet export
            coded = (record.get(column["coded"]) or "").strip() if column["coded"] else ""
            if coded and base is None:
                raise LgdError(f"line {line}: a coded-record file ({coded[:60]!r}) cannot come with an uploaded list; "
                               "store coded records with lgd coded import, or add the list with lgd leavers import",
                               ExitCode.usage, "bad_csv")
            rows.append(NewRow(line, record.get(column["nhs_number"]) or "", record.get(column["ods_code"]) or "",
                               record.get(column["movement_ref"]) if column["movement_ref"] else None,
                               (base / coded) if coded and base is not None else None))
    except csv.Error as e:
        raise LgdError(f"line {reader.line_num}: not a readable CSV ({e})", ExitCode.usage, "bad_csv") from None
    if not rows:
        raise LgdError("the CSV lists no leavers", ExitCode.usage, "no_leavers")
    return rows


def import_csv(catalogue: Catalogue, who: Who, text: str, base: Path | None) -> list[Leaver]:
    return add_rows(catalogue, who, read_csv(text, base))
