"""The `lgd leavers` sub-command: the leavers worklist from the shell, over the same application layer as `lgd serve`."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pipelines.cli_common import add_archive_option, nhs_number_arg
from pipelines.display import elide
from pipelines.errors import ExitCode, LgdError
from pipelines.search import open_catalogue
from pipelines.service import handover, leaver_review, leavers, worklist
from pipelines.service.access import Permission
from pipelines.service.accounts import shell_who
from pipelines.transfer.formats import FORMATS

EPILOG = """states: awaiting_coded_record -> reconciled -> in_review -> signed_off -> packed -> sent
        -> receipt_confirmed, or returned_for_rescan (then reconcile again). A signed-off or packed
        leaver whose decisions changed since sign-off (new coded record, rules, rescan, a person's
        decision) is in review again, and `show` says why.

who does what: a clerk, clinician or practice admin adds leavers and may return one for rescan;
a clinician reconciles, reviews (lgd review) and signs off (only when no omission awaits its
second clinician); a practice admin packs; a practice admin or clerk marks sent and received.

examples:
  lgd leavers add 9434765919 --ods A81001 --movement-ref PCSE-123 --coded gp2gp.xml --as j.clerk
  lgd leavers import leavers.csv --as j.clerk      # nhs_number,ods_code[,movement_ref][,coded]
  lgd leavers list --state signed_off --json
  lgd leavers reconcile --all --as dr.patel
  lgd leavers show 3
  lgd leavers sign-off 3 --as dr.patel
  lgd leavers pack 3 --format 7z --new-passphrase-file pass.txt --as admin
  lgd leavers sent 3 --note "Royal Mail SD 123" --as j.clerk
  lgd leavers received 3 --verify-json verify.json --as j.clerk

