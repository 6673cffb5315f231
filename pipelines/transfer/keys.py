"""The archive's signing keys over time: no silent new key, rotation on purpose, earlier public keys kept.

    ARCHIVE/keys/pack-signing.key, .pub        the current key (see signing.py)
    ARCHIVE/keys/retired/{UTC time}-{hex}.pub  public keys of earlier keys, so `lgd verify` still
                                               trusts the packs they signed

Receivers were given a key's fingerprint with each passphrase; packs already sent stay signed by
that key. So a key that disappears (keys/ deleted, restored from the wrong backup) must not be
replaced quietly: `require_known_key` refuses to sign while the catalogue records packs signed by
a key that is neither the current one nor retired, and `rotate` is the deliberate way to a new key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from index import Catalogue
from index.decisions import pack_signers
from pipelines.atomic import write_atomic
from pipelines.errors import ExitCode

from .problems import PackCode, PackError
from .signing import (
    KEY_DIR, archive_key_paths, fingerprint, load_or_create_key, load_private, new_private_pem, public_pem,
    public_pem_of, raw_public, read_public_key,
)

RETIRED_DIR = "retired"
ROTATED = "signing_key_rotated"  # the audit action of a rotation


@dataclass(frozen=True, slots=True)
class Signer:
    """A key that signed recorded packs: how many, the last when, and its public key if the catalogue has it."""

    fingerprint: str
    packs: int
    last: dt.datetime
    public_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class RetiredKey:
    public_key: bytes
    path: Path

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def retired(self) -> str:
        """When it was retired, from its file name (YYYY-MM-DD HH:MM UTC), or '' for a file named otherwise."""
        stamp = self.path.name.split("-", 1)[0]
        try:
            return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return ""


@dataclass(frozen=True, slots=True)
class Rotation:
    old: str | None  # the fingerprint retired, None when there was no current key
    new: str
    kept: tuple[str, ...]  # fingerprints whose public keys are now in keys/retired
    lost: tuple[str, ...]  # fingerprints of recorded packs whose public key nobody has any more


def recorded_signers(catalogue: Catalogue) -> tuple[Signer, ...]:
    return tuple(Signer(fp, n, last, _decode(key)) for fp, key, n, last in pack_signers(catalogue))


def _decode(value: str | None) -> bytes | None:
    try:
        raw = base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def acknowledged(catalogue: Catalogue) -> frozenset[str]:
    """Fingerprints a rotation has already dealt with (retired, or recorded as lost), from the audit trail."""
    seen: set[str] = set()
    for row in catalogue.audit_log(action=ROTATED):
        seen.update(str(fp) for fp in [row.detail.get("old"), *row.detail.get("kept", []), *row.detail.get("lost", [])] if fp)
    return frozenset(seen)


def retired_keys(archive: Path) -> tuple[RetiredKey, ...]:
    """The public keys in keys/retired, oldest first. Raises PackError naming a file that is not a public key."""
    folder = Path(archive) / KEY_DIR / RETIRED_DIR
    if not folder.is_dir():
        return ()
    keys = []
    for path in sorted(folder.glob("*.pub")):
        try:
            keys.append(RetiredKey(read_public_key(path), path))
        except ValueError as e:
            raise PackError(PackCode.signing_key_unusable, f"{e}; restore {path} from a backup or move it aside",
                            ExitCode.archive_error) from e
    return tuple(keys)


def current_fingerprint(archive: Path) -> str | None:
    """The current key's fingerprint (from the private key when present), or None when there is no key."""
    private, public = archive_key_paths(archive)
    if private.is_file():
        return fingerprint(raw_public(load_private(private).public_key()))
    if public.is_file():
        return fingerprint(read_public_key(public))
    return None


def unknown_signers(current: str | None, retired: Iterable[str], known: Iterable[str],
                    recorded: Iterable[Signer]) -> tuple[Signer, ...]:
    """Pure: the recorded signers that are neither the current key, nor retired, nor dealt with by a rotation."""
    ok = {current, *retired, *known}
    return tuple(s for s in recorded if s.fingerprint not in ok)


def require_known_key(catalogue: Catalogue) -> None:
    """Refuse to sign while packs signed by a key the archive no longer holds are recorded.

    Raises:
        PackError(signing_key_changed, exit 4): keys/ was deleted or replaced; the message names the
            keys, their packs, and the two ways on (restore keys/, or `lgd key rotate`).
    """
    archive = catalogue.archive
    retired = [k.fingerprint for k in retired_keys(archive)]
    current = current_fingerprint(archive)
    unknown = unknown_signers(current, retired, acknowledged(catalogue), recorded_signers(catalogue))
    if not unknown:
        return
    listed = "; ".join(f"{s.fingerprint} ({s.packs} pack(s), the last on {s.last:%Y-%m-%d})" for s in unknown)
    now = "has no signing key" if current is None else f"holds another key ({current})"
    raise PackError(
        PackCode.signing_key_changed,
        f"the archive {now}, but its catalogue records packs signed by {listed}. Receivers check packs against "
        f"that fingerprint, and lgd verify against the archive's keys. Restore {archive / KEY_DIR} from the "
        f"archive's backup; or, to change keys on purpose, run `lgd key rotate --archive {archive} --reason ...` "
        "(earlier public keys are kept for verifying) and give receivers the new fingerprint",
        ExitCode.archive_error,
    )


def rotate(catalogue: Catalogue, actor: str, reason: str, now: dt.datetime | None = None) -> Rotation:
    """Retire the current key (its public key kept in keys/retired, its private key destroyed) and make a new one.

    Public keys of earlier signers that the catalogue recorded but keys/ no longer holds are put
    back into keys/retired too; signers with no public key anywhere are named as lost. Audited
    as `signing_key_rotated` with the actor, the reason and every fingerprint.
    """
    archive = catalogue.archive
    now = now or dt.datetime.now(dt.timezone.utc)
    private, public = archive_key_paths(archive)
    folder = private.parent / RETIRED_DIR
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        have = {k.fingerprint for k in retired_keys(archive)}
        old_key = load_private(private) if private.is_file() else None
        old = fingerprint(raw_public(old_key.public_key())) if old_key else None
        kept: list[str] = []
        if old_key is not None and old not in have:  # the public key first: a crash after it loses nothing
            _retire(folder, raw_public(old_key.public_key()), now)
        if old:
            kept.append(old)
        lost: list[str] = []
        for s in recorded_signers(catalogue):
            if s.fingerprint in have or s.fingerprint == old or s.fingerprint in kept:
                continue
            if s.public_key is not None:
                _retire(folder, s.public_key, now)
                kept.append(s.fingerprint)
            else:
                lost.append(s.fingerprint)
        _replace_key(private)
        new_key = load_or_create_key(archive)
        write_atomic(public, public_pem(new_key), 0o644)
    except OSError as e:
        raise PackError(PackCode.signing_key_unusable, f"cannot rotate the key in {private.parent}: {e.strerror or e}; "
                        "check the archive folder is writable", ExitCode.archive_error) from e
    new = fingerprint(raw_public(new_key.public_key()))
    catalogue.audit(actor, ROTATED, old=old, new=new, kept=kept, lost=lost, reason=reason)
    return Rotation(old, new, tuple(kept), tuple(lost))


def _retire(folder: Path, public_key: bytes, now: dt.datetime) -> None:
    name = f"{now.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{public_key.hex()[:16]}.pub"
    write_atomic(folder / name, public_pem_of(public_key), 0o644)


def _replace_key(private: Path) -> None:
    """A new private key file in place of the old one, atomically (the old key can no longer sign)."""
    write_atomic(private, new_private_pem(), 0o600)
