"""The `lgd coded show` and `lgd coded import` sub-commands: argument wiring, handlers and output."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from index import Catalogue
from index.coded import store_coded_record
from pipelines.actor import current_actor
from pipelines.cli_common import add_as_option
from pipelines.errors import ExitCode, LgdError
from pipelines.identity import nhs_number_valid, normalise_nhs_number

from .detect import READERS, read_record
from .errors import RecordError, RecordErrorCode
from .model import CodedRecord, date_text, record_to_json
from .systems import CTV3, READ_V2, SNOMED

# Same rule as pipelines.cli._archive; repeated because cli imports this module.
DEFAULT_ARCHIVE = "./lgd-archive"
_SHORT = {SNOMED: "SNOMED", READ_V2: "Read2", CTV3: "CTV3"}

EXIT_HELP = """exit codes:
  0    the record was read (show) or stored (import)
  1    the file was refused: not a coded record, malformed or hostile, or (import) its
       patient is not in the archive or does not match --patient; nothing was stored
  2    bad usage: no such file, bad --patient
  4    the archive cannot be used: missing, read-only, locked or damaged"""

FORMATS_HELP = "formats, detected from content:\n" + "\n".join(f"  {r.name:18} {r.describe}" for r in READERS)


def _para(text: str) -> str:
    return textwrap.fill(text, width=88)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `coded show` and `coded import` to the `lgd` command's sub-parsers."""
    coded = subparsers.add_parser(
        "coded",
        help="read a coded electronic record (GP2GP, GP Connect FHIR, CSV); import it for a patient",
        description=_para("Read a patient's coded electronic record, or store it in the archive so "
                          "reconcile and pack runs can use it.") + "\n\n" + FORMATS_HELP,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = coded.add_subparsers(dest="coded_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print the format, NHS number and every coded event of a record file",
        description=_para(
            "Print what lgd reads from a coded record: its format, the patient's NHS number, and each coded "
            "event with its date (as precise as the record gives it: 2009, 2009-03 or 2009-03-15), type, code "
            "system, code, term and flags (degraded: the sender replaced the code with a Transfer-degraded "
            "code; absent_attachment: a document that was not sent). Nothing is written."
        ) + "\n\n" + FORMATS_HELP,
        epilog="examples:\n  lgd coded show PWTP2.xml\n  lgd coded show gpc-record.json --json > record.json\n\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("file", type=Path, metavar="FILE", help="the coded record (XML, JSON or CSV)")
    show.add_argument("--json", action="store_true", help='print one JSON document: {"format","nhs_number","events":[...],"warnings":[...]}')
    show.set_defaults(run=cmd_coded_show)

    imp = actions.add_parser(
        "import",
        help="store a coded record against its patient in the archive",
        description=_para(
            "Store a coded record in the archive against the patient it names, so later reconcile and pack "
            "runs need no --coded. The record's NHS number must be a patient already in the archive (digitise "
            "their Lloyd George record first); a CSV without an nhs_number column needs --patient. Importing "
            "again adds a new version; the latest is the one used."
        ) + "\n\n" + FORMATS_HELP,
        epilog="examples:\n  lgd coded import PWTP2.xml --archive /srv/lgd\n"
        "  lgd coded import summary.csv --patient 9434765919\n\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="the coded record (XML, JSON or CSV)")
    imp.add_argument("--archive", metavar="DIR", help=f"archive folder (default: $LGD_ARCHIVE or {DEFAULT_ARCHIVE})")
    add_as_option(imp)
    imp.add_argument("--patient", metavar="NHS", help="the patient's NHS number: required when the record names none, "
                     "and checked against the record when it does")
    imp.add_argument("--json", action="store_true", help="print one JSON document describing what was stored")
    imp.set_defaults(run=cmd_coded_import)


def _read(file: Path) -> CodedRecord:
    if not file.is_file():
        raise LgdError(f"no such file: {file}", ExitCode.usage, "usage")
    try:
        return read_record(file)
    except RecordError as e:
        raise LgdError(str(e), ExitCode.partial, e.code.value) from e


def cmd_coded_show(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    record = _read(args.file)
    if args.json:
        json.dump(record_to_json(record), stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return ExitCode.ok
    print(f"format      {record.format}", file=stdout)
    print(f"NHS number  {record.nhs_number or '(none)'}", file=stdout)
    print(f"sha256      {record.sha256}", file=stdout)
    print(f"events      {len(record.events)}\n", file=stdout)
    print(f"{'date':10}  {'type':12}  {'system':8}  {'code':18}  {'term':50}  flags", file=stdout)
    for e in record.events:
        term = e.display if e.display else e.text.split("\n")[0]
        system = _SHORT.get(e.system, e.system.removeprefix("urn:oid:"))
        print(
            f"{date_text(e.date, e.precision) or '-':10}  {e.type:12}  {system[:8]:8}  {e.code[:18]:18}  "
            f"{term[:50]:50}  {','.join(f for f in e.flags if f != 'translation_only')}",
            file=stdout,
        )
    for w in record.warnings:
        print(f"warning: {w}", file=stdout)
    return ExitCode.ok


def _patient(record: CodedRecord, given: str | None, name: str) -> str:
    """The archive patient to store `record` against, or LgdError saying why there is none."""
    if given is not None:
        given = normalise_nhs_number(given)
        if not nhs_number_valid(given):
            raise LgdError(f"--patient {given}: not a valid NHS number (10 digits, Modulus 11 check)", ExitCode.usage, "usage")
    if record.nhs_number is None and given is None:
        raise LgdError(
            f"{name} names no patient NHS number, so it cannot be filed; give --patient NHS if you are sure whose "
            "record it is", ExitCode.partial, RecordErrorCode.no_patient.value,
        )
    if record.nhs_number is not None and given is not None and record.nhs_number != given:
        raise LgdError(
            f"{name} is the record of NHS number {record.nhs_number}, not of --patient {given}; nothing was stored. "
            "Check that you have the right file for this patient.", ExitCode.partial, RecordErrorCode.nhs_mismatch.value,
        )
    nhs = record.nhs_number or given
    if not nhs_number_valid(nhs):
        raise LgdError(
            f"{name} names NHS number {nhs}, which fails the Modulus 11 check (a test or placeholder number); "
            "no archive patient can have it, so nothing was stored", ExitCode.partial, RecordErrorCode.nhs_mismatch.value,
        )
    return nhs


@dataclass(frozen=True)
class CheckedRecord:
    """A coded record file read and matched to its archive patient, not yet stored."""

    record: CodedRecord
    name: str  # the file's name, as the catalogue keeps it
    nhs_number: str


def check_coded_file(file: Path, patient: str | None) -> CheckedRecord:
    """Read `file` and find whose it is (`patient`: required when the record names none, else checked against it).

    Raises LgdError for an unreadable record or the wrong patient; nothing is stored.
    """
    record = _read(file)
    return CheckedRecord(record, file.name, _patient(record, patient, file.name))


def import_coded_file(catalogue: Catalogue, checked: CheckedRecord, *, actor: str) -> dict:
    """Store a checked record against its patient; the summary `lgd coded import --json` prints.

    What `lgd coded import` does, and what adding a leaver with a coded-record file does.
    """
    record, name, nhs = checked.record, checked.name, checked.nhs_number
    if catalogue.patient(nhs) is None:
        raise LgdError(
            f"{name} is the record of NHS number {nhs}, who is not in the archive {catalogue.archive}; nothing was "
            "stored. Digitise the patient's Lloyd George record first, or check --archive.",
            ExitCode.partial, RecordErrorCode.no_patient.value,
        )
    document = record_to_json(record)
    if record.nhs_number is None:
        document["nhs_number"] = nhs
        document["warnings"].append(f"NHS number {nhs} given with --patient at import")
    record_id = store_coded_record(catalogue, nhs, document, record.format, record.sha256, name, actor=actor)
    return {
        "patient": nhs,
        "coded": {"id": record_id, "format": record.format, "sha256": record.sha256, "events": len(record.events), "source": name},
        "warnings": list(record.warnings),
    }


def cmd_coded_import(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    checked = check_coded_file(args.file, args.patient)
    archive = Path(args.archive or os.environ.get("LGD_ARCHIVE") or DEFAULT_ARCHIVE).resolve()
    with Catalogue.open(archive, create=False) as catalogue:
        summary = import_coded_file(catalogue, checked, actor=current_actor())
    coded = summary["coded"]
    if args.json:
        json.dump(summary, stdout, indent=2)
        stdout.write("\n")
    else:
        print(f"stored {coded['source']} ({coded['format']}, {coded['events']} events) for NHS number "
              f"{summary['patient']} as coded record {coded['id']}", file=stdout)
        for w in summary["warnings"]:
            print(f"warning: {w}", file=stdout)
    return ExitCode.ok
