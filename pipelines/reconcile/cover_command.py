"""`lgd review`'s entry covers: --events, --cover-entry PAGE:ENTRY --by EVENT, --clear-entry-cover PAGE:ENTRY."""

from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from index import Catalogue
from pipelines.display import elide
from pipelines.errors import ExitCode, LgdError
from pipelines.service import entry_cover
from pipelines.service.accounts import shell_who


def add_options(group: argparse._MutuallyExclusiveGroup, parser: argparse.ArgumentParser) -> None:
    group.add_argument("--events", action="store_true",
                       help="list the patient's latest coded record's events, numbered as --by takes them")
    group.add_argument("--entries", metavar="PAGE",
                       help="list a page's entries, numbered as PAGE:ENTRY names them, with lgd's status and covers")
    group.add_argument("--cover-entry", metavar="PAGE:ENTRY",
                       help="mark an entry lgd could not match as covered by the coded event --by (a clinician); when "
                            "it completes the page, the page's omission awaits a second clinician's --confirm")
    group.add_argument("--clear-entry-cover", metavar="PAGE:ENTRY",
                       help="clear a clinician's cover of an entry, withdrawing the omission it proposed")
    parser.add_argument("--by", metavar="EVENT", help="with --cover-entry: the event's number as --events lists it, "
                                                      "or its code")


def run(args: argparse.Namespace, catalogue: Catalogue, stdout: TextIO) -> ExitCode | None:
    """Handle the entry-cover options if one was given (None: not ours)."""
    if args.events:
        listing = entry_cover.coded_events(catalogue, _who(catalogue, args), args.patient)
        text = "\n".join(f"{e['n']:>4}  {e['date'] or 'undated':10}  {e['code'] or '':18}  {e['display'] or ''}"
                         f"  [{e['type']}]" for e in listing["events"]) or "the coded record holds no events"
        _emit(args.json, stdout, listing, f"coded record {listing['coded_sha256'][:16]}... ({listing['format']})\n"
                                          + text)
        return ExitCode.ok
    if args.entries:
        page = entry_cover.page_entries(catalogue, _who(catalogue, args), args.patient, args.entries)
        lines = [f"page {page['number']} ({page['id']}): lgd would {page['machine_decision']} it: {page['reason']}"]
        for e in page["entries"]:
            c = e["covered_by"]
            cover = f"  [covered by {c['by']} as {c['event']['display']} ({c['event']['date']})]" if c else ""
            lines.append(f"{e['entry']:>3}  {e['date'] or 'undated':10}  {e['status']:10}  "
                         f"{elide(' '.join((e['text'] or '').split()), 70)}{cover}")
        _emit(args.json, stdout, page, "\n".join(lines))
        return ExitCode.ok
    spec = args.cover_entry or args.clear_entry_cover
    if spec is None:
        return None
    if not (args.reason or "").strip():
        raise LgdError("say why with --reason: every decision is kept in the audit trail", ExitCode.usage, "usage")
    page, entry = entry_cover.split_page_entry(spec)
    who = _who(catalogue, args)
    if args.cover_entry:
        if not args.by:
            raise LgdError("name the coded event with --by N (as lgd review --patient NHS --events numbers them) or "
                           "--by CODE", ExitCode.usage, "usage")
        done = entry_cover.cover_entry(catalogue, who, args.patient, page, entry, args.by, args.reason)
    else:
        done = entry_cover.clear_entry_cover(catalogue, who, args.patient, page, entry, args.reason)
    where = f"page {done.page.number} ({done.page.id}) entry {done.entry}"
    if done.event is not None:
        message = f"{where}: covered by {done.event.display or done.event.code} ({done.event.date or 'undated'})"
    else:
        message = f"{where}: cover cleared"
    message += {"proposed": f"; every entry is covered, so the page's omission awaits a second clinician (lgd review "
                            f"--patient {args.patient} --confirm {done.page.id})",
                "withdrawn": "; the page's omission it proposed is withdrawn: the page is sent"}.get(done.omission, "")
    if done.still_sent_because and done.omission == "none":
        message += f"; the page is still sent ({done.still_sent_because})"
    _emit(args.json, stdout, {"patient": args.patient, **done.to_json()}, message)
    return ExitCode.ok


def _who(catalogue: Catalogue, args: argparse.Namespace):
    return shell_who(catalogue, args.as_user or os.environ.get("LGD_USER") or None)


def _emit(as_json: bool, stdout: TextIO, document: dict, text: str) -> None:
    if as_json:
        json.dump(document, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        print(text, file=stdout)
