"""Receiving a pack uploaded through `lgd serve`: where the upload waits, which key is trusted, and the list received.

    receive_upload(archive, who, saved, passphrase, fingerprint) -> Received
    known_signers(catalogue) -> [{fingerprint, practice, packs, last}]
    received_list(catalogue, who) -> [{...}]

The upload is the file `lgd pack` wrote (lgd-pack.7z, lgd-pack-001.iso) or the zip the leavers
page downloads for a pack of several files (split volumes, an ISO set, an NDR-sized folder). It
waits in a private (0700) folder in the archive's tmp/ (`upload_folder`), never beside the
pages, and the caller removes that folder whatever happens. The passphrase goes to 7-Zip and
nowhere else: not to the audit, not to a log, not to the catalogue.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from index import ArchiveStore, Catalogue
from index.received import all_received, received_signers
from pipelines.errors import ExitCode, LgdError
from pipelines.transfer.media import ARCHIVE_NAME
from pipelines.transfer.signing import SAFE_NAME, TrustedKeys, normalise_fingerprint

from .access import Permission, Who
from .received import pack_provenance

UPLOAD_PREFIX = "upload-pack-"
# A pack is its record's pages as scanned: tens of MB for a typical Lloyd George record at
# 300 dpi; a CD image is 700 MB. Larger than this is received from the shell (lgd receive).
MAX_PACK = 256 * 1024 * 1024
MAX_ZIP_MEMBERS = 64  # an ISO set of a few discs, or a folder's README, sums and volumes


@contextmanager
def upload_folder(archive: Path) -> Iterator[Path]:
    """A private folder in the archive's tmp/ for one upload, removed afterwards whatever happens."""
    store = ArchiveStore(archive)
    store.ensure()
    folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=store.tmp_dir))  # mkdtemp: mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upload_name(filename: str) -> str:
    """The name the uploaded file is kept under, from what it was called: only names lgd's packs have."""
    low = filename.lower()
    if low.endswith(".zip"):
        return "upload.zip"
    if low.endswith(".iso"):
        return "lgd-pack-001.iso"
    if low.endswith(".7z") or low.endswith(".7z.001"):
        return ARCHIVE_NAME
    raise LgdError(f"{filename[:80]!r} is not a pack: upload the lgd-pack.7z or lgd-pack-001.iso that lgd pack made, "
                   "or the .zip the leavers page gives for a pack of several files", ExitCode.usage, "not_a_pack", 400)


def receive_upload(archive: Path, who: Who, saved: Path, passphrase: str, fingerprint: str | None,
                   uploaded_as: str, chosen: bool = False) -> Any:
    """Receive the pack saved at `saved` (in an `upload_folder`), trusting the archive's keys and `fingerprint`.

    `chosen`: the fingerprint was picked from keys trusted for packs received before (else typed); the
    received pack's `trusted_by` says which, and who vouched for it.

    Raises:
        NotPermitted, ReceiveError, ArchiveError: as pipelines.transfer.receive.receive_pack;
        LgdError (usage): no passphrase or fingerprint, a bad fingerprint, a zip that is not a pack.
    """
    from pipelines.transfer.receive import receive_pack
    from pipelines.transfer.verify import trusted_keys

    who.require(Permission.digitise)
    if not passphrase:
        raise LgdError("type the pack's passphrase (given to you with the key's fingerprint)", ExitCode.usage,
                       "no_passphrase", 400)
    if not fingerprint:
        raise LgdError("type the sending practice's key fingerprint (SHA256:..., read to you with the passphrase), "
                       "or choose a key already trusted; the pack's own claim about its signer is not enough",
                       ExitCode.usage, "no_fingerprint", 400)
    try:
        fp = normalise_fingerprint(fingerprint)
    except ValueError:
        raise LgdError(f"{fingerprint[:60]!r} is not a key fingerprint; it looks like SHA256: followed by 43 "
                       "characters, as the sending practice reads it to you", ExitCode.usage, "bad_fingerprint",
                       400) from None
    how = "chosen from keys trusted for packs received before" if chosen else "typed"
    trusted = TrustedKeys(trusted_keys(archive).keys, ((fp, f"fingerprint {fp} {how} by {who.name} in lgd serve"),))
    pack = _unzipped(saved) if saved.name == "upload.zip" else saved
    return receive_pack(archive, who, pack, passphrase, trusted, uploaded_as=uploaded_as)


def _unzipped(saved: Path) -> Path:
    """The pack inside an uploaded zip: its members are lgd's own names only, unpacked beside it, size-bounded."""
    into = saved.parent / "pack"
    into.mkdir()
    try:
        with zipfile.ZipFile(saved) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if not members or len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_PACK:
                raise _not_pack("it holds no files, too many, or more bytes than a pack")
            for m in members:
                parts = m.filename.split("/")
                if len(parts) > 2 or not all(SAFE_NAME.fullmatch(p) for p in parts):
                    raise _not_pack(f"it holds {m.filename[:80]!r}, which is not a name lgd gives a pack's files")
                target = into.joinpath(*parts)
                target.parent.mkdir(exist_ok=True)
                with z.open(m) as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, FileExistsError) as e:
        raise _not_pack(f"it cannot be read as a zip ({e})") from e
    for name in (ARCHIVE_NAME, ARCHIVE_NAME + ".001", "lgd-pack-001.iso"):
        if (into / name).is_file():
            return into / name
    return into  # a pack folder (README.TXT, SHA256SUMS.TXT and the volumes): verify's locate reads it


def _not_pack(why: str) -> LgdError:
    return LgdError(f"the uploaded zip is not a pack as lgd makes it: {why}; nothing was stored", ExitCode.usage,
                    "not_a_pack", 400)


def known_signers(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Keys that signed packs received before (each trusted then by the person receiving), newest first."""
    return [{"fingerprint": fp, "practice": practice, "packs": count, "last": last.isoformat()}
            for fp, practice, count, last in received_signers(catalogue)]


def received_list(catalogue: Catalogue, who: Who) -> list[dict[str, Any]]:
    """Every pack received here, newest first: whose, from whom, which document; the look is audited."""
    who.require(Permission.view)
    packs = all_received(catalogue)
    catalogue.audit(who.name, "received_packs_listed", None, **who.audit_detail(), count=len(packs))
    out = []
    for p in packs:
        patient = catalogue.patient(p.nhs_number)
        out.append({"patient": p.nhs_number, "name": patient.name if patient else None,
                    "link": f"/patients/{p.nhs_number}"} | pack_provenance(p))
    return out
