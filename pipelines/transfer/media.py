"""Write a finished pack onto media: a signed, encrypted .7z, as ISO disc images or a USB folder.

The one entry point for the pack builder (stable; add fields only compatibly):

    write_media(pack_files, manifest_fields, *, format, out, passphrase, archive, media_size=None) -> MediaResult

    pack_files       [(neutral name inside the archive, source file)], e.g. [("pack.pdf", Path(...))].
                     Names must be plain and carry no patient data (pack.pdf, electronic.pdf).
    manifest_fields  {"patient": nhs, "created": iso time, "coded": {"format", "sha256"}, "counts": {...}};
                     lgd adds format_version, files (name, size, sha256) and signer.
    format           "7z": out/lgd-pack.7z (split into lgd-pack.7z.001, ... only when media_size is given
                     and the archive is larger); "iso": out/lgd-pack-001.iso, -002, ... each at most
                     media_size bytes (default a CD-R); "usb": the folder `out` (must not exist or be
                     empty) holding README.TXT, SHA256SUMS.TXT and the archive; with media_size and a
                     larger archive, one sub-folder per volume (lgd-pack-001/, ...).
    passphrase       at least 20 printable ASCII characters (passphrase.generate() makes 8 words).
    archive          the archive folder, whose keys/pack-signing.key signs the manifest (made if absent).
    MediaResult      outputs (paths written), sha256 ({path relative to out: hex}), bytes (total written),
                     seconds_encrypting (7zz's run time), fingerprint (of the signing key, to send with
                     the passphrase), volumes.

Inside the archive: the pack files, manifest.json and manifest.sig. On the media beside it,
in plain text: README.TXT (what this is and how to open and verify it, no patient data)
and SHA256SUMS.TXT (checksums of the encrypted files, so a damaged copy is found before
7-Zip is asked). Everything is written atomically: a temporary file or folder in the
target folder, renamed into place once complete.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pycdlib

from index.store import fsync_dir, sha256_file
from pipelines.errors import ExitCode

from . import passphrase as passphrases
from . import sevenzip
from .destination import check_destination, writing
from .problems import PackCode, PackError
from .readme import readme_text
from .signing import FileEntry, build_manifest, fingerprint, load_or_create_key, raw_public

CD_R = 737_280_000
DVD_R = 4_700_372_992
NAMED_SIZES = {"cd": CD_R, "dvd": DVD_R}
# ISO 9660 + Joliet + UDF structures take ~560 KiB with pycdlib 1.22 (UDF's anchor sits at
# sector 256); the rest covers README.TXT, SHA256SUMS.TXT and rounding to 2 KiB sectors.
ISO_RESERVE = 768 * 1024
FOLDER_RESERVE = 64 * 1024  # README.TXT and SHA256SUMS.TXT beside each volume's part
MIN_MEDIA = 1024 * 1024
RESERVE = {"7z": 0, "iso": ISO_RESERVE, "usb": FOLDER_RESERVE}
ARCHIVE_NAME = "lgd-pack.7z"
README = "README.TXT"
SUMS = "SHA256SUMS.TXT"
VOLUME = "lgd-pack-{:03d}"
_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(k|ki|m|mi|g|gi)?b?\s*")
_UNITS = {None: 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}

Format = Literal["7z", "iso", "usb"]


@dataclass(frozen=True, slots=True)
class MediaResult:
    outputs: tuple[Path, ...]
    sha256: dict[str, str]
    bytes: int
    seconds_encrypting: float
    fingerprint: str
    volumes: int


def parse_media_size(text: str) -> int:
    """Bytes of a medium: "cd" (CD-R, 737,280,000), "dvd" (DVD-R, 4,700,372,992), or a size.

    Sizes are bytes, or a number with K/M/G (powers of 1000, as disc makers count) or
    Ki/Mi/Gi (powers of 1024): 700M, 4.7G, 650MiB. Raises ValueError naming the flag.
    """
    value = text.strip().lower()
    if value in NAMED_SIZES:
        return NAMED_SIZES[value]
    m = _SIZE.fullmatch(value)
    if not m:
        raise ValueError(f"--media {text!r}: give cd, dvd, or a size such as 700M, 4.7G or 123456789")
    size = int(float(m[1]) * _UNITS[m[2]])
    if size < MIN_MEDIA:
        raise ValueError(f"--media {text!r} is too small: a volume needs at least {MIN_MEDIA} bytes (1 MiB)")
    return size


def write_media(
    pack_files: Sequence[tuple[str, Path]],
    manifest_fields: dict[str, Any],
    *,
    format: Format,
    out: Path,
    passphrase: str,
    archive: Path,
    media_size: int | None = None,
) -> MediaResult:
    """Sign, encrypt and write one patient's pack; see the module docstring for the contract.

    Raises:
        PackError: passphrase_unusable, out_not_empty, media_too_small, signing_key_unusable.
        ValueError: bad manifest fields or file names (a bug in the caller).
        MissingDependency: 7zz is not installed.
    """
    if format not in ("7z", "iso", "usb"):
        raise ValueError(f"format must be 7z, iso or usb, not {format!r}")
    passphrases.check(passphrase, "the pack passphrase")
    sevenzip.version()  # fail on a missing 7zz before making a key or reading any file
    out = Path(out).absolute()
    if format == "iso" and media_size is None:
        media_size = CD_R
    if media_size is not None and media_size < MIN_MEDIA:
        raise PackError(PackCode.media_too_small, f"a volume needs at least {MIN_MEDIA} bytes", ExitCode.usage)
    need = sum(Path(src).stat().st_size for _, src in pack_files) + RESERVE[format]
    check_destination(out, need, archive)  # a read-only, full, linked or odd --out: exit 4 before any work
    _refuse_existing(out, format)
    with writing(out):
        return _write_media(pack_files, manifest_fields, format, out, passphrase, archive, media_size)


def _write_media(pack_files, manifest_fields, format: Format, out: Path, passphrase: str, archive: Path,
                 media_size: int | None) -> MediaResult:
    key = load_or_create_key(archive)
    entries = [FileEntry(name, Path(src).stat().st_size, sha256_file(Path(src))) for name, src in pack_files]
    manifest, signature = build_manifest(manifest_fields, entries, key)
    fp = fingerprint(raw_public(key.public_key()))

    # Plaintext (the manifest, 7zz's staging copy of the pack) stays in the archive's tmp/ on
    # the local disk; only encrypted bytes are ever written where `out` is, which may be a stick.
    plain_parent = Path(archive) / "tmp"
    plain_parent.mkdir(parents=True, exist_ok=True)
    work_parent = out.parent if format == "usb" else out
    work_parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:  # both folders go, whatever happens
        plain = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=".lgd-pack-", dir=plain_parent)))  # 0700
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=".lgd-pack-", dir=work_parent)))
        (plain / "manifest.json").write_bytes(manifest)
        (plain / "manifest.sig").write_bytes(signature)
        inside = [*((n, Path(p)) for n, p in pack_files), ("manifest.json", plain / "manifest.json"), ("manifest.sig", plain / "manifest.sig")]
        (work / "media").mkdir()
        encrypted = work / "media" / ARCHIVE_NAME
        seconds = sevenzip.create(encrypted, inside, passphrase, stage_in=plain)
        part_limit = None if media_size is None else media_size - RESERVE[format]
        parts = (encrypted,)
        if part_limit is not None and encrypted.stat().st_size > part_limit:
            parts = sevenzip.split(encrypted, part_limit)
        sums = {p.name: sha256_file(p) for p in parts}
        set_id = secrets.token_hex(4).upper()  # tells apart discs of different packs; not a secret
        if format == "7z":
            outputs = _move_into(parts, out)
        elif format == "iso":
            # All images are made in the work folder first, then renamed: an interrupted run leaves no partial set.
            images = [_write_iso(work, i, parts, sums, set_id, media_size) for i in range(len(parts))]
            outputs = _move_into(images, out)
        else:
            outputs = _write_usb(out, parts, sums, set_id)
    files = [p for o in outputs for p in (sorted(o.rglob("*")) if o.is_dir() else [o]) if p.is_file()]
    return MediaResult(
        outputs=outputs,
        sha256={str(p.relative_to(out)): sha256_file(p) for p in files},
        bytes=sum(p.stat().st_size for p in files),
        seconds_encrypting=seconds,
        fingerprint=fp,
        volumes=len(parts),
    )


def _refuse_existing(out: Path, format: Format) -> None:
    if format == "usb":
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PackError(PackCode.out_not_empty, f"{out} exists and is not an empty folder; give a new folder on the stick", ExitCode.usage)
        return
    if out.exists() and not out.is_dir():
        raise PackError(PackCode.out_not_empty, f"{out} is a file; give a folder for the pack", ExitCode.usage)
    clash = sorted(p.name for p in out.glob("lgd-pack*")) if out.is_dir() else []
    if clash:
        raise PackError(
            PackCode.out_not_empty,
            f"{out} already holds {', '.join(clash[:3])}; write each pack to its own folder so discs of different packs are not mixed",
            ExitCode.usage,
        )


def _move_into(parts: Sequence[Path], out: Path) -> tuple[Path, ...]:
    moved = []
    for part in parts:
        target = out / part.name
        part.chmod(0o600)  # encrypted, but still a patient record: owner only
        os.replace(part, target)  # same file system: the work folder is inside `out`
        moved.append(target)
    fsync_dir(out)
    return tuple(moved)


def _sums_text(sums: dict[str, str]) -> bytes:
    # The format of `sha256sum -c` (two spaces, then the name), with CRLF for Windows Notepad.
    return "".join(f"{sha}  {name}\r\n" for name, sha in sums.items()).encode("ascii")


def _write_iso(work: Path, index: int, parts: Sequence[Path], sums: dict[str, str], set_id: str, media_size: int) -> Path:
    """Write image `index` (0-based), holding part `index`, into `work`; returns its path. Removes the part."""
    part = parts[index]
    iso = pycdlib.PyCdlib()
    # Interchange level 3 allows files over 4 GiB (multi-extent), which a DVD-sized part can be.
    # No patient data in any identifier: the set id is random, the name is fixed.
    iso.new(interchange_level=3, joliet=3, udf="2.60", vol_ident=f"LGD_{set_id}_{index + 1:03d}", app_ident_str="LGD TRANSFER PACK")
    readme = readme_text(index + 1, len(parts), set_id, [p.name for p in parts], "disc").encode("ascii")
    for name, data in ((README, readme), (SUMS, _sums_text(sums))):
        iso.add_fp(io.BytesIO(data), len(data), iso_path=f"/{name};1", joliet_path=f"/{name}", udf_path=f"/{name}")
    iso_name = "LGD_PACK_7Z" + (f".{part.name.rsplit('.', 1)[-1]}" if len(parts) > 1 else ".7Z")
    iso.add_file(str(part), iso_path=f"/{iso_name.upper()};1", joliet_path=f"/{part.name}", udf_path=f"/{part.name}")
    target = work / (VOLUME.format(index + 1) + ".iso")
    with open(target, "wb") as f:
        iso.write_fp(f, blocksize=1 << 20)
        f.flush()
        os.fsync(f.fileno())
    iso.close()
    part.unlink()  # in the image now; a DVD-sized pack should not need three copies' worth of disk
    size = target.stat().st_size
    if size > media_size:  # ISO_RESERVE is a measured allowance; never hand out an image that will not burn
        raise PackError(PackCode.media_too_small, f"image {target.name} came to {size} bytes, over the {media_size}-byte medium; use a larger --media")
    return target


def _write_usb(out: Path, parts: Sequence[Path], sums: dict[str, str], set_id: str) -> tuple[Path, ...]:
    """Build the folder beside `out` and rename it into place: a stick holds all of the pack or none."""
    build = Path(tempfile.mkdtemp(prefix=".lgd-usb-", dir=out.parent))
    try:
        for i, part in enumerate(parts):
            folder = build if len(parts) == 1 else build / VOLUME.format(i + 1)
            folder.mkdir(exist_ok=True)
            readme = readme_text(i + 1, len(parts), set_id, [p.name for p in parts], "folder")
            (folder / README).write_bytes(readme.encode("ascii"))
            (folder / SUMS).write_bytes(_sums_text(sums))
            os.replace(part, folder / part.name)
        for path in build.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)  # patient-bearing: owner only
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        build.chmod(0o700)
        os.rename(build, out)  # replaces `out` only if it is an empty folder (checked before)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    fsync_dir(out.parent)
    return (out,)

