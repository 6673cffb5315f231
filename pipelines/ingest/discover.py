"""Find the scanned documents among the paths given to `lgd digitise` and say whose each one is."""

# About 430 lines, over the usual 400: walking, identity precedence and the batch-level warnings
# (missing parts, repeated sources, unmatched manifest rows) all work on the same walk state.

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Literal

from natsort import natsorted, ns
from PIL import Image

from pipelines.display import printable
from pipelines.identity import (
    FOLDER_PATTERN,
    NDR_PATTERN,
    IdentityCode,
    IdentityError,
    Manifest,
    ManifestRow,
    PatientId,
    number_ranges,
    parse_ndr_filename,
    parse_patient_folder,
)

__all__ = ["Discovery", "InputDoc", "Rejected", "discover", "PAGE_IMAGE_EXTENSIONS"]

PAGE_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
_TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
# Operating-system litter that is never a scan; compared case-insensitively.
_LITTER = frozenset({"thumbs.db", ".ds_store", "desktop.ini"})
_MANIFEST_NAME = "metadata.csv"

# Extra rejection codes, beside IdentityCode, for paths that cannot even be looked at.
NOT_FOUND = "not_found"
UNREADABLE = "unreadable"

IdentifiedBy = Literal["manifest", "ndr_name", "folder"]


