"""The `lgd reconcile` and `lgd review` sub-commands: argument wiring, handlers and output."""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from index import Catalogue
from index.decisions import latest_overrides, latest_reconciliation, overrides
from index.entry_covers import lapsed_proposals
from index.rows import ReconciliationRow
from pipelines.cli_common import add_archive_option, nhs_number_arg
from pipelines.display import elide
from pipelines.errors import ExitCode, LgdError
from pipelines.identity import nhs_number_valid, normalise_nhs_number
from pipelines.progress import for_terminal
from pipelines.search import open_catalogue
from pipelines.service import review
from pipelines.service.accounts import shell_who

from . import cover_command
from .run import Reconciliation, reconcile_patient
from .settings import Settings

EXIT_HELP = """exit codes:
  0    every page was decided and the decisions stored
  1    refused: no digitised record or no coded record for the patient, the coded file is
       another patient's, malformed or hostile (nothing stored); with --batch, some patients failed
  2    bad usage: no such file, bad NHS number or page
  4    the archive cannot be used: missing, read-only, locked or damaged
  6    not permitted: the account (--as / LGD_USER) may not do this, or an omission needs a second clinician"""

RULES_HELP = """how pages are decided (clinical safety: when in doubt, the page is sent):
  omit     a blank page (nothing read on it even at full sensitivity); a rescan of a page
           that is sent (both read well, their texts agree, it adds nothing); a page
           whose every entry is covered and nothing outside its entries is unaccounted
  covered  every word of the entry is accounted for: each clinical fact has a coded
           event of the same concept (by code, then by term, synonym, shorthand or drug
           name), kind and date (and, for a reading, value); other words are bound
           values, reviewed shorthand, names, addresses, or ordinary English by the
           en-GB and medical dictionaries (pipelines/clinical/lexicon.toml)
  include  everything else: envelope fronts, unreadable or low-confidence pages, pages
           with no dated entries, undated entries, negated or doubtful facts ("No chest
           pain", "?appendicitis", "FH of"), loaded everyday words (admitted, referred,
           lump, fall), unbound numbers ("2WW"), unknown words, and any fact missing
           from the coded record. Degraded codes, absent attachments and plans never
           count as coverage.
  dates    the entry's date or one written in the fact's sentence; a coded month or
           year (or 1 January) covers any day inside it; a letter's facts may be coded
           up to 42 days later, on receipt. The evidence says which."""


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    """Add `reconcile` and `review` to the `lgd` parser; `archive_of(value)` resolves --archive."""
    r = sub.add_parser(
        "reconcile",
        help="decide page by page what is already in the coded record and what must be sent",
        description="Compare a patient's digitised paper entries with their coded electronic record and decide, "
        "for every page, include (send it) or omit (everything on it is already coded), with the evidence. "
        "Decisions are stored with the coded record's SHA-256 so a pack can say what it was checked against.",
        epilog=RULES_HELP + """

examples:
  lgd reconcile --patient 9434765919 --coded gp2gp-extract.xml
  lgd reconcile --patient 9434765919              # against the record stored by lgd coded import
  lgd reconcile --batch leavers.csv --json        # columns: nhs_number, coded (path)

""" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--patient", type=nhs_number_arg, metavar="NHS", help="the patient's NHS number")
    who.add_argument("--batch", type=Path, metavar="CSV", help="reconcile many patients: a CSV with columns "
                     "nhs_number and coded (a path, relative to the CSV; empty to use the stored record)")
    r.add_argument("--coded", type=Path, metavar="FILE", help="the coded record (GP2GP XML, GP Connect FHIR "
                   "STU3/R4 JSON or CSV); it is also stored for later runs. Default: the stored record")
    add_archive_option(r)
    r.add_argument("--min-confidence", type=float, default=Settings().entry_min_confidence, metavar="N",
                   help="OCR confidence (0-100) below which an entry or page is not trusted and is sent (default: %(default)s)")
    r.add_argument("--json", action="store_true", help="print one JSON document with every page's decision and evidence")
    r.set_defaults(run=cmd_reconcile, archive_of=archive_of)

    v = sub.add_parser(
        "review",
        help="show a patient's page decisions, or force a page in or out (audited)",
        description="Show the latest reconciliation of a patient, numbered page by page, with any decisions people "
        "made, or make one: force a page into the pack (--include: anyone who may send more paper), leave it out "
        "(--omit: a clinician) or clear a decision (--clear: a clinician). Leaving out a page lgd would send "
        "(unreadable, an envelope front, an uncertain or paper-only entry) takes four eyes: it counts once a "
        "second clinician confirms it (--confirm); until then the page is sent. Every decision needs a --reason and "
        "is recorded with the account (--as / LGD_USER) and the time; it outlives later reconciliations until "
        "cleared.",
        epilog="""a page is named by its number as this command lists it, its id (12-3) or SOURCE:PAGE, e.g.
  lgd review --patient 9434765919
  lgd review --patient 9434765919 --include 3 --reason "letter mentions family history" --as j.clerk
  lgd review --patient 9434765919 --omit 12-4 --reason "duplicate of the typed letter on page 5" --as dr.patel
  lgd review --patient 9434765919 --confirm 12-4 --as dr.jones
  lgd review --patient 9434765919 --history
  lgd review --patient 9434765919 --events
  lgd review --patient 9434765919 --cover-entry 5:2 --by 14 --reason "letter is attached in the record" --as dr.patel
  lgd review --patient 9434765919 --clear-entry-cover 5:2 --reason "wrong event" --as dr.patel

""" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("--patient", type=nhs_number_arg, required=True, metavar="NHS", help="the patient's NHS number")
    force = v.add_mutually_exclusive_group()
    force.add_argument("--include", metavar="PAGE", help="send this page whatever reconciliation decided")
    force.add_argument("--omit", metavar="PAGE", help="leave this page out (a clinician; four eyes if lgd would send it)")
    force.add_argument("--clear", metavar="PAGE", help="remove the decision on this page (a clinician)")
    force.add_argument("--confirm", metavar="PAGE", help="confirm another clinician's omission of this page")
    force.add_argument("--history", action="store_true", help="list every override ever made for the patient")
    cover_command.add_options(force, v)
    v.add_argument("--reason", help="why (required with --include, --omit, --clear and the entry covers)")
    add_archive_option(v)
    v.add_argument("--json", action="store_true", help="print one JSON document")
    v.set_defaults(run=cmd_review, archive_of=archive_of)


def _archive(args: argparse.Namespace) -> Path:
    return args.archive_of(args.archive)


def _settings(args: argparse.Namespace) -> Settings:
    if not 0 <= args.min_confidence <= 100:
        raise LgdError("--min-confidence must be between 0 and 100", ExitCode.usage, "usage")
    return Settings(entry_min_confidence=args.min_confidence, page_min_confidence=args.min_confidence)


def cmd_reconcile(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    if args.coded is not None and not args.coded.is_file():
        raise LgdError(f"--coded {args.coded}: no such file", ExitCode.usage, "usage")
    settings = _settings(args)
    with open_catalogue(_archive(args)) as catalogue:
        if args.batch is not None:
            return _batch(catalogue, args.batch, settings, args.json, stdout)
        result = reconcile_patient(catalogue, args.patient, args.coded, settings=settings)
    if args.json:
        json.dump(result.to_json(), stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        _print_table(result, stdout)
    return ExitCode.ok


def _print_table(result: Reconciliation, out: TextIO) -> None:
    doc = result.to_json()
    coded = doc["coded"]
    print(f"patient {result.patient.nhs_number} {result.patient.name or ''}".rstrip(), file=out)
    print(f"checked against {coded['format']} record sha256 {coded['sha256'][:16]}... ({coded['events']} events)\n", file=out)
    width = max([len(p["source"]) for p in doc["pages"]] + [6])
    width = min(width, 48)
    print(f"{'source':{width}}  page  {'kind':8}  {'decision':8}  reason", file=out)
    for p in doc["pages"]:
        mark = "*" if "override" in p else " "
        print(f"{elide(p['source'], width):{width}}  {p['page']:4}  {p['kind']:8}  {p['decision']:7}{mark}  {p['reason']}", file=out)
        for e in p["entries"]:
            if e["status"] != "covered" or p["decision"] == "omit":
                print(f"{'':{width}}        {e['date'] or 'no date':10}  {e['status']:10}  {e['why']}", file=out)
    s = doc["summary"]
    print(f"\n{s['pages']} pages: {s['include']} to send, {s['omit']} omitted (omit ratio {s['omit_ratio']:.2f})"
          + (f"; {s['overridden']} overridden by a clinician (*)" if s["overridden"] else ""), file=out)
    for w in doc["warnings"]:
        print(f"warning: {w}", file=out)


def read_patient_list(path: Path) -> list[tuple[str, Path | None]]:
    if not path.is_file():
        raise LgdError(f"--batch {path}: no such file", ExitCode.usage, "usage")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise LgdError(f"--batch {path}: not a readable CSV ({e})", ExitCode.usage, "usage") from e
    if not rows:
        raise LgdError(f"--batch {path}: no patients listed", ExitCode.usage, "usage")
    keys = {k.strip().lower().replace("-", "_"): k for k in rows[0] if k}
    nhs_key = next((keys[k] for k in ("nhs_number", "nhs_no", "nhs") if k in keys), None)
    coded_key = next((keys[k] for k in ("coded", "coded_file", "file") if k in keys), None)
    if nhs_key is None:
        raise LgdError(f"--batch {path}: needs an nhs_number column (and optionally coded)", ExitCode.usage, "usage")
    out = []
    for line, row in enumerate(rows, start=2):
        nhs = normalise_nhs_number(row.get(nhs_key) or "")
        if not nhs_number_valid(nhs):
            raise LgdError(f"--batch {path} line {line}: {row.get(nhs_key)!r} is not a valid NHS number",
                           ExitCode.usage, "usage")
        coded = (row.get(coded_key) or "").strip() if coded_key else ""
        out.append((nhs, (path.parent / coded) if coded else None))
    return out


def _batch(catalogue: Catalogue, path: Path, settings: Settings, as_json: bool, stdout: TextIO) -> ExitCode:
    todo = read_patient_list(path)
    progress = for_terminal()
    results: list[dict[str, Any]] = []
    progress.start(len(todo), "reconciling")
    try:
        for nhs, coded in todo:
            try:
                r = reconcile_patient(catalogue, nhs, coded, settings=settings)
                results.append({"patient": nhs, "ok": True, "coded": r.to_json()["coded"], "summary": r.summary()})
            except LgdError as e:
                results.append({"patient": nhs, "ok": False, "error": {"code": e.code, "message": str(e)}})
            progress.advance(nhs)
    finally:
        progress.stop()
    ok = [r for r in results if r["ok"]]
    totals = {"patients": len(results), "failed": len(results) - len(ok),
              "pages": sum(r["summary"]["pages"] for r in ok), "omit": sum(r["summary"]["omit"] for r in ok)}
    totals["include"] = totals["pages"] - totals["omit"]
    if as_json:
        json.dump({"patients": results, "summary": totals}, stdout, indent=2)
        stdout.write("\n")
    else:
        for r in results:
            if r["ok"]:
                s = r["summary"]
                print(f"{r['patient']}  {s['pages']:4} pages  {s['include']:4} send  {s['omit']:4} omit", file=stdout)
            else:
                print(f"{r['patient']}  failed: {r['error']['message']}", file=stdout)
        print(f"\n{totals['patients']} patients, {totals['failed']} failed: {totals['pages']} pages, "
              f"{totals['include']} to send, {totals['omit']} omitted", file=stdout)
    return ExitCode.partial if totals["failed"] else ExitCode.ok


# -- review ------------------------------------------------------------------------------


def cmd_review(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    with open_catalogue(_archive(args)) as catalogue:
        if catalogue.patient(args.patient) is None:
            raise LgdError(f"NHS number {args.patient} is not in the archive", ExitCode.partial, "no_patient")
        if (covered := cover_command.run(args, catalogue, stdout)) is not None:
            return covered
        spec, decision = next(((s, d) for s, d in ((args.include, "include"), (args.omit, "omit"),
                                                     (args.clear, None)) if s), (None, None))
        if spec is not None or args.confirm:
            who = shell_who(catalogue, args.as_user or os.environ.get("LGD_USER") or None)
            if args.confirm:
                done = review.confirm(catalogue, who, args.patient, args.confirm)
                message = f"page {done.page.number} ({done.page.id}): {done.by}'s omission confirmed by {who.name}"
            else:
                if not (args.reason or "").strip():
                    raise LgdError("say why with --reason: every decision is kept in the audit trail", ExitCode.usage,
                                   "usage")
                done = review.decide(catalogue, who, args.patient, spec, decision, args.reason)
                message = (f"page {done.page.number} ({done.page.id}): "
                           + ("omission recorded; it counts once a second clinician confirms it "
                              f"(lgd review --patient {args.patient} --confirm {done.page.id})" if done.pending else
                              f"forced to {decision}" if decision else "decision cleared"))
            _emit(args.json, stdout, {"patient": args.patient, "source": done.page.source, "page": done.page.page,
                                      "id": done.page.id, "number": done.page.number, "override": done.decision,
                                      "pending": done.pending, "reason": done.reason, "by": done.by,
                                      "confirmed_by": who.name if args.confirm else None}, message)
            return ExitCode.ok
        if args.history:
            trail = [{"source": _source(catalogue, o.document_id), "page": o.page, "id": f"{o.document_id}-{o.page}",
                      **_override_json(o), "awaits_confirmation": o.pending} for o in overrides(catalogue, args.patient)]
            lines = "\n".join(f"{t['at'][:19]}  {t['by']:12}  {t['id']:7}  {t['decision'] or 'cleared'}  {t['reason']}"
                              + (f"  (confirmed by {t['confirmed_by']})" if t["confirmed_by"] else
                                 "  (awaits a second clinician)" if t["awaits_confirmation"] else "")
                              for t in trail) or "no decisions by people"
            _emit(args.json, stdout, {"patient": args.patient, "overrides": trail}, lines)
            return ExitCode.ok
        run = latest_reconciliation(catalogue, args.patient)
        if run is None:
            raise LgdError(f"NHS number {args.patient} has not been reconciled yet; run lgd reconcile first",
                           ExitCode.partial, "not_reconciled")
        _emit(args.json, stdout, _review_json(catalogue, run), _review_text(catalogue, run))
    return ExitCode.ok


def _source(catalogue: Catalogue, document_id: int) -> str:
    doc = catalogue.document(document_id)
    return doc.source if doc else f"document {document_id}"


def _review_json(catalogue: Catalogue, run: ReconciliationRow) -> dict[str, Any]:
    numbers = {(r.document_id, r.page): r for r in review.patient_pages(catalogue, run.nhs_number)}
    latest = latest_overrides(catalogue, run.nhs_number)
    lapsed = lapsed_proposals(catalogue, run)  # sent, as the pack plan sends them
    pages = []
    for p in run.pages:
        ref = numbers.get((p.document_id, p.page))
        gone = (p.document_id, p.page) in lapsed
        item = {"number": ref.number if ref else None, "id": f"{p.document_id}-{p.page}",
                "source": _source(catalogue, p.document_id), "page": p.page,
                "decision": p.decision if gone else p.effective, "machine_decision": p.decision,
                "reason": p.reason + (" (the omission proposed by covering its entries no longer holds: an entry "
                                      "reads otherwise or the coded record changed)" if gone else "")}
        if p.override is not None:
            item["override"] = _override_json(p.override)
        waiting = latest.get((p.document_id, p.page))
        if waiting is not None and waiting.pending:
            item["awaiting_confirmation"] = _override_json(waiting)
        pages.append(item)
    pages.sort(key=lambda i: i["number"] or 0)
    return {"patient": run.nhs_number, "run": run.id, "created": run.created.isoformat(),
            "coded": {"format": run.coded_format, "sha256": run.coded_sha256, "events": run.coded_events},
            "pages": pages}


def _override_json(o) -> dict[str, Any]:
    return {"decision": o.decision, "reason": o.reason, "by": o.actor, "at": o.at.isoformat(),
            "confirmed_by": o.confirmed_by}


def _review_text(catalogue: Catalogue, run: ReconciliationRow) -> str:
    doc = _review_json(catalogue, run)
    lines = [f"reconciliation {run.id} of {run.created:%Y-%m-%d %H:%M} against {run.coded_format} "
             f"{run.coded_sha256[:16]}...", f"{'#':>3}  {'id':7}  {'decision':8} page and reason"]
    for p in doc["pages"]:
        extra = ""
        if "override" in p:
            o = p["override"]
            extra = f"  [{o['decision']} by {o['by']}" + (f", confirmed by {o['confirmed_by']}" if o["confirmed_by"] else "") \
                + f": {o['reason']}]"
        if "awaiting_confirmation" in p:
            w = p["awaiting_confirmation"]
            extra += f"  [omission by {w['by']} awaits a second clinician: {w['reason']}]"
        lines.append(f"{p['number'] or '-':>3}  {p['id']:7}  {p['decision']:8} {elide(p['source'], 60)}:{p['page']}  "
                     f"{p['reason']}{extra}")
    return "\n".join(lines)


def _emit(as_json: bool, stdout: TextIO, document: dict[str, Any], text: str) -> None:
    if as_json:
        json.dump(document, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        print(text, file=stdout)
