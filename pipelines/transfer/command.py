"""The `lgd verify` and `lgd unpack` sub-commands: check a received transfer pack, and unpack it only if it passes."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipelines.errors import ExitCode

from . import passphrase as passphrases
from .problems import PackCode, PackError

if TYPE_CHECKING:
    from .verify import Verification

# Same rule as pipelines.cli._archive; repeated because cli imports this module.
DEFAULT_ARCHIVE = "./lgd-archive"

EXIT_HELP = """exit codes:
  0    every check passed (unpack: the files are in --out)
  2    bad usage: no such pack, no passphrase, unusable --passphrase-file, --out not empty
  3    7-Zip (7zz) is not installed: run scripts/setup.sh
  5    the pack failed verification: wrong passphrase, damaged, incomplete, or changed
       after signing; unpack wrote nothing"""

CHECKS_HELP = """checks, in order (problem codes for --json in brackets):
  media       only what lgd writes: README.TXT as written, SHA256SUMS.TXT naming only
              this pack's volumes, all present and matching, no other file, folder,
              link or volume of another pack  [unsafe_name, media_unexpected, media_changed,
              volume_foreign, volume_missing, archive_corrupt]
  structure   7z headers complete, intact and encrypted      [archive_truncated, archive_corrupt, not_encrypted]
  passphrase  the encrypted headers open                     [wrong_passphrase]
  contents    plain files with neutral names only            [file_unexpected]
  sizes       the listed sizes fit the archive (lgd stores, never compresses)
              and the free disk, before anything is extracted  [archive_too_large]
  archive     the signed manifest first, its sizes against the listing, then every
              file with a byte budget and matching CRCs        [archive_corrupt, archive_too_large]
  signature   manifest.json validly signed                   [manifest_missing, manifest_invalid, signature_invalid]
  signer      by a trusted key                               [untrusted_signer]
  files       sizes and SHA-256 as signed, none missing/extra [file_mismatch, file_missing, file_unexpected]
  pdfa        each PDF is valid PDF/A-2b                     [pdfa_invalid]

