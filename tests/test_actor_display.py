"""The audit's actor from the real user id, free text fit to store, outside names fit to print (issue 11)."""

from __future__ import annotations

import os
import pwd

import pytest

from pipelines.actor import current_actor, free_text
from pipelines.display import elide, printable
from pipelines.errors import LgdError
from tests.conftest import run_lgd


def test_the_actor_is_the_real_user_whatever_user_and_logname_say(monkeypatch):
    monkeypatch.setenv("USER", "dr.who\nforged line")
    monkeypatch.setenv("LOGNAME", "dr.who")
    assert current_actor() == pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.parametrize("text", ["", "   ", "line one\nline two", "tab\there", "rtl \u202e override", "x" * 2001])
def test_free_text_with_control_characters_or_too_long_is_refused(text):
    with pytest.raises(LgdError):
        free_text(text, "--reason")


def test_free_text_keeps_ordinary_text_and_accents():
    assert free_text("  Café letter: mentions FH of MI ", "--reason") == "Café letter: mentions FH of MI"


def test_names_are_elided_in_the_middle_keeping_part_number_and_date_of_birth():
    a = "1of2_Lloyd_George_Record_[Janet Wilson]_[9994649884]_[15-06-1935].pdf"
    b = "2of2" + a[4:]
    assert elide(a, 100) == a
    short_a, short_b = elide(a, 40), elide(b, 40)
    assert len(short_a) == 40 and short_a != short_b
    assert short_a.startswith("1of2_") and short_a.endswith("[15-06-1935].pdf")
    assert printable("a\x1b[2J\nb\u202e") == "a\\x1b[2J\\x0ab\\u202e"


def test_an_override_reason_with_a_newline_is_refused_and_nothing_is_stored(digitised, tmp_path):
    proc = run_lgd("review", "--patient", "9994649884", "--omit", "x:1", "--reason", "ok\nforged: by root",
                   "--archive", digitised.archive)
    assert proc.returncode == 2 and "control" in proc.stderr
