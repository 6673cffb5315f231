"""The `lgd pack` sub-command: one patient or a batch of leavers, in the form the practice needs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipelines.cli_common import add_archive_option, nhs_number_arg
from pipelines.errors import ExitCode, LgdError
from pipelines.progress import for_terminal
from pipelines.reconcile.command import read_patient_list
from pipelines.search import open_catalogue

from . import passphrase as passphrases
from .formats import FORMATS, MEDIA_FORMATS

if TYPE_CHECKING:  # building packs imports 7-Zip, ISO and PDF code: only when a pack is built
    from .pack import PackOptions, PackResult

EXIT_HELP = """exit codes:
  0    the pack was built, checked as PDF/A-2b and recorded in the archive
  1    refused: no digitised or coded record for the patient, the coded file is another
       patient's; with --batch, some patients failed (the others were built)
  2    bad usage: no passphrase, --out already used, a medium too small
  3    a required program is missing (7zz): run scripts/setup.sh
  4    the archive cannot be used: missing, read-only, locked or damaged, or its signing
       key is not the one that signed earlier packs (signing_key_changed: see lgd key --help)"""

LAYOUT_HELP = """what --out holds (a folder; names carry no patient data where the media travel):
  7z     OUT/lgd-pack.7z: AES-256, encrypted headers; inside pack.pdf, provenance.json (every
         page's decision and reason code, the evidence, who built the pack: for lgd receive),
         manifest.json (signs both), manifest.sig
  iso    OUT/lgd-pack-001.iso (-002, ... split to fit --media): ISO 9660 + Joliet + UDF,
         each holding README.TXT, SHA256SUMS.TXT and the encrypted archive (or its part)
  usb    OUT/ itself laid out like a disc: README.TXT, SHA256SUMS.TXT, lgd-pack.7z
  print  OUT/print-pack.pdf, laid out for double-sided printing, and a line of sheets saved;
         when a pack of the paper-only pages would take no fewer sheets than the whole record
         (a short record: the cover, the index and blank backs cost sheets too), the whole
         record is printed instead, behind a cover that says why (--keep-minimal: the pack)
  ndr    OUT/metadata.csv and OUT/{NHS}/{i}of{n}_Lloyd_George_Record_[Name]_[NHS]_[DOB].pdf
         for a National Document Repository bulk upload; a name too long for a file name
         keeps the first given and the family name (what the NDR checks), and metadata.csv
         holds the full name (PATIENT-NAME); a cell starting = + - @ tab or CR gets a ' first
with --batch, each patient's pack goes into OUT/pack-001/, OUT/pack-002/, ... in list order.

the pack: a cover sheet (patient, the coded record checked against by format and SHA-256,
pages in the full record, included and omitted), an index of omitted pages, each with its
own reason (blank, a rescan of page N, every entry coded with the coded entries that cover
them, or a named clinician's decision), then the included pages in original order, each
stamped with its source file, page and "page i of n". Names lose bidirectional controls, and
a character the font cannot draw shows as a replacement mark rather than vanishing. Reconciliation runs first if the patient has no run
against the coded record given (--coded) or stored (lgd coded import).

--granularity entry (print and media packs): a continuation card whose other entries are all
coded goes as image excerpts of its paper-only and uncertain entries, each captioned with its
date, source file and page, after the record pages; the cover lists them, and the full page
stays available on request. Only a card reconciliation judged entry by entry, with every entry
dated and nothing found outside its entries (no unread writing, no stray ink), is cut down;
every other included page (letters, envelopes, overridden or undecided pages) goes whole.

passphrases (7z, iso, usb): at least 100 bits, 8 words from a bundled word list. Give one with
--passphrase-file, or let lgd make one: it is shown once on the terminal, or written to
--new-passphrase-file. Send it, with the key fingerprint lgd prints, by a separate channel
(telephone), never with the media. It is never written to the media, logs or archive."""


def register(sub: argparse._SubParsersAction, archive_of: Callable[[str | None], Path]) -> None:
    p = sub.add_parser(
        "pack",
        help="build a transfer pack of the pages that must be sent: encrypted media, print or NDR upload",
        description="Build a transfer pack holding only the pages reconciliation marked include (clinician "
        "overrides applied), with a cover sheet saying what was left out and why.",
        epilog=LAYOUT_HELP + """

examples:
  lgd pack --patient 9434765919 --format iso --media cd --out /media/burn --new-passphrase-file pass.txt
  lgd pack --patient 9434765919 --format print --out print/ --with-electronic
  lgd pack --batch leavers.csv --format 7z --out packs/ --new-passphrase-file passphrases.csv --json

""" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--patient", type=nhs_number_arg, metavar="NHS", help="the patient's NHS number")
    who.add_argument("--batch", type=Path, metavar="CSV", help="many patients: a CSV with nhs_number and "
                     "optionally coded (a path, relative to the CSV)")
    p.add_argument("--coded", type=Path, metavar="FILE", help="the coded record to check against (default: the stored one)")
    p.add_argument("--format", choices=FORMATS, default="7z", help="the form of the pack (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into (see below)")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--passphrase-file", type=Path, metavar="F", help="use the passphrase in F (first line)")
    secret.add_argument("--new-passphrase-file", type=Path, metavar="F", help="make a passphrase and write it to F "
                        "(a new file, readable only by you); with --batch, one line per pack: pack,nhs_number,passphrase")
    p.add_argument("--media", metavar="SIZE", help="split to fit: cd (737,280,000 bytes), dvd, or a size such as "
                   "650M or 4.7G (iso default: cd)")
    p.add_argument("--with-electronic", action="store_true", help="add the coded record as a readable section, "
                   "for when GP2GP failed outright and the electronic record would otherwise be printed")
    p.add_argument("--granularity", choices=("page", "entry"), default="page",
                   help="page: send included pages whole; entry: send a card's uncovered entries as excerpts "
                   "where it is safe (see below) (default: %(default)s)")
    p.add_argument("--allow-missing-parts", action="store_true", help="pack a record some of whose parts (1of3, "
                   "2of3, ...) were never digitised; the cover sheet and --json say which. Without it lgd refuses")
    p.add_argument("--keep-minimal", action="store_true", help="print: print the minimal pack even when the whole "
                   "record takes no more sheets (by default lgd then prints the whole record, nothing left out, and "
                   "says why on its cover)")
    p.add_argument("--practice", metavar="NAME", help="the sending practice, for the cover sheet")
    p.add_argument("--ods", metavar="CODE", help="the practice's ODS code (NDR metadata GP-PRACTICE-CODE)")
    add_archive_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON document describing what was built")
    p.set_defaults(run=cmd_pack, archive_of=archive_of)


def _options(args: argparse.Namespace) -> PackOptions:
    if args.coded is not None and not args.coded.is_file():
        raise LgdError(f"--coded {args.coded}: no such file", ExitCode.usage, "usage")
    return pack_options(args.format, media=args.media, with_electronic=args.with_electronic,
                        granularity=args.granularity, allow_missing_parts=args.allow_missing_parts,
                        keep_minimal=args.keep_minimal, practice=args.practice, ods=args.ods)


def pack_options(format: str, *, media: str | None = None, with_electronic: bool = False,  # noqa: A002
                 granularity: str = "page", allow_missing_parts: bool = False, keep_minimal: bool = False,
                 practice: str | None = None, ods: str | None = None) -> PackOptions:
    """The options of one pack, checked together, as `lgd pack` and a leaver's pack (service.handover) give them."""
    from .media import parse_media_size
    from .pack import PackOptions

    if format not in FORMATS:
        raise LgdError(f"the format must be one of {', '.join(FORMATS)}, not {format!r}", ExitCode.usage, "usage")
    if granularity not in ("page", "entry"):
        raise LgdError(f"granularity must be page or entry, not {granularity!r}", ExitCode.usage, "usage")
    size = None
    if media is not None:
        if format not in MEDIA_FORMATS:
            raise LgdError(f"--media applies to 7z, iso and usb packs, not {format}", ExitCode.usage, "usage")
        try:
            size = parse_media_size(media)
        except ValueError as e:
            raise LgdError(f"--media {media}: {e}", ExitCode.usage, "usage") from e
    if granularity == "entry" and format == "ndr":
        raise LgdError("--granularity entry applies to print and media packs: the NDR holds scanned record pages, "
                       "so an ndr pack sends them whole", ExitCode.usage, "usage")
    if keep_minimal and format != "print":
        raise LgdError(f"--keep-minimal applies to print packs, not {format}", ExitCode.usage, "usage")
    return PackOptions(format, with_electronic, size, practice, ods, granularity=granularity,
                       allow_missing_parts=allow_missing_parts, keep_minimal=keep_minimal)


class Secrets:
    """Where passphrases come from and go to, so each is shown or written exactly once."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.media = args.format in MEDIA_FORMATS
        self.given = passphrases.read_file(args.passphrase_file).secret if self.media and args.passphrase_file else None
        self.new_file: Path | None = args.new_passphrase_file if self.media else None
        self.batch = args.batch is not None
        if self.media and self.given is None and self.new_file is None and not sys.stderr.isatty():
            raise LgdError("a media pack needs a passphrase and there is no terminal to show a new one on: give "
                           "--passphrase-file F, or --new-passphrase-file F to have lgd make one", ExitCode.usage, "usage")
        if self.new_file is not None and self.new_file.exists():
            raise LgdError(f"--new-passphrase-file {self.new_file} exists; lgd will not overwrite a passphrase file",
                           ExitCode.usage, "usage")
        self._lines: list[str] = []

    def for_pack(self) -> str | None:
        """The passphrase for the next pack: the one given, or a new one (kept only once it is used)."""
        if not self.media:
            return None
        return self.given if self.given is not None else passphrases.generate().secret

    def used(self, label: str, nhs: str, phrase: str | None) -> None:
        """A pack was built with `phrase`: a new one must now reach the user."""
        if phrase is not None and phrase != self.given:
            self._lines.append(f"{label},{nhs},{phrase}" if self.batch else phrase)

    def deliver(self, fingerprint: str | None) -> None:
        """Write new passphrases to their file (0600, created new) or show them once on the terminal."""
        if not self._lines:
            return
        text = "\n".join((["pack,nhs_number,passphrase"] if self.batch else []) + self._lines) + "\n"
        if self.new_file is not None:
            fd = os.open(self.new_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            print(f"lgd: passphrase(s) written to {self.new_file} (readable only by you): send by a separate "
                  f"channel with the key fingerprint {fingerprint}, then delete the file", file=sys.stderr)
        else:
            print("\n  passphrase (shown once; send it by a separate channel, never with the media):\n", file=sys.stderr)
            for line in self._lines:
                print(f"    {line}", file=sys.stderr)
            print(f"\n  key fingerprint: {fingerprint}", file=sys.stderr)
        if fingerprint:  # read aloud with the passphrase: words are heard right where base64 is not
            from .pgpwords import fingerprint_words, spoken

            print(f"\n  key fingerprint as words:\n    {spoken(fingerprint_words(fingerprint))}\n", file=sys.stderr)


def cmd_pack(args: argparse.Namespace, stdout: TextIO) -> ExitCode:
    from .pack import build_pack

    options = _options(args)
    secrets = Secrets(args)
    with open_catalogue(args.archive_of(args.archive)) as catalogue:
        if args.batch is None:
            phrase = secrets.for_pack()
            result = build_pack(catalogue, args.patient, args.out, options, coded_path=args.coded, passphrase=phrase)
            secrets.used("pack", args.patient, phrase)
            secrets.deliver(result.fingerprint)
            _emit_one(result, args.json, stdout)
            return ExitCode.ok
        return _batch(catalogue, args, options, secrets, stdout)


def _emit_one(result: PackResult, as_json: bool, stdout: TextIO) -> None:
    doc = result.to_json()
    if as_json:
        json.dump(doc, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return
    print(f"pack for {doc['patient']} ({result.format}): {doc['pages_included']} of {doc['pages_total']} pages "
          f"sent, {doc['pages_omitted']} omitted as already coded", file=stdout)
    for path in doc["outputs"]:
        print(f"  {path}", file=stdout)
    print(f"checked against {doc['reconciliation']['coded_format']} record sha256 "
          f"{doc['reconciliation']['coded_sha256'][:16]}... (reconciliation {doc['reconciliation']['run']})", file=stdout)
    if "excerpts" in doc:
        x = doc["excerpts"]
        print(f"entry granularity: {x['pages_reduced']} card(s) sent as {x['crops']} excerpt(s) on "
              f"{x['excerpt_pages']} page(s); the full pages are available on request", file=stdout)
    if result.print_choice is not None:
        print(result.print_choice.line, file=stdout)
    if result.print_line:
        print(result.print_line, file=stdout)
    print(f"sheets: printing everything (paper record + coded record, double-sided) takes about "
          f"{result.sheets_everything}; this pack prints {result.sheets_pack}: {result.sheets_saved} saved", file=stdout)
    if result.fingerprint:
        print(f"signing key fingerprint (send with the passphrase): {result.fingerprint}", file=stdout)
    for w in result.warnings:
        print(f"warning: {w}", file=stdout)


def _batch(catalogue, args: argparse.Namespace, options: PackOptions, secrets: Secrets, stdout: TextIO) -> ExitCode:
    from .pack import build_pack

    todo = read_patient_list(args.batch)
    if args.out.exists() and any(args.out.iterdir()):
        raise LgdError(f"--out {args.out} is not empty; a batch writes pack-001/, pack-002/, ... into a new folder",
                       ExitCode.usage, "out_not_empty")
    progress = for_terminal()
    results: list[dict[str, Any]] = []
    fingerprint = None
    progress.start(len(todo), "packing")
    try:
        for i, (nhs, coded) in enumerate(todo, start=1):
            label = f"pack-{i:03d}"
            try:
                phrase = secrets.for_pack()
                result = build_pack(catalogue, nhs, args.out / label, options, coded_path=coded, passphrase=phrase)
                secrets.used(label, nhs, phrase)
                fingerprint = result.fingerprint or fingerprint
                results.append({"folder": label, "ok": True, **result.to_json()})
            except LgdError as e:
                results.append({"folder": label, "patient": nhs, "ok": False, "error": {"code": e.code, "message": str(e)}})
            progress.advance(nhs)
    finally:
        progress.stop()
        secrets.deliver(fingerprint)
    ok = [r for r in results if r["ok"]]
    summary = {
        "patients": len(results), "failed": len(results) - len(ok),
        "pages_total": sum(r["pages_total"] for r in ok), "pages_included": sum(r["pages_included"] for r in ok),
        "pages_omitted": sum(r["pages_omitted"] for r in ok), "sheets_saved": sum(r["sheets_saved"] for r in ok),
        "sheets_everything": sum(r["sheets"]["everything"] for r in ok),
    }
    if options.granularity == "entry":
        summary["pages_reduced"] = sum(r["excerpts"]["pages_reduced"] for r in ok)
        summary["crops"] = sum(r["excerpts"]["crops"] for r in ok)
    if args.json:
        json.dump({"packs": results, "summary": summary}, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        for r in results:
            if r["ok"]:
                print(f"{r['folder']}  {r['patient']}  {r['pages_included']:4} of {r['pages_total']:4} pages sent  "
                      f"{r['sheets_saved']:4} sheets saved", file=stdout)
            else:
                print(f"{r['folder']}  {r['patient']}  failed: {r['error']['message']}", file=stdout)
        print(f"\n{summary['patients']} patients ({summary['failed']} failed): {summary['pages_included']} of "
              f"{summary['pages_total']} pages sent, {summary['pages_omitted']} omitted; {summary['sheets_saved']} of "
              f"{summary['sheets_everything']} sheets saved against printing everything", file=stdout)
    return ExitCode.partial if summary["failed"] else ExitCode.ok
