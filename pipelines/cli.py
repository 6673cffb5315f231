"""The `lgd` command: parse arguments once, run one sub-command, turn every error into an exit code."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from pathlib import Path

from digitise.errors import MissingDependency
from digitise.ocr import languages_installed, tessdata
from digitise.options import DigitiseOptions
from index import ArchiveError
from pipelines.display import elide, printable
from pipelines.engines import add_engine_options, default_workers, engine
from pipelines.errors import EXIT_CODE_HELP, ExitCode, LgdError
from pipelines.identity import IdentityError, read_manifest
from pipelines.progress import for_terminal
from pipelines.clinical import lgd_version
from pipelines.cli_common import add_as_option
from pipelines.cli_search import register as register_search
from pipelines.cli_who import act_as
from pipelines.cli_users import register as register_users
from pipelines.leavers_command import register as register_leavers
from pipelines.ingest.quarantine_command import register as register_quarantine
from pipelines.patient import register as register_patient
from pipelines.queue import command as queue_command
from pipelines.queue.watch import register as register_watch
from pipelines.records.command import register as register_coded
from pipelines.reconcile.command import register as register_reconcile
from pipelines.transfer.command import register as register_transfer
from pipelines.transfer.key_command import register as register_key
from pipelines.transfer.pack_command import register as register_pack
from pipelines.transfer.receive_command import register as register_receive
from pipelines.web.command import register as register_serve

if TYPE_CHECKING:
    from pipelines.ingest.run import Report

log = logging.getLogger("lgd")
DEFAULT_ARCHIVE = "./lgd-archive"
INTERRUPTED = "lgd: interrupted; documents already stored are kept, run again to resume"


def _archive(value: str | None) -> Path:
    return Path(value or os.environ.get("LGD_ARCHIVE") or DEFAULT_ARCHIVE)


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs wants a whole number, not {value!r}") from None
    if not 1 <= jobs <= 64:
        raise argparse.ArgumentTypeError("--jobs must be between 1 and 64")
    return jobs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgd",
        description="Digitise Lloyd George records into searchable PDF/A, search them, reconcile them "
        "page by page with the coded electronic record, and send only the pages that are not already "
        "coded: on encrypted media, as a minimal print run or as a National Document Repository upload.\n\n"
        "the usual order: digitise -> search -> coded import -> reconcile -> review -> pack -> (receiver) verify, unpack, receive",
        epilog=EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv for debug)")
    parser.add_argument("-V", "--version", action="version", version=f"lgd {lgd_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "digitise",
        help="OCR scanned envelopes into the archive as validated PDF/A-2b",
        description="Digitise scanned Lloyd George envelopes. Each input document (a PDF, a multi-page "
        "TIFF, or a folder of page images) becomes one validated PDF/A-2b in the archive, with every "
        "word, box and confidence, the dated entries of each card and letter, and a full-text index.",
        epilog="""patient identity comes from the input, never from OCR:
  file name     1of2_Lloyd_George_Record_[Jane Smith]_[9990001234]_[03-05-1950].pdf
  folder name   "9990001234 Jane Smith 03-05-1950/" holding page1.png, page2.jpg, ...
  manifest      --manifest metadata.csv with FILEPATH and NHS-NO columns

re-running on the same inputs skips what is already digitised (by checksum), so an
interrupted batch resumes (--force reads them again); inputs that fail are copied to ARCHIVE/quarantine with the reason.

examples:
  lgd digitise scans/ --archive /srv/lgd --jobs 2
  lgd digitise batch7/ --manifest batch7/metadata.csv --json > batch7.json

