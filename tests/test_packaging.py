"""A plain `pip install .` gives a working lgd: the data files it reads at run time are in the wheel (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """lgd built as a wheel and installed (without its dependencies, which this venv has) into a folder."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("lgd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("pipelines/clinical/lexicon.toml", "pipelines/clinical/vocabulary/synonyms.tsv", "pipelines/clinical/vocabulary/drugs.tsv",
                 "pipelines/clinical/vocabulary/codes.tsv", "pipelines/clinical/vocabulary/ambiguous.tsv",
                 "pipelines/web/templates/page.html", "pipelines/web/templates/login.html",
                 "pipelines/web/static/lgd.css"):
        assert data in names, f"{data} is missing from the wheel"
    target = out / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel],
                   check=True, capture_output=True, timeout=300)
    return target


def run_installed(target: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # Run from an empty folder, so only the installed copy (not this checkout) can be imported.
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_installed_copy_runs_and_reads_its_own_data(installed, tmp_path):
    proc = run_installed(installed, "import pipelines, sys; from pipelines.cli import main; "
                         "print(pipelines.__file__); sys.exit(main(['--version']))", tmp_path)
    assert proc.returncode == 0 and str(installed) in proc.stdout and "lgd " in proc.stdout, proc.stderr
    proc = run_installed(installed, "from pipelines.clinical import default_reader, fingerprint; r = default_reader(); "
                         "print(len(r.vocabulary.concepts), fingerprint())", tmp_path)
    assert proc.returncode == 0, proc.stderr
    concepts, fingerprint = proc.stdout.split()
    assert int(concepts) > 600 and len(fingerprint) == 64


def test_the_installed_copy_serves_its_sign_in_page(installed, tmp_path, digitised):
    """lgd serve from a plain install: templates and style sheet come from the wheel, not this checkout."""
    code = ("import sys; from fastapi.testclient import TestClient; from pipelines.web.app import create_app; "
            "import pipelines.web as w; c = TestClient(create_app(sys.argv[1])); "
            "r = c.get('/login'); s = c.get('/static/lgd.css'); "
            "print(w.__file__, r.status_code, 'Sign in' in r.text, s.status_code)")
    env = {**os.environ, "PYTHONPATH": str(installed)}
    proc = subprocess.run([sys.executable, "-c", code, str(digitised.archive)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, login, signs_in, css = proc.stdout.split()
    assert where.startswith(str(installed)) and (login, signs_in, css) == ("200", "True", "200")
