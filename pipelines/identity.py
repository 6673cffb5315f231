"""Patient identity from the input itself: NHS numbers, NDR file names, patient folders and metadata.csv."""

# About 500 lines, over the usual 400: the three identity sources share one error type, one NHS
# number check and one date check, and their precedence is decided in pipelines.ingest.discover.

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = [
    "IdentityCode",
    "IdentityError",
    "Manifest",
    "ManifestRow",
    "NdrName",
    "PatientId",
    "nhs_number_valid",
    "normalise_nhs_number",
    "parse_ndr_filename",
    "parse_patient_folder",
    "read_manifest",
]

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)

NDR_PATTERN = "{i}of{n}_Lloyd_George_Record_[{Name}]_[{NHS number}]_[{DD-MM-YYYY}].pdf"
FOLDER_PATTERN = "{NHS number} {Name} {DD-MM-YYYY}"
NDR_EXTENSIONS = frozenset({"pdf", "tif", "tiff"})


# Parts of one NDR record ("1of3_..."): far more than any envelope is split into, and small
# enough that listing what is missing is cheap whatever a file name claims.
MAX_PARTS = 999


def number_ranges(numbers: Iterable[int]) -> str:
    """1, 2, 3, 5, 7, 8 as "1-3, 5, 7-8": how missing parts are named."""
    ns = sorted(set(numbers))
    runs: list[str] = []
    for n in ns:
        if runs and n == last + 1:
            runs[-1] = f"{runs[-1].split('-')[0]}-{n}"
        else:
            runs.append(str(n))
        last = n
    return ", ".join(runs)


class IdentityCode(StrEnum):
    nhs_number_invalid = "nhs_number_invalid"
    name_not_ndr = "name_not_ndr"
    dob_invalid = "dob_invalid"
    part_invalid = "part_invalid"
    no_identity = "no_identity"
    manifest_invalid = "manifest_invalid"
    identity_conflict = "identity_conflict"


class IdentityError(Exception):
    """An input whose stated patient identity is unusable; `code` is stable, the message says what to do."""

    def __init__(self, code: IdentityCode | str, message: str) -> None:
        super().__init__(message)
        self.code = IdentityCode(code)
        self.message = message

    def __reduce__(self) -> tuple[type[IdentityError], tuple[str, str]]:
        # Survives pickling, so a worker process can hand it back intact.
        return (type(self), (str(self.code), self.message))


@dataclass(frozen=True, slots=True)
class PatientId:
    """Who a document belongs to: a Modulus-11-valid NHS number, and name and birth date when stated."""

    nhs_number: str
    name: str | None
    born: date | None


@dataclass(frozen=True, slots=True)
class NdrName:
    """A parsed National Document Repository file name: part `part` of `parts` of one patient's record."""

    part: int
    parts: int
    patient: PatientId


# --- NHS numbers -----------------------------------------------------------------------------


def normalise_nhs_number(text: str) -> str:
    """`text` without spaces, non-breaking spaces or hyphens ("943 476 5919" -> "9434765919").

    Does not validate; pass the result to `nhs_number_valid`.
    """
    return re.sub(r"[\s\-\u00a0\u2010-\u2015]", "", text)


def nhs_number_valid(digits: str) -> bool:
    """True when `digits` is exactly ten ASCII digits whose last is the Modulus 11 check digit.

    Weights 10..2 apply to the first nine digits; check = 11 - (sum mod 11), where 11 means 0 and 10
    means no number with these nine digits is valid. Spaces are not accepted here: normalise first.
    Ten identical digits ("0000000000", "1111111111", ...) pass Modulus 11 but are placeholders used
    when the number is unknown, so they are refused: accepting one would file different patients
    under one number. Never raises.
    """
    if not isinstance(digits, str) or not re.fullmatch(r"[0-9]{10}", digits):
        return False
    if _is_placeholder(digits):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], _WEIGHTS))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10:
        return False
    return check == int(digits[9])


def _is_placeholder(digits: str) -> bool:
    return len(set(digits)) == 1


