"""Find the 7z volumes of a received pack: a .7z, a .7z.001 set, ISO images, or a folder; check them against SHA256SUMS.TXT."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from index.store import sha256_file
from pipelines.errors import ExitCode

from .media import ARCHIVE_NAME, SUMS
from .problems import PackCode, PackError

_ISO_VOLUME = re.compile(r"(.*?)(\d{3})\.iso", re.IGNORECASE)
_DIR_VOLUME = re.compile(r"lgd-pack-(\d{3})")
_SPLIT = re.compile(r"(.+\.7z)\.(\d{3})")
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")
# The only names lgd writes for an archive volume: anything else read from a medium (a path,
# "..", another file) is refused before it is joined to a folder, opened or linked.
PART_NAME = re.compile(r"lgd-pack\.7z(?:\.(\d{3}))?")
MAX_SUMS_BYTES = 64 * 1024  # a SHA256SUMS.TXT lists at most 999 volumes: about 80 bytes a line


@dataclass(frozen=True, slots=True)
class Located:
    parts: tuple[Path, ...]  # the archive's volumes, in order; parts[0] is what 7zz opens
    detail: str


def locate(path: Path, dest: Path) -> Located:
    """The archive's volumes in order, checked against SHA256SUMS.TXT when the media has one.

    Volumes inside disc images are copied into `dest` (7-Zip needs them as files side by
    side); volumes in folders are used where they are, or linked into `dest`.

    Raises:
        PackError: not_a_pack, volume_missing, archive_corrupt (a checksum or image unreadable).
    """
    if path.name in (ARCHIVE_NAME, ARCHIVE_NAME + ".001") and (path.parent / SUMS).is_file():
        path = path.parent  # the archive of a pack folder: check it as the folder, with its SHA256SUMS.TXT
    if path.is_dir():
        parts, sums, where = _from_folder(path, dest)
    elif _ISO_VOLUME.fullmatch(path.name) or _is_iso(path):
        parts, sums, where = _from_images(path, dest)
    else:
        parts, sums, where = _from_archive(path)
    if sums:
        for part in parts:
            if sha256_file(part) != sums[part.name]:
                raise PackError(
                    PackCode.archive_corrupt,
                    f"{part.name} on {where[part.name]} does not match its checksum in {SUMS}: the copy is damaged. "
                    "Copy it again; if that fails, ask the sender for a new copy",
                )
        return Located(parts, f"{len(parts)} volume(s); every file matches {SUMS}")
    return Located(parts, f"{len(parts)} volume(s); no {SUMS} to check against")


def _from_archive(path: Path) -> tuple[tuple[Path, ...], dict[str, str], dict[str, str]]:
    m = _SPLIT.fullmatch(path.name)
    if m is None:
        parts: tuple[Path, ...] = (path,)
    else:
        if m[2] != "001":
            raise PackError(PackCode.not_a_pack, f"{path.name} is not the first volume; give {m[1]}.001", ExitCode.usage)
        parts = tuple(_consecutive(lambda i: path.with_name(f"{m[1]}.{i:03d}")))
    return parts, {}, {p.name: str(p.parent) for p in parts}


def _from_folder(folder: Path, dest: Path) -> tuple[tuple[Path, ...], dict[str, str], dict[str, str]]:
    if not (folder / SUMS).is_file() and (folder / "lgd-pack-001").is_dir():
        folder = folder / "lgd-pack-001"  # a USB pack split into volume folders
    if not (folder / SUMS).is_file():
        for name in (ARCHIVE_NAME, ARCHIVE_NAME + ".001"):
            if (folder / name).is_file():
                return _from_archive(folder / name)
        raise PackError(PackCode.not_a_pack, f"{folder} holds no {SUMS} and no {ARCHIVE_NAME}: it is not an lgd pack", ExitCode.usage)
    sums = _read_sums(folder / SUMS)
    volume = _DIR_VOLUME.fullmatch(folder.name)
    found: dict[str, Path] = {}
    for i, name in enumerate(sums, start=1):
        candidates = [folder / name]
        if volume:  # a split USB pack: part i is in lgd-pack-00i/
            candidates.append(folder.parent / f"lgd-pack-{i:03d}" / name)
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            raise PackError(
                PackCode.volume_missing,
                f"{name} (volume {i} of {len(sums)}) is missing from {folder}; copy the files of every disc or volume folder into one folder",
            )
        found[name] = hit
    # 7-Zip looks for the next volume beside the first: gather them in one folder by symbolic links.
    dest.mkdir(parents=True, exist_ok=True)
    if len({p.parent for p in found.values()}) > 1:
        for name, p in found.items():
            (dest / name).symlink_to(p)
        parts = tuple(dest / name for name in sums)
    else:
        parts = tuple(found.values())
    return parts, sums, {n: str(p.parent) for n, p in found.items()}


def _from_images(first: Path, dest: Path) -> tuple[tuple[Path, ...], dict[str, str], dict[str, str]]:
    m = _ISO_VOLUME.fullmatch(first.name)
    if m and m[2] != "001":
        raise PackError(PackCode.not_a_pack, f"{first.name} is not the first disc image; give {m[1]}001.iso", ExitCode.usage)
    dest.mkdir(parents=True, exist_ok=True)
    sums, names = _read_image(first, dest, None)
    where = dict.fromkeys(names, first.name)
    for i in range(2, len(sums) + 1):
        image = first.with_name(f"{m[1]}{i:03d}.iso") if m else None
        if image is None or not image.is_file():
            raise PackError(
                PackCode.volume_missing,
                f"disc image {i} of {len(sums)} ({image.name if image else 'its name is unknown'}) is missing; put every "
                "image of the set in one folder with the names they were written with",
            )
        _, more = _read_image(image, dest, sums)
        where.update(dict.fromkeys(more, image.name))
    missing = [n for n in sums if n not in where]
    if missing:
        raise PackError(PackCode.volume_missing, f"no disc image of the set holds {', '.join(missing)}")
    return tuple(dest / n for n in sums), sums, where


def _read_image(image: Path, dest: Path, expected: dict[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """Copy the archive volumes on one disc image into `dest`; returns (its SHA256SUMS, names copied)."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(image))
        try:
            facade = iso.get_joliet_facade() if iso.has_joliet() else iso.get_udf_facade()
            _, _, names = next(facade.walk("/"))
            if SUMS not in names:
                raise PackError(PackCode.not_a_pack, f"{image.name} is a disc image but holds no {SUMS}: it is not an lgd pack", ExitCode.usage)
            sums = _read_sums_bytes(_iso_bytes(facade, "/" + SUMS), image.name)
            if expected is not None and sums != expected:
                raise PackError(PackCode.volume_missing, f"{image.name} belongs to a different pack (its {SUMS} differs from the first disc's)")
            copied = [n for n in names if n in sums]
            for name in copied:
                with open(dest / name, "wb") as f:
                    facade.get_file_from_iso_fp(f, "/" + name)
        finally:
            iso.close()
    except PyCdlibException as e:
        raise PackError(PackCode.archive_corrupt, f"{image.name} is not a readable disc image ({e}); copy it again") from e
    return sums, copied


