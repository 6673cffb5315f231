"""The shared store between the writer and its queue workers: inputs in, page facts and PDF/As out.

Only keys travel through the broker; the bytes live here. A key is the document's input
checksum, so a document sent twice is one key and its result one file. `FolderStore` is a
folder every worker can reach (NFS, SMB); the `ResultStore` protocol is the seam for an
object store (S3, MinIO): the same six calls over buckets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipelines.atomic import write_atomic

_KEY = re.compile(r"[0-9a-f]{64}")
PRIVATE = 0o600


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a worker needs to know of one document besides its bytes."""

    source: str
    born: str | None  # ISO date: resolves two-digit years
    files: tuple[str, ...]  # names of the input's files in the store, in page order


class ResultStore(Protocol):
    def put_input(self, key: str, source: str, born: str | None, files: Sequence[Path]) -> None: ...

    def job(self, key: str) -> tuple[JobSpec, tuple[Path, ...]]: ...

    def put_result(self, key: str, result_json: str, pdfa: Path | None) -> None: ...

    def finished(self) -> set[str]: ...

    def result(self, key: str) -> tuple[str, Path]: ...

    def forget(self, key: str) -> None: ...


def check_key(key: str) -> str:
    """A store key is a SHA-256 in hex: never a path someone could steer out of the store."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a store key: {key!r}")
    return key


class FolderStore:
    """jobs/KEY/{job.json, 0001-name...} written by the writer; results/KEY.{json,pdf} written by workers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.jobs = self.root / "jobs"
        self.results = self.root / "results"

    def ensure(self) -> None:
        for folder in (self.root, self.jobs, self.results):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def put_input(self, key: str, source: str, born: str | None, files: Sequence[Path]) -> None:
        folder = self.jobs / check_key(key)
        if (folder / "job.json").is_file():  # already submitted (a re-run, or the same scan twice)
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        names = []
        for i, path in enumerate(files):
            name = f"{i + 1:04d}{Path(path).suffix.lower()[:10]}"
            tmp = folder / f".{name}.part"
            shutil.copyfile(path, tmp)
            os.chmod(tmp, PRIVATE)
            os.replace(tmp, folder / name)
            names.append(name)
        spec = {"source": source, "born": born, "files": names}
        write_atomic(folder / "job.json", json.dumps(spec, ensure_ascii=False).encode(), PRIVATE)

    def job(self, key: str) -> tuple[JobSpec, tuple[Path, ...]]:
        folder = self.jobs / check_key(key)
        raw = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        files = tuple(str(f) for f in raw["files"])
        if any("/" in f or f.startswith(".") for f in files):
            raise ValueError(f"job {key}: bad file name in job.json")
        return JobSpec(str(raw["source"]), raw.get("born"), files), tuple(folder / f for f in files)

    def put_result(self, key: str, result_json: str, pdfa: Path | None) -> None:
        """The PDF/A first, then the JSON that names it: a result is visible only once whole."""
        check_key(key)
        self.results.mkdir(mode=0o700, parents=True, exist_ok=True)
        if pdfa is not None:
            tmp = self.results / f".{key}.pdf.{os.getpid()}.part"
            shutil.copyfile(pdfa, tmp)
            os.chmod(tmp, PRIVATE)
            os.replace(tmp, self.results / f"{key}.pdf")
        write_atomic(self.results / f"{key}.json", result_json.encode("utf-8"), PRIVATE)

    def finished(self) -> set[str]:
        """Keys whose result is complete."""
        try:
            names = os.listdir(self.results)
        except FileNotFoundError:
            return set()
        return {n[:-5] for n in names if n.endswith(".json") and _KEY.fullmatch(n[:-5])}

    def result(self, key: str) -> tuple[str, Path]:
        """(result JSON, folder its PDF/A is in)."""
        return (self.results / f"{check_key(key)}.json").read_text(encoding="utf-8"), self.results

    def forget(self, key: str) -> None:
        """Remove a document's input and result once the writer has stored it (or given up on it)."""
        check_key(key)
        shutil.rmtree(self.jobs / key, ignore_errors=True)
        for suffix in (".pdf", ".json"):
            (self.results / f"{key}{suffix}").unlink(missing_ok=True)