"""
        + EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="scan files and folders (searched recursively)")
    d.add_argument("--archive", metavar="DIR", help=f"archive folder (default: $LGD_ARCHIVE or {DEFAULT_ARCHIVE})")
    add_as_option(d)
    d.add_argument("--jobs", type=_jobs, default=None, metavar="N", help="documents digitised at once, one worker process "
                   "each (default: the CPU count, or fewer if the memory available would not hold that many "
                   "workers of the engine: about 1.2 GB each for auto and ppocr, 0.4 GB for tesseract)")
    d.add_argument("--manifest", type=Path, metavar="CSV", help="metadata.csv naming the patient of each file (FILEPATH, NHS-NO)")
    d.add_argument("--json", action="store_true", help="print one JSON document with every outcome on stdout")
    d.add_argument("--force", action="store_true",
                   help="read documents already in the archive again (normally skipped by checksum), e.g. with "
                        "another --engine: the new reading replaces the old PDF/A, words, entries and index "
                        "entries of the same document and patient, and is audited (redigitise); the patient's "
                        "reconciliations are made again. Costs a full OCR of each document")
    add_engine_options(d, "Tesseract language(s), e.g. eng or eng+cym (default: eng)")
    d.add_argument("--index-every", type=queue_command.documents_per_commit, metavar="N", help="commit the full-text index every N stored "
                   "documents (and every 10 s); 1 commits each document (slower); default: 50")
    queue_command.add_digitise_options(d)
    d.set_defaults(run=cmd_digitise)
    register_search(sub, lambda value: _archive(value).resolve())
    register_coded(sub)
    register_reconcile(sub, lambda value: _archive(value).resolve())
    register_pack(sub, lambda value: _archive(value).resolve())
    register_patient(sub, lambda value: _archive(value).resolve())
    register_transfer(sub)
    register_receive(sub, lambda value: _archive(value).resolve())
    register_key(sub, lambda value: _archive(value).resolve())
    register_users(sub, lambda value: _archive(value).resolve())
    register_leavers(sub, lambda value: _archive(value).resolve())
    register_serve(sub, lambda value: _archive(value).resolve())
    queue_command.register(sub, lambda value: _archive(value).resolve())
    register_watch(sub, lambda value: _archive(value).resolve())
    register_quarantine(sub, lambda value: _archive(value).resolve())
    return parser


def _summary(report: Report, seconds: float) -> dict:
    outcomes = report.outcomes
    by = lambda status: sum(1 for o in outcomes if o.status == status)  # noqa: E731
    return {
        "documents": len(outcomes),
        "ok": by("ok"),
        "skipped": by("skipped"),
        "failed": by("failed"),
        "pdfa_invalid": sum(1 for o in outcomes if o.status == "ok" and not o.pdfa_valid),
        "pages": sum(o.pages for o in outcomes if o.status == "ok"),
        "blank_pages": sum(len(o.blank_pages) for o in outcomes if o.status == "ok"),
        "duplicate_pages": sum(len(o.duplicate_pages) for o in outcomes if o.status == "ok"),
        "unreadable_pages": sum(len(o.unreadable_pages) for o in outcomes if o.status == "ok"),
        "entries": sum(o.entries for o in outcomes if o.status == "ok"),
        "warnings": list(report.warnings),
        "interrupted": report.interrupted,
        "seconds": round(seconds, 1),
    }


def _document_json(o) -> dict:
    return {
        "source": o.source,
        "nhs_number": o.nhs_number,
        "status": o.status,
        "reason": o.reason,
        "code": o.code,
        "pages": o.pages,
        "blank_pages": list(o.blank_pages),
        "duplicate_pages": list(o.duplicate_pages),
        "unreadable_pages": list(o.unreadable_pages),
        "entries": o.entries,
        "pdfa": o.pdfa,
        "pdfa_valid": o.pdfa_valid,
    }


def _print_table(report: Report, summary: dict, out) -> None:
    width = min(60, max([len(o.source) for o in report.outcomes] + [6]))
    print(f"{'status':8} {'pages':>5} {'blank':>5} {'dup':>4} {'unread':>6} {'entries':>7}  source", file=out)
    for o in report.outcomes:
        print(f"{o.status:8} {o.pages:5} {len(o.blank_pages):5} {len(o.duplicate_pages):4} {len(o.unreadable_pages):6} {o.entries:7}  {elide(o.source, width)}", file=out)
        if o.reason:
            print(f"{'':8} {'':>5} {printable(o.reason)}", file=out)
    for w in report.warnings:
        print(f"warning: {printable(w)}", file=out)
    print(
        f"\n{summary['documents']} documents: {summary['ok']} digitised, {summary['skipped']} skipped, "
        f"{summary['failed']} failed; {summary['pages']} pages ({summary['blank_pages']} blank, "
        f"{summary['duplicate_pages']} duplicate, {summary['unreadable_pages']} unreadable), "
        f"{summary['entries']} dated entries, {summary['seconds']} s",
        file=out,
    )


def cmd_digitise(args: argparse.Namespace, stdout) -> ExitCode:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise LgdError(f"no such file or folder: {', '.join(missing)}")
    manifest = None
    if args.manifest is not None:
        if not args.manifest.is_file():
            raise LgdError(f"--manifest {args.manifest}: no such file")
        try:
            manifest = read_manifest(args.manifest)
        except IdentityError as e:
            raise LgdError(f"--manifest {args.manifest}: {e}") from e
    missing_languages = sorted(set(args.language.split("+")) - languages_installed())
    if missing_languages:
        raise LgdError(f"--language {args.language}: no Tesseract language data for {', '.join(missing_languages)} in "
                       f"{tessdata()}; install it (e.g. apt-get install tesseract-ocr-{missing_languages[0]}) or set "
                       "TESSDATA_PREFIX", ExitCode.usage, "usage")
    options = DigitiseOptions(engine=engine(args), languages=args.language)
    jobs = args.jobs or default_workers(options.engine)
    archive = _archive(args.archive).resolve()
    started = time.monotonic()
    from pipelines.ingest.run import Ingest  # OCR and PDF/A: half a second to import, so only when digitising

    if args.queue:  # digitised by `lgd worker` processes through a Redis broker, stored here
        ingest = queue_command.queued_ingest(args, archive, options, for_terminal())
    else:
        ingest = Ingest(archive, options, jobs=jobs, progress=for_terminal(), force=args.force,
                        grouping=queue_command.index_grouping(args))
    try:
        report = ingest.run(args.paths, manifest)
    finally:
        ingest.close()
    summary = _summary(report, time.monotonic() - started)
    if args.json:
        json.dump({"documents": [_document_json(o) for o in report.outcomes], "summary": summary}, stdout, indent=2)
        stdout.write("\n")
    else:
        _print_table(report, summary, stdout)
    if report.interrupted:
        print(INTERRUPTED, file=sys.stderr)
        return ExitCode.interrupted
    return ExitCode.partial if report.failed else ExitCode.ok


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="lgd: %(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("ocrmypdf", "PIL", "pikepdf", "fpdf", "fontTools", "img2pdf"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING) if verbose < 2 else logging.INFO)


def _suggest(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """"did you mean ...?" for a mistyped command: argparse lists every choice instead."""
    words = [a for a in argv if not a.startswith("-")]
    commands = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    if not words or words[0] in commands:
        return None
    close = difflib.get_close_matches(words[0], list(commands), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else f"; the commands are {', '.join(commands)}"
    return f"lgd: unknown command {printable(words[0])!r}{hint}"


def _terminate_like_ctrl_c(signum, frame) -> None:
    # A service manager or `kill` stops lgd with SIGTERM: finish as for Ctrl-C (keep what is
    # stored, report, exit 130), through whatever SIGINT handler is in force right now.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # Everything lgd creates holds patient data: private to its user, whatever the shell's umask.
    os.umask(0o077)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if (message := _suggest(parser, argv)) is not None:
        print(message, file=sys.stderr)
        return ExitCode.usage
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return ExitCode.usage
    _configure_logging(args.verbose)
    run: Callable = args.run
    # Only the product goes to stdout; libraries that print are sent to stderr.
    stdout = sys.stdout
    try:
        act_as(args, lambda value: _archive(value).resolve())
        with contextlib.redirect_stdout(sys.stderr):
            return int(run(args, stdout))
    except BrokenPipeError:  # e.g. `lgd ... --json | head`: the reader left, nothing to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stop the interpreter's own flush error
        return int(ExitCode.ok)
    except KeyboardInterrupt:
        return _failed(args, stdout, "interrupted", INTERRUPTED.removeprefix("lgd: "), ExitCode.interrupted)
    except Exception as e:
        code, exit_code = _classify(e)
        if exit_code == ExitCode.internal:  # an unknown error: say so, fail loudly
            log.debug("unexpected error", exc_info=True)
            return _failed(args, stdout, code, f"internal error: {type(e).__name__}: {e} (run with -vv for the traceback)", exit_code)
        return _failed(args, stdout, code, str(e), exit_code)


def _classify(e: Exception) -> tuple[str, ExitCode]:
    """The one place exceptions become exit codes."""
    if isinstance(e, LgdError):
        return e.code, e.exit_code
    if isinstance(e, MissingDependency):
        return "missing_dependency", ExitCode.missing_dependency
    if isinstance(e, ArchiveError):
        return str(e.code), ExitCode.archive_error
    if isinstance(e, ValueError):  # option values rejected by the options objects
        return "usage", ExitCode.usage
    return "internal_error", ExitCode.internal


def _failed(args: argparse.Namespace, stdout, code: str, message: str, exit_code: ExitCode) -> int:
    """Report a failed command: a sentence on stderr and, with --json, one JSON document on stdout."""
    print(f"lgd: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        with contextlib.suppress(OSError):
            json.dump({"error": {"code": code, "message": message, "exit_code": int(exit_code)}}, stdout)
            stdout.write("\n")
    return int(exit_code)

if __name__ == "__main__":
    sys.exit(main())
