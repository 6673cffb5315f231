"""The `ndr` format: the pack split into National Document Repository files with the bulk-upload metadata.csv.

Layout of the folder written (the NDR bulk-upload shape, as in NHS England's own examples):

    out/metadata.csv
    out/{NHS number}/{i}of{n}_Lloyd_George_Record_[{Name}]_[{NHS number}]_[{DD-MM-YYYY}].pdf

Each file is a validated PDF/A-2b holding consecutive pages of the pack (part 1 starts with the
cover), kept under `max_bytes`. `[Name]` is cut down to the first given name and the family name
when the whole name would not fit a file name (`short_name`); metadata.csv keeps the full name in
PATIENT-NAME, after the NDR's own columns (the NDR reads the columns it knows by name). The folder is written beside `out` under a temporary name and
renamed into place, so `out` is either absent or complete.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from index.store import sha256_file
from pipelines.actor import current_actor
from pipelines.display import safe_cell, without_bidi

from .document import PackDocument, PackSection, save_pack_pdfa
from .plan import PackBuildError, PackPlan
from .render import nhs_spaced

NDR_COLUMNS = (
    "FILEPATH", "PAGE COUNT", "GP-PRACTICE-CODE", "NHS-NO", "SECTION", "SUB-SECTION",
    "SCAN-DATE", "SCAN-ID", "USER-ID", "UPLOAD",
)
# The full name, which a file name may carry only in part (see `short_name`).
COLUMNS = (*NDR_COLUMNS, "PATIENT-NAME")
# `[Name]` at most: room for a long first given name and family name together. The whole file
# name then stays under about 140 characters and 220 bytes: inside the 255 bytes a file name may
# take (ext4, APFS, NTFS) and leaving room for folders under Windows' 260-character path limit.
MAX_NAME_CHARS = 80
MAX_NAME_BYTES = 160  # UTF-8: letters outside Latin take 2 to 4 bytes each
SECTION = "LG"
# 100 MB. NHS England's NDR web uploader has refused files over 5 GB, so any smaller limit is
# accepted there; 100 MB keeps a part quick to upload, scan for viruses and open on an ordinary
# practice PC, while a typical digitised Lloyd George record (tens of MB at 300 dpi) still fits
# one file, the commonest NDR shape (1of1). Give a smaller limit for e-mail or slow links.
DEFAULT_MAX_BYTES = 100 * 1000 * 1000
# A part is filled to this share of the limit by estimate; a part that is still too big when
# written is split again, so the estimate only has to be close, never exact.
_FILL = 0.9
_ODS = re.compile(r"[A-Z0-9]{3,10}")


@dataclass(frozen=True, slots=True)
class NdrFile:
    """One file of the bundle; `filepath` is its FILEPATH in metadata.csv."""

    path: Path
    filepath: str
    first_page: int  # 1-based page of the pack where this file starts
    pages: int
    bytes: int
    sha256: str
    scan_id: str


@dataclass(frozen=True, slots=True)
class NdrBundle:
    folder: Path
    files: tuple[NdrFile, ...]
    metadata: Path
    rows: tuple[dict[str, str], ...]
    warnings: tuple[str, ...] = ()


def ndr_name_part(name: str) -> str:
    """The patient's name as the NDR file name allows it: letters and single spaces only.

    The NDR uploader accepts letters (accented ones too) and spaces in `[Name]`; a hyphen or an
    apostrophe becomes a space ("Smith-Jones" -> "Smith Jones"), never a different letter.
    """
    return " ".join("".join(ch if ch.isalpha() else " " for ch in name).split())


def _fits(name: str) -> bool:
    return len(name) <= MAX_NAME_CHARS and len(name.encode("utf-8")) <= MAX_NAME_BYTES


def _cut(word: str, fits) -> str:
    while word and not fits(word):
        word = word[:-1]
    return word


def short_name(name: str) -> str:
    """`[Name]` for a file name: the whole name when it fits, else the first given name and the family name.

    The NDR checks `[Name]` against the patient's demographics (PDS): it must start with the first
    given name and end with the family name, so middle names are dropped first, from the last one
    back. Only when those two alone are too long is a name cut, the first given name before the
    family name (`write_ndr` then warns: the NDR may refuse the match).
    """
    words = ndr_name_part(name).split()
    whole = " ".join(words)
    if _fits(whole) or len(words) < 2:
        return _cut(whole, _fits)
    first, middle, family = words[0], words[1:-1], words[-1]
    kept: list[str] = []
    for word in middle:  # keep leading middle names while they fit
        if not _fits(" ".join([first, *kept, word, family])):
            break
        kept.append(word)
    shorter = " ".join([first, *kept, family])
    if _fits(shorter):
        return shorter
    family = _cut(family, lambda w: _fits("X " + w))
    first = _cut(first, lambda w: _fits(w + " " + family))
    return f"{first} {family}"


def ndr_file_name(i: int, n: int, name: str, nhs_number: str, born: dt.date) -> str:
    """`{i}of{n}_Lloyd_George_Record_[Name]_[NHS]_[DD-MM-YYYY].pdf` (the date is the date of birth; see `short_name`)."""
    return f"{i}of{n}_Lloyd_George_Record_[{short_name(name)}]_[{nhs_number}]_[{born:%d-%m-%Y}].pdf"


def full_name(name: str) -> str:
    """The name for PATIENT-NAME: bidirectional and other control characters removed, spaces single."""
    return " ".join("".join(c if c.isprintable() else " " for c in without_bidi(name)).split())


def _stream_bytes(obj: pikepdf.Object, seen: set[tuple[int, int]]) -> int:
    """Bytes of the streams reachable from `obj` not yet in `seen` (never following /Parent)."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if not isinstance(o, (pikepdf.Dictionary, pikepdf.Array, pikepdf.Stream)):
            continue  # numbers, names and strings: nothing to count
        if o.is_indirect:
            if o.objgen in seen:
                continue
            seen.add(o.objgen)
        if isinstance(o, pikepdf.Stream):
            total += len(o.read_raw_bytes())
            stack.extend(v for k, v in o.stream_dict.items() if k != "/Parent")
        elif isinstance(o, pikepdf.Dictionary):
            stack.extend(v for k, v in o.items() if k != "/Parent")
        elif isinstance(o, pikepdf.Array):
            stack.extend(o)
    return total


