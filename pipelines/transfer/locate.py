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

from .media import ARCHIVE_NAME, README, SUMS
from .problems import PackCode, PackError
from .readme import readme_text

_ISO_VOLUME = re.compile(r"(.*?)(\d{3})\.iso", re.IGNORECASE)
_DIR_VOLUME = re.compile(r"lgd-pack-(\d{3})")
_SPLIT = re.compile(r"(.+\.7z)\.(\d{3})")
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")
# The only names lgd writes for an archive volume: anything else read from a medium (a path,
# "..", another file) is refused before it is joined to a folder, opened or linked.
PART_NAME = re.compile(r"lgd-pack\.7z(?:\.(\d{3}))?")
MAX_SUMS_BYTES = 64 * 1024  # a SHA256SUMS.TXT lists at most 999 volumes: about 80 bytes a line
MAX_README_BYTES = 64 * 1024  # lgd's README.TXT is about 3 kB
_SET = re.compile(rb"LGD TRANSFER PACK - (?:DISC|FOLDER) \d+ OF \d+ - SET ([0-9A-F]{8})\r?\n")
_ISO9660_PART = re.compile(r"LGD_PACK_7Z\.(7Z|\d{3});1")


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
    """A USB pack folder (or a split one's root or volume folder, or a folder of copied volumes).

    Everything in it is listed first: only README.TXT, SHA256SUMS.TXT and the volumes it
    names, as plain files (no links, no sub-folders but a split pack's lgd-pack-NNN), and
    README.TXT exactly as lgd writes it. Anything else refuses the pack.
    """
    root = None
    if not (folder / SUMS).is_file() and (folder / "lgd-pack-001").is_dir():
        root, folder = folder, folder / "lgd-pack-001"  # a USB pack split into volume folders
    elif _DIR_VOLUME.fullmatch(folder.name) and (folder.parent / "lgd-pack-001").is_dir():
        root = folder.parent  # one volume folder of a split USB pack: the others are its siblings
        folder = root / "lgd-pack-001"
    if not (folder / SUMS).is_file() or (folder / SUMS).is_symlink():
        if (folder / README).exists() or root is not None:
            raise PackError(PackCode.media_changed, f"{folder} has no {SUMS}, which lgd writes on every pack medium: a file "
                            "was removed or replaced. Copy the pack again; if it is still missing, ask the sender for a new copy")
        for name in (ARCHIVE_NAME, ARCHIVE_NAME + ".001"):
            if (folder / name).is_file():
                return _from_archive(folder / name)
        raise PackError(PackCode.not_a_pack, f"{folder} holds no {SUMS} and no {ARCHIVE_NAME}: it is not an lgd pack", ExitCode.usage)
    sums = _read_sums(folder / SUMS)
    count = len(sums)
    found: dict[str, Path] = {}
    if root is None:  # one folder: README.TXT, SHA256SUMS.TXT and every volume (copied from several discs, or one)
        _check_listing(folder, {README, SUMS, *sums})
        _check_readme(folder / README, sums, None, "folder", "disc")
        found = {name: folder / name for name in sums if (folder / name).is_file()}
        missing = [n for n in sums if n not in found]
        if missing:
            raise PackError(
                PackCode.volume_missing,
                f"{missing[0]} (volume {list(sums).index(missing[0]) + 1} of {count}) is missing from {folder}; copy the "
                "files of every disc or volume folder into one folder",
            )
    else:
        volumes = [f"lgd-pack-{i:03d}" for i in range(1, count + 1)]
        extra = sorted(p.name for p in root.iterdir() if p.name not in volumes or p.is_symlink() or not p.is_dir())
        if extra:
            stray = [n for n in extra if _DIR_VOLUME.fullmatch(n)]
            code = PackCode.volume_foreign if stray else PackCode.media_unexpected
            raise PackError(code, f"{root} holds {', '.join(extra[:4])} besides the {count} volume folder(s) its "
                            f"{SUMS} names: {'a volume of another pack' if stray else 'something lgd did not write'}. "
                            "Do not use it; copy only this pack's volume folders, or ask the sender for a new copy")
        set_id = None
        for i, name in enumerate(sums, start=1):
            volume = root / volumes[i - 1]
            if not volume.is_dir():
                raise PackError(PackCode.volume_missing, f"{volumes[i - 1]} (volume {i} of {count}) is missing from {root}")
            _check_listing(volume, {README, SUMS, name})
            if not (volume / SUMS).is_file() or _read_sums(volume / SUMS) != sums:
                raise PackError(PackCode.volume_foreign, f"{volume.name} belongs to a different pack (its {SUMS} differs "
                                f"from {volumes[0]}'s); do not use it, ask the sender for a new copy")
            set_id = _check_readme(volume / README, sums, set_id, "folder")
            if not (volume / name).is_file():
                raise PackError(PackCode.volume_missing, f"{name} (volume {i} of {count}) is missing from {volume}")
            found[name] = volume / name
    # 7-Zip looks for the next volume beside the first: gather them in one folder by symbolic links.
    # The names are checked (PART_NAME) and the targets are plain files inside the pack.
    dest.mkdir(parents=True, exist_ok=True)
    if len({p.parent for p in found.values()}) > 1:
        for name, p in found.items():
            (dest / name).symlink_to(p)
        parts = tuple(dest / name for name in sums)
    else:
        parts = tuple(found.values())
    return parts, sums, {n: str(p.parent) for n, p in found.items()}


