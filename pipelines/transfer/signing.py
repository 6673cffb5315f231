"""The practice's Ed25519 pack-signing key, the signed manifest of a pack, and checking both.

The key lives in the archive folder: ARCHIVE/keys/pack-signing.key (PEM, PKCS#8, mode
0600, created atomically the first time a pack is written) with the public key beside it
in pack-signing.pub (PEM, SubjectPublicKeyInfo). The signature is made over the exact
bytes of manifest.json and stored, raw (64 bytes), as manifest.sig, so a receiver can
also check it without lgd:

    openssl pkeyutl -verify -pubin -inkey pack-signing.pub -rawin -in manifest.json -sigfile manifest.sig

A valid signature only proves who signed if the receiver trusts the key. The manifest
carries the signer's public key, so anyone can re-sign an edited manifest with a key of
their own: the key's fingerprint (SHA256:<base64 of the SHA-256 of the raw 32-byte key>)
must therefore reach the receiver by the separate channel that carries the passphrase
(a phone call, a letter), and `lgd verify --fingerprint` checks the pack against it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipelines.atomic import write_atomic
from pipelines.errors import ExitCode

from .problems import PackCode, PackError

log = logging.getLogger(__name__)

KEY_DIR = "keys"
KEY_FILE = "pack-signing.key"
PUBLIC_FILE = "pack-signing.pub"
FORMAT_VERSION = 1
ALGORITHM = "Ed25519"
_SHA = re.compile(r"[0-9a-f]{64}")
# Names inside a pack are ours and neutral; anything else is refused rather than trusted.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED = frozenset({"manifest.json", "manifest.sig"})
MAX_KEY_FILE = 4096  # bytes read from a key file at most; an Ed25519 PEM is under 200
REQUIRED_FIELDS = ("patient", "created", "coded", "counts")


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """Public keys (raw 32 bytes) and fingerprints the receiver trusts, each with where it came from."""

    keys: tuple[tuple[bytes, str], ...] = ()
    fingerprints: tuple[tuple[str, str], ...] = ()

    def source_of(self, public_key: bytes) -> str | None:
        """Where the trust in `public_key` comes from, or None when it is not trusted."""
        fp = fingerprint(public_key)
        for key, source in self.keys:
            if key == public_key:
                return source
        for trusted_fp, source in self.fingerprints:
            if trusted_fp == fp:
                return source
        return None

    def describe(self) -> str:
        sources = [s for _, s in self.keys] + [s for _, s in self.fingerprints]
        return ", ".join(sources) if sources else "none"


def fingerprint(public_key: bytes) -> str:
    """SHA256:<unpadded base64 of SHA-256(raw public key)>, the form to read out to the receiver."""
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def normalise_fingerprint(text: str) -> str:
    """A fingerprint as typed by a user ("SHA256:..." or just the base64), or ValueError saying what is wrong."""
    value = text.strip().removeprefix("SHA256:").removeprefix("sha256:").rstrip("=")
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"--fingerprint {text!r} is not a key fingerprint; it looks like SHA256: followed by 43 characters")
    return "SHA256:" + value


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_public_key(path: Path) -> bytes:
    """The raw Ed25519 public key in a PEM file (pack-signing.pub), or ValueError saying what is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as e:
        raise ValueError(f"cannot read --public-key {path}: {e.strerror or e}") from e
    if len(data) > MAX_KEY_FILE:
        raise ValueError(f"--public-key {path} holds more than {MAX_KEY_FILE} bytes; an Ed25519 public key file "
                         "(pack-signing.pub) is about 113 bytes")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise ValueError(f"--public-key {path} is not a PEM public key (the pack-signing.pub of the sending practice)") from e
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"--public-key {path} is not an Ed25519 key; packs are signed with Ed25519")
    return raw_public(key)


def archive_key_paths(archive: Path) -> tuple[Path, Path]:
    folder = Path(archive) / KEY_DIR
    return folder / KEY_FILE, folder / PUBLIC_FILE


def archive_public_key(archive: Path) -> bytes | None:
    """The archive's own public key, or None when the archive has no signing key yet. Never creates one."""
    _, public = archive_key_paths(archive)
    if not public.is_file():
        return None
    try:
        return read_public_key(public)
    except ValueError as e:
        raise PackError(PackCode.signing_key_unusable, f"{e}; restore {public} from a backup", ExitCode.archive_error) from e


def load_or_create_key(archive: Path) -> Ed25519PrivateKey:
    """The archive's signing key, created atomically (and its public key written beside it) on first use.

    Two processes creating the key at once both end up with the same key: the file is
    written under a temporary name and linked into place, which fails if it already exists.

    Raises:
        PackError: the key file cannot be read or written, or is not an Ed25519 key.
    """
    private, public = archive_key_paths(archive)
    try:
        private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not private.exists():
            _create_key(private)
        key = load_private(private)
        if not public.exists():
            write_atomic(public, public_pem(key), 0o644)
    except OSError as e:
        raise PackError(
            PackCode.signing_key_unusable,
            f"cannot use the pack-signing key {private}: {e.strerror or e}; check the archive folder is writable",
            ExitCode.archive_error,
        ) from e
    mode = private.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("the pack-signing key %s can be read by others (mode %o); run: chmod 600 %s", private, mode, private)
    return key


