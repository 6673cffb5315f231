"""Build one patient's transfer pack: reconcile if needed, plan, write the PDF/A, put it in the chosen form.

`build_pack` is the whole job for one patient and is what `lgd pack` (and its --batch) runs:

1. `ensure_reconciled`: the latest run if it was made against the coded record to use now,
   else a new run (refused clearly when there is no coded record at all);
2. `plan_pack`: every page with its effective decision (clinician overrides applied);
3. `build_pack_pdf`: the validated PDF/A-2b (cover, omitted-pages index, included pages); with
   entry granularity, `select_excerpts` first picks the cards that may go as excerpts of their
   uncovered entries (see excerpts.py);
4. the form: encrypted media (`write_media`), a print file, or NDR files;
5. `record_pack`: who built which pack from which run, with its hash, in the catalogue.

The plaintext pack is staged in the archive's own tmp/ folder, never on the target medium.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from index import Catalogue
from index.coded import latest_coded_record
from index.decisions import record_pack
from index.leavers import leavers as leaver_rows
from index.pack_rows import recording_pack
from index.rows import ReconciliationRow
from pipelines.errors import ExitCode
from pipelines.reconcile import ensure_reconciled
from pipelines.actor import current_actor
from pipelines.records.model import record_from_json

from .destination import check_destination, writing
from .document import PackDocument, build_pack_pdf
from .electronic import EVENTS_PER_PRINTED_PAGE
from .excerpts import GRANULARITIES, select_excerpts
from .keys import require_known_key
from .media import write_media
from .ndr import write_ndr
from .plan import PackBuildError, PackPlan, plan_pack
from .provenance import NAME as PROVENANCE, build_provenance, to_bytes as provenance_bytes
from .printing import (
    PrintChoice, WholeRecord, choose_print, print_summary, sheets, whole_plan, whole_record_may_be_shorter,
)
from .signing import archive_public_key
from .formats import FORMATS, MEDIA_FORMATS

PRINT_NAME = "print-pack.pdf"


@dataclass(frozen=True)
class PackOptions:
    """How to build packs: one typed object, as the command line fills it."""

    format: str = "7z"
    with_electronic: bool = False
    media_size: int | None = None
    practice: str | None = None
    ods_code: str | None = None
    when: dt.date = field(default_factory=dt.date.today)
    granularity: str = "page"  # page: included pages whole; entry: cards may go as excerpts (excerpts.py)
    allow_missing_parts: bool = False  # pack a record some of whose parts were never digitised (the cover says so)
    keep_minimal: bool = False  # print: the minimal pack even when the whole record takes no more sheets

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {self.granularity!r}")
        if self.granularity == "entry" and self.format == "ndr":
            raise ValueError("the NDR holds scanned record pages: an ndr pack is built with page granularity")


@dataclass(frozen=True)
class PackResult:
    """What was built for one patient, in the shape `lgd pack --json` prints."""

    plan: PackPlan
    document: PackDocument
    format: str
    outputs: tuple[Path, ...]
    sha256: dict[str, str]
    sheets_everything: int  # the full paper record plus (an estimate of) the coded record, printed duplex
    sheets_pack: int  # sheets this pack prints (0 for media and NDR: nothing is printed)
    seconds: float
    fingerprint: str | None = None
    media_bytes: int = 0
    seconds_encrypting: float = 0.0
    print_line: str | None = None
    print_choice: PrintChoice | None = None
    warnings: tuple[str, ...] = ()
    granularity: str = "page"
    pack_id: int | None = None  # the catalogue's record of it

    @property
    def sheets_saved(self) -> int:
        return self.sheets_everything - self.sheets_pack

    def to_json(self) -> dict[str, Any]:
        plan, doc = self.plan, self.document
        out: dict[str, Any] = {
            "patient": plan.nhs_number,
            "format": self.format,
            "outputs": [str(p) for p in self.outputs],
            "pages_total": plan.full_record_pages,
            "pages_included": len(plan.included),
            "pages_omitted": len(plan.omitted),
            "sheets_saved": self.sheets_saved,
            "sha256": self.sha256,
            "pack": {"sha256": doc.sha256, "pages": doc.pages, "bytes": doc.bytes, "validation": doc.validation},
            "reconciliation": {"run": plan.run_id, "coded_format": plan.coded_format, "coded_sha256": plan.coded_sha256},
            "sheets": {"everything": self.sheets_everything, "pack": self.sheets_pack, "duplex": True},
            "seconds": round(self.seconds, 3),
            "granularity": self.granularity,
            "missing_parts": list(plan.missing_parts),
        }
        if self.pack_id is not None:  # the catalogue's row; a media pack's provenance.json names it too
            out["pack_id"] = self.pack_id
        if doc.excerpts is not None:
            out["excerpts"] = doc.excerpts.to_json()
        if doc.electronic is not None:
            out["electronic"] = {"events": doc.electronic.events, "pages": doc.electronic.pages,
                                 "gp_print_pages_estimate": doc.electronic.estimated_gp_print_pages}
        if self.fingerprint:
            out["fingerprint"] = self.fingerprint
            out["media_bytes"] = self.media_bytes
            out["seconds_encrypting"] = round(self.seconds_encrypting, 3)
        if self.print_line:
            out["print"] = self.print_line
        if self.print_choice is not None:
            out["print_choice"] = self.print_choice.to_json()
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def _coded(catalogue: Catalogue, nhs_number: str):
    row = latest_coded_record(catalogue, nhs_number)
    return None if row is None else record_from_json(row.record, row.sha256)


def _electronic_estimate_pages(plan: PackPlan) -> int:
    """Pages printing the coded record from a GP system would take (an estimate; see electronic.py)."""
    return -(-plan.coded_events // EVENTS_PER_PRINTED_PAGE)


def _place(source: Path, target: Path) -> None:
    """Copy into `target`'s folder under a temporary name, then rename: whole file or none.

    The partial copy is private (0600) from its first byte and removed on every failure (a full
    disc, a pulled stick, an interrupt): a patient record is never left half-written beside --out.
    """
    part = target.with_name(f".{target.name}.part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _cheapest_print(plan: PackPlan, pack: PackDocument, archive: Path, work: Path, options: PackOptions,
                    coded) -> tuple[PackDocument, PrintChoice]:
    """The print run to make: the minimal pack, or the whole record when that takes no more sheets.

    A short record can print on fewer sheets whole than as a pack (the pack adds a cover, an index
    of omitted pages and blank backs so that sections start on a front page); then the whole record
    is the cheaper and the safer output (nothing left out), unless --keep-minimal asks for the pack.
    """
    minimal = sheets(pack.pages, True)
    paper = plan.full_record_sheets(True)
    if options.keep_minimal or not whole_record_may_be_shorter(minimal, paper):
        return pack, choose_print(minimal, paper, None)
    whole = build_pack_pdf(whole_plan(plan), archive, work / "whole.pdf", coded=coded, with_electronic=options.with_electronic,
                           practice=options.practice, when=options.when, duplex=True,
                           whole=WholeRecord(minimal, len(plan.omitted)))
    choice = choose_print(minimal, paper, sheets(whole.pages, True))
    return (whole if choice.printed == "whole_record" else pack), choice


def build_pack(catalogue: Catalogue, nhs_number: str, out: Path, options: PackOptions, *,
               coded_path: Path | None = None, passphrase: str | None = None, actor: str | None = None,
               run: ReconciliationRow | None = None) -> PackResult:
    """Build and record one patient's pack under `out` (a folder; see `lgd pack --help` for the layout).

    `actor` is who builds it (default: the shell's account); `run` packs exactly that reconciliation
    (a signed-off leaver's) instead of the latest current one, made if need be.

    Raises:
        LgdError (and its PackError/PackBuildError kinds): no digitised or coded record, a coded
            file of another patient, `out` in use, a medium too small, a pack failing PDF/A.
    """
    started = time.perf_counter()
    archive = catalogue.archive
    actor = actor or current_actor()
    run = run or ensure_reconciled(catalogue, nhs_number, coded_path, actor=actor)
    plan = plan_pack(catalogue, nhs_number, run)
    if plan.missing_parts and not options.allow_missing_parts:
        raise PackBuildError(
            "missing_parts", f"NHS number {nhs_number}: {'; '.join(plan.missing_parts)} were never digitised, so a "
            "pack would be incomplete. Digitise the missing parts, or give --allow-missing-parts to pack what there is "
            "(the cover sheet then says what is missing)", ExitCode.partial)
    check_destination(out, 0, archive)  # writable, a real folder, not inside the archive: before any work
    if options.format in MEDIA_FORMATS:
        require_known_key(catalogue)  # never a silent new key while packs signed by the old one are recorded
    coded = _coded(catalogue, nhs_number)
    duplex = options.format == "print"
    staging = archive / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pack-", dir=staging))
    try:
        selection = select_excerpts(catalogue, plan) if options.granularity == "entry" else None
        document = build_pack_pdf(plan, archive, work / "pack.pdf", coded=coded, with_electronic=options.with_electronic,
                                  practice=options.practice, when=options.when, duplex=duplex, excerpts=selection)
        everything = sheets(plan.full_record_pages, True) + sheets(_electronic_estimate_pages(plan), True)
        extra: dict[str, Any] = {}
        if options.format in MEDIA_FORMATS:
            if passphrase is None:
                raise PackBuildError("passphrase_unusable", "a media pack needs a passphrase", ExitCode.usage)
            fields = {"patient": nhs_number, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "coded": {"format": plan.coded_format, "sha256": plan.coded_sha256},
                      "counts": {"pages_total": plan.full_record_pages, "pages_included": len(plan.included),
                                 "pages_omitted": len(plan.omitted), "reconciliation": plan.run_id}}
            if document.excerpts is not None:
                fields["counts"] |= {"granularity": "entry", "pages_reduced": len(document.excerpts.reduced),
                                     "crops": document.excerpts.crops}
            # The pack's row is made first (and kept only if the media are written) so that its signed
            # provenance.json can name the catalogue's id for it.
            written: tuple[Path, ...] = ()
            try:
                with recording_pack(catalogue, nhs_number, run.id, format=options.format, sha256=document.sha256,
                                    actor=actor) as pending:
                    pack_uuid = str(uuid.uuid4())
                    provenance = build_provenance(
                        plan, document, pack_id=pending.id, pack_uuid=pack_uuid, format=options.format,
                        created=fields["created"], practice=options.practice, ods_code=options.ods_code, built_by=actor,
                        destination=_destination(catalogue, nhs_number))
                    (work / PROVENANCE).write_bytes(provenance_bytes(provenance))
                    media = write_media([("pack.pdf", document.path), (PROVENANCE, work / PROVENANCE)], fields,
                                        format=options.format, out=out, passphrase=passphrase, archive=archive,
                                        media_size=options.media_size)
                    written = outputs = media.outputs
                    digests, pack_sheets = media.sha256, 0
                    extra = {"fingerprint": media.fingerprint, "media_bytes": media.bytes,
                             "seconds_encrypting": media.seconds_encrypting}
                    pending.detail = _detail(plan, document, options, outputs, digests, extra, archive) | {"uuid": pack_uuid}
                    pack_id = pending.id
            except BaseException:
                _discard(written)  # a pack the catalogue does not hold (its row was rolled back) never leaves
                raise
        elif options.format == "print":
            target = out / PRINT_NAME
            if target.exists():
                raise PackBuildError("out_not_empty", f"{target} exists; choose another --out", ExitCode.usage)
            document, choice = _cheapest_print(plan, document, archive, work, options, coded)
            if choice.printed == "whole_record":  # what is sent is what the result and the catalogue say
                plan = whole_plan(plan)
            check_destination(out, document.bytes, archive)
            with writing(out):
                out.mkdir(parents=True, exist_ok=True)
                _place(document.path, target)
            summary = print_summary(plan, document)
            outputs, digests, pack_sheets = (target,), {PRINT_NAME: document.sha256}, summary.pack_sheets
            extra = {"print_line": summary.line, "print_choice": choice}
        else:
            check_destination(out, document.bytes, archive)
            with writing(out):
                bundle = write_ndr(plan, document, out, ods_code=options.ods_code, when=options.when, user=actor)
            outputs = (*(f.path for f in bundle.files), bundle.metadata)
            digests = {str(f.path.relative_to(out)): f.sha256 for f in bundle.files}
            pack_sheets = 0
            extra = {"warnings": bundle.warnings}
        result = PackResult(plan, document, options.format, tuple(outputs), dict(digests), everything, pack_sheets,
                            time.perf_counter() - started, **extra, granularity=options.granularity)
        if options.format not in MEDIA_FORMATS:
            pack_id = record_pack(catalogue, nhs_number, run.id, format=options.format, sha256=document.sha256,
                                  detail=_detail(plan, document, options, outputs, digests, extra, archive),
                                  actor=actor)
        return replace(result, pack_id=pack_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _detail(plan: PackPlan, document: PackDocument, options: PackOptions, outputs, digests, extra: dict[str, Any],
            archive: Path) -> dict[str, Any]:
    """What the catalogue's pack row keeps about the pack: its files, counts, signer and choices."""
    detail = {"outputs": [str(p) for p in outputs], "sha256": digests,
              "pages_included": len(plan.included), "pages_omitted": len(plan.omitted),
              "with_electronic": options.with_electronic, "fingerprint": extra.get("fingerprint")}
    if extra.get("fingerprint"):  # the key itself too, so a rotation can keep it even if keys/ is lost
        detail["signer_public_key"] = base64.b64encode(archive_public_key(archive) or b"").decode("ascii")
    if extra.get("print_choice") is not None:
        detail["print_choice"] = extra["print_choice"].to_json()
    if document.excerpts is not None:  # which entries of which cards went as excerpts, for the audit
        detail["granularity"] = "entry"
        detail["excerpts"] = {k: v for k, v in document.excerpts.to_json().items() if k != "whole"}
    return detail


def _discard(paths: tuple[Path, ...]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _destination(catalogue: Catalogue, nhs_number: str) -> dict[str, Any] | None:
    """The practice the patient is leaving for, when they are on the leavers worklist (else None)."""
    open_ = [r for r in leaver_rows(catalogue, nhs_number) if r.state != "receipt_confirmed"]
    if not open_:
        return None
    row = open_[-1]
    return {"ods_code": row.ods_code, "movement_ref": row.movement_ref, "leaver": row.id}