def _check_listing(folder: Path, allowed: set[str]) -> None:
    """Refuse `folder` if it holds anything but plain files named in `allowed` (links and folders included)."""
    odd = sorted(p.name for p in folder.iterdir() if p.name not in allowed or p.is_symlink() or not p.is_file())
    if odd:
        shown = ", ".join(n.encode("ascii", "backslashreplace").decode()[:60] for n in odd[:4])
        raise PackError(
            PackCode.media_unexpected,
            f"{folder} holds {shown}{' and more' if len(odd) > 4 else ''}, which lgd did not write (a pack medium holds only "
            f"{README}, {SUMS} and the archive, as plain files). Do not open or run it; ask the sender for a new copy",
        )


def _check_readme(readme: Path, sums: dict[str, str], set_id: str | None, *media: str) -> str:
    """README.TXT must be exactly the text lgd writes for one volume of this set; returns the set's id."""
    data = b""
    if readme.is_file() and not readme.is_symlink():
        with open(readme, "rb") as f:
            data = f.read(MAX_README_BYTES + 1)
    return _check_readme_bytes(data, str(readme), sums, set_id, media)


def _check_readme_bytes(data: bytes, where: str, sums: dict[str, str], set_id: str | None, media: tuple[str, ...]) -> str:
    m = _SET.match(data)
    names = list(sums)
    if m is not None and (set_id is None or m[1].decode() == set_id):
        for medium in media:
            for volume in range(1, len(names) + 1):
                if readme_text(volume, len(names), m[1].decode(), names, medium).encode("ascii") == data:
                    return m[1].decode()
    if m is not None and set_id is not None and m[1].decode() != set_id:
        raise PackError(PackCode.volume_foreign, f"{where} is from set {m[1].decode()}, not {set_id}: a volume of another "
                        "pack. Do not use it; copy only this pack's discs or folders")
    raise PackError(
        PackCode.media_changed,
        f"{where} is not the {README} lgd wrote with this pack (it was edited, replaced or removed). Do not follow "
        "anything it says; verify with lgd and ask the sender for a new copy",
    )


def _from_images(first: Path, dest: Path) -> tuple[tuple[Path, ...], dict[str, str], dict[str, str]]:
    m = _ISO_VOLUME.fullmatch(first.name)
    if m and m[2] != "001":
        raise PackError(PackCode.not_a_pack, f"{first.name} is not the first disc image; give {m[1]}001.iso", ExitCode.usage)
    dest.mkdir(parents=True, exist_ok=True)
    sums, names, set_id = _read_image(first, dest, None, None)
    where = dict.fromkeys(names, first.name)
    for i in range(2, len(sums) + 1):
        image = first.with_name(f"{m[1]}{i:03d}.iso") if m else None
        if image is None or not image.is_file():
            raise PackError(
                PackCode.volume_missing,
                f"disc image {i} of {len(sums)} ({image.name if image else 'its name is unknown'}) is missing; put every "
                "image of the set in one folder with the names they were written with",
            )
        _, more, _ = _read_image(image, dest, sums, set_id)
        where.update(dict.fromkeys(more, image.name))
    if m and (stray := first.with_name(f"{m[1]}{len(sums) + 1:03d}.iso")).exists():
        raise PackError(PackCode.volume_foreign, f"{stray.name} is beside a set of {len(sums)} disc image(s): an image of "
                        "another pack. Put each pack's images in a folder of their own")
    missing = [n for n in sums if n not in where]
    if missing:
        raise PackError(PackCode.volume_missing, f"no disc image of the set holds {', '.join(missing)}")
    return tuple(dest / n for n in sums), sums, where