def new_private_pem() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS#8 PEM (the file itself is kept 0600)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_pem_of(public_key: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a raw 32-byte Ed25519 public key."""
    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _create_key(private: Path) -> None:
    pem = new_private_pem()
    fd, name = tempfile.mkstemp(dir=private.parent, prefix=".key-", suffix=".part")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(name, private)
        except FileExistsError:
            pass  # another process won the race; its key is the key
    finally:
        os.unlink(name)


def load_private(private: Path) -> Ed25519PrivateKey:
    with open(private, "rb") as f:
        data = f.read(MAX_KEY_FILE + 1)
    try:
        if len(data) > MAX_KEY_FILE:
            raise ValueError(f"it holds more than {MAX_KEY_FILE} bytes")
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise PackError(
            PackCode.signing_key_unusable,
            f"{private} is not a usable PEM private key ({e}); restore it from a backup, or move it aside to make a "
            "new key (receivers then need the new fingerprint)",
            ExitCode.archive_error,
        ) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise PackError(PackCode.signing_key_unusable, f"{private} is not an Ed25519 key", ExitCode.archive_error)
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def build_manifest(fields: dict[str, Any], files: list[FileEntry], key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """The manifest.json bytes for a pack and their signature (manifest.sig).

    `fields` must hold patient, created, coded ({format, sha256}) and counts; lgd adds
    format_version, files and signer. Raises ValueError naming a missing or bad field.
    """
    missing = [f for f in REQUIRED_FIELDS if f not in fields]
    if missing:
        raise ValueError(f"manifest fields missing: {', '.join(missing)}")
    extra = set(fields) - set(REQUIRED_FIELDS)
    if extra:
        raise ValueError(f"manifest fields not allowed: {', '.join(sorted(extra))} (lgd sets them)")
    for f in files:
        if not SAFE_NAME.fullmatch(f.name) or f.name in RESERVED:
            raise ValueError(f"pack file name {f.name!r} is not allowed; use a neutral name such as pack.pdf")
    public = raw_public(key.public_key())
    manifest = {
        "format_version": FORMAT_VERSION,
        **fields,
        "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files],
        "signer": {"algorithm": ALGORITHM, "public_key": base64.b64encode(public).decode("ascii"), "fingerprint": fingerprint(public)},
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    return data, key.sign(data)


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest whose signature is valid for the key it names, and whether that key is trusted."""

    manifest: dict[str, Any]
    files: tuple[FileEntry, ...]
    fingerprint: str
    trusted_by: str | None  # where the trust comes from, or None: signed by an unknown key


def check_manifest(data: bytes, signature: bytes, trusted: TrustedKeys) -> SignedManifest:
    """Parse manifest.json, check its signature with the key it names, and look that key up in `trusted`.

    Raises:
        PackError: manifest_invalid (not a pack manifest), signature_invalid (edited after signing,
            or the signature is not for these bytes). An untrusted key is not raised: see `trusted_by`.
    """
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _invalid(f"manifest.json is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise _invalid(f"manifest.json is not a format_version {FORMAT_VERSION} pack manifest; it may come from a newer lgd")
    signer = manifest.get("signer")
    if not isinstance(signer, dict) or signer.get("algorithm") != ALGORITHM:
        raise _invalid(f"manifest.json does not name an {ALGORITHM} signer")
    try:
        public = base64.b64decode(str(signer.get("public_key")), validate=True)
        key = Ed25519PublicKey.from_public_bytes(public)
    except (binascii.Error, ValueError) as e:
        raise _invalid("manifest.json's signer.public_key is not an Ed25519 public key") from e
    fp = fingerprint(public)
    if signer.get("fingerprint") != fp:
        raise _invalid(f"manifest.json's signer fingerprint {signer.get('fingerprint')!r} is not that of its own key ({fp})")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise PackError(
            PackCode.signature_invalid,
            f"manifest.json's signature is not valid: the manifest was changed after it was signed, or manifest.sig "
            f"belongs to another pack (the manifest names key {fp}). Do not use this pack; ask the sender for a new one",
        ) from None
    return SignedManifest(manifest, _files(manifest), fp, trusted.source_of(public))


def _files(manifest: dict[str, Any]) -> tuple[FileEntry, ...]:
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise _invalid("manifest.json lists no files")
    out = []
    for item in files:
        if not isinstance(item, dict):
            raise _invalid("manifest.json has a file entry that is not an object")
        name, size, sha = item.get("name"), item.get("size"), item.get("sha256")
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name in RESERVED:
            raise _invalid(f"manifest.json lists a file with the unsafe or reserved name {name!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise _invalid(f"manifest.json's entry for {name} has no valid size and sha256")
        out.append(FileEntry(name, size, sha))
    if len({f.name for f in out}) != len(out):
        raise _invalid("manifest.json lists the same file name twice")
    return tuple(out)


def _invalid(message: str) -> PackError:
    return PackError(PackCode.manifest_invalid, message + "; do not use this pack, ask the sender for a new one")
