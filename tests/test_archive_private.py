"""The archive is created private and refused when others can write to it (issue 11)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from index import ArchiveError, ArchiveStore
from tests.conftest import run_lgd


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_archive_and_its_patient_folders_are_private(tmp_path):
    store = ArchiveStore(tmp_path / "archive")
    store.ensure()
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4 synthetic")
    relative = store.put_pdf("9434765919", pdf)
    for folder in (store.root, store.pdf_dir, store.quarantine_dir, store.tmp_dir, store.fulltext_dir,
                   (store.root / relative).parent):
        assert mode(folder) == 0o700, folder
    assert mode(store.root / relative) & 0o077 == 0


@pytest.mark.parametrize("bits", [0o777, 0o770, 0o702])
def test_an_archive_others_can_write_to_is_refused(tmp_path, bits):
    root = tmp_path / "archive"
    ArchiveStore(root).ensure()
    root.chmod(bits)
    with pytest.raises(ArchiveError) as e:
        ArchiveStore(root).ensure()
    assert e.value.code == "archive_insecure" and "chmod" in e.value.message


def test_the_command_line_refuses_an_open_archive_with_exit_4(tmp_path):
    root = tmp_path / "archive"
    ArchiveStore(root).ensure()
    (root / "fulltext").chmod(0o777)
    scans = tmp_path / "scans"
    scans.mkdir()
    proc = run_lgd("digitise", scans, "--archive", root)
    assert proc.returncode == 4 and "written by other users" in proc.stderr
