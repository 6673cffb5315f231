"""Shared, session-scoped fixtures: one generated batch, digitised once by the real `lgd` command.

Generating and OCR'ing is the slow part of the suite (real Tesseract and OCRmyPDF), so
the batch is made once per test session and tests read the archive it produced. Tests
that change an archive make their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.generate import BatchTruth, generate_batch

REPO = Path(__file__).resolve().parent.parent
# Tests read with Tesseract unless they say otherwise: `auto` (the default) costs about twice its
# CPU and would put the suite over its budget. The default itself is exercised end to end by
# tests/test_engine_default.py and by scripts/demo.sh; tests of an engine pass --engine.
os.environ.setdefault("LGD_ENGINE", "tesseract")


def reference_data_dir() -> Path:
    """The public coded-record fixtures: $LGD_REFERENCE_DATA, else ../shared/reference-data beside the repo."""
    candidates = [os.environ.get("LGD_REFERENCE_DATA"), REPO.parent / "shared" / "reference-data", Path("/work/shared/reference-data")]
    for candidate in filter(None, candidates):
        if Path(candidate).is_dir():
            return Path(candidate)
    return REPO.parent / "shared" / "reference-data"
LGD = [sys.executable, "-m", "pipelines.cli"]


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make `path` unwritable even for root: permission bits as a user, the immutable attribute as root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and `chattr +i` failed ({done.stderr.strip()}): no way to make {path} read-only here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@dataclass(frozen=True)
class Digitised:
    batch: BatchTruth
    archive: Path
    result: dict  # the --json document
    returncode: int


def run_lgd(*args: str | os.PathLike, check_json: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `lgd` command line in a subprocess, as a user would."""
    proc = subprocess.run(
        [*LGD, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check_json and "--json" in map(str, args):
        proc.json = json.loads(proc.stdout)
    return proc


@pytest.fixture(scope="session")
def sample_batch(tmp_path_factory) -> BatchTruth:
    """Four synthetic patients: an NDR PDF record in two parts, a TIFF, a folder of page images, another PDF."""
    return generate_batch(tmp_path_factory.mktemp("batch"), patients=4, seed=7)


@pytest.fixture(scope="session")
def digitised(sample_batch, tmp_path_factory) -> Digitised:
    archive = tmp_path_factory.mktemp("archive") / "lgd-archive"
    proc = run_lgd("digitise", sample_batch.scans, "--archive", archive, "--jobs", "2", "--json")
    return Digitised(sample_batch, archive, proc.json, proc.returncode)


@pytest.fixture(scope="session")
def pack_pdf(tmp_path_factory) -> Path:
    """A real PDF/A-2b of two pages (~1.2 MB: one page of noise, which does not compress), made by lgd's own code."""
    import numpy as np
    from PIL import Image

    from digitise import pdfa

    folder = tmp_path_factory.mktemp("pdfa")
    Image.new("L", (620, 880), 255).save(folder / "p1.png", dpi=(150, 150))
    noise = np.random.default_rng(5).integers(0, 256, (1100, 1100), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "p2.png", dpi=(150, 150))
    pdfa.images_to_pdf([folder / "p1.png", folder / "p2.png"], folder / "image.pdf")
    (folder / "words").mkdir()
    pdfa.make_pdfa(folder / "image.pdf", folder / "words", folder / "pack.pdf", "synthetic", "eng", [])
    assert pdfa.validate(folder / "pack.pdf").passed
    return folder / "pack.pdf"


def copy_with_accounts(archive: Path, into: Path, accounts: dict[str, str], password: str | None) -> Path:
    """A copy of `archive` in `into` with these lgd accounts (name -> role), all with `password` (None: tokens only).

    Made in-process through the same service call `lgd user add` makes; tests/test_serve_api.py
    makes its accounts with the real command instead.
    """
    from index import Catalogue
    from pipelines.service import accounts as service
    from pipelines.service.access import Role, Who

    copy = into / "lgd-archive"
    shutil.copytree(archive, copy)
    with Catalogue.open(copy, create=False) as catalogue:
        for name, role in accounts.items():
            service.add_user(catalogue, Who("test-setup", Role.owner), name, role, password)
    return copy