exit codes:
  0    done
  1    refused: the leaver's state does not allow this step (HTTP 409 in the API), no coded
       record, an omission awaiting confirmation; with --all, some leavers failed
  2    bad usage: bad NHS number, ODS code or CSV row (nothing added)
  4    the archive cannot be used
  6    not permitted: the account (--as / LGD_USER) may not do this"""


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    p = sub.add_parser("leavers", help="the leavers worklist: add, reconcile, sign off, pack, send, confirm receipt",
                       description="Track patients leaving for another practice from the worklist to a received "
                       "transfer pack, with the same gates as lgd serve.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="leavers_action", metavar="ACTION", required=True)

    def action(name: str, help_: str, run: Callable) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_, description=help_)
        add_archive_option(a)
        a.add_argument("--json", action="store_true", help="print one JSON document")
        a.set_defaults(run=run, archive_of=archive_of)
        return a

    a = action("add", "put a patient on the worklist", _add)
    a.add_argument("nhs", type=nhs_number_arg, metavar="NHS")
    a.add_argument("--ods", required=True, metavar="CODE", help="the destination practice's ODS code (A81001)")
    a.add_argument("--movement-ref", metavar="REF", help="PCSE Online's movement reference")
    a.add_argument("--coded", type=Path, metavar="FILE", help="the coded record, stored as lgd coded import does")
    a = action("import", "add leavers from a CSV (nhs_number, ods_code, movement_ref, coded): all or none", _import)
    a.add_argument("csv", type=Path, metavar="CSV")
    a = action("list", "the worklist, oldest in its state first", _list)
    a.add_argument("--state", help="only leavers in this state (as the state in force)")
    a.add_argument("--patient", type=nhs_number_arg, metavar="NHS")
    a.add_argument("--open", action="store_true", help="leave out leavers whose receipt is confirmed")
    a = action("show", "one leaver: pages with decisions and reasons, totals, history, packs", _show)
    a.add_argument("id", type=int)
    a = action("reconcile", "reconcile a leaver (or --all that are waiting) against the coded record", _reconcile)
    which = a.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all", action="store_true", help="every leaver awaiting reconciliation with a coded record")
    a.add_argument("--coded", type=Path, metavar="FILE", help="the coded record to use (and store)")
    a = action("sign-off", "a clinician signs off the leaver's page decisions, freezing them", _sign_off)
    a.add_argument("id", type=int)
    a.add_argument("--note", help="a note kept with the sign-off")
    a = action("pack", "build the pack of a signed-off leaver (or --all-signed-off)", _pack)
    which = a.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all-signed-off", action="store_true", help="every signed-off leaver, one pack each")
    a.add_argument("--format", choices=FORMATS, default="7z", help="the form of the pack (default: %(default)s)")
    a.add_argument("--out", type=Path, metavar="DIR", help="a new folder to write into (default: a new folder in "
                   "ARCHIVE-packs/ beside the archive); with --all-signed-off, one sub-folder per leaver")
    a.add_argument("--media", metavar="SIZE", help="split to fit: cd, dvd, or a size such as 650M")
    a.add_argument("--granularity", choices=("page", "entry"), default="page")
    a.add_argument("--with-electronic", action="store_true", help="add the coded record as a readable section")
    a.add_argument("--keep-minimal", action="store_true", help="print: the minimal pack even when longer")
    secret = a.add_mutually_exclusive_group()
    secret.add_argument("--passphrase-file", type=Path, metavar="F", help="use the passphrase in F (first line)")
    secret.add_argument("--new-passphrase-file", type=Path, metavar="F", help="write the new passphrase(s) to F "
                        "(a new file, readable only by you) instead of showing them on the terminal")
    a = action("sent", "the pack has left the practice", _sent)
    a.add_argument("id", type=int)
    a.add_argument("--note", help="e.g. the courier's tracking number")
    a = action("received", "the receiving practice confirmed receipt", _received)
    a.add_argument("id", type=int)
    a.add_argument("--verify-json", type=Path, metavar="FILE", help="the receiving practice's lgd verify --json result")
    a.add_argument("--note")
    a = action("return", "send a leaver back for pages to be scanned or digitised again", _return)
    a.add_argument("id", type=int)
    a.add_argument("--reason", required=True)


def _who(args: argparse.Namespace, catalogue):
    return shell_who(catalogue, args.as_user or os.environ.get("LGD_USER") or None)


def _emit(args: argparse.Namespace, stdout: TextIO, document: dict[str, Any], text: str) -> None:
    if args.json:
        json.dump(document, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        print(text, file=stdout)


def _line(lv: leavers.Leaver) -> str:
    r = lv.row
    why = f"  ({'; '.join(lv.why)})" if lv.why else ""
    return f"{r.id:4}  {r.nhs_number}  {r.ods_code}  {lv.state.label:21}  since {r.since:%Y-%m-%d %H:%M}{why}"


def _one(args, stdout, lv: leavers.Leaver, done: str) -> ExitCode:
    _emit(args, stdout, {"leaver": lv.to_json()}, f"leaver {lv.id} ({lv.row.nhs_number}): {done}; now {lv.state.label}")
    return ExitCode.ok


def _add(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        lv = leavers.add(catalogue, _who(args, catalogue), args.nhs, args.ods, args.movement_ref, args.coded)
    return _one(args, stdout, lv, f"added for {lv.row.ods_code}")


def _import(args, stdout) -> ExitCode:
    try:
        text = args.csv.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LgdError(f"{args.csv}: cannot be read as a UTF-8 CSV ({e})", ExitCode.usage, "bad_csv") from None
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        added = worklist.import_csv(catalogue, _who(args, catalogue), text, args.csv.parent)
    _emit(args, stdout, {"leavers": [lv.to_json() for lv in added]},
          "\n".join(map(_line, added)) + f"\n\n{len(added)} leaver(s) added")
    return ExitCode.ok


def _list(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        found = leavers.worklist(catalogue, _who(args, catalogue), state=args.state, nhs_number=args.patient,
                                 include_done=not args.open)
    _emit(args, stdout, {"leavers": [lv.to_json() for lv in found]},
          "\n".join(map(_line, found)) if found else "no leavers")
    return ExitCode.ok


def _show(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        doc = leaver_review.details(catalogue, _who(args, catalogue), args.id)
    lv, t = doc["leaver"], doc["totals"]
    lines = [f"leaver {lv['id']}: {lv['nhs_number']} {doc['patient']['name'] or ''} -> {lv['ods_code']}"
             f"{' (' + lv['movement_ref'] + ')' if lv['movement_ref'] else ''}: {lv['state_label']}"]
    lines += [f"  why: {w}" for w in lv["why"]]
    for p in doc["pages"]:
        mark = "send" if p["send"] else "omit"
        extra = f"  [awaits a second clinician: {p['awaiting_confirmation']['by']}]" if p.get("awaiting_confirmation") else ""
        lines.append(f"{p['number']:4}  {p['id']:8}  {mark}  {elide(p['source'], 40)}:{p['page']}  "
                     f"{p.get('omitted_because') or p['reason']}{extra}")
    lines.append(f"\n{t['pages_sent']} of {t['pages']} pages sent, {t['pages_omitted']} omitted"
                 + (f"; sheets: {t['sheets_pages_sent']} for the pages sent against {t['sheets_everything']} to print "
                    f"everything ({t['sheets_saved']} saved)" if "sheets_everything" in t else ""))
    lines += [f"{h['at'][:16]}  {h['by']:12}  {h['from'] or '-'} -> {h['to']}  {h['reason'] or ''}" for h in doc["history"]]
    _emit(args, stdout, doc, "\n".join(lines))
    return ExitCode.ok


def _reconcile(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        who = _who(args, catalogue)
        if not args.all:
            return _one(args, stdout, leavers.reconcile(catalogue, who, args.id, args.coded), "reconciled")
        if args.coded is not None:
            raise LgdError("--coded names one patient's record; it goes with one leaver, not --all", ExitCode.usage)
        results = leavers.reconcile_all(catalogue, who)
    return _results(args, stdout, results, "reconciled")


def _each(args, stdout, todo: list[leavers.Leaver], step: Callable[[leavers.Leaver], dict], done: str) -> ExitCode:
    results = []
    for lv in todo:
        try:
            results.append({"id": lv.id, "ok": True, "result": step(lv)})
        except LgdError as e:
            results.append({"id": lv.id, "ok": False, "error": {"code": e.code, "message": str(e)}})
    return _results(args, stdout, results, done)


def _results(args, stdout, results: list[dict], done: str) -> ExitCode:
    failed = sum(1 for r in results if not r["ok"] and not r.get("skipped"))
    skipped = sum(1 for r in results if r.get("skipped"))
    _emit(args, stdout, {"results": results, "summary": {"leavers": len(results), "failed": failed, "skipped": skipped}},
          "\n".join(f"{r['id']:4}  " + (done if r["ok"] else f"{'skipped' if r.get('skipped') else 'failed'}: "
                                        f"{r['error']['message']}") for r in results)
          + f"\n\n{len(results)} leaver(s), {failed} failed, {skipped} skipped")
    return ExitCode.partial if failed else ExitCode.ok


def _sign_off(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        lv = leavers.sign_off(catalogue, _who(args, catalogue), args.id, args.note)
    return _one(args, stdout, lv, f"signed off (fingerprint {lv.signed_off['fingerprint'][:16]}...)")


def _pack(args, stdout) -> ExitCode:
    from pipelines.transfer.pack_command import Secrets

    secrets = Secrets(argparse.Namespace(format=args.format, passphrase_file=args.passphrase_file,
                                         new_passphrase_file=args.new_passphrase_file,
                                         batch=True if args.all_signed_off else None))
    fingerprint: list[str | None] = [None]

    def one(lv: leavers.Leaver, out: Path | None) -> dict:
        phrase = secrets.for_pack()
        made = handover.pack(catalogue, who, lv.id, args.format, out=out, media=args.media,
                             granularity=args.granularity, with_electronic=args.with_electronic,
                             keep_minimal=args.keep_minimal, passphrase=phrase)
        secrets.used(f"leaver-{lv.id}", lv.row.nhs_number, phrase)
        fingerprint[0] = made.fingerprint or fingerprint[0]
        return {k: v for k, v in made.to_json().items() if k != "passphrase"}  # never on stdout

    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        who = _who(args, catalogue)
        try:
            if not args.all_signed_off:
                doc = one(leavers.get(catalogue, who, args.id), args.out)
                text = (f"leaver {args.id}: {doc['format']} pack {doc['pack_id']} in {doc['folder']}: "
                        f"{doc['pages_included']} of {doc['pages_total']} pages sent, {doc['sheets_saved']} sheets saved")
                if doc.get("print_choice"):
                    text += f"\n{doc['print']}" if doc.get("print") else ""
                _emit(args, stdout, doc, text)
                code = ExitCode.ok
            else:
                who.require(Permission.pack)  # refused once, not once per leaver
                todo = leavers.worklist(catalogue, who, state=leavers.State.signed_off.value)
                code = _each(args, stdout, todo, lambda lv: one(lv, args.out / f"leaver-{lv.id}" if args.out else None),
                             "packed")
        finally:
            secrets.deliver(fingerprint[0])
    return code


def _sent(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        lv = handover.mark_sent(catalogue, _who(args, catalogue), args.id, args.note)
    return _one(args, stdout, lv, "marked sent")


def _received(args, stdout) -> ExitCode:
    verify = None
    if args.verify_json is not None:
        try:
            verify = args.verify_json.read_text(encoding="utf-8")[: handover.MAX_VERIFY_JSON + 1]
        except (OSError, UnicodeDecodeError) as e:
            raise LgdError(f"--verify-json {args.verify_json}: cannot be read ({e})", ExitCode.usage) from None
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        lv = handover.confirm_receipt(catalogue, _who(args, catalogue), args.id, verify, args.note)
    return _one(args, stdout, lv, "receipt confirmed")


def _return(args, stdout) -> ExitCode:
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        lv = leavers.return_for_rescan(catalogue, _who(args, catalogue), args.id, args.reason)
    return _one(args, stdout, lv, "returned for rescan")
