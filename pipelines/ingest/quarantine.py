"""The archive's quarantine as work to do: list what could not be digitised, try it again, or discard it.

A quarantine entry is a folder ARCHIVE/quarantine/ID holding copies of the input and a
reason.json (written atomically by index.store). Retrying rebuilds the input under its own
name in ARCHIVE/tmp and digitises it like any other; discarding deletes the copies. Both need
the digitise permission and a reason, and both are audited with it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index import ArchiveStore, Catalogue
from pipelines.actor import free_text
from pipelines.errors import ExitCode, LgdError, NotFound
from pipelines.service.access import Permission, Who

if TYPE_CHECKING:  # run.py imports OCR; only the retry's caller needs it
    from pipelines.identity import Manifest
    from pipelines.ingest.records import Outcome
    from pipelines.ingest.run import Report

_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[A-Za-z0-9._ ()\[\]-]+")
_NUMBERED = re.compile(r"^\d{4}-")


@dataclass(frozen=True, slots=True)
class Quarantined:
    id: str
    source: str
    code: str
    reason: str
    at: str
    files: tuple[dict[str, Any], ...]

    @property
    def copies(self) -> list[str]:
        return [f["name"] for f in self.files if f.get("copied") and f.get("name")]

    @property
    def checksum(self) -> str | None:
        """The input's checksum as `lgd digitise` computes it (ingest.run.input_checksum), which names the
        document in `lgd status` and the JSON logs; None unless every file was copied."""
        shas = [f.get("sha256") for f in self.files]
        if not shas or not all(shas):
            return None
        if len(shas) == 1:
            return str(shas[0])
        outer = hashlib.sha256()
        for f in self.files:
            outer.update(f"{Path(str(f.get('path', ''))).name}\0{f['sha256']}\n".encode())
        return outer.hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "code": self.code, "reason": self.reason, "at": self.at,
                "files": len(self.files), "copied": len(self.copies), "sha256": self.checksum}


def entries(store: ArchiveStore) -> list[Quarantined]:
    """Every quarantine entry, oldest first; a folder without a readable reason.json is skipped."""
    found = []
    for folder in sorted(store.quarantine_dir.iterdir()) if store.quarantine_dir.is_dir() else ():
        item = _read(folder)
        if item is not None:
            found.append(item)
    return found


def _read(folder: Path) -> Quarantined | None:
    try:
        raw = json.loads((folder / "reason.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Quarantined(folder.name, str(raw.get("source", "")), str(raw.get("code", "")), str(raw.get("reason", "")),
                       str(raw.get("at", "")), tuple(f for f in raw.get("files", ()) if isinstance(f, dict)))


def find(store: ArchiveStore, entry_id: str) -> Quarantined:
    if not _ID.fullmatch(entry_id) or "/" in entry_id or entry_id.startswith("."):
        raise NotFound(f"{entry_id!r} is not a quarantine id; `lgd quarantine list` shows them", "no_such_quarantine")
    item = _read(store.quarantine_dir / entry_id)
    if item is None:
        raise NotFound(f"there is no quarantine entry {entry_id!r} in {store.quarantine_dir} "
                       "(`lgd quarantine list` shows them)", "no_such_quarantine")
    return item


def check(who: Who, reason: str) -> str:
    who.require(Permission.digitise)
    return free_text(reason, "--reason")


def rebuild_input(store: ArchiveStore, item: Quarantined) -> tuple[Path, Path]:
    """(work folder, the input under its original name) in ARCHIVE/tmp, made from the quarantined copies."""
    if not item.copies:
        raise LgdError(f"quarantine entry {item.id} holds no copy of its input ({item.source}); digitise the "
                       "original again once it is fixed, then discard this entry", ExitCode.usage, "nothing_to_retry")
    # Not named job-*: the digitise run that retries it clears those as a dead run's leftovers.
    work = store.tmp_dir / f"retry-{uuid.uuid4().hex}"
    work.mkdir(mode=0o700, parents=True)
    folder = store.quarantine_dir / item.id
    if len(item.files) == 1 and Path(str(item.files[0].get("path", ""))).name == item.source:
        target = work / Path(item.source).name
        shutil.copyfile(folder / item.copies[0], target)
    else:  # a folder of page images: its name carries the identity, its files keep their order
        target = work / Path(item.source).name
        target.mkdir(mode=0o700)
        for name in item.copies:
            shutil.copyfile(folder / name, target / _NUMBERED.sub("", name) if len(item.copies) > 1 else target / name)
    return work, target


def remove(store: ArchiveStore, item: Quarantined) -> None:
    """Delete the entry: renamed out of quarantine first, so a crash never leaves half an entry behind."""
    gone = store.tmp_dir / f"job-discarded-{uuid.uuid4().hex}"
    (store.quarantine_dir / item.id).rename(gone)
    shutil.rmtree(gone, ignore_errors=True)


def discard(catalogue: Catalogue, store: ArchiveStore, who: Who, entry_id: str, reason: str) -> Quarantined:
    reason = check(who, reason)
    item = find(store, entry_id)
    catalogue.audit(who.name, "quarantine_discard", None, **who.audit_detail(), quarantine=item.id,
                    source=item.source, code=item.code, reason=reason,
                    sha256=[f.get("sha256") for f in item.files])
    remove(store, item)
    return item


def failed_nhs_number(catalogue: Catalogue, source: str) -> str | None:
    """The NHS number the failed input was given (by name, folder or manifest), when the catalogue knows it."""
    rows = [r for r in catalogue.documents(status="failed") if r.source == source and r.nhs_number]
    return rows[-1].nhs_number if rows else None


@dataclass(frozen=True, slots=True)
class Retried:
    item: Quarantined
    outcome: Outcome | None  # None: the run was stopped before the input was done
    interrupted: bool

    @property
    def status(self) -> str:
        return self.outcome.status if self.outcome else "interrupted"

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {"id": self.item.id, "action": "retried", "source": self.item.source, "outcome": self.status,
                "reason": o.reason if o else "", "code": o.code if o else ""}


def retry(archive: Path, who: Who, entry_id: str, reason: str,
          digitise: Callable[[Path, Manifest | None], Report]) -> Retried:
    """Digitise a quarantined input again with `digitise(input, manifest)` (the caller's local or queued run),
    audit it with the reason, and remove the entry once the input has had its turn (stored, or quarantined
    again under a new id). `lgd quarantine retry` and `lgd serve`'s work page both call this."""
    from pipelines.identity import read_manifest
    from pipelines.search import open_catalogue

    store = ArchiveStore(archive)
    with open_catalogue(archive) as catalogue:
        reason = check(who, reason)
        item = find(store, entry_id)
        nhs = failed_nhs_number(catalogue, item.source)
    work, target = rebuild_input(store, item)
    try:
        manifest = None
        if nhs is not None:  # the identity it was given (perhaps by a manifest row), not one guessed anew
            csv = target.parent / "metadata.csv"
            csv.write_text(f"FILEPATH,NHS-NO\n\"{target.name.replace(chr(34), chr(34) * 2)}\",{nhs}\n", encoding="utf-8")
            manifest = read_manifest(csv)
        report = digitise(target, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = Retried(item, report.outcomes[-1] if report.outcomes else None, report.interrupted)
    with open_catalogue(archive) as catalogue:
        catalogue.audit(who.name, "quarantine_retry", done.outcome.nhs_number if done.outcome else None,
                        **who.audit_detail(), quarantine=item.id, source=item.source, code=item.code, reason=reason,
                        outcome=done.status,
                        new_reason=done.outcome.reason if done.outcome and done.outcome.status == "failed" else None)
    if done.outcome is not None:
        remove(store, item)
    return done
