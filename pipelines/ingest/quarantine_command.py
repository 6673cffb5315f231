"""`lgd quarantine list|retry|discard`: argument parsing and output; the rules are in ingest.quarantine."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines.cli_common import add_as_option
from pipelines.errors import ExitCode


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    q = sub.add_parser("quarantine", help="inputs that could not be digitised: list, retry or discard them",
                       description="Each input lgd could not digitise is copied to ARCHIVE/quarantine/ID with its "
                       "reason. retry digitises the copy again (locally, or on the queue with --queue); discard "
                       "deletes it. Both need the digitise permission and a --reason, which the audit keeps.")
    actions = q.add_subparsers(dest="quarantine_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="every quarantined input with its reason")
    retry = actions.add_parser("retry", help="digitise a quarantined input again")
    drop = actions.add_parser("discard", help="delete a quarantined input")
    for p in (ls, retry, drop):
        p.add_argument("--archive", metavar="DIR", help="archive folder (default: $LGD_ARCHIVE or ./lgd-archive)")
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        add_as_option(p)
    for p in (retry, drop):
        p.add_argument("id", metavar="ID", help="the entry's id, as `lgd quarantine list` shows it")
        p.add_argument("--reason", required=True, help="why (kept in the audit log)")
    from pipelines.queue.command import add_digitise_options  # the same --queue options as lgd digitise

    add_digitise_options(retry)
    q.set_defaults(run=lambda args, stdout: cmd_quarantine(args, stdout, archive_of(args.archive)))


def cmd_quarantine(args: argparse.Namespace, stdout, archive: Path) -> ExitCode:
    from index import ArchiveStore
    from pipelines import actor
    from pipelines.ingest import quarantine as q
    from pipelines.search import open_catalogue
    from pipelines.service.accounts import shell_who
    from pipelines.service.access import Role

    store = ArchiveStore(archive)
    with open_catalogue(archive) as catalogue:
        who = shell_who(catalogue, args.as_user)
        if args.quarantine_action == "list":
            who.require(q.Permission.digitise)
            found = q.entries(store)
            if args.json:
                json.dump({"quarantine": [i.as_json() for i in found]}, stdout, indent=2)
                stdout.write("\n")
            else:
                for i in found:
                    stdout.write(f"{i.id}\n  {i.code}: {i.reason}\n  document {i.checksum or 'not copied'}\n")
                stdout.write(f"{len(found)} quarantined input(s)\n")
            return ExitCode.ok
        if args.quarantine_action == "discard":
            item = q.discard(catalogue, store, who, args.id, args.reason)
            _done(args, stdout, {"id": item.id, "action": "discarded", "source": item.source})
            return ExitCode.ok
        q.check(who, args.reason)
    if who.role is not Role.owner:
        actor.act_as(who.name)
    done = q.retry(archive, who, args.id, args.reason, lambda target, manifest: _digitise(args, archive, target, manifest))
    _done(args, stdout, done.as_json())
    if done.interrupted:
        return ExitCode.interrupted
    return ExitCode.ok if done.status in ("ok", "skipped") else ExitCode.partial


def _digitise(args: argparse.Namespace, archive: Path, target: Path, manifest):
    from pipelines.engines import configured_options
    from pipelines.ingest.run import Ingest
    from pipelines.progress import for_terminal

    options = configured_options()
    if args.queue:
        from pipelines.queue.command import queued_ingest

        args.force = False
        ingest = queued_ingest(args, archive, options, for_terminal())
    else:
        ingest = Ingest(archive, options, jobs=1, progress=for_terminal())
    try:
        return ingest.run([target], manifest)
    finally:
        ingest.close()


def _done(args: argparse.Namespace, stdout, result: dict) -> None:
    if args.json:
        json.dump(result, stdout, indent=2)
        stdout.write("\n")
    else:
        extra = f" ({result['outcome']}{': ' + result['reason'] if result.get('reason') else ''})" if "outcome" in result else ""
        stdout.write(f"{result['action']} {result['id']}{extra}\n")
    print(f"lgd: quarantine entry {result['id']} {result['action']}", file=sys.stderr)