def _iso_bytes(facade, path: str) -> bytes:
    buffer = io.BytesIO()
    facade.get_file_from_iso_fp(buffer, path)
    return buffer.getvalue()


def _is_iso(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(32769)
            return f.read(5) == b"CD001"
    except OSError:
        return False


def _consecutive(name_of) -> list[Path]:
    parts = []
    i = 1
    while (p := name_of(i)).is_file():
        parts.append(p)
        i += 1
    return parts


def _read_sums(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:  # bounded: /dev/zero or a huge file is refused, not read whole
        return _read_sums_bytes(f.read(MAX_SUMS_BYTES + 1), str(path))


def _read_sums_bytes(data: bytes, where: str) -> dict[str, str]:
    """The volumes SHA256SUMS.TXT lists, {name: sha256}, each name checked to be one lgd writes.

    Raises:
        PackError: unsafe_name (a line that is not `<sha256>  lgd-pack.7z[.NNN]`, or volumes that are
            not 1..n of one set), archive_corrupt (no lines at all).
    """
    if len(data) > MAX_SUMS_BYTES:
        raise _unsafe(f"{SUMS} in {where} is {len(data)} bytes, far more than lgd writes")
    sums: dict[str, str] = {}
    for line in data.decode("ascii", errors="replace").splitlines():
        if not line.strip():
            continue
        m = _SUMS_LINE.fullmatch(line.strip())
        if m is None or not PART_NAME.fullmatch(m[2]) or m[2] in sums:
            shown = line.strip()[:80].encode("ascii", "backslashreplace").decode()
            raise _unsafe(f"{SUMS} in {where} has the line {shown!r}, which names no volume lgd writes")
        sums[m[2]] = m[1]
    if not sums:
        raise PackError(PackCode.archive_corrupt, f"{SUMS} in {where} lists no files; the copy is damaged")
    names = list(sums)
    if names != [ARCHIVE_NAME] and names != [f"{ARCHIVE_NAME}.{i:03d}" for i in range(1, len(names) + 1)]:
        raise _unsafe(f"{SUMS} in {where} lists {', '.join(names[:4])}, which are not the volumes of one lgd pack")
    return sums


def _unsafe(message: str) -> PackError:
    return PackError(PackCode.unsafe_name, f"{message}. The pack was altered after it was written; nothing was opened. "
                     "Do not use it; ask the sender for a new copy")
