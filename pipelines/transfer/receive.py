"""Receive a transfer pack from another practice: verify it, then file its pages in this archive with their provenance.

    receive_pack(archive, who, pack, passphrase, trusted) -> Received

In order, and nothing is written to the archive until the last step:

1. who may: a clerk or practice admin (the `digitise` permission), as for adding scans;
2. verify and unpack with `verify.unpack` (media, 7z structure, passphrase, signature by a
   trusted key, every file's SHA-256, PDF/A) into a private folder in the archive's tmp/;
3. the same pack again (the SHA-256 of its signed pack.pdf) is reported, not stored twice;
4. what the pack says about itself (receive_provenance): its signed provenance.json (the
   sender's practice and who built it, every page's decision and reason code, the evidence for
   each omitted page, what each page of pack.pdf is); only a pack made before provenance.json
   existed is read from its cover's text instead, and the result says which;
5. the patient: the signed manifest's NHS number (Modulus 11), which the provenance (or the old
   pack's cover) must name too; a patient already stored with another name or birth date is
   refused, never merged;
6. digitise pack.pdf with the archive's own pipeline, so the receiver's search and page viewer
   read it as any scan (the pack's text layer carries no OCR confidence, which the unreadable-page
   rule needs); entries on the pack's own pages (cover, index) and in the strips it adds are not
   record entries and are dropped;
7. store in one catalogue transaction: the document, its pages and entries, the provenance row
   (signed manifest and signature byte for byte, the sender's cover facts and omissions) and the
   audit record; the PDF/A and the pack.pdf as signed go to pdf/{nhs}/{sha256}.pdf first and are
   removed again if that transaction fails; then the full-text index (a failure there leaves the
   document marked unindexed, which the next `lgd digitise` or `lgd index rebuild` puts right).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitise.model import ScanDoc
from digitise.options import DigitiseOptions
from index import ArchiveStore, Catalogue, FullText, sha256_file
from index.errors import ArchiveError, ArchiveErrorCode, DuplicateDocument
from index.received import ReceivedPack, received_pack, record_received
from index.rows import EntryRow, PageRow
from pipelines.engines import configured_options
from pipelines.errors import ExitCode, LgdError
from pipelines.identity import PatientId, nhs_number_valid
from pipelines.identity_match import same_person
from pipelines.ingest import records, worker
from pipelines.ingest.discover import InputDoc
from pipelines.reindex import document_pages
from pipelines.service.access import Permission, Who

from .provenance import ProvenanceInvalid
from .receive_provenance import COVER_TEXT, SIGNED, PackSays, said_by_pack
from .receive_read import PackPagePart, strip_pixels
from .signing import TrustedKeys
from .verify import Verification, unpack

PACK_FILE = "pack.pdf"
LOCK = ".lgd-digitise.lock"  # the archive's one-writer lock, as `lgd digitise` takes it
WORK_PREFIX = "receive-"


class ReceiveError(LgdError):
    """A pack that cannot be received: refused before anything was written to the archive."""

    def __init__(self, message: str, code: str, exit_code: ExitCode = ExitCode.verify_failed,
                 http_status: int | None = None) -> None:
        super().__init__(message, exit_code, code, http_status)


@dataclass(frozen=True, slots=True)
class Received:
    """What receiving one pack did, in the shape `lgd receive --json` prints."""

    status: str  # received | already_received
    nhs_number: str
    name: str | None
    document_id: int
    source: str
    pack_sha256: str
    pages: int
    record_pages: int
    omitted: int
    entries: int
    sender: dict[str, Any]
    verification: Verification | None
    seconds: float
    received_at: dt.datetime | None = None
    received_by: str | None = None
    provenance: str = SIGNED  # where the sender's facts were read: SIGNED, or COVER_TEXT for packs made before it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status, "patient": self.nhs_number, "name": self.name, "document_id": self.document_id,
            "source": self.source, "pack_sha256": self.pack_sha256, "pages": self.pages,
            "record_pages": self.record_pages, "pages_omitted_by_sender": self.omitted, "entries": self.entries,
            "sender": self.sender, "provenance": self.provenance, "seconds": round(self.seconds, 3),
        }
        if self.received_at is not None:
            out["received_at"] = self.received_at.isoformat()
            out["received_by"] = self.received_by
        if self.verification is not None:
            out["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.verification.checks]
        return out


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def receive_pack(archive: Path, who: Who, pack: Path, passphrase: str, trusted: TrustedKeys, *,
                 options: DigitiseOptions | None = None, now: Callable[[], dt.datetime] = _utcnow,
                 uploaded_as: str | None = None) -> Received:
    """Verify the pack at `pack` and file its pages under its patient in `archive`; see the module docstring.

    `uploaded_as` is the name a pack uploaded through lgd serve was sent as (the audit names it, not its
    temporary copy).

    Raises:
        NotPermitted: `who` may not add to the archive.
        ReceiveError: the pack failed verification (verify_failed), names an invalid or conflicting
            patient, or could not be digitised; the archive is unchanged.
        ArchiveError: the archive cannot be written, or another command is writing it.
    """
    who.require(Permission.digitise)
    started = time.perf_counter()
    store = ArchiveStore(archive)
    store.ensure()
    with _writer_lock(archive), Catalogue.open(archive) as catalogue:
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=store.tmp_dir))
        try:
            checked = _verified(pack, passphrase, trusted, work / "pack")
            pdf = work / "pack" / PACK_FILE
            sha = sha256_file(pdf)
            earlier = received_pack(catalogue, sha)
            if earlier is not None:
                return _already(catalogue, earlier, checked, time.perf_counter() - started)
            if (done := catalogue.find_done(sha)) is not None:
                raise ReceiveError(f"this pack's pack.pdf is already in the archive as {done.source} (document "
                                   f"{done.id}); nothing was stored again", "already_stored", ExitCode.usage, 409)
            try:
                said = said_by_pack(work / "pack", checked.manifest or {})
            except ProvenanceInvalid as e:
                raise ReceiveError(f"{Path(pack).name} is signed but its {e}; nothing was stored. Ask the sending "
                                   "practice to resend", "pack_inconsistent") from e
            patient = _patient(catalogue, checked.manifest or {}, said)
            return _store(catalogue, store, who, uploaded_as or str(Path(pack).absolute()), checked, said, patient,
                          pdf, sha, options or configured_options(), work, now, started)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _verified(pack: Path, passphrase: str, trusted: TrustedKeys, into: Path) -> Verification:
    result = unpack(pack, passphrase, into, trusted)
    if not result.ok:
        first = result.problems[0] if result.problems else None
        why = f"{first.code}: {first.message}" if first else "it carries no signed manifest"
        raise ReceiveError(f"{Path(pack).name} failed verification ({why}); nothing was stored", "verify_failed")
    if not (into / PACK_FILE).is_file():
        raise ReceiveError(f"{Path(pack).name} holds no {PACK_FILE}, so there are no pages to receive; nothing was "
                           "stored", "no_pack_pdf")
    return result


def _patient(catalogue: Catalogue, manifest: dict[str, Any], said: PackSays) -> PatientId:
    """Who the pack is for: the signed manifest's NHS number, named by the pack too, and not someone else here."""
    nhs = str(manifest.get("patient") or "")
    if not nhs_number_valid(nhs):
        raise ReceiveError(f"the pack's signed manifest names NHS number {nhs[:20]!r}, which fails the Modulus 11 "
                           "check; nothing was stored. Ask the sending practice to check and resend", "bad_nhs_number")
    where = "provenance.json" if said.source == SIGNED else "cover sheet"
    if said.nhs_number != nhs:
        shown = said.nhs_number or "no NHS number"
        raise ReceiveError(f"the pack's signed manifest is for NHS number {nhs} but its {where} shows {shown}; "
                           "nothing was stored. Ask the sending practice to resend", "pack_inconsistent")
    coded = (manifest.get("coded") or {}).get("sha256")
    if said.coded_sha256 and coded and said.coded_sha256 != coded:
        raise ReceiveError(f"the pack's {where} names another coded record than its signed manifest; nothing was "
                           "stored. Ask the sending practice to resend", "pack_inconsistent")
    given = PatientId(nhs, said.name, said.born)
    row = catalogue.patient(nhs)
    known = PatientId(nhs, row.name, row.born) if row is not None else None
    why = same_person(known, given)
    if why is not None and known is not None:
        born = f", born {known.born:%d-%m-%Y}" if known.born else ""
        raise ReceiveError(
            f"NHS number {nhs} is already {known.name or 'a patient with no name'}{born} in this archive, and the "
            f"pack's {why}; nothing was stored. Check with the sending practice which patient this is before "
            "receiving it", "identity_conflict", ExitCode.partial, 409)
    return given


