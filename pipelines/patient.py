"""`lgd patient reassign`: move a document filed under the wrong patient, re-index it, and audit the move."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from index import ArchiveStore, Catalogue, FullText
from index.moves import move_document
from pipelines.actor import current_actor, free_text
from pipelines.cli_common import add_archive_option, nhs_number_arg
from pipelines.display import printable
from pipelines.errors import ExitCode, LgdError
from pipelines.reindex import document_pages


def reassign(archive: Path, source: str, to_nhs: str, reason: str, *, from_nhs: str | None = None,
             actor: str | None = None) -> dict[str, object]:
    """Move the digitised document named `source` to patient `to_nhs`; what was done, as JSON-ready data.

    Both patients' reconciliations and packs stop being reused, because the pages each has
    changed (`ensure_reconciled` compares them); clinicians' overrides stay with the pages'
    former patient and are not carried over.
    """
    reason = free_text(reason, "--reason")
    actor = actor or current_actor()
    store = ArchiveStore(archive)
    with Catalogue.open(archive, create=False) as catalogue:
        matches = [d for d in catalogue.documents(status="ok") if d.source == source
                   and (from_nhs is None or d.nhs_number == from_nhs)]
        if not matches:
            raise LgdError(f"no digitised document is named {printable(source)!r}" +
                           (f" for NHS number {from_nhs}" if from_nhs else "") + "; see lgd search or lgd review",
                           ExitCode.usage, "no_document")
        if len(matches) > 1:
            owners = ", ".join(sorted({d.nhs_number or "?" for d in matches}))
            raise LgdError(f"{printable(source)!r} names documents of several patients ({owners}); say which with "
                           "--from NHS", ExitCode.usage, "ambiguous_document")
        (doc,) = matches
        if doc.nhs_number == to_nhs:
            raise LgdError(f"{printable(source)!r} is already filed under {to_nhs}", ExitCode.usage, "usage")
        assert doc.id is not None and doc.pdfa_path is not None
        old_pdf = store.path(doc.pdfa_path)
        new_path = store.put_pdf(to_nhs, old_pdf)  # copied first: the catalogue never names a missing file
        was = move_document(catalogue, doc.id, to_nhs, new_path, actor=actor, reason=reason)
        if not any(d.pdfa_path == doc.pdfa_path for d in catalogue.documents(status="ok")):
            old_pdf.unlink(missing_ok=True)
        moved = catalogue.document(doc.id)
        assert moved is not None
        with FullText.open(archive, create=False) as fulltext:
            fulltext.delete_document(doc.id)
            fulltext.add_pages(document_pages(catalogue, moved))
    return {"source": source, "document_id": doc.id, "from": was, "to": to_nhs, "pdfa": new_path, "reason": reason,
            "by": actor}


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    """Add `patient reassign` to the `lgd` parser."""
    p = sub.add_parser("patient", help="correct which patient a document is filed under (audited)",
                       description="Patient-level corrections of the archive.")
    actions = p.add_subparsers(dest="patient_command", metavar="ACTION", required=True)
    r = actions.add_parser(
        "reassign", help="move a document filed under the wrong NHS number to the right one",
        description="Move one digitised document (by its source name, as lgd digitise and lgd review show it) to "
        "another patient: its PDF/A moves to that patient's folder, the search index follows, both patients' "
        "audit trails record who moved it and why, and both patients must be reconciled again before a pack.",
        epilog="example:\n  lgd patient reassign \"1of1_Lloyd_George_Record_[Jo Bloggs]_[9434765919]_[01-02-1960].pdf\" "
        "--to 9990000018 --reason \"NDR correction: filed under the wrong NHS number\"",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("source", help="the document's source name")
    r.add_argument("--to", required=True, type=nhs_number_arg, metavar="NHS", help="the patient it belongs to")
    r.add_argument("--from", dest="from_nhs", type=nhs_number_arg, metavar="NHS",
                   help="the patient it is filed under now (needed only if two patients have a document of that name)")
    r.add_argument("--reason", required=True, help="why (kept in both patients' audit trails)")
    add_archive_option(r)
    r.add_argument("--json", action="store_true", help="print one JSON document describing the move")
    r.set_defaults(run=cmd_reassign, archive_of=archive_of)


def cmd_reassign(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    done = reassign(args.archive_of(args.archive), args.source, args.to, args.reason, from_nhs=args.from_nhs)
    if args.json:
        print(json.dumps(done, indent=2), file=stdout)
    else:
        print(f"moved {printable(str(done['source']))} from {done['from']} to {done['to']}; reconcile both patients "
              "again before packing", file=stdout)
    return ExitCode.ok
