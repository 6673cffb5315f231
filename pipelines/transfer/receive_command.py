"""The `lgd receive` sub-command: verify a transfer pack from another practice and file its pages in this archive."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from pipelines.cli_common import add_archive_option
from pipelines.errors import ExitCode

EXIT_HELP = """exit codes:
  0    received (or received before: nothing stored twice)
  1    refused: the NHS number is another patient here (name or date of birth differ), or the
       pack's pages could not be read; nothing was stored
  2    bad usage: no such pack, no passphrase, no trusted key given
  3    7-Zip (7zz) or the OCR tools are not installed: run scripts/setup.sh
  4    the archive cannot be written, or another lgd digitise/receive is writing it
  5    the pack failed verification (wrong passphrase, damaged, changed after signing, untrusted
       signer) or contradicts itself; nothing was stored
  6    not permitted: receiving needs a clerk or practice admin (--as NAME)"""


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    p = sub.add_parser(
        "receive",
        help="verify a transfer pack from another practice and file its pages in this archive, with provenance",
        description="Receive a transfer pack (.7z, .7z.001, lgd-pack-001.iso or a USB folder) made by `lgd pack` at "
        "the sending practice: verify it exactly as `lgd verify` does, then file its pages under the patient its "
        "signed manifest names, read as any scan is (search and the page viewer of `lgd serve` work on them), with "
        "the sender's cover (practice, coded record checked against, pages omitted and why) kept as provenance. "
        "A pack that fails any check, or names a patient stored here with another name or date of birth, is "
        "refused and nothing is stored; the same pack received again is stored once.",
        epilog="""trust: give the sending practice's key by --fingerprint (read to you with the passphrase)
or --public-key (their pack-signing.pub); the pack's own claim about its signer is not enough.

what is kept: the pages as one document named received-pack-DATE-HASH.pdf (cover, index of
omitted pages and the record pages, each with the strip naming the sender's source file and
page); the pack.pdf, its signed manifest and provenance.json as received; the sender's
practice, who built the pack and its id, the coded record it was checked against, and every
omitted page with the sender's reason code and evidence (lgd serve: the patient's pages, and
GET /api/v1/patients/NHS/pages, "received"). These are read from the pack's signed
provenance.json; only a pack made before packs carried one is read from its cover sheet's
text, and the output says so ("provenance": "signed" or "cover text (old pack)").

examples:
  lgd receive lgd-pack-001.iso --fingerprint SHA256:3q2+7w... --passphrase-file pass.txt
  lgd receive /media/usb/lgd-pack --public-key riverside.pub --archive /srv/lgd --as clerk1 --json

""" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pack", type=Path, metavar="PACK", help="a .7z, the .7z.001 of a split set, lgd-pack-001.iso, "
                   "or a pack folder")
    p.add_argument("--passphrase-file", type=Path, metavar="F", help="file whose first line is the passphrase "
                   "(default: ask on the terminal; never accepted on the command line)")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--public-key", type=Path, metavar="FILE", help="the sending practice's pack-signing.pub")
    trust.add_argument("--fingerprint", metavar="FP", help="the sending practice's key fingerprint, SHA256:...")
    add_archive_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON document describing what was received")
    p.set_defaults(run=cmd_receive, archive_of=archive_of)


def cmd_receive(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    from pipelines.service.accounts import shell_who
    from pipelines.search import open_catalogue

    from .command import _read_passphrase
    from .receive import receive_pack
    from .verify import trusted_keys

    archive = args.archive_of(args.archive)
    trusted = trusted_keys(archive, args.public_key, args.fingerprint)
    who = _who(archive, args, shell_who, open_catalogue)
    secret = _read_passphrase(args)
    result = receive_pack(archive, who, args.pack, secret, trusted)
    doc = result.to_json()
    if args.json:
        json.dump(doc, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return ExitCode.ok
    sender = doc["sender"]
    if result.status == "already_received":
        print(f"already received: this pack was filed on {doc['received_at'][:16]} by {doc['received_by']} as "
              f"{doc['source']} (document {doc['document_id']}); nothing was stored again", file=stdout)
        return ExitCode.ok
    print(f"received for {doc['patient']} ({doc['name'] or 'name not recorded'}): {doc['pages']} pages as "
          f"{doc['source']} (document {doc['document_id']}), {doc['record_pages']} of them record pages, "
          f"{doc['entries']} dated entries", file=stdout)
    built = f", pack {sender['pack_id']} built by {sender['built_by']}" if sender.get("pack_id") else ""
    print(f"from {sender.get('practice') or 'a practice the pack does not name'}{built}, signed by "
          f"{sender['signer_fingerprint']} (trusted: {sender['trusted_by']})", file=stdout)
    print(f"the sender's decisions were read from: {doc['provenance']}", file=stdout)
    print(f"the sender omitted {doc['pages_omitted_by_sender']} page(s); their reasons are kept with the pages "
          "(lgd serve: the patient's pages)", file=stdout)
    return ExitCode.ok


def _who(archive: Path, args: argparse.Namespace, shell_who, open_catalogue):
    """The acting user as `lgd` resolved it (--as / LGD_USER), or the folder's owner of a new archive."""
    from pipelines.service.access import Role, Who
    from pipelines.actor import current_actor

    if not (archive / "catalogue.sqlite").exists():
        return Who(current_actor(), Role.owner, "shell")
    with open_catalogue(archive) as catalogue:
        return shell_who(catalogue, getattr(args, "as_user", None) or os.environ.get("LGD_USER") or None)


