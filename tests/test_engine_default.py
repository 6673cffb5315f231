"""The default OCR engine (`auto`), $LGD_ENGINE, and how many workers the memory allows.

The suite reads with Tesseract ($LGD_ENGINE in conftest.py); here the variable is taken away so
`lgd digitise` runs as a user gets it, on one small generated record (an envelope front and a
hand-written card) through the real engines.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from pipelines.engines import OTHER_WORKER_MB, WORKER_MB, default_workers, memory_available_mb
from fixtures.generate import generate_pages
from index import Catalogue
from tests.conftest import run_lgd
from tests.test_ocr_ppocr import CARD, CARD_LINES, DPI, HAND, page


def _without_engine_setting() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LGD_ENGINE"}
    env["LGD_ENGINE"] = ""  # empty counts as unset (run_lgd merges onto os.environ)
    return env


def test_digitise_reads_hand_writing_with_ppocr_by_default(tmp_path) -> None:
    folder = tmp_path / "scans" / "9990000018 Jane Smith 03-05-1950"  # a folder of page images names its patient
    folder.mkdir(parents=True)
    page(CARD, CARD_LINES, HAND, 56).save(folder / "page1.png", dpi=(DPI, DPI))
    archive = tmp_path / "archive"
    proc = run_lgd("digitise", tmp_path / "scans", "--archive", archive, "--json", env=_without_engine_setting())
    assert proc.returncode == 0, proc.stderr
    (doc,) = proc.json["documents"]
    assert doc["status"] == "ok" and doc["pdfa_valid"]
    with sqlite3.connect(archive / "catalogue.sqlite") as conn:
        (detail,) = conn.execute("SELECT detail FROM audit WHERE action = 'digitise'").fetchone()
    audit = json.loads(detail)
    assert audit["engine"] == "auto"
    # Tesseract reads the page first; the hand-written card is read again by PP-OCR and keeps that reading.
    assert list(audit["pages_read_by"]) == [k for k in audit["pages_read_by"] if k.startswith("ppocr")], audit
    words = {w.casefold().strip(".") for w in doc_words(archive)}
    assert {"tonsils", "salbutamol", "sprained"} <= words


def doc_words(archive) -> list[str]:
    with Catalogue.open(archive, create=False, readonly=True) as catalogue:
        (doc,) = catalogue.documents(status="ok")
        return [w[0] for p in catalogue.pages(doc.id) for w in p.words]


def test_a_bad_engine_setting_is_a_usage_error_before_any_work(tmp_path) -> None:
    generate_pages(tmp_path / "batch", pages=1, seed=3)
    archive = tmp_path / "archive"
    proc = run_lgd("digitise", tmp_path / "batch" / "scans", "--archive", archive, env={"LGD_ENGINE": "easyocr"})
    assert proc.returncode == 2
    assert "$LGD_ENGINE='easyocr' is not an OCR engine" in proc.stderr and "tesseract" in proc.stderr
    assert not archive.exists()
    # --engine wins over the setting.
    ok = run_lgd("digitise", tmp_path / "batch" / "scans", "--archive", archive, "--engine", "tesseract", "--json",
                 env={"LGD_ENGINE": "easyocr"})
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(("engine", "cpus", "available_mb", "workers"), [
    ("auto", 32, 16_000, 16_000 // WORKER_MB["auto"]),  # memory, not cores, bounds PP-OCR workers
    ("auto", 2, 24_000, 2),
    ("tesseract", 32, 16_000, 32),
    ("tesseract", 8, 1_000, 1_000 // OTHER_WORKER_MB),
    ("ppocr", 4, 500, 1),  # never fewer than one
    ("auto", 6, None, 6),  # memory unknown: the cores
])
def test_default_workers_fit_the_memory_available(engine, cpus, available_mb, workers) -> None:
    assert default_workers(engine, cpus=cpus, available_mb=available_mb) == workers


def test_the_memory_available_is_read_from_this_machine() -> None:
    available = memory_available_mb()
    assert available is not None and available > 0  # Linux: /proc/meminfo always says
    assert 1 <= default_workers("auto") <= (len(os.sched_getaffinity(0)))
