"""The `lgd search`, `lgd page` and `lgd index` sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines import reindex
from pipelines.actor import current_actor
from pipelines.cli_common import add_archive_option, date_arg, nhs_number_arg
from pipelines.errors import ExitCode, LgdError
from pipelines.search import KINDS, open_archive, open_catalogue, search


def register(sub, archive_of) -> None:
    """Add the search commands to the `lgd` parser; `archive_of(value)` resolves --archive."""
    s = sub.add_parser(
        "search",
        help="find pages in the digitised notes",
        description="Search the OCR'd notes. Results are pages, best first, with the entry dates on the "
        "page, a snippet with matches in [brackets] and the boxes of the matched words.",
        epilog="""query language:
  warfarin                 a word; also finds OCR slips (warfar1n) and small misspellings
  "chest pain"             a phrase
  MI OR "heart attack"     either; clinical synonyms and abbreviations are added for you
  asthma AND NOT salbutamol
  kind:letter penicillin   only typed letters (kinds: card, letter, envelope)

every search that names a patient (--patient) is written to the archive's audit log.

examples:
  lgd search warfarin --patient 9434765919
  lgd search appendicectomy --patient 943 476 5919 --json
  lgd search "penicillin allergy" --from 1990-01-01 --to 2005-12-31 --limit 20""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("query", help="what to look for (quote it in the shell)")
    add_archive_option(s)
    s.add_argument("--patient", type=nhs_number_arg, metavar="NHS", help="only this patient's pages")
    s.add_argument("--from", dest="date_from", type=date_arg("--from", last=False), metavar="DATE",
                   help="only matches in an entry on or after DATE (a day, a month such as 2001-05, or a year: from its first day)")
    s.add_argument("--to", dest="date_to", type=date_arg("--to", last=True), metavar="DATE",
                   help="only matches in an entry on or before DATE (a month or a year: to its last day)")
    s.add_argument("--kind", choices=KINDS, help="only pages of this kind")
    s.add_argument("--limit", type=int, default=10, metavar="N", help="show the N best pages (default 10)")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.set_defaults(run=lambda args, out: cmd_search(args, out, archive_of(args.archive)))

    p = sub.add_parser("page", help="show one page's text and entries (audited)", description="Open one page: its text, dated entries and where its PDF/A is. Opening a page is written to the audit log.")
    p.add_argument("source", help="the document's source name, as digitised")
    p.add_argument("page", type=int, help="1-based page number")
    p.add_argument("--patient", type=nhs_number_arg, required=True, metavar="NHS")
    add_archive_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=lambda args, out: cmd_page(args, out, archive_of(args.archive)))

    ix = sub.add_parser("index", help="rebuild or check the full-text index", description="The full-text index is made from the catalogue; it can always be rebuilt from it without OCR.")
    ixsub = ix.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    rb = ixsub.add_parser("rebuild", help="recreate the index from the catalogue (searches keep working until the swap)")
    add_archive_option(rb)
    rb.add_argument("--json", action="store_true")
    rb.set_defaults(run=lambda args, out: cmd_rebuild(args, out, archive_of(args.archive)))
    op = ixsub.add_parser("optimize", help="merge the index's segments into one (run when the archive is quiet, e.g. nightly)")
    add_archive_option(op)
    op.add_argument("--json", action="store_true")
    op.set_defaults(run=lambda args, out: cmd_optimize(args, out, archive_of(args.archive)))
    ck = ixsub.add_parser("check", help="verify the index agrees with the catalogue; --repair fixes it")
    add_archive_option(ck)
    ck.add_argument("--repair", action="store_true", help="re-add missing pages and drop extra ones")
    ck.add_argument("--sample", type=int, default=200, metavar="N", help="pages whose stored fields are compared (default 200)")
    ck.add_argument("--json", action="store_true")
    ck.set_defaults(run=lambda args, out: cmd_check(args, out, archive_of(args.archive)))


def cmd_search(args: argparse.Namespace, stdout, archive: Path) -> ExitCode:
    if args.limit < 1:
        raise LgdError("--limit must be at least 1")
    if args.date_from and args.date_to and args.date_from > args.date_to:
        raise LgdError("--from is after --to")
    catalogue, fulltext = open_archive(archive)
    try:
        found = search(
            catalogue, fulltext, args.query, actor=current_actor(), nhs_number=args.patient,
            date_from=args.date_from, date_to=args.date_to, kind=args.kind, limit=args.limit,
        )
    finally:
        fulltext.close()
        catalogue.close()
    if found.warning:
        print(f"lgd: warning: {found.warning}", file=sys.stderr)
    if args.json:
        json.dump({"hits": [h.as_json() for h in found.hits], "total": found.total}, stdout, indent=2)
        stdout.write("\n")
        return ExitCode.ok
    if not found.hits:
        print(f"no pages match {args.query!r}", file=stdout)
        return ExitCode.ok
    for i, h in enumerate(found.hits, 1):
        dates = ", ".join(d.strftime("%d/%m/%Y") for d in h.dates) or "undated"
        some = "  [some of the words]" if h.partial else ""
        print(f"{i:2}. {h.source}  page {h.page}  ({h.kind}; {dates})  NHS {h.nhs_number}  score {h.score:.1f}{some}", file=stdout)
        print(f"    {h.snippet}", file=stdout)
    print(f"\n{len(found.hits)} of {found.total} matching pages shown", file=stdout)
    return ExitCode.ok