def _nhs_number(raw: str, where: str, fix: str) -> str:
    """The normalised NHS number in `raw`, or IdentityError naming `where` and saying `fix`."""
    digits = normalise_nhs_number(raw)
    if not re.fullmatch(r"[0-9]{10}", digits):
        shown = raw.strip() or "(empty)"
        raise IdentityError(
            IdentityCode.nhs_number_invalid,
            f"NHS number {shown!r} in {where} is not a 10-digit NHS number; {fix}",
        )
    if _is_placeholder(digits):
        raise IdentityError(
            IdentityCode.nhs_number_invalid,
            f"NHS number {digits} in {where} is a placeholder (ten identical digits), not a patient's "
            f"number; {fix}",
        )
    if not nhs_number_valid(digits):
        raise IdentityError(
            IdentityCode.nhs_number_invalid,
            f"NHS number {digits} in {where} fails the Modulus 11 check; {fix}",
        )
    return digits


# --- dates -----------------------------------------------------------------------------------


_DATE_FORMATS = {
    "dmy": (re.compile(r"(?P<d>\d{1,2})[-/](?P<m>\d{1,2})[-/](?P<y>\d{4})"), "DD-MM-YYYY"),
    "ymd": (re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"), "YYYY-MM-DD"),
}


def _birth_date(raw: str, where: str, fix: str, today: date | None, formats: tuple[str, ...]) -> date:
    """The date of birth in `raw` in one of `formats` ('dmy', 'ymd'), real and not in the future."""
    text = raw.strip()
    for fmt in formats:
        m = _DATE_FORMATS[fmt][0].fullmatch(text)
        if m:
            break
    else:
        expected = " or ".join(_DATE_FORMATS[f][1] for f in formats)
        raise IdentityError(
            IdentityCode.dob_invalid,
            f"date of birth {text or '(empty)'!r} in {where} is not a {expected} date; {fix}",
        )
    try:
        born = date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError:
        raise IdentityError(
            IdentityCode.dob_invalid,
            f"date of birth {text!r} in {where} is not a real date; {fix}",
        ) from None
    if born > (today or date.today()):
        raise IdentityError(
            IdentityCode.dob_invalid,
            f"date of birth {text!r} in {where} is in the future; {fix}",
        )
    return born


def _clean_name(raw: str, where: str = "", fix: str = "") -> str | None:
    """The name with its spacing tidied; control and bidirectional characters are refused.

    A name is printed on terminals, covers and NDR metadata: a newline would forge a line, a
    right-to-left override would show another name than the one stored.
    """
    bad = sorted({f"U+{ord(c):04X}" for c in raw if unicodedata.category(c) in ("Cc", "Cf")})
    if bad:
        raise IdentityError(IdentityCode.name_not_ndr, f"the patient name in {where or 'the input'} holds control "
                            f"or formatting characters ({', '.join(bad[:4])}); {fix or 'correct it'}")
    name = " ".join(raw.split())
    return name or None


# --- NDR file names ----------------------------------------------------------------------------

_SEP = r"[_ ]"
_NDR_RE = re.compile(
    rf"(?P<i>\d+){_SEP}?of{_SEP}?(?P<n>\d+){_SEP}+lloyd{_SEP}?george{_SEP}?record{_SEP}*"
    r"\[(?P<name>[^\[\]]*)\]" rf"{_SEP}*"
    r"\[(?P<nhs>[^\[\]]*)\]" rf"{_SEP}*"
    r"\[(?P<dob>[^\[\]]*)\]"
    r"\.(?P<ext>[A-Za-z0-9]+)",
    re.IGNORECASE,
)
# Near misses worth an error rather than silence: the NDR prefix, or the title with a bracketed field.
_NDR_PREFIX_RE = re.compile(r"\s*\d+\s*of\s*\d+[\W_]*lloyd[\W_]*george[\W_]*record", re.IGNORECASE)
_NDR_TITLE_RE = re.compile(r"lloyd[\W_]*george[\W_]*record", re.IGNORECASE)


def _looks_ndr(name: str) -> bool:
    return bool(_NDR_PREFIX_RE.match(name)) or (bool(_NDR_TITLE_RE.search(name)) and "[" in name)


def parse_ndr_filename(name: str, *, today: date | None = None) -> NdrName | None:
    """Parse a National Document Repository file name (`NDR_PATTERN`, or .tif/.tiff).

    Lenient on the case of the whole name, on spaces within the NHS number and on `_` versus a space
    between the fixed words. An empty `[Name]` gives `name=None`.

    Returns:
        The parsed name, or None when `name` does not look like an NDR name at all, so that other
        identity sources can be tried.

    Raises:
        IdentityError: the name looks like an NDR name but is malformed (`name_not_ndr`), has
            i > n or a zero (`part_invalid`), an NHS number that is not 10 digits or fails Modulus 11
            (`nhs_number_invalid`), or a date of birth that is not real or is in the future
            (`dob_invalid`).
    """
    base = PureWindowsPath(name).name if "\\" in name else PurePosixPath(name).name
    if not _looks_ndr(base):
        return None
    where = f"{base!r}"
    fix = "correct the file name or add a metadata.csv row for it"
    m = _NDR_RE.fullmatch(base.strip())
    if m is None:
        raise IdentityError(
            IdentityCode.name_not_ndr,
            f"file name {where} looks like a National Document Repository name but does not follow "
            f"{NDR_PATTERN}; {fix}",
        )
    ext = m["ext"].lower()
    if ext not in NDR_EXTENSIONS:
        raise IdentityError(
            IdentityCode.name_not_ndr,
            f"file name {where} is a National Document Repository name but ends .{m['ext']}; "
            f"NDR files end .pdf, .tif or .tiff; {fix}",
        )
    if max(len(m["i"]), len(m["n"])) > len(str(MAX_PARTS)) or int(m["n"]) > MAX_PARTS:
        raise IdentityError(
            IdentityCode.part_invalid,
            f"file name {where} says its record has {m['n']} parts; lgd accepts at most {MAX_PARTS} "
            f"(a Lloyd George record is a few parts); {fix}",
        )
    part, parts = int(m["i"]), int(m["n"])
    if parts < 1 or part < 1 or part > parts:
        raise IdentityError(
            IdentityCode.part_invalid,
            f"file name {where} says part {part} of {parts}, which is impossible "
            f"(parts are numbered 1 to n); {fix}",
        )
    nhs = _nhs_number(m["nhs"], where, fix)
    born = _birth_date(m["dob"], where, fix, today, ("dmy",))
    return NdrName(part=part, parts=parts, patient=PatientId(nhs, _clean_name(m["name"], where, fix), born))


# --- patient folders ---------------------------------------------------------------------------

_FOLDER_HEAD_RE = re.compile(r"\s*(?P<nhs>\d{3}[ -]?\d{3}[ -]?\d{4})\s+(?P<rest>\S.*)")
_FOLDER_TAIL_RE = re.compile(r"(?P<name>.*?)\s*(?P<dob>\S+)\s*")


def parse_patient_folder(name: str, *, today: date | None = None) -> PatientId | None:
    """Parse a patient folder name `FOLDER_PATTERN`, e.g. '999 000 1234 Jane Anne Smith 03-05-1950'.

    A name is "of that shape" when it starts with a 10-digit number (optionally grouped 3-3-4 by
    spaces or hyphens) followed by more text; its last word must then be the date of birth.

    Returns:
        The patient, or None when the name is not of that shape.

    Raises:
        IdentityError: of that shape but with a bad NHS number (`nhs_number_invalid`) or a last
            word that is not a real past DD-MM-YYYY date (`dob_invalid`). A missing name is allowed
            (`name=None`).
    """
    head = _FOLDER_HEAD_RE.fullmatch(name)
    if head is None:
        return None
    where = f"folder {name!r}"
    fix = f"rename the folder to {FOLDER_PATTERN!r} or add a metadata.csv row for each file in it"
    nhs = _nhs_number(head["nhs"], where, fix)
    tail = _FOLDER_TAIL_RE.fullmatch(head["rest"])
    assert tail is not None  # `rest` starts with a non-space, so the pattern always matches
    if not re.fullmatch(r"\d{1,2}-\d{1,2}-\d{4}", tail["dob"]):
        raise IdentityError(
            IdentityCode.dob_invalid,
            f"{where} does not end with a DD-MM-YYYY date of birth; {fix}",
        )
    born = _birth_date(tail["dob"], where, fix, today, ("dmy",))
    # The name is for people to read; the NHS number and date of birth identify, so a folder
    # without a name is still accepted.
    return PatientId(nhs, _clean_name(tail["name"], where, fix), born)


# --- metadata.csv ------------------------------------------------------------------------------

REQUIRED_COLUMNS = ("FILEPATH", "NHS-NO")


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One data row of a metadata.csv.

    `row` is the spreadsheet row number (the header is row 1). `filepath` is the cell as written;
    `paths` are the absolute locations it may mean: relative to the manifest's folder, or absolute,
    and for an absolute path that starts with `/` also relative to the manifest's folder, as NDR bulk
    uploads write them ("/9434765919/1of1_...pdf"). `columns` holds every cell by header.
    """

    row: int
    filepath: str
    paths: tuple[Path, ...]
    patient: PatientId
    columns: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """The base name of `filepath`."""
        return PureWindowsPath(self.filepath).name

    def get(self, column: str) -> str | None:
        """The cell under header `column` (case-insensitive), or None when there is no such column."""
        want = _header_key(column)
        for header, value in self.columns:
            if _header_key(header) == want:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A metadata.csv: which file belongs to which patient."""

    path: Path
    rows: tuple[ManifestRow, ...]
    _by_path: dict[Path, ManifestRow] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, tuple[ManifestRow, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_path: dict[Path, ManifestRow] = {}
        by_name: dict[str, list[ManifestRow]] = {}
        for row in self.rows:
            for p in row.paths:
                by_path.setdefault(p, row)
            by_name.setdefault(row.name, []).append(row)
        object.__setattr__(self, "_by_path", by_path)
        object.__setattr__(self, "_by_name", {k: tuple(v) for k, v in by_name.items()})

    def lookup(self, path: Path | str) -> ManifestRow | None:
        """The row for the file at `path`, or None.

        Matches by resolved path first. Falls back to the base name only when exactly one row has
        that base name and none of that row's paths exists on disk: a row whose file exists
        elsewhere names a different file that happens to share the name.
        """
        resolved = _resolve(Path(path))
        row = self._by_path.get(resolved)
        if row is not None:
            return row
        candidates = self._by_name.get(resolved.name, ())
        if len(candidates) != 1:
            return None
        (only,) = candidates
        if any(p.exists() for p in only.paths):
            return None
        return only


def _header_key(header: str) -> str:
    return re.sub(r"[\s_]+", "-", header.strip().lstrip("\ufeff").upper())


def _resolve(path: Path) -> Path:
    return path.expanduser().resolve(strict=False)


def _row_paths(filepath: str, folder: Path) -> tuple[Path, ...]:
    text = filepath.strip().replace("\\", "/")
    if PureWindowsPath(filepath.strip()).drive:
        # A Windows drive path ("C:/scans/x.pdf") means nothing here; match by base name only.
        return ()
    if text.startswith("/"):
        absolute = _resolve(Path(text))
        under = _resolve(folder / text.lstrip("/"))
        return (absolute,) if absolute == under else (absolute, under)
    return (_resolve(folder / text),)


def _parse_manifest_dob(raw: str, where: str, fix: str, today: date | None) -> date | None:
    if not raw.strip():
        return None
    fix = f"{fix}, writing the date as DD/MM/YYYY, DD-MM-YYYY or YYYY-MM-DD"
    return _birth_date(raw, where, fix, today, ("dmy", "ymd"))


def read_manifest(path: Path | str, *, today: date | None = None) -> Manifest:
    """Read a metadata.csv with at least the columns FILEPATH and NHS-NO.

    Optional columns NAME and DOB (DD/MM/YYYY, DD-MM-YYYY or YYYY-MM-DD) fill in the patient's name
    and date of birth. Headers match case-insensitively, ignoring surrounding spaces and treating `_`
    like `-`. Blank lines are skipped. Every row is checked before returning, so one error lists
    every bad row.

    Raises:
        IdentityError: `manifest_invalid` when the file cannot be read, is not UTF-8, lacks a
            required column, has a row without FILEPATH, or names one file twice with different NHS
            numbers. Bad cells in rows raise with the cell's code (`nhs_number_invalid`,
            `dob_invalid`) when every bad row shares it, else `manifest_invalid`; the message names
            each bad row number.
    """
    path = Path(path)
    shown = f"metadata.csv {str(path)!r}" if path.name.lower() != "metadata.csv" else f"{str(path)!r}"
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            records = list(csv.reader(fh))
    except FileNotFoundError:
        raise IdentityError(
            IdentityCode.manifest_invalid, f"manifest {str(path)!r} does not exist; check the --manifest path"
        ) from None
    except UnicodeDecodeError:
        raise IdentityError(
            IdentityCode.manifest_invalid,
            f"manifest {shown} is not UTF-8 text; save it as 'CSV UTF-8' and try again",
        ) from None
    except (OSError, csv.Error) as exc:
        raise IdentityError(
            IdentityCode.manifest_invalid, f"manifest {shown} cannot be read ({exc}); check the file"
        ) from exc

    if not records or not any(cell.strip() for cell in records[0]):
        raise IdentityError(
            IdentityCode.manifest_invalid,
            f"manifest {shown} is empty; it needs a header row with at least {', '.join(REQUIRED_COLUMNS)}",
        )
    headers = [h.strip().lstrip("\ufeff") for h in records[0]]
    keys = [_header_key(h) for h in headers]
    missing = [c for c in REQUIRED_COLUMNS if c not in keys]
    if missing:
        raise IdentityError(
            IdentityCode.manifest_invalid,
            f"manifest {shown} has no {', '.join(missing)} column (found: {', '.join(headers) or 'none'}); "
            f"add the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} to the header row",
        )
    col = {k: keys.index(k) for k in ("FILEPATH", "NHS-NO", "NAME", "DOB") if k in keys}

    def cell(record: list[str], key: str) -> str:
        i = col.get(key)
        return record[i] if i is not None and i < len(record) else ""

    folder = _resolve(path).parent
    rows: list[ManifestRow] = []
    problems: list[tuple[int, IdentityCode, str]] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(c.strip() for c in record):
            continue
        where = f"{shown} row {number}"
        fix = "correct that row"
        filepath = cell(record, "FILEPATH").strip()
        if not filepath:
            problems.append((number, IdentityCode.manifest_invalid, f"{where} has no FILEPATH; {fix}"))
            continue
        try:
            nhs = _nhs_number(cell(record, "NHS-NO"), f"{where} (FILEPATH {filepath!r})", fix)
            born = _parse_manifest_dob(cell(record, "DOB"), f"{where} (FILEPATH {filepath!r})", fix, today)
            name = _clean_name(cell(record, "NAME"), f"{where} (FILEPATH {filepath!r})", fix)
        except IdentityError as exc:
            problems.append((number, exc.code, exc.message))
            continue
        columns = tuple((h, record[i] if i < len(record) else "") for i, h in enumerate(headers))
        rows.append(
            ManifestRow(
                row=number,
                filepath=filepath,
                paths=_row_paths(filepath, folder),
                patient=PatientId(nhs, name, born),
                columns=columns,
            )
        )

    unique: list[ManifestRow] = []
    seen: dict[tuple[Path, ...] | str, ManifestRow] = {}
    for row in rows:
        key: tuple[Path, ...] | str = row.paths or row.filepath
        first = seen.get(key)
        if first is None:
            seen[key] = row
            unique.append(row)
        elif first.patient.nhs_number != row.patient.nhs_number:
            problems.append(
                (
                    row.row,
                    IdentityCode.manifest_invalid,
                    f"{shown} rows {first.row} and {row.row} give {row.filepath!r} two NHS numbers "
                    f"({first.patient.nhs_number}, {row.patient.nhs_number}); keep the right row and "
                    "delete the other",
                )
            )
        # An identical repeat of a row is harmless: keep the first.

    if problems:
        problems.sort(key=lambda p: p[0])
        codes = {code for _, code, _ in problems}
        code = codes.pop() if len(codes) == 1 else IdentityCode.manifest_invalid
        shown_problems = [message for _, _, message in problems[:10]]
        more = len(problems) - len(shown_problems)
        if more:
            shown_problems.append(f"... and {more} more bad row{'s' if more > 1 else ''}")
        raise IdentityError(code, "\n".join(shown_problems))
    return Manifest(path=_resolve(path), rows=tuple(unique))