@dataclass(frozen=True, slots=True)
class InputDoc:
    """One document to digitise.

    `source` is the base name of the file as given, or the folder's name when `files` are the page
    images of one folder (`origin='folder'`), in natural name order. `part`/`parts` come from an NDR
    file name ("2of3"), else None. `identified_by` says which source supplied the NHS number.
    """

    source: str
    files: tuple[Path, ...]
    patient: PatientId
    part: int | None
    parts: int | None
    origin: Literal["file", "folder"]
    identified_by: IdentifiedBy | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that will not be digitised: a stable `code` and a `reason` that says what to do."""

    path: Path
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Discovery:
    """What `discover` found: documents in input order, rejected inputs, and warnings for people."""

    documents: tuple[InputDoc, ...]
    rejected: tuple[Rejected, ...]
    warnings: tuple[str, ...]


def discover(
    paths: Sequence[Path | str],
    manifest: Manifest | None,
    *,
    today: date | None = None,
    stored_parts: Mapping[str, set[tuple[int, int]]] | None = None,
) -> Discovery:
    """Walk `paths` (files and folders, recursively) and identify the patient of every document.

    Identity precedence for a file: its `manifest` row, then its NDR file name, then the nearest
    enclosing folder named like a patient folder. Every source present must agree on the NHS
    number, else the file is rejected as `identity_conflict`. A broken source ranked above the one
    that identifies the file rejects it (its error code); a broken source ranked below is ignored
    with a warning. Folders are walked in natural name order, files before sub-folders; hidden
    entries, Thumbs.db, .DS_Store, desktop.ini and metadata.csv are skipped.

    Page images (.png, .jpg, .jpeg, single-page .tif/.tiff) found by walking a folder and identified
    only by a patient folder become one document per folder. Page images named individually on the
    command line, PDFs, multi-page TIFFs and files of any other extension are one document each;
    their formats are checked downstream.

    `today` bounds dates of birth (default: the system date). Never raises for bad inputs: each
    becomes a `Rejected` and the rest carry on.
    """
    walk = _Walk(manifest=manifest, today=today)
    for given in paths:
        walk.add_given(Path(given))
    warnings = list(walk.warnings)
    warnings += _part_warnings(walk.documents, stored_parts or {})
    warnings += _source_warnings(walk.documents)
    if manifest is not None:
        warnings += _unmatched_rows(manifest, walk.matched_rows)
    return Discovery(tuple(walk.documents), tuple(walk.rejected), tuple(dict.fromkeys(warnings)))


# --- walking ---------------------------------------------------------------------------------


def _natural(paths: Iterable[Path]) -> list[Path]:
    # Sort by exact name first so names equal under IGNORECASE still come out in a fixed order.
    return natsorted(sorted(paths, key=lambda p: p.name), key=lambda p: p.name, alg=ns.PATH | ns.IGNORECASE)


def _is_litter(name: str) -> bool:
    return name.lower() in _LITTER


@dataclass(frozen=True, slots=True)
class _Identity:
    patient: PatientId
    part: int | None
    parts: int | None
    by: IdentifiedBy
    row: ManifestRow | None


@dataclass
class _Walk:
    """The mutable state of one `discover` call; private to this module."""

    manifest: Manifest | None
    today: date | None
    documents: list[InputDoc] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    matched_rows: set[int] = field(default_factory=set)
    _seen_files: set[Path] = field(default_factory=set)
    _seen_dirs: set[Path] = field(default_factory=set)
    _entries_found: int = 0  # files met while walking, new or already seen
    _folder_cache: dict[Path, tuple[PatientId, Path] | IdentityError | None] = field(default_factory=dict)

    def add_given(self, given: Path) -> None:
        if given.is_dir():
            before = self._entries_found
            self._walk_dir(given, given.resolve())
            if self._entries_found == before:
                self.warnings.append(f"folder {str(given)!r} holds no files to digitise")
        elif given.is_file():
            if _is_litter(given.name):
                self.warnings.append(
                    f"skipped {str(given)!r}: {given.name} is operating-system litter, not a scan"
                )
            elif given.name.lower() == _MANIFEST_NAME:
                self.warnings.append(
                    f"skipped {str(given)!r}: a metadata.csv is not a scan; pass it with --manifest"
                )
            else:
                self._add_files([given], walked=False)
        elif os.path.lexists(given):
            self.rejected.append(
                Rejected(
                    given,
                    UNREADABLE,
                    f"{str(given)!r} is neither a file nor a folder (a broken link?); check the path",
                )
            )
        else:
            self.rejected.append(Rejected(given, NOT_FOUND, f"{str(given)!r} does not exist; check the path"))

    def _walk_dir(self, folder: Path, root: Path) -> None:
        """Walk `folder`, inside the named input `root`; links that lead out of `root` are not followed."""
        real = folder.resolve()
        if real in self._seen_dirs:
            return  # given twice, or a link back to a folder already walked
        self._seen_dirs.add(real)
        try:
            entries = list(folder.iterdir())
        except OSError as exc:
            self.rejected.append(
                Rejected(
                    folder,
                    UNREADABLE,
                    f"folder {str(folder)!r} cannot be read ({exc.strerror or exc}); check its permissions",
                )
            )
            return
        files: list[Path] = []
        folders: list[Path] = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or _is_litter(name) or name.lower() == _MANIFEST_NAME:
                continue
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                # A link out of the folder given (to /etc, to another patient's scans) is not an
                # input of this batch: say so, and neither read it nor copy it anywhere.
                self.warnings.append(f"skipped {printable(str(entry))!r}: a link to outside {printable(str(root))!r}")
                continue
            if entry.is_dir():
                folders.append(entry)
            elif entry.is_file():
                self._entries_found += 1
                files.append(entry)
            else:
                self._entries_found += 1
                self.rejected.append(
                    Rejected(
                        entry,
                        UNREADABLE,
                        f"{str(entry)!r} is neither a file nor a folder (a broken link?); check it",
                    )
                )
        self._add_files(_natural(files), walked=True)
        for sub in _natural(folders):
            self._walk_dir(sub, root)

    def _add_files(self, files: list[Path], *, walked: bool) -> None:
        """Identify `files` (all in one folder when `walked`) and append their documents in order."""
        pages: list[Path] = []
        page_identity: _Identity | None = None
        slot: int | None = None
        for path in files:
            real = path.resolve()
            if real in self._seen_files:
                continue
            self._seen_files.add(real)
            identity = self._identify(path)
            if isinstance(identity, Rejected):
                self.rejected.append(identity)
                continue
            if identity.row is not None:
                self.matched_rows.add(identity.row.row)
            if walked and identity.by == "folder" and _is_single_page_image(path):
                if slot is None:
                    slot = len(self.documents)
                    page_identity = identity
                pages.append(path)
                continue
            self.documents.append(
                InputDoc(
                    path.name, (path,), identity.patient, identity.part, identity.parts, "file", identity.by
                )
            )
        if pages:
            assert slot is not None and page_identity is not None
            folder = pages[0].parent
            doc = InputDoc(folder.name, tuple(pages), page_identity.patient, None, None, "folder", "folder")
            self.documents.insert(slot, doc)

    # --- identity ----------------------------------------------------------------------------

    def _folder_identity(self, path: Path) -> tuple[PatientId, Path] | IdentityError | None:
        """The identity of the nearest enclosing folder named like a patient folder, if any."""
        for folder in Path(os.path.abspath(path)).parents:
            if not folder.name:
                continue
            if folder not in self._folder_cache:
                try:
                    patient = parse_patient_folder(folder.name, today=self.today)
                    self._folder_cache[folder] = None if patient is None else (patient, folder)
                except IdentityError as exc:
                    self._folder_cache[folder] = exc
            found = self._folder_cache[folder]
            if found is not None:
                return found
        return None

    def _identify(self, path: Path) -> _Identity | Rejected:
        # (rank, label, patient) for each source that identifies the file; lower rank wins.
        sources: list[tuple[int, str, PatientId]] = []
        errors: list[tuple[int, str, IdentityError]] = []
        row = self.manifest.lookup(path) if self.manifest is not None else None
        if row is not None:
            sources.append((0, f"metadata.csv row {row.row}", row.patient))
        ndr = None
        try:
            ndr = parse_ndr_filename(path.name, today=self.today)
        except IdentityError as exc:
            errors.append((1, "its file name", exc))
        if ndr is not None:
            sources.append((1, "its file name", ndr.patient))
        folder = self._folder_identity(path)
        if isinstance(folder, IdentityError):
            errors.append((2, "its folder name", folder))
        elif folder is not None:
            sources.append((2, f"folder {folder[1].name!r}", folder[0]))

        if not sources:
            if errors:
                _, _, exc = errors[0]
                return Rejected(path, exc.code, exc.message)
            return Rejected(path, IdentityCode.no_identity, self._no_identity_reason(path))

        winner_rank, winner_label, winner = sources[0]
        for rank, _, exc in errors:
            if rank < winner_rank:
                return Rejected(path, exc.code, exc.message)

        numbers = {patient.nhs_number for _, _, patient in sources}
        if len(numbers) > 1:
            stated = ", ".join(f"{patient.nhs_number} from {label}" for _, label, patient in sources)
            return Rejected(
                path,
                IdentityCode.identity_conflict,
                f"{path.name!r} has conflicting NHS numbers ({stated}); correct whichever is wrong "
                "and run again (a metadata.csv row cannot overrule a valid name that disagrees)",
            )

        for rank, label, exc in errors:
            if rank == 2:
                # Worded per folder, not per file, so that discover() can report it once.
                self.warnings.append(
                    f"ignored a folder name ({exc.message}); files in it identified by their own "
                    "names or metadata.csv rows were kept"
                )
            else:
                self.warnings.append(
                    f"{path.name!r}: ignored {label} ({exc.message}); identity taken from {winner_label}"
                )
        births = {patient.born for _, _, patient in sources if patient.born is not None}
        if len(births) > 1:
            stated = ", ".join(
                f"{patient.born.isoformat()} from {label}" for _, label, patient in sources if patient.born
            )
            self.warnings.append(
                f"{path.name!r}: NHS number {winner.nhs_number} agrees everywhere but the dates of birth "
                f"differ ({stated}); check the record before relying on the date of birth"
            )
        patient = replace(
            winner,
            name=next((p.name for _, _, p in sources if p.name), None),
            born=next((p.born for _, _, p in sources if p.born), None),
        )
        by: IdentifiedBy = ("manifest", "ndr_name", "folder")[winner_rank]  # type: ignore[assignment]
        return _Identity(
            patient=patient,
            part=ndr.part if ndr else None,
            parts=ndr.parts if ndr else None,
            by=by,
            row=row,
        )

    def _no_identity_reason(self, path: Path) -> str:
        manifest = (
            "" if self.manifest is None else f" (metadata.csv {str(self.manifest.path)!r} has no row for it)"
        )
        return (
            f"no patient identity for {str(path)!r}{manifest}; name the file {NDR_PATTERN}, put it in a "
            f"folder named {FOLDER_PATTERN!r}, or add a metadata.csv row with its FILEPATH and NHS-NO"
        )


def _is_single_page_image(path: Path) -> bool:
    """True for a PNG/JPEG, or a TIFF with one frame; a TIFF that PIL cannot open counts as one."""
    suffix = path.suffix.lower()
    if suffix not in PAGE_IMAGE_EXTENSIONS:
        return False
    if suffix not in _TIFF_EXTENSIONS:
        return True
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) <= 1
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        # Classification only: digitising this file later reports the real problem clearly.
        return True


# --- batch-level warnings -------------------------------------------------------------------


def _part_label(doc: InputDoc) -> str:
    return f"{doc.part}of{doc.parts}"


def _part_warnings(documents: Sequence[InputDoc], stored: Mapping[str, set[tuple[int, int]]]) -> list[str]:
    """Missing, inconsistent or repeated parts of multi-part NDR records, per patient.

    `stored` holds the (part, parts) already in the archive for each NHS number: a part
    digitised by an earlier run is not missing.
    """
    by_patient: dict[str, list[InputDoc]] = defaultdict(list)
    for doc in documents:
        if doc.part is not None and doc.parts is not None:
            by_patient[doc.patient.nhs_number].append(doc)
    warnings: list[str] = []
    for nhs, docs in by_patient.items():
        have = ", ".join(natsorted({_part_label(d) for d in docs}))
        counts = sorted({d.parts for d in docs if d.parts is not None})
        if len(counts) > 1:
            warnings.append(
                f"patient {nhs}: the file names disagree on how many parts the record has (have {have}); "
                "check the file names"
            )
        else:
            (n,) = counts
            present = {d.part for d in docs} | {part for part, total in stored.get(nhs, ()) if total == n}
            missing = [i for i in range(1, n + 1) if i not in present]  # n is at most MAX_PARTS
            if len(missing) == 1:
                warnings.append(f"patient {nhs}: part {missing[0]} of {n} is missing (have {have})")
            elif missing:
                warnings.append(f"patient {nhs}: parts {number_ranges(missing)} of {n} are missing (have {have})")
        by_part: dict[tuple[int | None, int | None], list[InputDoc]] = defaultdict(list)
        for doc in docs:
            by_part[(doc.part, doc.parts)].append(doc)
        for (part, parts), same in by_part.items():
            if len(same) > 1:
                files = ", ".join(repr(str(d.files[0])) for d in same)
                warnings.append(
                    f"patient {nhs}: part {part} of {parts} was given {len(same)} times ({files}); "
                    "check for a duplicate submission"
                )
    return warnings


def _source_warnings(documents: Sequence[InputDoc]) -> list[str]:
    """Two documents of one patient with the same `source` make (source, page) ambiguous."""
    by_key: dict[tuple[str, str], list[InputDoc]] = defaultdict(list)
    for doc in documents:
        by_key[(doc.patient.nhs_number, doc.source)].append(doc)
    warnings = []
    for (nhs, source), same in by_key.items():
        # Repeated NDR parts are already reported as duplicate submissions.
        if len(same) > 1 and same[0].part is None:
            where = ", ".join(repr(str(d.files[0].parent)) for d in same)
            warnings.append(
                f"patient {nhs}: {len(same)} documents are called {source!r} (in {where}); their pages "
                "will be hard to tell apart, so rename all but one"
            )
    return warnings


def _unmatched_rows(manifest: Manifest, matched: set[int]) -> list[str]:
    """Rows naming a file that neither exists where the row says nor was matched by base name."""
    warnings = []
    for row in manifest.rows:
        if row.row in matched or any(p.exists() for p in row.paths):
            continue
        warnings.append(
            f"metadata.csv row {row.row}: {row.filepath!r} was not found among the inputs; check its FILEPATH"
        )
    return warnings