trust: the pack names the key that signed it, so lgd also needs to know the key is the
sending practice's: the archive's own keys (packs you made, with the current key or one
retired by `lgd key rotate`), --public-key (their pack-signing.pub) or --fingerprint (read to
you with the passphrase, never taken from the pack or its disc). The signer line says which.""" 


def _para(text: str) -> str:
    return textwrap.fill(text, width=88)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `verify` and `unpack` to the `lgd` command's sub-parsers."""
    v = subparsers.add_parser(
        "verify",
        help="check a received transfer pack (.7z, .iso or USB folder): passphrase, integrity, signature",
        description=_para(
            "Check a transfer pack without keeping its contents: that it opens with the passphrase, is complete "
            "and undamaged, that its manifest is signed by a trusted key, and that every file is the one signed "
            "and valid PDF/A. Nothing is written; decrypted files live only in a private temporary folder."
        ) + "\n\n" + CHECKS_HELP,
        epilog="examples:\n  lgd verify lgd-pack-001.iso --fingerprint SHA256:3q2+7w... --passphrase-file pass.txt\n"
        "  lgd verify /media/usb/lgd-pack --public-key practice.pub --json\n\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(v)
    v.set_defaults(run=cmd_verify)

    u = subparsers.add_parser(
        "unpack",
        help="verify a transfer pack, then put its files in a new folder",
        description=_para(
            "Verify a transfer pack as `lgd verify` does and, only if every check passes, put its files (pack.pdf, "
            "manifest.json, manifest.sig, ...) into --out. The files are checked in a private folder beside --out "
            "and renamed into place, so --out either holds the whole verified pack or nothing."
        ) + "\n\n" + CHECKS_HELP,
        epilog="examples:\n  lgd unpack lgd-pack-001.iso --out received/ --passphrase-file pass.txt --fingerprint SHA256:3q2+7w...\n\n"
        + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(u)
    u.add_argument("--out", type=Path, required=True, metavar="DIR", help="new (or empty) folder for the pack's files")
    u.set_defaults(run=cmd_unpack)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("pack", type=Path, metavar="PACK", help="a .7z, the .7z.001 of a split set, lgd-pack-001.iso, or a pack folder")
    p.add_argument("--passphrase-file", type=Path, metavar="F", help="file whose first line is the passphrase "
                   "(default: ask on the terminal; the passphrase is never accepted on the command line)")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--public-key", type=Path, metavar="FILE", help="the sending practice's pack-signing.pub")
    trust.add_argument("--fingerprint", metavar="FP", help="the sending practice's key fingerprint, SHA256:...")
    p.add_argument("--archive", metavar="DIR", help=f"archive whose own key is trusted (default: $LGD_ARCHIVE or {DEFAULT_ARCHIVE})")
    p.add_argument("--json", action="store_true", help='print one JSON document: {"ok","pack","checks","problems","manifest"}')


def _read_passphrase(args: argparse.Namespace) -> str:
    if args.passphrase_file is not None:
        return passphrases.read_file(args.passphrase_file).secret
    if not sys.stdin.isatty():
        raise PackError(
            PackCode.passphrase_unusable,
            "no passphrase: give --passphrase-file F (lgd asks on the terminal only when it has one)",
            ExitCode.usage,
        )
    try:
        secret = getpass.getpass(f"passphrase for {args.pack.name}: ")
    except EOFError:
        secret = ""
    if not secret:
        raise PackError(PackCode.passphrase_unusable, "no passphrase was typed; nothing was checked", ExitCode.usage)
    return passphrases.check(secret, "the passphrase typed").secret


def _trusted(args: argparse.Namespace):
    archive = Path(args.archive or os.environ.get("LGD_ARCHIVE") or DEFAULT_ARCHIVE).absolute()
    from .verify import trusted_keys  # 7-Zip, ISO and PDF/A checks: imported only to verify

    return trusted_keys(archive, args.public_key, args.fingerprint)


def cmd_verify(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    trusted = _trusted(args)
    secret = _read_passphrase(args)
    from .verify import verify

    return _report(verify(args.pack, secret, trusted), args.json, stdout, "")


def cmd_unpack(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    trusted = _trusted(args)
    secret = _read_passphrase(args)
    from .verify import unpack

    return _report(unpack(args.pack, secret, args.out, trusted), args.json, stdout, "; nothing was unpacked")


def _report(result: Verification, as_json: bool, stdout: TextIO, consequence: str) -> ExitCode:
    if as_json:
        json.dump(result.to_json(), stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        _print(result, stdout)
    if result.ok:
        return ExitCode.ok
    # stderr: the whole first problem when stdout carries JSON, else a pointer to the table already printed.
    first = result.problems[0] if result.problems else None
    summary = (f"{first.code}: {first.message}" if as_json else f"{first.code}, see above") if first else "no manifest"
    print(f"lgd: {result.source.name} failed verification ({summary}){consequence}", file=sys.stderr)
    return ExitCode.verify_failed


def _print(result: Verification, out: TextIO) -> None:
    print(f"pack     {result.source}", file=out)
    m = result.manifest or {}
    if m and not result.ok:
        print("         (the details below are what the pack claims; it did not pass verification)", file=out)
    if m:
        coded = m.get("coded") or {}
        print(f"patient  {m.get('patient')}   created {m.get('created')}", file=out)
        print(f"coded    {coded.get('format')} sha256 {coded.get('sha256')}", file=out)
        for f in m.get("files") or []:
            print(f"file     {f.get('name'):16} {f.get('size'):>12} bytes  sha256 {f.get('sha256')}", file=out)
    print("", file=out)
    for c in result.checks:
        print(f"{'ok' if c.ok else 'FAIL':4}  {c.name:10}  {c.detail}", file=out)
    print("", file=out)
    if result.ok:
        where = f"; files in {result.out}" if result.out else ""
        print(f"VERIFIED: every check passed{where}", file=out)
    else:
        print(f"NOT VERIFIED: {len(result.problems)} problem(s)", file=out)
        for p in result.problems:
            print(f"  {p.code}: {p.message}", file=out)