def estimate_ranges(pdf: pikepdf.Pdf, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive page ranges [start, stop) whose estimated size stays under `max_bytes` (greedy, in order)."""
    ranges: list[tuple[int, int]] = []
    start, size, seen = 0, 0, set()
    for i, page in enumerate(pdf.pages):
        weight = _stream_bytes(page.obj, seen)
        if i > start and size + weight > max_bytes * _FILL:
            ranges.append((start, i))
            start, size, seen = i, 0, set()
            weight = _stream_bytes(page.obj, seen)
        size += weight
    ranges.append((start, len(pdf.pages)))
    return ranges


def _part(pack: pikepdf.Pdf, start: int, stop: int, sections: Sequence[PackSection], title: str) -> pikepdf.Pdf:
    part = pikepdf.Pdf.new()
    part.pages.extend(pack.pages[start:stop])
    with part.open_outline() as outline:
        for s in sections:
            first, last = s.first_page - 1, s.first_page - 1 + s.pages
            if first < stop and last > start:
                label = s.title + (" (continued)" if first < start else "")
                outline.root.append(pikepdf.OutlineItem(label, max(first, start) - start))
    part.Root.Lang = pikepdf.String("en-GB")
    part.docinfo["/Title"] = title
    part.docinfo["/Creator"] = "lgd"
    return part


def _write_parts(pack: PackDocument, folder: Path, when: dt.date, max_bytes: int, title: str) -> list[tuple[Path, int, int]]:
    """Write validated parts as folder/part-NNNN.pdf; returns (path, start, stop) in page order."""
    written: list[tuple[Path, int, int]] = []
    with pikepdf.open(pack.path) as pdf:
        todo = estimate_ranges(pdf, max_bytes)
        while todo:
            start, stop = todo.pop(0)
            path = folder / f"part-{start:05d}.pdf"
            save_pack_pdfa(_part(pdf, start, stop, pack.sections, title), path, when)
            if path.stat().st_size <= max_bytes:
                written.append((path, start, stop))
                continue
            path.unlink()
            if stop - start == 1:
                raise PackBuildError(
                    "ndr_page_too_big",
                    f"page {start + 1} of the pack alone is larger than the {max_bytes:,}-byte limit; "
                    "give a larger --max-size",
                )
            middle = (start + stop) // 2  # the estimate was wrong for this range: halve it and try again
            todo[:0] = [(start, middle), (middle, stop)]
    return written


def scan_id(plan: PackPlan, i: int, n: int, start: int, stop: int) -> str:
    """A stable id for one file: the same patient, run, coded record and pages always give the same id."""
    key = f"{plan.nhs_number}|{plan.run_id}|{plan.coded_sha256}|{i}of{n}|{start}-{stop}"
    key += "|" + ",".join(f"{p.document_id}:{p.page}" for p in plan.included)
    return "LGD-" + hashlib.sha256(key.encode()).hexdigest()[:16].upper()


def _dmy(day: dt.date | None) -> str:
    return "" if day is None else f"{day:%d/%m/%Y}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_metadata_csv(rows: Iterable[dict[str, str]], path: Path) -> None:
    """Write NDR bulk-upload rows with exactly `COLUMNS`, in that order (one metadata.csv may hold many patients).

    Every cell goes through `safe_cell`: USER-ID and PATIENT-NAME are free text, and a practice
    opens metadata.csv in a spreadsheet to check it before the upload.
    """
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
        writer.writeheader()
        writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
        f.flush()
        os.fsync(f.fileno())


def write_ndr(
    plan: PackPlan,
    pack: PackDocument,
    out: Path,
    *,
    ods_code: str | None,
    when: dt.date,
    user: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> NdrBundle:
    """Split `pack` into NDR files under `out` with metadata.csv; atomic (temp sibling folder, then rename).

    Args:
        plan: the plan the pack was built from (identity, run, SCAN-DATE).
        pack: the pack from `build_pack_pdf` (not laid out for duplex: blanks mean nothing here).
        out: the folder to create; it must not exist, or be empty.
        ods_code: the sending practice's ODS code for GP-PRACTICE-CODE; None leaves it empty (and warns:
            the NDR bulk upload refuses rows without it).
        when: the UPLOAD date, and the files' own dates.
        user: USER-ID; by default the operating-system user running lgd.
        max_bytes: each file's size limit (default `DEFAULT_MAX_BYTES`).

    Raises:
        PackBuildError: the pack was laid out for duplex printing (`ndr_duplex_pack`), `out` is not
            empty (`ndr_out_exists`), the patient's name or birth date is
            not recorded (`ndr_identity_incomplete`), the ODS code is malformed (`ndr_bad_ods`), or
            one page alone exceeds `max_bytes` (`ndr_page_too_big`).
    """
    out = Path(out)
    if pack.duplex:
        raise PackBuildError(
            "ndr_duplex_pack",
            "an NDR upload is read on screen, not printed: build the pack with duplex=False (no blank versos)",
        )
    if not plan.name or plan.born is None or not ndr_name_part(plan.name):
        raise PackBuildError(
            "ndr_identity_incomplete",
            f"NDR file names need the patient's name and date of birth; the archive has name {plan.name!r} and "
            f"birth date {plan.born} for {plan.nhs_number}; record them (NDR file name, folder name or metadata.csv) "
            "and digitise again, or choose another format",
        )
    ods = (ods_code or "").strip().upper()
    if ods and not _ODS.fullmatch(ods):
        raise PackBuildError("ndr_bad_ods", f"{ods_code!r} is not an ODS code (3 to 10 letters and digits, e.g. A81001)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackBuildError("ndr_out_exists", f"{out} already exists and is not an empty folder; give a new folder")
    if max_bytes < 1:
        raise PackBuildError("ndr_bad_size", f"the size limit must be a positive number of bytes, not {max_bytes}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        patient_dir = tmp / plan.nhs_number
        patient_dir.mkdir()
        title = f"Lloyd George record transfer pack: {full_name(plan.name)} NHS {nhs_spaced(plan.nhs_number)}"
        parts = _write_parts(pack, patient_dir, when, max_bytes, title)
        files, rows = [], []
        for i, (path, start, stop) in enumerate(parts, start=1):
            name = ndr_file_name(i, len(parts), plan.name, plan.nhs_number, plan.born)
            path.rename(patient_dir / name)
            sid = scan_id(plan, i, len(parts), start, stop)
            filepath = f"/{plan.nhs_number}/{name}"
            final = out / plan.nhs_number / name
            files.append(NdrFile(final, filepath, start + 1, stop - start, (patient_dir / name).stat().st_size,
                                 sha256_file(patient_dir / name), sid))
            rows.append({
                "FILEPATH": filepath, "PAGE COUNT": str(stop - start), "GP-PRACTICE-CODE": ods,
                "NHS-NO": plan.nhs_number, "SECTION": SECTION, "SUB-SECTION": "",
                "SCAN-DATE": _dmy(plan.digitised_on), "SCAN-ID": sid, "USER-ID": full_name(user or current_actor()),
                "UPLOAD": _dmy(when), "PATIENT-NAME": full_name(plan.name),
            })
        write_metadata_csv(rows, tmp / "metadata.csv")
        for f in files:  # durable before the rename makes the folder visible as complete
            _fsync(patient_dir / f.path.name)
        _fsync(patient_dir)
        _fsync(tmp)
        os.chmod(tmp, 0o700)  # patient records: owner only
        os.replace(tmp, out)  # replaces an empty `out` folder; refuses a non-empty one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return NdrBundle(out, tuple(files), out / "metadata.csv", tuple(rows), _warnings(plan.name, ods))


def _warnings(name: str, ods: str) -> tuple[str, ...]:
    warnings = [] if ods else [
        "GP-PRACTICE-CODE is empty: the NDR bulk upload refuses rows without it; give the practice's ODS code"]
    shown, whole = short_name(name).split(), ndr_name_part(name).split()
    if shown != whole:
        cut = (shown[0], shown[-1]) != (whole[0], whole[-1])
        what = ("cut short, so the NDR may not match it with the patient's demographics" if cut else
                "the first given name and the family name, which the NDR checks")
        warnings.append(
            f"the patient's name ({len(' '.join(whole))} characters) is too long for a file name: the NDR file names "
            f"carry [{' '.join(shown)}], {what}; the full name is in metadata.csv, column PATIENT-NAME")
    return tuple(warnings)