def _store(catalogue: Catalogue, store: ArchiveStore, who: Who, pack_file: str, checked: Verification,
           said: PackSays, patient: PatientId, pdf: Path, sha: str, options: DigitiseOptions, work: Path,
           now: Callable[[], dt.datetime], started: float) -> Received:
    manifest = checked.manifest or {}
    created = str(manifest.get("created") or "")
    source = f"received-pack-{created[:10] or 'undated'}-{sha[:12]}.pdf"
    scan = _digitise(pdf, source, patient, options, work / "job")
    if len(scan.pages) != len(said.parts):
        raise ReceiveError(f"{PACK_FILE} read as {len(scan.pages)} pages but the pack describes {len(said.parts)}; "
                           "nothing was stored", "pack_unreadable", ExitCode.internal)
    doc = InputDoc(source, (pdf,), patient, None, None, "file")
    sender = _sender(checked, said)
    provenance = {"source": said.source, "sender": sender, "pack": _pack_facts(manifest, sha),
                  "omitted": list(said.omitted), "pages": [p.to_json() for p in said.parts], **said.kept}
    at = now()
    new_files: list[Path] = []  # PDFs this receive put in pdf/: removed again unless the transaction commits
    try:
        relpath = _put(store, patient.nhs_number, scan.pdfa, new_files)
        pack_rel = _put(store, patient.nhs_number, pdf, new_files)
        reason = "" if scan.pdfa_valid else "PDF/A validation failed: " + "; ".join(scan.pdfa_findings[:3])
        patient_row, row, pages, entries = records.digitised(doc, scan, sha, pdf.stat().st_size, relpath, reason)
        entries = _record_entries(entries, pages, said.parts)
        received = ReceivedPack(sha, patient.nhs_number, pack_rel, sender["signer_fingerprint"], sender["trusted_by"],
                                (work / "pack" / "manifest.json").read_bytes(),
                                (work / "pack" / "manifest.sig").read_bytes(), provenance)
        document_id = record_received(catalogue, patient_row, row, pages, entries, received, actor=who.name, at=at,
                                      **who.audit_detail(), pack_file=pack_file, sender_practice=sender["practice"],
                                      pack_created=created or None, page_count=len(pages),
                                      pages_omitted_by_sender=len(said.omitted), provenance=said.source,
                                      sender_pack_id=sender["pack_id"], sender_pack_uuid=sender["pack_uuid"])
    except DuplicateDocument as e:  # another receive of the same pack won the race
        _remove(new_files)
        raise ReceiveError(f"this pack was stored by another command just now (document {e.document_id}); nothing "
                           "was stored again", "already_stored", ExitCode.usage, 409) from e
    except BaseException:
        _remove(new_files)
        raise
    stored = catalogue.document(document_id)
    assert stored is not None
    with FullText.open(catalogue.archive) as fulltext:
        fulltext.add_pages(document_pages(catalogue, stored))
    catalogue.mark_indexed(document_id)
    return Received("received", patient.nhs_number, catalogue.patient(patient.nhs_number).name, document_id, source,
                    sha, len(pages), sum(p.part == "record" for p in said.parts), len(said.omitted),
                    len(entries), sender, checked, time.perf_counter() - started, at, who.name, said.source)


