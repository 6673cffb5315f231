"""The `lgd key` sub-command: show the pack-signing key's fingerprint, and rotate it on purpose."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pipelines.actor import current_actor, free_text
from pipelines.cli_common import add_archive_option
from pipelines.errors import ExitCode
from pipelines.search import open_catalogue

from .keys import acknowledged, current_fingerprint, recorded_signers, retired_keys, rotate, unknown_signers
from .signing import archive_key_paths

HELP = """the key: every media pack (7z, iso, usb) is signed with the archive's Ed25519 key,
ARCHIVE/keys/pack-signing.key, made with the first pack. Receivers check packs against its
fingerprint, which you read to them with the passphrase. Back up ARCHIVE/keys with the archive.

If keys/ is lost or replaced while the catalogue records packs signed by the old key, lgd pack
refuses to sign (exit 4, signing_key_changed) rather than make a new key quietly: restore
keys/ from the backup, or rotate. A rotation keeps every earlier public key in
ARCHIVE/keys/retired/, so `lgd verify` still accepts packs they signed and says which key
signed; the old private key is replaced and can sign nothing more. It is audited
(signing_key_rotated: who, when, why, old and new fingerprints).

exit codes:
  0    done
  2    bad usage: no --reason, or a reason with control characters
  4    the archive cannot be used: missing, read-only, or a key file damaged"""


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    k = sub.add_parser("key", help="the pack-signing key: show its fingerprint, or rotate it",
                       description="Show or rotate the archive's pack-signing key.", epilog=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = k.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the current key's fingerprint, retired keys, and the packs each signed",
                              epilog="example:\n  lgd key show --archive /srv/lgd\n\n" + HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_option(show)
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(run=cmd_show, archive_of=archive_of)
    rot = actions.add_parser("rotate", help="retire the current key (its public key kept for verifying) and make a new one",
                             epilog='example:\n  lgd key rotate --reason "keys folder lost in the server move"\n\n' + HELP,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_option(rot)
    rot.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail")
    rot.add_argument("--json", action="store_true", help="print one JSON document")
    rot.set_defaults(run=cmd_rotate, archive_of=archive_of)


def _describe(archive: Path, catalogue) -> dict[str, Any]:
    current = current_fingerprint(archive)
    retired = retired_keys(archive)
    signers = recorded_signers(catalogue)
    unknown = {s.fingerprint for s in unknown_signers(current, [r.fingerprint for r in retired],
                                                       acknowledged(catalogue), signers)}
    packs = {s.fingerprint: s for s in signers}

    def counted(fp: str) -> dict[str, Any]:
        s = packs.get(fp)
        return {"packs": s.packs if s else 0, "last_signed": s.last.isoformat(timespec="seconds") if s else None}

    return {
        "archive": str(archive),
        "current": None if current is None else {"fingerprint": current, "path": str(archive_key_paths(archive)[1]),
                                                 **counted(current)},
        "retired": [{"fingerprint": r.fingerprint, "retired": r.retired, "path": str(r.path), **counted(r.fingerprint)}
                    for r in retired],
        "unknown": [{"fingerprint": fp, **counted(fp)} for fp in sorted(unknown)],
    }


def cmd_show(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    archive = args.archive_of(args.archive)
    with open_catalogue(archive, readonly=True) as catalogue:
        doc = _describe(archive, catalogue)
    if args.json:
        json.dump(doc, stdout, indent=2)
        stdout.write("\n")
        return ExitCode.ok
    cur = doc["current"]
    if cur is None:
        print("current  none yet: one is made with the first media pack (7z, iso, usb)", file=stdout)
    else:
        print(f"current  {cur['fingerprint']}  {cur['packs']} pack(s) signed  ({cur['path']})", file=stdout)
    for r in doc["retired"]:
        print(f"retired  {r['fingerprint']}  {r['packs']} pack(s) signed  retired {r['retired'] or '?'}", file=stdout)
    for u in doc["unknown"]:
        print(f"MISSING  {u['fingerprint']}  {u['packs']} pack(s) signed, last {u['last_signed']}: the archive no "
              "longer holds this key; restore keys/ from the backup, or run lgd key rotate", file=stdout)
    return ExitCode.ok


def cmd_rotate(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    reason = free_text(args.reason, "--reason")
    archive = args.archive_of(args.archive)
    with open_catalogue(archive) as catalogue:
        done = rotate(catalogue, current_actor(), reason)
    doc = {"old": done.old, "new": done.new, "kept": list(done.kept), "lost": list(done.lost)}
    if args.json:
        json.dump(doc, stdout, indent=2)
        stdout.write("\n")
        return ExitCode.ok
    print(f"new key  {done.new}: give receivers this fingerprint with the passphrase of every pack from now on",
          file=stdout)
    if done.old:
        print(f"retired  {done.old}: its public key is kept; packs it signed still verify", file=stdout)
    for fp in done.kept:
        if fp != done.old:
            print(f"retired  {fp}: public key restored from the catalogue's pack records", file=stdout)
    for fp in done.lost:
        print(f"lost     {fp}: no public key anywhere; packs it signed verify only with the fingerprint the "
              "receiver was given (lgd verify --fingerprint)", file=stdout)
    return ExitCode.ok