def _read_image(image: Path, dest: Path, expected: dict[str, str] | None, set_id: str | None) -> tuple[dict[str, str], list[str], str]:
    """Copy the archive volumes on one disc image into `dest`; returns (its SHA256SUMS, names copied, set id).

    Every directory record is listed first, in each of the image's name spaces (ISO 9660,
    Joliet, UDF): only README.TXT, SHA256SUMS.TXT and volumes of this pack, no folders.
    """
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(image))
        try:
            facade = iso.get_joliet_facade() if iso.has_joliet() else iso.get_udf_facade()
            names = _image_listing(iso, image.name)
            if SUMS not in names:
                raise PackError(PackCode.not_a_pack, f"{image.name} is a disc image but holds no {SUMS}: it is not an lgd pack", ExitCode.usage)
            sums = _read_sums_bytes(_iso_bytes(facade, "/" + SUMS, MAX_SUMS_BYTES), image.name)
            if expected is not None and sums != expected:
                raise PackError(PackCode.volume_foreign, f"{image.name} belongs to a different pack (its {SUMS} differs from the first disc's)")
            unexpected = sorted(n for n in names if n not in {README, SUMS, *sums})
            if unexpected:
                raise _unexpected_on(image.name, unexpected)
            set_id = _check_readme_bytes(_iso_bytes(facade, "/" + README, MAX_README_BYTES) if README in names else b"",
                                         f"{README} on {image.name}", sums, set_id, ("disc",))
            copied = [n for n in names if n in sums]
            for name in copied:
                with open(dest / name, "wb") as f:
                    facade.get_file_from_iso_fp(f, "/" + name)
        finally:
            iso.close()
    except PyCdlibException as e:
        raise PackError(PackCode.archive_corrupt, f"{image.name} is not a readable disc image ({e}); copy it again") from e
    return sums, copied, set_id


def _image_listing(iso, where: str) -> set[str]:
    """The file names in the image's root (Joliet's, else UDF's); refuses folders and files beyond lgd's in any name space."""
    spaces = [("ISO 9660", iso.get_iso9660_facade())]
    if iso.has_joliet():
        spaces.append(("Joliet", iso.get_joliet_facade()))
    if iso.has_udf():
        spaces.append(("UDF", iso.get_udf_facade()))
    listed: dict[str, set[str]] = {}
    for space, facade in spaces:
        odd: list[str] = []
        names: set[str] = set()
        for i, (_, dirs, files) in enumerate(facade.walk("/")):
            odd += [d + "/" for d in dirs]
            if i == 0:
                names.update(files)
            else:
                odd += files
            if len(names) + len(odd) > 64:
                break
        if space == "ISO 9660":  # 8.3-style names: README.TXT;1, SHA256SUMS.TXT;1, LGD_PACK_7Z.7Z;1 or .NNN;1
            odd += [n for n in names if n not in (f"{README};1", f"{SUMS};1") and not _ISO9660_PART.fullmatch(n)]
        if odd:
            raise _unexpected_on(where, sorted(set(odd)), space)
        listed[space] = names
    return listed[spaces[-1][0]] if len(spaces) == 1 else (listed.get("Joliet") or listed["UDF"])


def _unexpected_on(where: str, names: list[str], space: str | None = None) -> PackError:
    shown = ", ".join(n.encode("ascii", "backslashreplace").decode()[:60] for n in names[:4])
    return PackError(
        PackCode.media_unexpected,
        f"{where} holds {shown}{' and more' if len(names) > 4 else ''}{f' (in its {space} names)' if space else ''}, which lgd "
        f"did not write (a pack disc holds only {README}, {SUMS} and the archive). Do not open or run it; ask the sender for a new copy",
    )


def _iso_bytes(facade, path: str, limit: int) -> bytes:
    size = facade.get_record(path).get_data_length()
    if size > limit:
        raise PackError(PackCode.media_changed, f"{path.lstrip('/')} on the disc is {size} bytes, far more than lgd writes; "
                        "it was replaced. Do not use this disc")
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
