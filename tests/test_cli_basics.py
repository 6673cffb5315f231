"""The lgd command's own manners: version, a mistyped command, a language that is not installed (issue 11)."""

from __future__ import annotations

import re

from tests.conftest import run_lgd


def test_version_is_printed_with_both_flags():
    for flag in ("--version", "-V"):
        proc = run_lgd(flag)
        assert proc.returncode == 0 and re.fullmatch(r"lgd \S+\n", proc.stdout)


def test_a_mistyped_command_suggests_the_nearest():
    proc = run_lgd("serch", "asthma")
    assert proc.returncode == 2 and "did you mean `search`?" in proc.stderr
    proc = run_lgd("frobnicate")
    assert proc.returncode == 2 and "the commands are" in proc.stderr and "reconcile" in proc.stderr


def test_a_language_that_is_not_installed_is_refused_before_any_work(tmp_path):
    (tmp_path / "scans").mkdir()
    proc = run_lgd("digitise", tmp_path / "scans", "--language", "eng+xxx", "--archive", tmp_path / "archive")
    assert proc.returncode == 2 and "xxx" in proc.stderr and "tesseract-ocr-xxx" in proc.stderr
    assert not (tmp_path / "archive").exists()


def test_patient_reassign_is_a_command_with_help():
    proc = run_lgd("patient", "reassign", "--help")
    assert proc.returncode == 0 and "--to NHS" in proc.stdout and "--reason" in proc.stdout