def cmd_page(args: argparse.Namespace, stdout, archive: Path) -> ExitCode:
    catalogue, fulltext = open_archive(archive)
    fulltext.close()
    try:
        doc = next((d for d in catalogue.documents(nhs_number=args.patient, status="ok") if d.source == args.source), None)
        if doc is None:
            raise LgdError(f"patient {args.patient} has no document {args.source!r} in this archive", ExitCode.partial, "not_found")
        page = next((p for p in catalogue.pages(doc.id) if p.number == args.page), None)
        if page is None:
            raise LgdError(f"{args.source} has {doc.page_count} pages; there is no page {args.page}", ExitCode.usage, "not_found")
        pdf = archive / doc.pdfa_path if doc.pdfa_path else None
        if pdf is None or not pdf.is_file():
            raise LgdError(
                f"the PDF/A of {args.source} is missing from the archive ({doc.pdfa_path}); restore the archive's "
                "pdf/ folder from your latest backup (lgd index check lists every missing file)",
                ExitCode.archive_error, "pdf_missing",
            )
        catalogue.audit(current_actor(), "open_page", args.patient, source=args.source, page=args.page)
        entries = [e for e in catalogue.entries(document_id=doc.id) if e.page == args.page]
    finally:
        catalogue.close()
    data = {
        "nhs_number": args.patient, "source": args.source, "page": args.page, "kind": page.kind,
        "pdfa": str(archive / doc.pdfa_path), "confidence": page.confidence, "blank": page.blank,
        "unreadable": page.unreadable, "text": page.text,
        "entries": [{"date": e.date.isoformat() if e.date else None, "date_text": e.date_text, "text": e.text, "box": list(e.box)} for e in entries],
    }
    if args.json:
        json.dump(data, stdout, indent=2)
        stdout.write("\n")
    else:
        flags = ", ".join(f for f, on in (("blank", page.blank), ("UNREADABLE: send on paper", page.unreadable)) if on)
        print(f"{args.source} page {args.page} ({page.kind}, confidence {page.confidence:.0f}{', ' + flags if flags else ''})", file=stdout)
        print(f"PDF/A: {data['pdfa']}\n", file=stdout)
        for e in entries:
            print(f"  {e.date.strftime('%d/%m/%Y') if e.date else 'undated':10}  {e.text}", file=stdout)
        if not entries:
            print(page.text or "(no text)", file=stdout)
    return ExitCode.ok


def cmd_rebuild(args: argparse.Namespace, stdout, archive: Path) -> ExitCode:
    catalogue = open_catalogue(archive)
    try:
        count = reindex.rebuild(archive, catalogue)
        catalogue.audit(current_actor(), "index_rebuild", None, pages=count)
    finally:
        catalogue.close()
    print(json.dumps({"pages": count}) if args.json else f"rebuilt the full-text index: {count} pages", file=stdout)
    return ExitCode.ok


def cmd_optimize(args: argparse.Namespace, stdout, archive: Path) -> ExitCode:
    catalogue, fulltext = open_archive(archive)
    catalogue.close()
    try:
        fulltext.optimize()
        pages = fulltext.doc_count()
    finally:
        fulltext.close()
    print(json.dumps({"pages": pages}) if args.json else f"optimised the full-text index ({pages} pages)", file=stdout)
    return ExitCode.ok


def cmd_check(args: argparse.Namespace, stdout, archive: Path) -> ExitCode:
    # A check only looks: the catalogue is opened read-only (a repair writes only the index).
    catalogue, fulltext = open_archive(archive, readonly=not args.repair)
    try:
        report = reindex.check(catalogue, fulltext, sample=args.sample)
        fulltext.close()
        repaired = reindex.repair(archive, catalogue, report) if args.repair and not report.index_ok else 0
    finally:
        fulltext.close()
        catalogue.close()
    if args.json:
        json.dump(report.as_json() | {"repaired": repaired}, stdout, indent=2)
        stdout.write("\n")
    else:
        print(
            f"catalogue {report.catalogue_pages} pages, index {report.index_pages}; missing {len(report.missing)}, "
            f"extra {len(report.extra)}, mismatched {len(report.mismatched)} of {report.sampled} sampled, "
            f"under another patient {len(report.wrong_patient)}"
            + (f"; repaired {repaired}" if repaired else ""),
            file=stdout,
        )
        if report.missing_pdfs:
            print(
                f"{len(report.missing_pdfs)} PDF/A file(s) the catalogue lists are missing from the archive "
                f"(first: {report.missing_pdfs[0]}); restore them from your latest backup (the index cannot recreate them)",
                file=stdout,
            )
    if report.missing_pdfs:
        return ExitCode.partial
    return ExitCode.ok if report.ok or args.repair else ExitCode.partial