def _digitise(pdf: Path, source: str, patient: PatientId, options: DigitiseOptions, work: Path) -> ScanDoc:
    worker.init(options)
    done = worker.digitise(worker.Job(0, ScanDoc(source=source, inputs=(pdf,), born=patient.born), work))
    if done.code in (worker.ARCHIVE_FULL, worker.ARCHIVE_READONLY):
        raise ArchiveError(ArchiveErrorCode(done.code), f"the archive cannot be written while reading the pack: "
                           f"{done.reason}; nothing was stored")
    if done.doc is None or done.doc.pdfa is None:
        raise ReceiveError(f"the pack verified but its pages could not be read ({done.code}: {done.reason}); nothing "
                           "was stored", "pack_unreadable", ExitCode.partial)
    return done.doc


def _record_entries(entries: list[EntryRow], pages: list[PageRow], parts: tuple[PackPagePart, ...]) -> list[EntryRow]:
    """Only the entries of the record itself: not the cover's or index's dates, nor the strip's birth date."""
    record = {p.pack_page for p in parts if p.part == "record"}
    limit = {p.number: p.height - strip_pixels(p.dpi) for p in pages}
    return [e for e in entries if e.page in record and e.box[1] < limit[e.page]]


def _sender(checked: Verification, said: PackSays) -> dict[str, Any]:
    signer = checked.signer or {}
    return {**said.sender, "signer_fingerprint": str(signer.get("fingerprint") or ""),
            "trusted_by": str(signer.get("trusted_by") or "")}


