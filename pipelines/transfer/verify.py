"""Check a received transfer pack end to end, and unpack it only if every check passes.

    verify(path, passphrase, trusted) -> Verification
    unpack(path, passphrase, out_dir, trusted) -> Verification

`path` is a .7z, the .7z.001 of a split set, an .iso (the first, lgd-pack-001.iso, of a
set; the others are found beside it), or a folder (a USB stick's, a mounted disc, or
files copied from several discs). In order, each failure with its own PackCode:

  media       the medium holds only what lgd writes (unsafe_name, media_unexpected, media_changed,
              volume_foreign), the volumes are all there (volume_missing) and match SHA256SUMS.TXT
              (archive_corrupt); see locate.py
  structure   the 7z start header and header CRCs, and that the header is encrypted, without the
              passphrase (archive_truncated, archive_corrupt, not_encrypted)
  passphrase  7-Zip decrypts the headers (wrong_passphrase)
  contents    only plain files with neutral names (file_unexpected)
  archive     7-Zip extracts every file with matching CRCs (archive_corrupt, archive_truncated)
  signature   manifest.json is signed by the key it names (manifest_missing, manifest_invalid, signature_invalid)
  signer      that key is trusted: the archive's own (current or retired), --public-key or --fingerprint
              (untrusted_signer)
  files       each listed file has its size and SHA-256, none is missing or extra
              (file_mismatch, file_missing, file_unexpected)
  pdfa        each PDF passes pikepdf's PDF/A-2b validation (pdfa_invalid)

Problems are returned as data (a Verification), never as a traceback. Decrypted files
exist only in a private (0700) temporary folder that is removed before returning; unpack
builds that folder beside out_dir and renames it into place only when all checks pass.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitise.pdfa import validate as validate_pdfa
from index.store import sha256_file
from pipelines.errors import ExitCode, LgdError

from . import sevenzip
from .keys import retired_keys
from .locate import locate
from .problems import PackCode, PackError
from .signing import RESERVED, SAFE_NAME, TrustedKeys, archive_public_key, check_manifest, normalise_fingerprint, read_public_key

MAX_ENTRIES = 16  # a pack holds a handful of files; thousands would be a hostile archive
MAX_MANIFEST = 1 << 20  # manifest.json and manifest.sig are a few kB each
# lgd stores (7z -mx=0): the files inside come to the archive's size less its overhead. Anything
# that expands beyond that is compressed, so not lgd's, and may be a decompression bomb.
EXPANSION_SLACK = 1 << 20


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Problem:
    code: PackCode
    message: str


@dataclass(frozen=True, slots=True)
class Verification:
    source: Path
    checks: tuple[Check, ...]
    problems: tuple[Problem, ...]
    manifest: dict[str, Any] | None
    out: Path | None = None  # where unpack put the files; None when nothing was written
    signer: dict[str, Any] | None = None  # the key that signed the manifest and where trust in it comes from

    @property
    def ok(self) -> bool:
        # Derived, never stored: a verification with any problem, or without a manifest, fails.
        return not self.problems and self.manifest is not None

    def to_json(self) -> dict[str, Any]:
        document = {
            "ok": self.ok,
            "pack": str(self.source),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "problems": [{"code": p.code.value, "message": p.message} for p in self.problems],
            "manifest": self.manifest,
        }
        if self.out is not None:
            document["out"] = str(self.out)
        if self.signer is not None:
            document["signer"] = self.signer
        return document


@dataclass
class _Run:
    """The mutable state of one verification; frozen into a Verification at the end."""

    checks: list[Check] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    signer: dict[str, Any] | None = None

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def failed(self, name: str, code: PackCode, message: str) -> None:
        self.checks.append(Check(name, False, message))
        self.problems.append(Problem(code, message))


def trusted_keys(archive: Path | None, public_key: Path | None = None, fingerprint: str | None = None) -> TrustedKeys:
    """The keys a receiver trusts: the archive's own key (if it has one), a --public-key file, a --fingerprint.

    Raises:
        PackError (usage): the public-key file or fingerprint cannot be used.
    """
    keys: list[tuple[bytes, str]] = []
    fingerprints: list[tuple[str, str]] = []
    try:
        if archive is not None and (own := archive_public_key(archive)) is not None:
            keys.append((own, f"the archive's own key ({archive})"))
        for old in retired_keys(archive) if archive is not None else ():  # packs signed before `lgd key rotate`
            when = f", retired {old.retired}" if old.retired else ""
            keys.append((old.public_key, f"a retired key of the archive{when} ({old.path})"))
        if public_key is not None:
            keys.append((read_public_key(public_key), f"--public-key {public_key}"))
        if fingerprint is not None:
            fp = normalise_fingerprint(fingerprint)
            fingerprints.append((fp, f"--fingerprint {fp}"))
    except ValueError as e:
        raise LgdError(str(e), ExitCode.usage, "usage") from e
    return TrustedKeys(tuple(keys), tuple(fingerprints))


def verify(path: Path, passphrase: str, trusted: TrustedKeys) -> Verification:
    """Run every check on the pack at `path`; see the module docstring. Raises PackError (usage) if `path` does not exist."""
    path = _existing(path)
    work = Path(tempfile.mkdtemp(prefix="lgd-verify-"))
    try:
        run = _verify_into(path, passphrase, trusted, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Verification(path, tuple(run.checks), tuple(run.problems), run.manifest, signer=run.signer)


def unpack(path: Path, passphrase: str, out_dir: Path, trusted: TrustedKeys) -> Verification:
    """Verify the pack, then put its files in `out_dir` (created; must not exist or be empty).

    Nothing is written to `out_dir` unless every check passes: the files are extracted
    into a private folder beside it, checked there, and the folder renamed onto `out_dir`.

    Raises:
        PackError (usage): `path` does not exist, or `out_dir` is a file or a non-empty folder.
    """
    path = _existing(path)
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PackError(PackCode.out_not_empty, f"--out {out_dir} is not an empty folder; give a new folder so no file is overwritten", ExitCode.usage)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".lgd-unpack-", dir=out_dir.parent))
    try:
        run = _verify_into(path, passphrase, trusted, work)
        placed = None
        if not run.problems and run.manifest is not None:
            payload = work / "payload"
            for item in payload.iterdir():
                item.chmod(0o600)  # decrypted patient records: owner only
            payload.chmod(0o700)
            os.rename(payload, out_dir)  # replaces `out_dir` only if it is (still) an empty folder
            placed = out_dir
            run.passed("unpacked", f"{len(list(out_dir.iterdir()))} files in {out_dir}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Verification(path, tuple(run.checks), tuple(run.problems), run.manifest, placed, run.signer)


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    if not path.exists():
        raise PackError(PackCode.not_a_pack, f"no such file or folder: {path}", ExitCode.usage)
    return path


def _verify_into(path: Path, passphrase: str, trusted: TrustedKeys, work: Path) -> _Run:
    sevenzip.version()  # a missing or too old 7zz is the user's set-up, not the pack's fault: raise, do not report
    run = _Run()
    stage = "media"
    try:
        located = locate(path, work / "media")
        run.passed(stage, located.detail)
        parts = located.parts
        stage = "structure"
        sevenzip.check_structure(parts)
        run.passed(stage, f"{parts[0].name}: 7z headers complete, CRCs match")
        stage = "passphrase"
        entries = sevenzip.list_entries(parts[0], passphrase)
        run.passed(stage, "the encrypted headers opened with this passphrase")
        stage = "contents"
        _check_entries(entries)
        run.passed(stage, f"{len(entries)} plain files: {', '.join(sorted(e.name for e in entries))}")
        stage = "sizes"
        packed = sum(p.stat().st_size for p in parts)
        _check_sizes(entries, packed, work)
        run.passed(stage, f"{sum(e.size for e in entries):,} bytes listed in a {packed:,}-byte archive: no expansion")
        stage = "archive"
        payload = work / "payload"
        payload.mkdir()
        # The signed manifest first (small, bounded), then its sizes against the listing, then the rest
        # with a byte budget: nothing larger than the listing and the manifest agree on is ever written.
        budget = {e.name: e.size for e in entries}
        sevenzip.extract(parts[0], passphrase, payload, names=sorted(RESERVED & set(budget)), max_file_bytes=MAX_MANIFEST + 1)
        _check_signed_sizes(payload, budget)
        rest = sorted(set(budget) - RESERVED)
        if rest:
            sevenzip.extract(parts[0], passphrase, payload, names=rest, max_file_bytes=max(budget[n] for n in rest) + 1)
        run.passed(stage, "every file decrypted with matching CRCs, within the sizes listed and signed")
        stage = "signature"
        _check_payload(payload, trusted, run)
    except PackError as e:
        if e.exit_code == ExitCode.usage:  # the wrong thing was given (not a pack, not the first volume): say so, exit 2
            raise
        run.failed(stage, e.pack_code, str(e))
    return run


def _check_entries(entries) -> None:
    if not all(e.encrypted for e in entries):
        raise PackError(
            PackCode.not_encrypted,
            "the archive is not (wholly) encrypted, which lgd packs always are: it was made or re-packed by something "
            "else, and may have been read in transit. Do not use it; tell the sending practice",
        )
    if len(entries) > MAX_ENTRIES:
        raise PackError(PackCode.file_unexpected, f"the archive holds {len(entries)} items; a pack holds a few files. Do not use it")
    for e in entries:
        if not e.is_file or not SAFE_NAME.fullmatch(e.name):
            raise PackError(
                PackCode.file_unexpected,
                f"the archive holds {e.name!r}, which is not a plain file with a neutral name as lgd writes; "
                "it was not extracted. Do not use this pack",
            )


def _check_sizes(entries, packed: int, work: Path) -> None:
    """Refuse, from the 7z listing alone, an archive that would expand beyond its own size or the free disk."""
    total = sum(e.size for e in entries)
    big = [e.name for e in entries if e.name in RESERVED and e.size > MAX_MANIFEST]
    if total > packed + EXPANSION_SLACK or big:
        raise PackError(
            PackCode.archive_too_large,
            f"the archive ({packed:,} bytes) lists {total:,} bytes of files{' and an oversized ' + big[0] if big else ''}: "
            "lgd stores pack files uncompressed, so this was made by something else and may be built to fill the disk. "
            "Nothing was extracted; do not use it",
        )
    free = shutil.disk_usage(work).free
    if total > free:
        raise LgdError(f"{work.parent} has {free:,} bytes free and the pack holds {total:,}; free some space (or set TMPDIR "
                       "to a larger disk) and run again", ExitCode.archive_error, PackCode.out_unusable.value)


def _check_signed_sizes(payload: Path, budget: dict[str, int]) -> None:
    """The signed manifest's file sizes must be the listing's before anything else is extracted.

    The signature itself is checked later (with the trust decision); a manifest that does not
    parse is left for that check to report.
    """
    try:
        files = json.loads((payload / "manifest.json").read_bytes()).get("files") or []
        signed = {f["name"]: int(f["size"]) for f in files if isinstance(f, dict)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return
    for name, size in budget.items():
        if name in signed and signed[name] != size:
            raise PackError(
                PackCode.archive_too_large if size > signed[name] else PackCode.file_mismatch,
                f"the archive lists {name} as {size:,} bytes, its signed manifest says {signed[name]:,}: it was changed "
                "after signing. It was not extracted; do not use this pack",
            )


def _check_payload(payload: Path, trusted: TrustedKeys, run: _Run) -> None:
    present = {p.name: p for p in payload.iterdir()}
    odd = sorted(n for n, p in present.items() if p.is_symlink() or not p.is_file())
    if odd:  # the listing said plain files; anything else must not be read through
        raise PackError(PackCode.file_unexpected, f"the pack unpacked to {', '.join(odd)}, which are not plain files; do not use it")
    manifest_path, sig_path = payload / "manifest.json", payload / "manifest.sig"
    for p in (manifest_path, sig_path):
        if not p.is_file():
            raise PackError(PackCode.manifest_missing, f"the pack has no {p.name}, so its contents cannot be checked; do not use it")
    signed = check_manifest(manifest_path.read_bytes(), sig_path.read_bytes(), trusted)
    run.manifest = signed.manifest
    run.signer = {"fingerprint": signed.fingerprint, "trusted_by": signed.trusted_by}
    run.passed("signature", f"manifest.json carries a valid Ed25519 signature by key {signed.fingerprint}")
    if signed.trusted_by is None:
        run.failed(
            "signer",
            PackCode.untrusted_signer,
            f"the pack is signed by an unknown key (fingerprint {signed.fingerprint}); trusted keys: {trusted.describe()}. "
            "Compare it with the fingerprint the sending practice gave you separately with the passphrase (never one "
            "printed on or in the pack); only if they match, run again with --fingerprint. Otherwise do not use it",
        )
    else:
        run.passed("signer", f"key {signed.fingerprint} is trusted: {signed.trusted_by}")
    good: list[Path] = []
    bad = len(run.problems)
    for entry in signed.files:
        path = present.get(entry.name)
        if path is None:
            run.failed("files", PackCode.file_missing, f"{entry.name} is listed in the manifest but is not in the pack")
            continue
        size, sha = path.stat().st_size, sha256_file(path)
        if size != entry.size or sha != entry.sha256:
            run.failed(
                "files", PackCode.file_mismatch,
                f"{entry.name} is not the file that was signed: its SHA-256 is {sha} ({size} bytes), the manifest says "
                f"{entry.sha256} ({entry.size} bytes). It was changed or swapped; do not use this pack",
            )
            continue
        good.append(path)
    listed = {f.name for f in signed.files} | RESERVED
    for name in sorted(set(present) - listed):
        run.failed("files", PackCode.file_unexpected, f"{name} is in the pack but not in the signed manifest; it was added after signing")
    if len(run.problems) == bad:
        run.passed("files", f"{len(signed.files)} files match the manifest (size and SHA-256), none extra")
    for path in good:
        if path.suffix.lower() != ".pdf":
            continue
        result = validate_pdfa(path)
        if result.passed:
            run.passed("pdfa", f"{path.name} is valid PDF/A-2b")
        else:
            shown = "; ".join(result.findings[:3]) + (f" (+{len(result.findings) - 3} more)" if len(result.findings) > 3 else "")
            run.failed("pdfa", PackCode.pdfa_invalid, f"{path.name} is not valid PDF/A-2b: {shown}")