def _pack_facts(manifest: dict[str, Any], sha: str) -> dict[str, Any]:
    return {"sha256": sha, "created": manifest.get("created"), "coded": manifest.get("coded"),
            "counts": manifest.get("counts"), "files": manifest.get("files")}


def _already(catalogue: Catalogue, earlier: ReceivedPack, checked: Verification, seconds: float) -> Received:
    document = catalogue.document(earlier.document_id or 0)
    provenance = earlier.provenance
    patient = catalogue.patient(earlier.nhs_number)
    return Received(
        "already_received", earlier.nhs_number, patient.name if patient else None, earlier.document_id or 0,
        document.source if document else "", earlier.pack_sha256, document.page_count if document else 0,
        sum(p.get("part") == "record" for p in provenance.get("pages", [])), len(provenance.get("omitted", [])),
        len(catalogue.entries(document_id=earlier.document_id)) if document else 0, provenance.get("sender", {}),
        checked, seconds, earlier.received_at, earlier.actor, provenance.get("source", COVER_TEXT))


def _put(store: ArchiveStore, nhs: str, src: Path, new: list[Path]) -> str:
    relative = f"pdf/{nhs}/{sha256_file(src)}.pdf"
    existed = (store.root / relative).is_file()
    stored = store.put_pdf(nhs, src)
    if not existed:
        new.append(store.root / stored)
    return stored


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@contextmanager
def _writer_lock(archive: Path) -> Iterator[None]:
    """The archive's one-writer lock, shared with `lgd digitise`: a receive never interleaves with a batch."""
    path = archive / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise ArchiveError(ArchiveErrorCode.archive_locked,
                               f"another command (`lgd digitise` or `lgd receive`) is writing to the archive {archive}; "
                               "wait for it to finish and run this again") from e
        # Holding the lock, any receive folder in tmp/ is a dead run's: its decrypted pack must not linger.
        for leftover in (archive / "tmp").glob(f"{WORK_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
        yield
    finally:
        os.close(fd)


